"""``host-ort``: ONNX Runtime, ednas's first runtime, behind the runtime interface (:mod:`ednas.runtime.interface`).

Sessions are :func:`ednas.runtime.ort_session` (the kit's one session
builder: intra-op ``threads``, one inter-op thread, sequential,
``ORT_ENABLE_ALL``); operators are timed as the kit's float or QDQ graphs
(f32, i8, i16); networks as torch's ONNX export, quantized by ednas's
quantizer in the table's scheme.
"""

from __future__ import annotations

import numpy as np

from ednas.runtime import board
from ednas.runtime.interface import OnnxFormat
from ednas.runtime.session import ort_session, run_batched

__all__ = ["OrtRuntime"]


class OrtRuntime(OnnxFormat):
    name = "onnxruntime"
    target = "host-ort"
    dtypes = ("f32", *board.QUANT_DTYPES)
    extra = None
    title = "ONNX Runtime (CPU execution provider)"
    optimization = "all"

    def available(self) -> bool:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return False
        return True

    def versions(self) -> dict:
        import onnxruntime as ort

        return {"onnxruntime": ort.__version__}

    def load(self, model, threads=1):
        return ort_session(model, threads)

    def run(self, loaded, x) -> np.ndarray:
        return run_batched(loaded, x)

    def runner(self, model, threads=1, shape=None):
        return board.runner(model, threads, shape)
