"""Post-training static quantization of a fused ONNX model with ONNX Runtime's tools.

The one quantizer of ednas: ``ednas export`` (:mod:`ednas.deploy`) writes
the deployed fixed-point file with it, and the latency table
(:mod:`ednas.latency`) quantizes the networks it times end to end with it,
so a fixed-point table is checked against files made exactly as deployed.

The steps are ONNX Runtime's own (``onnxruntime.quantization``):
``quant_pre_process`` (shape inference, graph clean-up), a calibrator run over
the calibration images (:mod:`ednas.deploy.calibration`, or
:class:`ArrayReader`), then
``quantize_static`` in the **QDQ** format (QuantizeLinear/DequantizeLinear
pairs around float operators: the format every runtime reads and the one ORT's
CPU kernels fuse; the older QOperator format ran 4x slower on an x86 CPU in
our measurements, docs/deploy.md).

What the settings (:class:`QuantSettings`) mean:

==================  ========================================================
``bits=8``          activations uint8 asymmetric (ORT's advice for x86),
                    weights int8 symmetric, per output channel
``bits=16``         activations uint16 asymmetric, weights int16 (unless
                    ``weight_bits=8``); QDQ opset 21
``pow2``            TIDL/TDA4VM fixed point: everything per tensor,
                    symmetric, power-of-two scales (:mod:`ednas.runtime.pow2`)
``mixed``           the first layer (the stem's depthwise conv) and the last
                    (the classifier) in 16 bit -- weights, input and output --
                    the rest at ``bits`` (TI's advice for accuracy)
==================  ========================================================

One calibration serves the whole run: its ranges are written to ORT's
calibration cache and ``quantize_static`` reads them from there, and the
power-of-two mode turns the same ranges into scale overrides.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from ednas.errors import ConfigError
from ednas.io import _atomic
from ednas.runtime.pow2 import is_pow2, pow2_overrides, quant_scales, weight_inputs

__all__ = ["QuantSettings", "CALIB_METHODS", "ArrayReader", "quantize_onnx", "quantize_bytes", "calibrate", "first_last_layers", "quant_summary"]

CALIB_METHODS = ("minmax", "entropy", "percentile")


@dataclass
class QuantSettings:
    """How to quantize.

    Args:
        bits: activation width, 8 or 16.
        weight_bits: weight width, 8 or 16 (default: ``bits``).
        pow2: per-tensor symmetric power-of-two scales (TIDL, TDA4VM).
        per_channel: one weight scale per output channel (ignored with ``pow2``).
        mixed: first and last layers in 16 bit.
        calib_method: ``minmax``, ``entropy`` or ``percentile`` (ORT calibrators).
    """

    bits: int = 8
    weight_bits: int | None = None
    pow2: bool = False
    per_channel: bool = True
    mixed: bool = False
    calib_method: str = "minmax"

    def __post_init__(self):
        if self.bits not in (8, 16):
            raise ConfigError(f"quantization bits must be 8 or 16, got {self.bits}")
        if self.weight_bits is None:
            self.weight_bits = self.bits
        if self.weight_bits not in (8, 16):
            raise ConfigError(f"--weight-bits must be 8 or 16, got {self.weight_bits}")
        if self.calib_method not in CALIB_METHODS:
            raise ConfigError(f"--calib-method must be one of {', '.join(CALIB_METHODS)}, got '{self.calib_method}'")
        if self.pow2:
            self.per_channel = False  # TDA4VM has one scale per tensor

    @property
    def name(self) -> str:
        """A short file-name tag: ``int8``, ``int16``, ``int8_pow2``, ``int8_mixed``, ``int16w8``, ``int8_pertensor``."""
        tag = f"int{self.bits}" + (f"w{self.weight_bits}" if self.weight_bits != self.bits else "")
        layout = "_pow2" if self.pow2 else ("" if self.per_channel else "_pertensor")
        return tag + layout + ("_mixed" if self.mixed else "")


def _method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}[name]


def calibrate(model_path: Path, reader, method: str = "minmax", workdir: Path | None = None):
    """Run ORT's calibrator over ``reader``; returns its ``TensorsData`` (ranges per tensor)."""
    from onnxruntime.quantization import create_calibrator

    with tempfile.TemporaryDirectory(prefix="ednas-calib-", dir=workdir) as tmp:
        cal = create_calibrator(Path(model_path), None, augmented_model_path=str(Path(tmp) / "augmented.onnx"), calibrate_method=_method(method))
        reader.rewind()
        cal.collect_data(reader)
        return cal.compute_data()


def first_last_layers(model: onnx.ModelProto) -> tuple[list[str], set[str]]:
    """The first and last Conv/Gemm (node names) and the tensors to keep in 16 bit.

    The first layer keeps its input (the normalised image), weight and output
    (after its ReLU, when one follows) in 16 bit; the last layer its weight
    and output (the logits).  The last layer's *input* stays at the base
    width: it comes out of a pooling or flatten that shares its producer's
    quantization, so widening it would gain nothing.
    """
    layers = weight_inputs(model)
    if not layers:
        return [], set()
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    (first, inp, w, _), (last, _, w_last, _) = layers[0], layers[-1]
    tensors = {inp, w, first.output[0], w_last, last.output[0]}
    after = consumers.get(first.output[0], [])
    if len(after) == 1 and after[0].op_type in ("Relu", "Clip"):
        tensors.add(after[0].output[0])
    return list(dict.fromkeys([first.name, last.name])), tensors


def _qtype(bits: int, signed: bool):
    from onnxruntime.quantization import QuantType

    return {(8, True): QuantType.QInt8, (8, False): QuantType.QUInt8, (16, True): QuantType.QInt16, (16, False): QuantType.QUInt16}[(bits, signed)]


def _mixed_overrides(model: onnx.ModelProto, tensors: set[str], per_channel: bool) -> dict[str, list[dict]]:
    """16-bit overrides for the first/last layers' tensors (non-power-of-two mode)."""
    inits = {t.name for t in model.graph.initializer}
    axis = {}
    for node, _, w, _ in weight_inputs(model):
        trans_b = any(a.name == "transB" and a.i == 1 for a in node.attribute)
        axis[w] = 0 if node.op_type == "Conv" or trans_b else 1
    out: dict[str, list[dict]] = {}
    for name in tensors:
        if name in inits:
            d = {"quant_type": _qtype(16, True)}
            if per_channel:
                d["axis"] = axis.get(name, 0)
            out[name] = [d]
        else:
            out[name] = [{"quant_type": _qtype(16, False)}]
    return out


def quantize_onnx(src, dst, reader, settings: QuantSettings | None = None) -> dict:
    """Quantize the float ONNX model ``src`` into ``dst`` (QDQ), calibrating on ``reader``.

    Args:
        src: path of the float model (fused, from :func:`ednas.runtime.export_onnx`).
        dst: path of the quantized model (written atomically).
        reader: a :class:`~ednas.deploy.calibration.CalibrationReader` or
            :class:`ArrayReader` (anything with ``get_next`` and ``rewind``).
        settings: :class:`QuantSettings` (default: int8, per-channel weights).

    Returns:
        What was done: ``format``, ``activation_type``, ``weight_type``,
        ``per_channel``, ``pow2``, ``mixed_16bit_layers``, ``calib_method``,
        ``n_scales``, ``all_scales_pow2``.
    """
    from onnxruntime.quantization import QuantFormat, quant_pre_process, quantize_static, save_tensors_data

    s = settings or QuantSettings()
    with tempfile.TemporaryDirectory(prefix="ednas-quant-") as tmp:
        tmp = Path(tmp)
        pre = tmp / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        ranges = calibrate(pre, reader, s.calib_method, tmp)
        cache = tmp / "calibration.json"
        save_tensors_data(ranges, cache)
        model = onnx.load(str(pre))
        mixed_nodes, wide = first_last_layers(model) if s.mixed else ([], set())
        extra: dict = {}
        if s.pow2:
            rng = {k: tuple(float(v) for v in np.asarray(td.range_value).ravel()[:2]) for k, td in ranges.data.items()}
            extra["TensorQuantOverrides"] = pow2_overrides(model, rng, s.bits, s.weight_bits, wide)
            extra["QDQDisableWeightAdjustForInt32Bias"] = True  # pow2_overrides keeps biases in range itself
        elif wide:
            extra["TensorQuantOverrides"] = _mixed_overrides(model, wide, s.per_channel)
        out = tmp / "quant.onnx"
        quantize_static(
            str(pre),
            str(out),
            calibration_data_reader=None,
            quant_format=QuantFormat.QDQ,
            per_channel=s.per_channel,
            activation_type=_qtype(s.bits, signed=s.pow2),
            weight_type=_qtype(s.weight_bits, signed=True),
            calibrate_method=_method(s.calib_method),
            calibration_cache_path=str(cache),
            extra_options=extra,
        )
        data = out.read_bytes()
    _atomic(Path(dst), lambda f: f.write(data))
    summary = quant_summary(onnx.load_from_string(data))
    return {
        "format": "QDQ",
        "activation_type": _qtype(s.bits, signed=s.pow2).name if not s.pow2 else f"int{s.bits}/uint{s.bits} (signed where negative)",
        "weight_type": _qtype(s.weight_bits, True).name,
        "per_channel": s.per_channel,
        "pow2": s.pow2,
        "mixed_16bit_layers": mixed_nodes,
        "calib_method": s.calib_method,
        **summary,
    }


def quant_summary(model: onnx.ModelProto) -> dict:
    """Counts of the quantized file: scales, whether all are powers of two, element types used."""
    scales = quant_scales(model)
    inits = {t.name: t for t in model.graph.initializer}
    types = set()
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            types.add(onnx.TensorProto.DataType.Name(inits[node.input[0]].data_type).lower())
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and len(node.input) > 2 and node.input[2] in inits:
            types.add(onnx.TensorProto.DataType.Name(inits[node.input[2]].data_type).lower())
    return {
        "n_scales": len(scales),
        "all_scales_pow2": all(is_pow2(v) for v in scales.values()),
        "element_types": sorted(types),
        "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
    }


class ArrayReader:
    """Calibration input for ONNX Runtime's calibrators: ``images`` (N x C x H x W float32), one at a time.

    ORT's ``CalibrationDataReader`` is an abstract class that accepts any
    object with ``get_next``; this one needs no import of ORT's tools.
    """

    def __init__(self, images: np.ndarray, input_name: str = "input"):
        self.images, self.input_name, self._pos = np.ascontiguousarray(images, dtype=np.float32), input_name, 0

    def get_next(self) -> dict | None:
        if self._pos >= len(self.images):
            return None
        self._pos += 1
        return {self.input_name: self.images[self._pos - 1 : self._pos]}

    def rewind(self) -> None:
        self._pos = 0


def quantize_bytes(model: bytes, images: np.ndarray, settings: QuantSettings | None = None, input_name: str = "input") -> bytes:
    """:func:`quantize_onnx` of serialised float ONNX bytes, calibrated on ``images``; the quantized bytes."""
    with tempfile.TemporaryDirectory(prefix="ednas-qbytes-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "quant.onnx"
        src.write_bytes(model)
        quantize_onnx(src, dst, ArrayReader(images, input_name), settings)
        return dst.read_bytes()
