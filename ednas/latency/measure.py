"""Measuring LAT(op) of eq. 11 on this host, and whole networks end to end.

* ``host-ort``: every operator timed with ONNX Runtime by the same code that
  runs on a board (:mod:`ednas.latency.board`: in-context "sandwich" models,
  fixed threads, warm-up, median of repeats, median over rounds).
* ``host-torch``: every operator timed in PyTorch eager mode, channels_last,
  as its deploy-form module (conv with bias, ReLU); in eager mode each
  module runs on its own, so the operator alone is what the network runs.
* :func:`measure_latency`: one model end to end with ONNX Runtime, in deploy
  form (fused if needed), with the same session options as the table.

Threads are set explicitly (default 1): on the 2-vCPU machine this was
written on, 2-thread timings come in fast and slow episodes up to 2x apart
(../shared/baselines section 7), so tables are built and validated at 1.
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from typing import Callable, Iterable

import torch
import torch.nn as nn

from ednas.latency import board
from ednas.latency.ops import Op

__all__ = [
    "measure_ops_ort",
    "measure_ops_torch",
    "measure_latency",
    "onnx_deploy_bytes",
    "time_onnx_models",
    "time_torch_models",
    "deploy_model",
    "torch_threads",
]


@contextmanager
def torch_threads(n: int):
    """Run a block with ``n`` intra-op torch threads, then restore the old count."""
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def measure_ops_ort(
    ops: Iterable[Op],
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 100,
    rounds: int = 5,
    on_entry: Callable[[Op, dict], None] | None = None,
) -> dict:
    """``{key: {"ms", "spread_ms", "n"}}`` of each operator with ONNX Runtime.

    ``on_entry`` is called after each operator (the builder saves the table
    there, so an interrupted build keeps what it measured).
    """
    out, cache = {}, {}
    for op in ops:
        e = board.measure_op(op.key, threads, warmup, repeats, rounds, cache=cache)
        out[op.key] = e
        if on_entry:
            on_entry(op, e)
        if len(cache) > 64:  # each session holds its weights
            cache.clear()
    return out


def _torch_op(op: Op) -> tuple[nn.Module, tuple]:
    """The deploy-form module of ``op`` and its input shape."""
    if op.type == "fc":
        return nn.Linear(op.cin, op.cout), (1, op.cin)
    if op.type == "pool":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)), (1, op.cin, op.h, op.w)
    if op.type == "add":
        return _Add(), (1, op.cin, op.h, op.w)
    conv = nn.Conv2d(op.cin, op.cout, op.kernel, op.stride, op.kernel // 2, groups=op.groups, bias=True)
    return (nn.Sequential(conv, nn.ReLU()) if op.relu else nn.Sequential(conv)), (1, op.cin, op.h, op.w)


class _Add(nn.Module):
    def forward(self, x):
        return x + x


def _cl(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t


def _time_call(fn, x, warmup: int, repeats: int, min_time_s: float) -> float:
    for _ in range(warmup):
        fn(x)
    times = []
    t0 = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - t0 < min_time_s:
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def measure_ops_torch(
    ops: Iterable[Op],
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 100,
    rounds: int = 5,
    on_entry: Callable[[Op, dict], None] | None = None,
) -> dict:
    """``{key: {"ms", "spread_ms", "n"}}`` of each operator in PyTorch eager, channels_last."""
    out = {}
    with torch_threads(threads), torch.inference_mode():
        for op in ops:
            m, shape = _torch_op(op)
            m = m.eval().to(memory_format=torch.channels_last)
            x = _cl(torch.rand(shape) * 2 - 1)
            per = [_time_call(m, x, warmup, repeats, 0.02) for _ in range(rounds)]
            e = {"ms": round(statistics.median(per), 6), "spread_ms": round(statistics.pstdev(per), 6), "n": rounds * repeats}
            out[op.key] = e
            if on_entry:
                on_entry(op, e)
    return out


# ---------------------------------------------------------------------------
# whole networks


def _is_deploy(model: nn.Module) -> bool:
    return not any(isinstance(m, nn.BatchNorm2d) or callable(getattr(m, "fuse", None)) for m in model.modules())


def deploy_model(model: nn.Module) -> nn.Module:
    """``model`` in deploy form (BN and branches folded), fusing only if needed."""
    if _is_deploy(model):
        return model.eval()
    from ednas.nn.fuse import fuse

    return fuse(model)


def onnx_deploy_bytes(model: nn.Module, input_size: int) -> bytes:
    """ONNX bytes of the deploy form of ``model``."""
    from ednas.deploy.onnx_io import onnx_bytes

    return onnx_bytes(deploy_model(model), input_size)


def time_onnx_models(models: dict, threads: int = 1, warmup: int = 10, repeats: int = 50, rounds: int = 5, progress=None) -> dict:
    """End-to-end ONNX Runtime ms of ``{name: (onnx bytes, input shape)}``, interleaved over rounds."""
    return board.measure_networks(models, threads, warmup, repeats, rounds, progress=progress)


def time_torch_models(models: dict, input_size: int, threads: int = 1, warmup: int = 10, repeats: int = 50, rounds: int = 5, progress=None) -> dict:
    """End-to-end PyTorch eager (channels_last) ms of ``{name: deploy module}``, interleaved."""
    per = {n: [] for n in models}
    with torch_threads(threads), torch.inference_mode():
        prepared = {n: m.eval().to(memory_format=torch.channels_last) for n, m in models.items()}
        x = _cl(torch.rand(1, 3, input_size, input_size))
        for r in range(rounds):
            for n, m in prepared.items():
                per[n].append(_time_call(m, x, warmup, repeats, 0.05))
                if progress:
                    progress(n, r)
    return {n: {"ms": round(statistics.median(v), 6), "spread_ms": round(statistics.pstdev(v), 6), "n": rounds * repeats} for n, v in per.items()}


def measure_latency(model: nn.Module, input_size: int, threads: int = 1, warmup: int = 10, repeats: int = 50, rounds: int = 5) -> float:
    """End-to-end ms of ``model`` with ONNX Runtime (deploy form; fused if it is not).

    The session options are the table's (:func:`ednas.latency.board.session`):
    ``threads`` intra-op threads, sequential, full graph optimisation.  The
    value is the median over ``rounds`` of the median of ``repeats`` runs.
    """
    data = onnx_deploy_bytes(model, input_size)
    return time_onnx_models({"model": (data, [1, 3, input_size, input_size])}, threads, warmup, repeats, rounds)["model"]["ms"]
