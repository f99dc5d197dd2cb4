"""Deployment: fused ONNX export, ONNX Runtime checks, fixed-point quantization.

========================  ===================================================
``onnx_io``               export a network to ONNX, ORT sessions, timing
``calibration``           calibration images and ORT's data reader
``pow2``                  power-of-two fixed point (TIDL, TDA4VM) as QDQ scales
``quantize``              post-training static quantization (QDQ, 8/16 bit)
``measure``               top-1 and interleaved latency through ONNX Runtime
``export``                ``ednas export``: all of the above, with a record
========================  ===================================================

Importing this package does not import ONNX Runtime's quantization tools;
the names below load their module on first use.
"""

from __future__ import annotations

import importlib

__all__ = [
    "CalibrationReader",
    "ExportConfig",
    "QuantSettings",
    "calibration_images",
    "check_input_shape",
    "compare_latency",
    "export_model",
    "export_onnx",
    "is_pow2",
    "onnx_bytes",
    "onnx_scores",
    "ort_session",
    "pow2_overrides",
    "pow2_scale",
    "quant_scales",
    "quantize_onnx",
    "run_export",
    "time_session",
    "top1",
]

_WHERE = {
    "CalibrationReader": "calibration",
    "calibration_images": "calibration",
    "check_input_shape": "calibration",
    "ExportConfig": "export",
    "export_model": "export",
    "run_export": "export",
    "QuantSettings": "quantize",
    "quantize_onnx": "quantize",
    "is_pow2": "pow2",
    "pow2_overrides": "pow2",
    "pow2_scale": "pow2",
    "quant_scales": "pow2",
    "compare_latency": "measure",
    "onnx_scores": "measure",
    "top1": "measure",
    "export_onnx": "onnx_io",
    "onnx_bytes": "onnx_io",
    "ort_session": "onnx_io",
    "time_session": "onnx_io",
}


def __getattr__(name: str):
    # lazy: the latency code imports ednas.deploy.onnx_io on every search, and
    # onnxruntime.quantization costs a second to import
    if name in _WHERE:
        return getattr(importlib.import_module(f"ednas.deploy.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ednas.deploy' has no attribute '{name}'")
