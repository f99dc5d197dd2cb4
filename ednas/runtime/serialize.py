"""Torch -> ONNX serialisation: the one exporter latency, deploy and report use.

:func:`onnx_bytes` serialises a network with the TorchScript exporter
(``dynamo=False``: the dynamo exporter needs onnxscript, which torch does not
install, and writes opset 18 whatever is asked), opset 17 by default, fixed
input size, batch 1 or a symbolic batch; input ``input``, output ``logits``.
:func:`export_onnx` writes the same bytes to a file (atomically) after
``onnx.checker`` has accepted them.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from ednas.io import _atomic

__all__ = ["export_onnx", "onnx_bytes"]


def onnx_bytes(model: torch.nn.Module, input_size: int, batch: int = 1, dynamic_batch: bool = False, opset: int = 17, in_channels: int = 3) -> bytes:
    """The ONNX serialisation of ``model`` (put in eval mode) for a fixed input size."""
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

    data = onnx_bytes(model, input_size, batch, dynamic_batch, opset, in_channels)
    onnx.checker.check_model(onnx.load_from_string(data))
    return _atomic(Path(path), lambda f: f.write(data))
