#!/usr/bin/env python3
"""Measure the operators of eq. 11 with ONNX Runtime: on this host or on a board.

This file is self-contained (Python 3.8+, numpy, onnxruntime; no ednas, no
onnx package): ``ednas lut script --out DIR`` copies it verbatim to
``DIR/measure_ops.py`` beside ``DIR/ops.json``, and ednas imports it as
``ednas.runtime.board`` (``ednas lut build --target host-ort``, and every
ONNX Runtime session and end-to-end timing of ednas: :func:`session`,
:func:`interleaved`), so the host and a board measure with the same code,
the same graphs and the same session options.

Usage on a board::

    python3 measure_ops.py --ops ops.json --out lut_board.json --threads 1
    # copy lut_board.json back, then on the host:
    ednas lut build --target file:lut_board.json --space SPACE --input N --out lut.json

or, with the board in the loop (``remote.py`` beside this file; docs/board.md)::

    python3 measure_ops.py serve --port 8765          # on the board: prints its token file
    ednas lut build --target remote:localhost:8765 ...  # on the host, over an SSH tunnel

Method (see docs/latency.md).  A tiny model timed alone pays costs that a
network does not: the ``session.run`` call and, on x86, ONNX Runtime's NCHWc
layout reorders at the model boundary (inside a network, consecutive convs
stay in the blocked layout).  So each operator is timed *in context*, between
two channel-wise 1 x 1 depthwise convolutions ``P`` (a "sandwich")::

    S   = time(X -> P_in -> op -> P_out)
    B_s = time(X -> P -> P)            on a tensor of shape s
    LAT(op) = S - B_in / 2 - B_out / 2

which removes the call overhead, the boundary reorders and the two ``P``s
exactly when reordering in and out cost the same, and keeps the operator's
input and output in the layout the runtime picks inside a network.  The
residual add, which ONNX Runtime fuses into the preceding convolution, is
the marginal cost ``time(P, P, Add, P) - time(P, P, P)``.  Each round times
every model of one operator back to back (``repeats`` runs after
``warmup``, median), the differences are taken per round, and the entry is
the median over ``rounds`` (more rounds, up to 3x, while the estimate is
still noisy): slow drifts of the machine cancel within a round.

Whole networks (``networks`` in ops.json: chains of operator keys) are built
from the same operator graphs and timed end to end in interleaved rounds;
ednas fits the table's per-network constant on the ``fit`` ones and checks
the table against the ``validate`` ones.

Fixed point.  Keys of dtype ``i8`` or ``i16`` are measured as the quantized
(QDQ) graphs ONNX Runtime's ``quantize_static`` writes for ednas's settings,
with the scales and zero points it would choose (see "fixed point" below),
so ONNX Runtime runs the same integer kernels as in a deployed file.

The reference network.  ops.json may name a fixed network (``reference``: a
chain of keys); it is timed before every round of every operator and after
the last, and each operator is recorded in units of it (``rel``), so a board
(or host) that changes speed while it measures still gives a table at one
speed (:func:`rescale`); networks are timed beside it too
(:func:`interleaved`).

Models are written directly as ONNX protobuf bytes by the small encoder
below (opset 13, IR version 7; opset 21 for 16-bit QDQ), so the board needs
no ``onnx`` package; the weights are random and generated here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
import zlib

import numpy as np

FORMAT = "ednas-lut"
FORMAT_VERSION = 1
KEY_VERSION = 1
OPSET = 13
IR_VERSION = 7

_KEY = re.compile(
    r"^(?P<type>[a-z0-9-]+)_i(?P<h>\d+)x(?P<w>\d+)x(?P<cin>\d+)_o(?P<cout>\d+)"
    r"_k(?P<kernel>\d+)_s(?P<stride>\d+)_g(?P<groups>\d+)_e(?P<expansion>\d+)_(?P<dtype>[a-z0-9]+)$"
)
# every operator type but add, pool and fc is one Conv node (its kernel, stride and groups from the key); these are
# followed by a ReLU.  ``proj`` (a projection skip's 1 x 1 conv, BN folded) has none, like ``project``
_RELU = {"stem-dw", "stem-pw", "expand", "dw", "head", "conv"}


def parse_key(key):
    """The fields of an operator key (scheme v1, see ednas/latency/ops.py)."""
    m = _KEY.match(key)
    if not m:
        raise ValueError("operator key %r does not follow key scheme v%d" % (key, KEY_VERSION))
    d = m.groupdict()
    op = {k: (v if k in ("type", "dtype") else int(v)) for k, v in d.items()}
    op["ho"] = 1 if op["type"] == "pool" else (op["h"] - 1) // op["stride"] + 1
    op["wo"] = 1 if op["type"] == "pool" else (op["w"] - 1) // op["stride"] + 1
    return op


# ---------------------------------------------------------------------------
# a minimal ONNX protobuf writer (field numbers from onnx/onnx.proto)


def _varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num, wire, payload):
    return _varint((num << 3) | wire) + payload


def _int(num, v):
    return _field(num, 0, _varint(v))


def _bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    return _field(num, 2, _varint(len(b)) + b)


def _attr(name, value):
    # AttributeProto: name=1, i=3, ints=8, type=20 (INT=2, INTS=7)
    if isinstance(value, (list, tuple)):
        return _bytes(1, name) + b"".join(_int(8, v) for v in value) + _int(20, 7)
    return _bytes(1, name) + _int(3, value) + _int(20, 2)


def _node(op_type, inputs, outputs, **attrs):
    # NodeProto: input=1, output=2, name=3, op_type=4, attribute=5
    msg = b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs)
    msg += _bytes(3, outputs[0]) + _bytes(4, op_type)
    msg += b"".join(_bytes(5, _attr(k, v)) for k, v in sorted(attrs.items()))
    return msg


# TensorProto.DataType codes and the numpy types stored under them
_ONNX_TYPES = {"f4": 1, "u1": 2, "i1": 3, "u2": 4, "i2": 5, "i4": 6}


def _tensor(name, arr, dtype="f4"):
    # TensorProto: dims=1, data_type=2, name=8, raw_data=9 (little-endian); no dims: a scalar
    arr = np.array(arr, dtype="<" + dtype, order="C")  # keeps 0-d arrays scalars (ascontiguousarray would not)
    return b"".join(_int(1, d) for d in arr.shape) + _int(2, _ONNX_TYPES[dtype]) + _bytes(8, name) + _bytes(9, arr.tobytes())


def _value_info(name, shape=None):
    # ValueInfoProto: name=1, type=2; TypeProto.tensor_type=1; Tensor: elem_type=1, shape=2; Dim: dim_value=1
    tensor = _int(1, 1)
    if shape is not None:
        tensor += _bytes(2, b"".join(_bytes(1, _int(1, d)) for d in shape))
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor))


def _model(nodes, inits, in_name, in_shape, out_name, out_shape, extra_outputs=(), opset=OPSET, ir_version=IR_VERSION):
    # GraphProto: node=1, name=2, initializer=5, input=11, output=12
    graph = b"".join(_bytes(1, n) for n in nodes) + _bytes(2, "g")
    graph += b"".join(_bytes(5, t) for t in inits)
    graph += _bytes(11, _value_info(in_name, in_shape)) + _bytes(12, _value_info(out_name, out_shape))
    graph += b"".join(_bytes(12, _value_info(n)) for n in extra_outputs)
    # ModelProto: ir_version=1, producer_name=2, graph=7, opset_import=8 (domain=1, version=2)
    return _int(1, ir_version) + _bytes(2, "ednas-lut") + _bytes(7, graph) + _bytes(8, _bytes(1, "") + _int(2, opset))


# ---------------------------------------------------------------------------
# fixed point: QDQ graphs as ONNX Runtime's quantize_static writes them
#
# A quantized operator model is the float graph with every tensor passed
# through QuantizeLinear -> DequantizeLinear (the QDQ format) and every
# weight and bias stored as integers behind a DequantizeLinear, which is what
# ``onnxruntime.quantization.quantize_static`` writes for ednas's settings
# (``ednas export``, ednas.runtime.quantize).  ONNX Runtime fuses the
# same node patterns into the same integer kernels (QLinearConv in NHWC,
# QLinearAdd, QLinearGlobalAveragePool, QGemm) or, where it has none, runs
# DequantizeLinear -> float op -> QuantizeLinear, exactly as in the deployed
# file.  Scales and zero points follow quantize_static's formulas:
#
# * activations: the range is calibrated by running the float graph once on
#   the input the timing feeds (MinMax calibration) and widened to include
#   0; unsigned asymmetric (uint8 / uint16): scale = (max - min) / qmax,
#   zero point = round(-min / scale); a ReLU is folded into its conv's
#   output quantization (range [0, max], zero point 0), as quantize_static
#   removes it;
# * weights: signed symmetric (zero point 0), scale = max|w| / (2^(b-1) - 1),
#   one per output channel (axis 0) unless ``per_channel`` is off;
# * biases: int32, scale = input scale x weight scale, zero point 0;
# * ``pow2`` (TIDL-style, ednas.runtime.pow2): everything per tensor and
#   symmetric with power-of-two scales; an activation that is never
#   negative is unsigned, others signed.
#
# 8 bit is written at opset 13 (per-axis QDQ), 16 bit at opset 21 (the
# first with 16-bit QuantizeLinear), as quantize_static does.

QUANT_DTYPES = {"i8": 8, "i16": 16}


def quant_scheme(dtype, per_channel=True, pow2=False, weight_bits=None):
    """The fixed-point scheme of a quantized table (stored in its header and in ops.json)."""
    if dtype not in QUANT_DTYPES:
        raise ValueError("dtype %r is not a fixed-point dtype (%s)" % (dtype, ", ".join(QUANT_DTYPES)))
    bits = QUANT_DTYPES[dtype]
    return {"format": "QDQ", "bits": bits, "weight_bits": int(weight_bits or bits), "per_channel": bool(per_channel and not pow2), "pow2": bool(pow2)}


def _pow2(absmax, qmax):
    if not (absmax > 0 and np.isfinite(absmax)):
        return 1.0 / qmax
    e = int(np.ceil(np.log2(absmax / qmax)))
    while absmax > 2.0**e * qmax:
        e += 1
    return float(2.0**e)


def _act_qparams(lo, hi, scheme):
    """``(scale, zero point, numpy type code)`` of an activation with calibrated range [lo, hi]."""
    bits = scheme["bits"]
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if scheme["pow2"]:
        signed = lo < 0
        qmax = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
        return _pow2(max(-lo, hi), qmax), 0, ("i" if signed else "u") + str(bits // 8)
    qmax = 2**bits - 1
    scale = (hi - lo) / qmax
    if not scale > 0:
        return 1.0, 0, "u" + str(bits // 8)
    return scale, int(np.clip(round(-lo / scale), 0, qmax)), "u" + str(bits // 8)


def _weight_q(w, scheme):
    """Symmetric signed weights: ``(integers, scales, numpy type code)``, per output channel (axis 0) or per tensor."""
    bits = scheme["weight_bits"]
    qmax = 2 ** (bits - 1) - 1
    flat = np.abs(w.reshape(w.shape[0], -1)).max(axis=1) if scheme["per_channel"] else np.array(np.abs(w).max())
    if scheme["pow2"]:
        scale = np.array(_pow2(float(flat), qmax))
    else:
        scale = np.where(flat > 0, flat / qmax, 1.0)
    s = scale.reshape((-1,) + (1,) * (w.ndim - 1)) if scale.ndim else scale
    q = np.clip(np.round(w / s), -qmax, qmax)
    return q, scale.astype(np.float32), "i" + str(bits // 8)


class _Graph:
    """One small model: layers with random weights, written as a float or a QDQ graph.

    Tensor names are the float values flowing between layers; the QDQ form
    (:meth:`bytes` with ``quant``) inserts QuantizeLinear/DequantizeLinear
    pairs around every one of them and stores weights as integers.
    """

    def __init__(self, seed=0):
        self.layers, self.n = [], 0
        self.rng = np.random.default_rng(seed)

    def _name(self, stem):
        self.n += 1
        return "%s%d" % (stem, self.n)

    def conv(self, x, cin, cout, k, s, g, relu):
        fan_in = (cin // g) * k * k
        # scaled so activations stay O(1): no denormals, no overflow in long chains
        w = self.rng.uniform(-1, 1, (cout, cin // g, k, k)) * (1.0 / fan_in) ** 0.5
        b = self.rng.uniform(-0.1, 0.1, (cout,))
        y = self._name("relu" if relu else "conv")
        self.layers.append(("conv", [x], y, {"w": w, "b": b, "k": k, "s": s, "g": g, "relu": relu}))
        return y

    def scale(self, x, c, rank4=True, relu=False):
        """The context operator P: a channel-wise scale (1 x 1 depthwise conv), followed by a ReLU if asked."""
        if rank4:
            return self.conv(x, c, c, 1, 1, c, relu)
        s = self.rng.uniform(0.5, 1.5, (1, c))
        y = self._name("mul")
        self.layers.append(("mul", [x], y, {"s": s}))
        if relu:
            r = self._name("relu")
            self.layers.append(("relu", [y], r, {}))
            y = r
        return y

    def flatten(self, x):
        y = self._name("flat")
        self.layers.append(("flatten", [x], y, {}))
        return y

    def op(self, x, op, block_input=None):
        """Append operator ``op`` (parsed key) to ``x``; returns the output name."""
        t = op["type"]
        if t == "add":
            y = self._name("add")
            self.layers.append(("add", [x, block_input], y, {}))
            return y
        if t == "pool":
            y = self._name("gap")
            self.layers.append(("gap", [x], y, {}))
            return y
        if t == "fc":
            w = self.rng.uniform(-1, 1, (op["cout"], op["cin"])) * (1.0 / op["cin"]) ** 0.5
            y = self._name("fc")
            self.layers.append(("gemm", [x], y, {"w": w, "b": np.zeros(op["cout"])}))
            return y
        return self.conv(x, op["cin"], op["cout"], op["kernel"], op["stride"], op["groups"], t in _RELU)

    # -- float -------------------------------------------------------------
    def _float(self):
        nodes, inits = [], []
        for kind, ins, y, a in self.layers:
            if kind in ("conv", "gemm"):
                w, b = y + "_w", y + "_b"
                inits += [_tensor(w, a["w"]), _tensor(b, a["b"])]
                if kind == "gemm":
                    nodes.append(_node("Gemm", [ins[0], w, b], [y], transB=1))
                    continue
                k, s = a["k"], a["s"]
                out = y + "_c" if a["relu"] else y
                nodes.append(_node("Conv", [ins[0], w, b], [out], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4, group=a["g"]))
                if a["relu"]:
                    nodes.append(_node("Relu", [out], [y]))
            elif kind == "mul":
                inits.append(_tensor(y + "_s", a["s"]))
                nodes.append(_node("Mul", [ins[0], y + "_s"], [y]))
            elif kind == "relu":
                nodes.append(_node("Relu", ins, [y]))
            elif kind == "add":
                nodes.append(_node("Add", ins, [y]))
            elif kind == "gap":
                nodes.append(_node("GlobalAveragePool", ins, [y]))
            elif kind == "flatten":
                nodes.append(_node("Flatten", ins, [y], axis=1))
        return nodes, inits

    def _ranges(self, in_shape, out):
        """MinMax calibration: the range of every tensor when the float graph runs on the timing's input."""
        nodes, inits = self._float()
        names = [y for _, _, y, _ in self.layers if y != out]
        sess = session(_model(nodes, inits, "X", in_shape, out, None, names), 1)
        x = feed(sess, in_shape)
        values = sess.run([out] + names, x)
        ranges = {n: (float(v.min()), float(v.max())) for n, v in zip([out] + names, values)}
        ranges["X"] = (float(x["X"].min()), float(x["X"].max()))
        return ranges

    # -- QDQ -----------------------------------------------------------------
    def _qdq(self, in_shape, out, scheme):
        ranges = self._ranges(in_shape, out)
        nodes, inits = [], []
        qp = {}  # tensor -> (scale, zero point, type code)

        def act(name, float_out, params=None):
            """Q -> DQ of an activation computed as ``float_out``; its dequantized value is ``name``."""
            s, z, t = params or _act_qparams(*ranges[name], scheme)
            qp[name] = (s, z, t)
            inits.extend([_tensor(name + "_s", np.float32(s)), _tensor(name + "_z", np.array(z), t)])
            nodes.append(_node("QuantizeLinear", [float_out, name + "_s", name + "_z"], [name + "_q"]))
            nodes.append(_node("DequantizeLinear", [name + "_q", name + "_s", name + "_z"], [name]))

        def weights(y, w, b, x):
            q, sw, t = _weight_q(w, scheme)
            axis = {"axis": 0} if sw.ndim else {}
            inits.extend([_tensor(y + "_wq", q, t), _tensor(y + "_ws", sw), _tensor(y + "_wz", np.zeros(sw.shape), t)])
            nodes.append(_node("DequantizeLinear", [y + "_wq", y + "_ws", y + "_wz"], [y + "_w"], **axis))
            if b is None:
                return y + "_w", None
            sb = (qp[x][0] * sw.astype(np.float64)).astype(np.float32)
            bq = np.clip(np.round(b / np.where(sb > 0, sb, 1.0)), -(2**31) + 1, 2**31 - 1)
            inits.extend([_tensor(y + "_bq", bq, "i4"), _tensor(y + "_bs", sb), _tensor(y + "_bz", np.zeros(sb.shape), "i4")])
            nodes.append(_node("DequantizeLinear", [y + "_bq", y + "_bs", y + "_bz"], [y + "_b"], **axis))
            return y + "_w", y + "_b"

        # the network's input is float: quantized at the boundary, as in a deployed file
        nodes_in = "X_f"
        act("X_f", "X", _act_qparams(*ranges["X"], scheme))
        ren = {"X": nodes_in}
        for kind, ins, y, a in self.layers:
            xs = [ren.get(i, i) for i in ins]
            if kind in ("conv", "gemm"):
                w, b = weights(y, a["w"], a["b"], xs[0])
                if kind == "gemm":
                    nodes.append(_node("Gemm", [xs[0], w, b], [y + "_f"], transB=1))
                else:
                    k, s = a["k"], a["s"]
                    nodes.append(_node("Conv", [xs[0], w, b], [y + "_f"], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4, group=a["g"]))
                act(y, y + "_f")  # a ReLU is folded into this quantization (range >= 0)
            elif kind == "mul":  # its constant is quantized like an activation, as quantize_static does
                c = a["s"]
                sc, zc, tc = _act_qparams(c.min(), c.max(), scheme)
                qmax = 2 ** (8 * int(tc[1:])) - 1 if tc[0] == "u" else 2 ** (8 * int(tc[1:]) - 1) - 1
                inits.extend([_tensor(y + "_cq", np.clip(np.round(c / sc) + zc, -qmax - 1 if tc[0] == "i" else 0, qmax), tc),
                              _tensor(y + "_cs", np.float32(sc)), _tensor(y + "_cz", np.array(zc), tc)])
                nodes.append(_node("DequantizeLinear", [y + "_cq", y + "_cs", y + "_cz"], [y + "_c"]))
                nodes.append(_node("Mul", [xs[0], y + "_c"], [y + "_f"]))
                act(y, y + "_f")
            elif kind == "relu":
                nodes.append(_node("Relu", xs, [y + "_f"]))
                act(y, y + "_f")
            elif kind == "add":
                nodes.append(_node("Add", xs, [y + "_f"]))
                act(y, y + "_f")
            elif kind == "gap":
                nodes.append(_node("GlobalAveragePool", xs, [y + "_f"]))
                act(y, y + "_f")
            elif kind == "flatten":  # moves data only: keeps its input's quantization
                nodes.append(_node("Flatten", xs, [y + "_f"], axis=1))
                act(y, y + "_f", qp[xs[0]])
        wide = scheme["bits"] > 8 or scheme["weight_bits"] > 8
        return nodes, inits, (21, 10) if wide else (OPSET, IR_VERSION)

    def bytes(self, in_shape, out, out_shape, quant=None):
        """The model's ONNX bytes: float, or QDQ with the fixed-point scheme ``quant`` (:func:`quant_scheme`)."""
        if quant is None:
            nodes, inits = self._float()
            return _model(nodes, inits, "X", in_shape, out, out_shape)
        nodes, inits, (opset, ir) = self._qdq(in_shape, out, quant)
        return _model(nodes, inits, "X", in_shape, out, out_shape, opset=opset, ir_version=ir)


# ---------------------------------------------------------------------------
# measurement plans: LAT(op) = sum of coefficient * time(model)

# operators whose input is a ReLU output in ednas's networks: in a quantized
# sandwich their context operator P_in ends in a ReLU too, so the operator
# sees the zero point and signedness it has in a network
_RELU_INPUT = {"stem-pw", "dw", "project", "pool"}


def _dtype_suffix(dtype):
    return "" if dtype == "f32" else ":" + dtype


def plan(key):
    """``[(model_id, coefficient), ...]`` whose weighted sum of times is LAT(op)."""
    op = parse_key(key)
    dt = op["dtype"]
    if dt != "f32" and dt not in QUANT_DTYPES:
        raise ValueError("operator %s: this script measures f32 and fixed-point (%s) models only" % (key, ", ".join(QUANT_DTYPES)))
    sfx = _dtype_suffix(dt)
    if op["type"] == "add":
        return [("addsw:" + key, 1.0), ("chain3:%dx%dx%d%s" % (op["cin"], op["h"], op["w"], sfx), -1.0)]
    if op["type"] == "fc":
        return [("sw:" + key, 1.0), ("pair2:%d%s" % (op["cin"], sfx), -0.5), ("pair2:%d%s" % (op["cout"], sfx), -0.5)]
    return [
        ("sw:" + key, 1.0),
        ("pair:%dx%dx%d%s" % (op["cin"], op["h"], op["w"], sfx), -0.5),
        ("pair:%dx%dx%d%s" % (op["cout"], op["ho"], op["wo"], sfx), -0.5),
    ]


def build(model_id, quant=None):
    """``(onnx bytes, input shape)`` of a model named by :func:`plan`.

    ``quant``: the fixed-point scheme (:func:`quant_scheme`) of a model whose
    id names a fixed-point dtype (default: per-channel, not power-of-two).
    """
    kind, _, arg = model_id.partition(":")
    g = _Graph(seed=zlib.crc32(model_id.encode()))
    dtype = "f32"
    if kind in ("pair", "chain3", "pair2"):
        arg, _, dtype = arg.partition(":")
        dtype = dtype or "f32"
    else:
        op = parse_key(arg)
        dtype = op["dtype"]
    q = None if dtype == "f32" else (quant or quant_scheme(dtype))
    if q is not None and q["bits"] != QUANT_DTYPES[dtype]:
        raise ValueError("model %s: the fixed-point scheme is %d bit, the dtype %s" % (model_id, q["bits"], dtype))
    if kind in ("pair", "chain3"):
        c, h, w = (int(v) for v in arg.split("x"))
        x = "X"
        for _ in range(2 if kind == "pair" else 3):
            x = g.scale(x, c)
        return g.bytes([1, c, h, w], x, [1, c, h, w], q), [1, c, h, w]
    if kind == "pair2":
        c = int(arg)
        x = g.scale(g.scale("X", c, rank4=False), c, rank4=False)
        return g.bytes([1, c], x, [1, c], q), [1, c]
    if kind == "addsw":
        c, h, w = op["cin"], op["h"], op["w"]
        a = g.scale("X", c)
        b = g.scale(a, c)  # the add follows a conv, as the residual add follows the project conv
        y = g.scale(g.op(b, op, block_input=a), c)
        return g.bytes([1, c, h, w], y, [1, c, h, w], q), [1, c, h, w]
    if kind == "sw":
        rank4 = op["type"] != "fc"
        shape = [1, op["cin"], op["h"], op["w"]] if rank4 else [1, op["cin"]]
        out_shape = [1, op["cout"], op["ho"], op["wo"]] if rank4 else [1, op["cout"]]
        relu_in = q is not None and op["type"] in _RELU_INPUT
        y = g.scale(g.op(g.scale("X", op["cin"], rank4, relu=relu_in), op), op["cout"], rank4)
        return g.bytes(shape, y, out_shape, q), shape
    raise ValueError("unknown model id %r" % model_id)


def build_network(keys, in_shape=None, quant=None):
    """A whole network from its operator keys in order (as ednas's deploy form).

    A block starts at an ``expand`` (or at a ``dw`` without one); an ``add``
    adds the block's input.  ``pool`` is followed by a flatten before ``fc``.
    Keys of a fixed-point dtype give the QDQ network (``quant``: its scheme,
    default :func:`quant_scheme` of the dtype).
    """
    g = _Graph(seed=len(keys))
    ops = [parse_key(k) for k in keys]
    first = ops[0]
    dtype = first["dtype"]
    q = None if dtype == "f32" else (quant or quant_scheme(dtype))
    shape = in_shape or [1, first["cin"], first["h"], first["w"]]
    x, block_in, prev = "X", "X", None
    for op in ops:
        if op["type"] == "expand" or (op["type"] == "dw" and prev != "expand"):
            block_in = x
        if op["type"] == "fc" and prev == "pool":
            x = g.flatten(x)
        x = g.op(x, op, block_input=block_in)
        prev = op["type"]
    last = ops[-1]
    out_shape = [1, last["cout"]] if last["type"] == "fc" else [1, last["cout"], last["ho"], last["wo"]]
    return g.bytes(shape, x, out_shape, q), shape


# ---------------------------------------------------------------------------
# timing


OPTIMIZATIONS = ("all", "extended", "basic", "none")


def session(model, threads=1, optimization="all", profile_prefix=None):
    """An ONNX Runtime CPU session with ednas's deployment options.

    ``model`` is the model's bytes or a path.  Intra-op ``threads``, one
    inter-op thread, sequential execution, graph optimisation
    ``optimization`` (``all``, ``extended``, ``basic`` or ``none``; ``all``
    is how ednas deploys and measures: the ORT optimisation level changes
    depthwise timings by 3-7x, so tables must be measured with the options
    used to deploy).  ``profile_prefix`` turns on ONNX Runtime's profiler.
    ednas opens every session through this function (``ednas.runtime.ort_session``
    adds clear errors for missing or broken files).
    """
    import onnxruntime as ort

    levels = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }
    if optimization not in levels:
        raise ValueError(f"optimization must be one of {', '.join(OPTIMIZATIONS)}, got {optimization!r}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = levels[optimization]
    so.log_severity_level = 3
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = str(profile_prefix)
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    return ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])


STATISTICS = ("median", "min", "p10", "p20", "p25")


def _statistic(times, stat):
    """``median``, ``min`` or a low percentile ``pNN`` of a list of times."""
    if stat == "median":
        return statistics.median(times)
    if stat == "min":
        return min(times)
    if stat.startswith("p") and stat[1:].isdigit():
        return float(np.percentile(times, int(stat[1:])))
    raise ValueError("statistic must be one of %s, got %r" % (", ".join(STATISTICS), stat))


def time_runs(run, warmup, repeats, min_time_s=0.0, stat="median"):
    """Time ``run()`` (a callable without arguments): ``(statistic ms, runs, fastest ms)``.

    ``warmup`` untimed calls, then at least ``repeats`` timed calls, and more
    until ``min_time_s`` seconds have passed; ``stat`` (:data:`STATISTICS`)
    is the median (default), the minimum or a low percentile of the runs.
    """
    for _ in range(warmup):
        run()
    times = []
    t0 = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - t0 < min_time_s:
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return _statistic(times, stat) * 1e3, len(times), min(times) * 1e3


REFERENCE = "reference"


def interleaved(runners, warmup=10, repeats=50, rounds=5, min_time_s=0.05, progress=None, reference=None, ref_ms=None, ref_every=8,
                stat="median"):
    """Time several models in interleaved rounds: the one end-to-end loop.

    Round r times every runner back to back (:func:`time_runs`: ``warmup``
    untimed calls, at least ``repeats`` timed ones and ``min_time_s``
    seconds, the statistic ``stat`` of the runs), in the order of
    ``runners``, before round r + 1 starts; a slow episode of the machine
    then hits every model of a round alike.  ``progress(name, round)`` is
    called after each timing.

    ``reference`` (a runner: a fixed reference network) is timed the same
    way at the start of every round and after every ``ref_every`` models;
    each model's timing is then divided by the mean of the two reference
    timings around it, so a change of the machine's speed between rounds or
    between a table's build and now cancels: ``rel`` is the model's time in
    units of the reference's, and with ``ref_ms`` (the reference's time when
    the table was built) ``scaled_ms = rel * ref_ms`` is the model's time at
    the table's speed.  The raw figures are kept beside.

    Args:
        runners: ``{name: callable}``; a call runs the model once.
    Returns:
        ``{name: {"ms", "spread_ms", "min_ms", "n", "rounds_ms"}}``: the
        median over rounds of the per-round figures, the standard deviation
        of the per-round figures, the fastest single call, the number of
        timed calls and the per-round figures (ms, rounded to the ns); with
        a reference also ``"rel"``, ``"scaled_ms"`` (None without
        ``ref_ms``) and ``"ref_rounds_ms"``, and an entry :data:`REFERENCE`
        with the reference's own ``"ms"``, ``"rounds_ms"`` (every timing),
        ``"table_ms"`` (= ``ref_ms``) and ``"ratio"`` (now / table).
    """
    if rounds < 1 or repeats < 1:
        raise ValueError(f"rounds and repeats must be >= 1, got {rounds!r} and {repeats!r}")
    if reference is not None and REFERENCE in runners:
        raise ValueError("a model may not be called %r when a reference is timed" % REFERENCE)
    per = {name: [] for name in runners}
    fastest = {name: float("inf") for name in runners}
    n = {name: 0 for name in runners}
    ref_of = {name: [] for name in runners}
    ref_all, ref_n, ref_fast = [], 0, float("inf")

    def time_ref():
        nonlocal ref_n, ref_fast
        ms, k, lo = time_runs(reference, warmup, repeats, min_time_s, stat)
        ref_all.append(ms)
        ref_n += k
        ref_fast = min(ref_fast, lo)
        return ms

    for r in range(rounds):
        before = time_ref() if reference is not None else None
        pending = []
        names = list(runners)
        for i, name in enumerate(names):
            ms, k, lo = time_runs(runners[name], warmup, repeats, min_time_s, stat)
            per[name].append(ms)
            fastest[name] = min(fastest[name], lo)
            n[name] += k
            if progress:
                progress(name, r)
            if reference is not None:
                pending.append(name)
                if len(pending) >= max(1, ref_every) or i == len(names) - 1:
                    after = time_ref()
                    for p in pending:
                        ref_of[p].append((before + after) / 2)
                    before, pending = after, []
    out = {}
    for name, v in per.items():
        out[name] = {
            "ms": round(statistics.median(v), 6),
            "spread_ms": round(statistics.pstdev(v) if len(v) > 1 else 0.0, 6),
            "min_ms": round(fastest[name], 6),
            "n": n[name],
            "rounds_ms": [round(x, 6) for x in v],
        }
        if reference is not None:
            rel = statistics.median(m / q for m, q in zip(v, ref_of[name]))
            out[name].update(rel=round(rel, 6), scaled_ms=None if ref_ms is None else round(rel * ref_ms, 6),
                             ref_rounds_ms=[round(x, 6) for x in ref_of[name]])
    if reference is not None:
        now = statistics.median(ref_all)
        out[REFERENCE] = {"ms": round(now, 6), "spread_ms": round(statistics.pstdev(ref_all), 6), "min_ms": round(ref_fast, 6), "n": ref_n,
                          "rounds_ms": [round(x, 6) for x in ref_all], "table_ms": ref_ms,
                          "ratio": None if not ref_ms else round(now / ref_ms, 4)}
    return out


def feed(sess, shape=None):
    """Random input in [-1, 1] for the session's first input (``shape``, or its own with symbolic dims at 1)."""
    inp = sess.get_inputs()[0]
    if shape is None:
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    return {inp.name: np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)}


def _runner(sess, feed):
    def run():
        return sess.run(None, feed)

    return run


def runner(model, threads=1, shape=None):
    """A runner (a callable without arguments) of an ONNX model (bytes or path) on random input."""
    s = session(model, threads)
    return _runner(s, feed(s, shape))


def measure_op(key, threads=1, warmup=10, repeats=100, rounds=5, min_time_s=0.02, cache=None, max_rounds=None, rel_tol=0.02, abs_tol_ms=0.0005,
               quant=None, reference=None, stat="median", ref_repeats=10):
    """``{"ms", "spread_ms", "n", "rounds"}`` of one operator (see the module docstring).

    At least ``rounds`` rounds; while the standard error of the median of the
    per-round estimates exceeds ``rel_tol`` of the estimate (and
    ``abs_tol_ms``), more rounds are run, up to ``max_rounds`` (default
    3 x rounds): the difference of two large timings is noisy for operators
    on big feature maps, and a busy machine makes it noisier.
    ``spread_ms`` is the standard deviation of the per-round estimates; ``n``
    the number of timed runs of the operator's own model.  ``quant``: the
    fixed-point scheme of an operator of a fixed-point dtype.

    ``reference`` (a runner of the table's reference network) is timed
    before every round and after the last; each round's estimate is divided
    by the mean of the reference timings around it, and the entry gets
    ``"rel"`` (the median of these ratios: the operator's time in units of
    the reference's, which a change of the machine's speed does not move)
    and ``"ref_ms"`` (the reference's median time meanwhile); ``"ms"`` stays
    the raw estimate until :func:`rescale` puts the table in one speed.
    The reference is timed with ``ref_repeats`` runs (and ``min_time_s``).
    """
    terms = plan(key)
    cache = {} if cache is None else cache
    max_rounds = max(rounds, max_rounds if max_rounds is not None else 3 * rounds)
    runners = []
    for mid, coef in terms:
        if mid not in cache:
            data, shape = build(mid, quant)
            cache[mid] = runner(data, threads, shape)
        runners.append((cache[mid], coef))
    estimates, rels, refs, n = [], [], [], 0

    def time_ref():  # a whole network: fewer runs than an operator's, the same minimum time
        return time_runs(reference, min(warmup, 2), ref_repeats, min_time_s, stat)[0]

    before = time_ref() if reference is not None else None
    while len(estimates) < max_rounds:
        est = 0.0
        for run, coef in runners:
            ms, k, _ = time_runs(run, warmup, repeats, min_time_s, stat)
            est += coef * ms
            n += k if coef > 0 else 0
        estimates.append(est)
        if reference is not None:
            after = time_ref()
            refs.append((before + after) / 2)
            rels.append(est / refs[-1])
            before = after
        if len(estimates) >= rounds:
            # standard error of a median ~ 1.25 sd / sqrt(n), judged in reference units when there is a reference
            vals, scale = (rels, statistics.median(refs)) if reference is not None else (estimates, 1.0)
            se = 1.25 * statistics.pstdev(vals) * scale / len(vals) ** 0.5
            if se <= max(rel_tol * abs(statistics.median(vals)) * scale, abs_tol_ms):
                break
    ms = statistics.median(estimates)
    spread = statistics.pstdev(estimates) if len(estimates) > 1 else 0.0
    # a nearly free operator can come out a hair below zero by noise
    out = {"ms": round(max(ms, 0.0), 6), "spread_ms": round(spread, 6), "n": n, "rounds": len(estimates)}
    if reference is not None:
        out.update(raw_ms=out["ms"], rel=round(max(statistics.median(rels), 0.0), 6), ref_ms=round(statistics.median(refs), 6))
    return out


def rescale(entries):
    """Put the entries measured with a reference at one speed; returns the table's reference time (ms).

    The table's reference time is the median over operators of the
    reference's time while each was measured; every entry with ``"rel"``
    gets ``ms = rel * that`` (its raw figure stays in ``"raw_ms"``).
    ``None`` when no entry has a reference timing.
    """
    refs = [e["ref_ms"] for e in entries.values() if "rel" in e and e.get("ref_ms")]
    if not refs:
        return None
    ref = statistics.median(refs)
    for e in entries.values():
        if "rel" in e:
            e["ms"] = round(e["rel"] * ref, 6)
    return round(ref, 6)


def measure_networks(models, threads=1, warmup=10, repeats=50, rounds=5, min_time_s=0.05, progress=None, reference=None, ref_ms=None,
                     stat="median"):
    """End-to-end ms of several ONNX models, timed by :func:`interleaved`.

    Args:
        models: ``{name: (onnx bytes, input shape)}``.
        reference: ``(onnx bytes, input shape)`` of the reference network
            (timed alongside; see :func:`interleaved`), with ``ref_ms``.
    Returns:
        ``{name: {"ms", "spread_ms", "min_ms", "n", "rounds_ms", ...}}``:
        median over rounds of the per-round figures (see :func:`interleaved`).
    """
    runners = {name: runner(data, threads, shape) for name, (data, shape) in models.items()}
    ref = runner(reference[0], threads, reference[1]) if reference is not None else None
    return interleaved(runners, warmup, repeats, rounds, min_time_s, progress, reference=ref, ref_ms=ref_ms, stat=stat)


def machine():
    """Where the table was measured (recorded in its header)."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"system": platform.system(), "arch": platform.machine(), "cpu": cpu, "cores": os.cpu_count(), "node": platform.node()}


def tools():
    import onnxruntime as ort

    return {"python": platform.python_version(), "numpy": np.__version__, "onnxruntime": ort.__version__}


def _write_json(path, obj):
    tmp = "%s.tmp%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic: an interrupted run leaves the previous file whole


def _remote():
    """The server and client module: ``remote.py`` beside this file in a kit, ``ednas.runtime.remote`` in ednas."""
    import importlib

    if __package__:
        return importlib.import_module(__package__ + ".remote")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    return importlib.import_module("remote")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["serve"]:  # the measurement server (remote.py): ednas drives this device over the network
        return _remote().serve_main(argv[1:], sys.modules[__name__])
    p = argparse.ArgumentParser(description="Measure ednas latency-table operators with ONNX Runtime (or: %(prog)s serve --help).")
    p.add_argument("--ops", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops.json"), help="operator list written by 'ednas lut script'")
    p.add_argument("--out", default="lut_board.json", help="output table (rerun to resume: measured entries are kept)")
    p.add_argument("--target", default=None, help="target name recorded in the table (default: from ops.json)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--stat", default=None, choices=STATISTICS, help="statistic of the runs of one timing (default: ops.json's)")
    p.add_argument("--no-networks", action="store_true", help="skip the end-to-end networks")
    args = p.parse_args(argv)
    with open(args.ops) as f:
        spec = json.load(f)
    if spec.get("key_version") != KEY_VERSION:
        sys.exit("error: %s has key version %r; this script reads version %d" % (args.ops, spec.get("key_version"), KEY_VERSION))
    dtype = spec.get("dtype", "f32")
    quant = spec.get("quant") if dtype != "f32" else None
    stat = args.stat or spec.get("statistic") or "median"
    ref_spec = spec.get("reference")
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "key_version": KEY_VERSION,
        "target": args.target or spec.get("target", "board"),
        "input_size": spec["input_size"],
        "num_classes": spec.get("num_classes"),
        "space": spec.get("space"),
        "dtype": dtype,
        "policy": "fallback",
        "measurement": {
            "runtime": "onnxruntime",
            "method": "sandwich",
            "threads": args.threads,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "rounds": args.rounds,
            "max_rounds": 3 * args.rounds,
            "rel_tol": 0.02,
            "stat": stat,
            "statistic": "median over rounds of (%s of repeats) differences%s" % (stat, ", in units of the reference network" if ref_spec else ""),
            "graph_optimization": "all",
            "script": "measure_ops.py",
        },
        "tools": tools(),
        "machine": machine(),
    }
    if quant:
        header["quant"] = quant
    table = dict(header, entries={}, networks={})
    if os.path.exists(args.out):
        with open(args.out) as f:
            old = json.load(f)
        same = all(old.get(k) == header.get(k) for k in ("input_size", "key_version", "target", "dtype", "quant")) and all(
            old.get("measurement", {}).get(k) == header["measurement"][k] for k in ("threads", "stat"))
        if not same:
            sys.exit("error: %s was measured with other settings (target, input size, dtype, quantization, threads or statistic); use another --out" % args.out)
        table["entries"], table["networks"] = old.get("entries", {}), old.get("networks", {})
    reference = None
    if ref_spec:
        ref_model = build_network(ref_spec["ops"], quant=quant)
        reference = runner(ref_model[0], args.threads, ref_model[1])
        table["reference"] = dict(ref_spec, ms=rescale(table["entries"]))
    todo = [k for k in spec["ops"] if k not in table["entries"]]
    cache = {}
    t0 = time.time()
    for i, key in enumerate(todo):
        table["entries"][key] = measure_op(key, args.threads, args.warmup, args.repeats, args.rounds, cache=cache, quant=quant, reference=reference, stat=stat)
        if ref_spec:
            table["reference"]["ms"] = rescale(table["entries"])
        _write_json(args.out, table)
        print("[%d/%d] %-55s %.4f ms  (%.0f s)" % (i + 1, len(todo), key, table["entries"][key]["ms"], time.time() - t0), flush=True)
        if len(cache) > 64:  # sessions hold weights; keep memory bounded on small boards
            cache.clear()
    nets = [n for n in spec.get("networks", []) if n["name"] not in table["networks"]]
    if nets and not args.no_networks:
        print("timing %d networks end to end ..." % len(nets), flush=True)
        models = {n["name"]: build_network(n["ops"], quant=quant) for n in nets}
        res = measure_networks(models, args.threads, args.warmup, max(args.repeats // 2, 10), args.rounds, stat=stat,
                               reference=ref_model if ref_spec else None, ref_ms=table.get("reference", {}).get("ms"))
        for n in nets:
            table["networks"][n["name"]] = dict(res[n["name"]], role=n.get("role", "fit"), arch=n.get("arch"), ops=n["ops"])
        _write_json(args.out, table)
    print("wrote %s: %d operators, %d networks" % (args.out, len(table["entries"]), len(table["networks"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
