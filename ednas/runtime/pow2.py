"""Power-of-two fixed point (TIDL on TDA4VM-class parts) expressed as ONNX QDQ scales.

TI's TDA4VM accelerator (MMAv1) runs fixed point with *per-tensor,
symmetric, power-of-two* scales: a multiply by a scale becomes a shift.  ONNX
Runtime's quantizer has no such mode, so we calibrate as usual and then pin
every scale to a power of two through ``TensorQuantOverrides``:

* activations: per tensor, zero point 0, scale ``2^ceil(log2(absmax / qmax))``
  -- the smallest power of two whose range still covers the calibrated
  maximum (rounding up never saturates; it costs at most one bit, which is
  what TI's own power-of-two calibration does).  A tensor that is never
  negative (a ReLU output) is unsigned, ``qmax = 255``, as TIDL stores ReLU
  outputs; a signed one has ``qmax = 127`` (16 bit: 65535 / 32767).
* a ReLU's input takes its output's parameters: ORT then drops the ReLU into
  the convolution's requantisation (TIDL fuses it the same way) instead of
  quantizing the pre-activation with the negative half of the range wasted.
* weights: per tensor (not per channel: MMAv1 has one scale per tensor),
  symmetric, ``2^ceil(log2(max|W| / qmax))``.
* biases are left to ORT, which quantizes them to int32 with scale
  ``input_scale * weight_scale`` -- a product of powers of two, so a power of
  two as well.  ORT's habit of *enlarging* a weight scale when that bias scale
  would overflow int32 is switched off (it would break the power of two); we
  do the same check here and enlarge by a power of two instead.

:func:`quant_scales` lists every scale in a quantized file and
:func:`is_pow2` checks them: the tests assert that all of them are exact
powers of two.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["pow2_scale", "is_pow2", "quant_scales", "pow2_overrides", "relu_adjusted_ranges", "weight_inputs"]

_INT32_MAX = 2**31 - 1


def pow2_scale(absmax: float, bits: int = 8, signed: bool = True) -> float:
    """The smallest power of two ``s`` with ``absmax <= s * qmax``.

    Args:
        absmax: the largest magnitude the tensor must represent.
        bits: 8 or 16.
        signed: signed (``qmax = 2^(bits-1) - 1``) or unsigned (``2^bits - 1``).
    """
    qmax = (2 ** (bits - 1) - 1) if signed else (2**bits - 1)
    if not math.isfinite(absmax) or absmax <= 0.0:
        return 2.0 ** -(bits - 1)  # an all-zero tensor: any scale represents it exactly
    e = math.ceil(math.log2(absmax / qmax))
    # log2 of a value just above a power of two can round down: make sure it covers absmax
    while absmax > (2.0**e) * qmax:
        e += 1
    return float(2.0**e)


def is_pow2(values) -> bool:
    """Whether every value is a positive, exact power of two (as stored, in float32)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return True
    mant, _ = np.frexp(v)
    return bool(np.all(v > 0) and np.all(mant == 0.5))


def quant_scales(model: onnx.ModelProto | str) -> dict[str, np.ndarray]:
    """Every scale of every QuantizeLinear/DequantizeLinear node, by initializer name."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    inits = {t.name: t for t in model.graph.initializer}
    out: dict[str, np.ndarray] = {}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 1:
            name = node.input[1]
            if name in inits:
                out[name] = numpy_helper.to_array(inits[name])
            else:  # a scale computed at run time would not be fixed point at all
                out[name] = np.array([np.nan])
    return out


def weight_inputs(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, str, str, str | None]]:
    """``(node, input, weight, bias)`` of every Conv and Gemm whose weight is an initializer."""
    inits = {t.name for t in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 1 and node.input[1] in inits:
            bias = node.input[2] if len(node.input) > 2 and node.input[2] in inits else None
            found.append((node, node.input[0], node.input[1], bias))
    return found


def relu_adjusted_ranges(model: onnx.ModelProto, ranges: Mapping[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Give each ReLU's (or Clip's) input its output's range, as ORT's quantizer does.

    Only where the input feeds nothing else: then the activation folds into
    the producer's requantisation and the negative half is never stored.
    """
    out = dict(ranges)
    consumers: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    for node in model.graph.node:
        if node.op_type in ("Relu", "Clip") and consumers.get(node.input[0]) == 1 and node.output[0] in out and node.input[0] in out:
            out[node.input[0]] = out[node.output[0]]
    return out


def _zero(bits: int, signed: bool) -> np.ndarray:
    """A zero point of the element type ORT expects (it calls numpy methods on it)."""
    return np.array(0, dtype={(8, True): np.int8, (8, False): np.uint8, (16, True): np.int16, (16, False): np.uint16}[(bits, signed)])


def pow2_overrides(
    model: onnx.ModelProto,
    ranges: Mapping[str, tuple[float, float]],
    act_bits: int = 8,
    weight_bits: int = 8,
    sixteen_bit: Iterable[str] = (),
    unsigned: bool = True,
) -> dict[str, list[dict]]:
    """``TensorQuantOverrides`` that make every activation and weight scale a power of two.

    Args:
        model: the (pre-processed) float model that will be quantized.
        ranges: calibrated ``(min, max)`` per activation tensor.
        act_bits: activation width (8 or 16).
        weight_bits: weight width (8 or 16).
        sixteen_bit: tensors (activations or weights) kept in 16 bit whatever
            the widths above (mixed precision: first and last layers).
        unsigned: store never-negative activations unsigned (TIDL does).

    Returns:
        A dict for ``extra_options["TensorQuantOverrides"]``: per tensor, one
        per-tensor dict with ``quant_type``, ``scale`` and ``zero_point``.
    """
    from onnxruntime.quantization import QuantType

    qtype = {(8, True): QuantType.QInt8, (8, False): QuantType.QUInt8, (16, True): QuantType.QInt16, (16, False): QuantType.QUInt16}
    wide = set(sixteen_bit)
    inits = {t.name: t for t in model.graph.initializer}
    ranges = relu_adjusted_ranges(model, ranges)
    overrides: dict[str, list[dict]] = {}
    act_scale: dict[str, float] = {}
    for name, (lo, hi) in ranges.items():
        if name in inits:
            continue
        lo, hi = float(lo), float(hi)
        bits = 16 if name in wide else act_bits
        signed = not (unsigned and lo >= 0.0)
        s = pow2_scale(max(abs(lo), abs(hi)), bits, signed)
        act_scale[name] = s
        overrides[name] = [{"quant_type": qtype[(bits, signed)], "scale": np.array(s, np.float32), "zero_point": _zero(bits, signed)}]
    for _node, inp, w, bias in weight_inputs(model):
        bits = 16 if w in wide else weight_bits
        wv = numpy_helper.to_array(inits[w]).astype(np.float64)
        s = pow2_scale(float(np.abs(wv).max()) if wv.size else 0.0, bits, True)
        if bias is not None and inp in act_scale:
            # int32 bias with scale s_in * s_w: enlarge s_w by powers of two until it fits
            bmax = float(np.abs(numpy_helper.to_array(inits[bias])).max(initial=0.0))
            while bmax / (act_scale[inp] * s) > _INT32_MAX:
                s *= 2.0
        overrides[w] = [{"quant_type": qtype[(bits, True)], "scale": np.array(s, np.float32), "zero_point": _zero(bits, True)}]
    return overrides
