"""Deployment: fused ONNX export, ONNX Runtime checks, fixed-point quantization.

========================  ===================================================
``calibration``           calibration images and ORT's data reader
``pow2``                  power-of-two fixed point (TIDL, TDA4VM) as QDQ scales
``quantize``              post-training static quantization (QDQ, 8/16 bit)
``measure``               top-1 and interleaved latency through ONNX Runtime
``export``                ``ednas export``: all of the above, with a record
========================  ===================================================

ONNX serialisation, ONNX Runtime sessions, scoring and timing live in
:mod:`ednas.runtime` (shared with the latency table and the report).

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
    "compare_latency",
    "export_model",
    "is_pow2",
    "onnx_scores",
    "pow2_overrides",
    "pow2_scale",
    "quant_scales",
    "quantize_onnx",
    "run_export",
    "top1",
]

_WHERE = {
    "CalibrationReader": "calibration",
    "calibration_images": "calibration",
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
}


def __getattr__(name: str):
    # lazy: onnxruntime.quantization costs a second to import
    if name in _WHERE:
        return getattr(importlib.import_module(f"ednas.deploy.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ednas.deploy' has no attribute '{name}'")
