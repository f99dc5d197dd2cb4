"""Power-of-two fixed point (TIDL on TDA4VM-class parts) as ONNX QDQ scales: :mod:`ednas.runtime.pow2`.

Kept importable here; the code lives beside the quantizer in :mod:`ednas.runtime`.
"""

from ednas.runtime.pow2 import (  # noqa: F401 - re-exported
    is_pow2,
    pow2_overrides,
    pow2_scale,
    quant_scales,
    relu_adjusted_ranges,
    weight_inputs,
)

__all__ = ["pow2_scale", "is_pow2", "quant_scales", "pow2_overrides", "relu_adjusted_ranges", "weight_inputs"]
