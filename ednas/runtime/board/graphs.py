"""The models the kit times: operator keys, sandwich plans and ONNX graphs (float or QDQ).

Every model is written with the ``onnx`` package's helpers (opset 13, IR
version 7; opset 21 for 16-bit QDQ); the weights are random and generated
here, seeded by the model's id, so the host and a board build the same
bytes.  :func:`plan` says which models time an operator (the sandwich of the
package's docstring), :func:`build` builds one of them, and
:func:`build_network` a whole network from its operator keys.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

try:
    from onnx import TensorProto, helper, numpy_helper
except ImportError:  # a LiteRT board (litert_rt.py): the host converted every model it times, the kit writes no ONNX graph
    TensorProto = helper = numpy_helper = None

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
# ONNX models through the onnx package's helpers


def _node(op_type, inputs, outputs, **attrs):
    """One node, named after its first output (attributes in sorted order, as make_node writes them)."""
    if helper is None:
        raise ImportError("the kit writes ONNX models with the onnx package: pip install onnx onnxruntime")
    return helper.make_node(op_type, list(inputs), list(outputs), name=outputs[0], **attrs)


def _tensor(name, arr, dtype="f4"):
    """An initializer of numpy type code ``dtype`` (little-endian raw data; a 0-d array is a scalar)."""
    return numpy_helper.from_array(np.array(arr, dtype="<" + dtype, order="C"), name)


def _model(nodes, inits, in_name, in_shape, out_name, out_shape, extra_outputs=(), opset=OPSET, ir_version=IR_VERSION):
    """The serialized model: one float input, one float output (``extra_outputs`` without shapes, for calibration)."""
    f = TensorProto.FLOAT
    outputs = [helper.make_tensor_value_info(out_name, f, out_shape)] + [helper.make_tensor_value_info(n, f, None) for n in extra_outputs]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(in_name, f, in_shape)], outputs, initializer=inits)
    model = helper.make_model(graph, producer_name="ednas-lut", opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version)
    return model.SerializeToString()


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
        from .timing import feed, session  # timing builds models with this module: imported here, not at the top

        names = [y for _, _, y, _ in self.layers if y != out]
        model = _model(nodes, inits, "X", in_shape, out, None, names)
        try:
            import onnxruntime  # noqa: F401
        except ImportError:  # a board with OpenVINO and no ONNX Runtime: the same float graph, run there
            return _ranges_openvino(model, in_shape, [out] + names)
        sess = session(model, 1)
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
RELU_INPUT = {"stem-pw", "dw", "project", "pool"}


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
        relu_in = q is not None and op["type"] in RELU_INPUT
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


def _ranges_openvino(model, in_shape, names):
    """:meth:`_Graph._ranges` run by OpenVINO (the input of :func:`.timing.feed`: uniform in [-1, 1], seed 0)."""
    from .openvino_rt import compile_model

    compiled = compile_model(model, 1)
    x = np.random.default_rng(0).uniform(-1, 1, [int(d) for d in in_shape]).astype(np.float32)
    res = compiled([x])
    by_name = {}
    for port in compiled.outputs:
        for n in port.get_names():
            by_name[n] = np.asarray(res[port])
    ranges = {n: (float(by_name[n].min()), float(by_name[n].max())) for n in names}
    ranges["X"] = (float(x.min()), float(x.max()))
    return ranges
