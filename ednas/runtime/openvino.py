"""``host-openvino``: OpenVINO's CPU plugin behind the runtime interface (:mod:`ednas.runtime.interface`).

OpenVINO reads the ONNX files ednas already writes: operators are timed as
the kit's float or QDQ graphs, networks as torch's ONNX export (quantized
QDQ by ednas's quantizer for an ``i8`` table), each compiled for the ``CPU``
device with ``INFERENCE_NUM_THREADS`` = the threads asked for,
``NUM_STREAMS`` 1 and the ``LATENCY`` hint (:mod:`ednas.runtime.board.openvino_rt`,
the kit's runner, so a board with OpenVINO times exactly as this host).
QDQ int8 becomes OpenVINO's low-precision (u8/i8) kernels; OpenVINO has no
16-bit integer path, so its tables are f32 or i8.  Needs the openvino extra
(``pip install -e ".[openvino]"``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ednas.errors import ConfigError, ExportError
from ednas.runtime.interface import OnnxFormat

__all__ = ["EXTRA", "OpenVinoRuntime"]

EXTRA = "pip install -e '.[openvino]' (openvino)"


class OpenVinoRuntime(OnnxFormat):
    name = "openvino"
    target = "host-openvino"
    dtypes = ("f32", "i8")
    extra = EXTRA
    title = "OpenVINO (CPU plugin)"
    optimization = "OpenVINO CPU plugin: LATENCY hint, 1 stream, INFERENCE_NUM_THREADS = threads"

    def available(self) -> bool:
        try:
            import openvino  # noqa: F401
        except ImportError:
            return False
        return True

    def versions(self) -> dict:
        from ednas.runtime.board import openvino_rt

        return {"openvino": openvino_rt.version()}

    def _rt(self):
        if not self.available():
            raise ConfigError(f"OpenVINO is not installed: {EXTRA}")
        from ednas.runtime.board import openvino_rt

        return openvino_rt

    def load(self, model, threads=1):
        rt = self._rt()
        is_path = isinstance(model, (str, os.PathLike))
        if is_path and not Path(model).is_file():
            raise ExportError(f"ONNX model '{model}' does not exist")
        try:
            return rt.compile_model(model, threads)
        except Exception as err:  # OpenVINO raises its own exception types for files it cannot read
            where = f"'{model}'" if is_path else "(in memory)"
            raise ExportError(f"ONNX model {where} cannot be loaded by OpenVINO: {str(err).splitlines()[0][:300]}") from err

    def run(self, loaded, x) -> np.ndarray:
        return self._rt().run(loaded, x)

    def runner(self, model, threads=1, shape=None):
        return self._rt().runner(model, threads, shape)
