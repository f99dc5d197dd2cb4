"""ONNX export and ONNX Runtime sessions and timing, shared by export, latency and eval.

* :func:`export_onnx` writes a (fused) network with the TorchScript exporter
  (``dynamo=False``: the dynamo exporter needs onnxscript, which torch does
  not install, and writes opset 18 whatever is asked), opset 17 by default,
  fixed input size, optional dynamic batch, then runs ``onnx.checker``.
* :func:`ort_session` opens a CPU session with a deliberate thread count
  (intra-op ``threads``, inter-op 1, sequential) and full graph optimisation:
  the LUT must be measured with the same session options as deployment.
* :func:`time_session` times ``session.run`` after warm-up: median (and
  spread) of repeats, in milliseconds.
"""

from __future__ import annotations

import io
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ednas.errors import ExportError

__all__ = ["export_onnx", "ort_session", "time_session", "onnx_bytes"]


def onnx_bytes(model: torch.nn.Module, input_size: int, batch: int = 1, dynamic_batch: bool = False, opset: int = 17, in_channels: int = 3) -> bytes:
    """The ONNX serialisation of ``model`` (eval mode) for a fixed input size."""
    model = model.eval()
    x = torch.zeros(batch, in_channels, input_size, input_size)
    buf = io.BytesIO()
    dyn = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with torch.no_grad():
        torch.onnx.export(
            model,
            (x,),
            buf,
            input_names=["input"],
            output_names=["logits"],
            opset_version=opset,
            dynamic_axes=dyn,
            do_constant_folding=True,
            dynamo=False,
        )
    return buf.getvalue()


def export_onnx(model: torch.nn.Module, path, input_size: int, batch: int = 1, dynamic_batch: bool = False, opset: int = 17, in_channels: int = 3) -> Path:
    """Export ``model`` to ``path`` (written atomically) and check it with ``onnx.checker``."""
    import onnx

    from ednas.io import _atomic

    data = onnx_bytes(model, input_size, batch, dynamic_batch, opset, in_channels)
    proto = onnx.load_from_string(data)
    onnx.checker.check_model(proto)
    return _atomic(Path(path), lambda f: f.write(data))


def ort_session(model, threads: int = 1, optimization: str = "all"):
    """An ONNX Runtime CPU session for a path or serialised bytes."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }[optimization]
    so.log_severity_level = 3
    src = str(model) if isinstance(model, (str, Path)) else model
    if isinstance(model, (str, Path)) and not Path(model).is_file():
        raise ExportError(f"ONNX model '{model}' does not exist")
    try:
        return ort.InferenceSession(src, sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT raises its own types for bad files
        where = f"'{model}'" if isinstance(model, (str, Path)) else "(in memory)"
        raise ExportError(f"ONNX model {where} cannot be loaded by ONNX Runtime: {str(e).splitlines()[0][:300]}") from e


def time_session(session, feed: dict | None = None, warmup: int = 10, repeats: int = 50, min_time_s: float = 0.0) -> dict:
    """Time ``session.run``: ``{"median_ms", "mean_ms", "std_ms", "min_ms", "n"}``.

    ``feed`` defaults to zeros of the first input's shape.  With
    ``min_time_s`` the repeats continue until that much time has passed.
    """
    if feed is None:
        inp = session.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        feed = {inp.name: np.zeros(shape, dtype=np.float32)}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    t_start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - t_start < min_time_s:
        t = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t) * 1e3)
    return {
        "median_ms": statistics.median(times),
        "mean_ms": statistics.fmean(times),
        "std_ms": statistics.pstdev(times),
        "min_ms": min(times),
        "n": len(times),
    }
