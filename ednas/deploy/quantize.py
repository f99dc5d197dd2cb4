"""Post-training static quantization (QDQ, 8/16 bit, power-of-two): :mod:`ednas.runtime.quantize`.

The quantizer lives in :mod:`ednas.runtime` because the latency table
quantizes the networks it times with it too (a fixed-point table is checked
against files quantized exactly as ``ednas export`` quantizes them); this
module keeps its names where they have always been importable.
"""

from ednas.runtime.quantize import (  # noqa: F401 - re-exported
    CALIB_METHODS,
    ArrayReader,
    QuantSettings,
    calibrate,
    first_last_layers,
    quant_summary,
    quantize_bytes,
    quantize_onnx,
)

__all__ = ["QuantSettings", "CALIB_METHODS", "ArrayReader", "quantize_onnx", "quantize_bytes", "calibrate", "first_last_layers", "quant_summary"]
