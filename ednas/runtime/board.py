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

Models are written directly as ONNX protobuf bytes by the small encoder
below (opset 13, IR version 7), so the board needs no ``onnx`` package; the
weights are random and generated here.
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


def _ints_packed(num, vals):
    return _bytes(num, b"".join(_varint(v) for v in vals))


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


def _tensor(name, arr):
    # TensorProto: dims=1, data_type=2 (FLOAT=1), name=8, raw_data=9
    arr = np.ascontiguousarray(arr, dtype="<f4")
    return b"".join(_int(1, d) for d in arr.shape) + _int(2, 1) + _bytes(8, name) + _bytes(9, arr.tobytes())


def _value_info(name, shape):
    # ValueInfoProto: name=1, type=2; TypeProto.tensor_type=1; Tensor: elem_type=1, shape=2; Dim: dim_value=1
    dims = b"".join(_bytes(1, _int(1, d)) for d in shape)
    tensor = _int(1, 1) + _bytes(2, dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor))


def _model(nodes, inits, in_name, in_shape, out_name, out_shape):
    # GraphProto: node=1, name=2, initializer=5, input=11, output=12
    graph = b"".join(_bytes(1, n) for n in nodes) + _bytes(2, "g")
    graph += b"".join(_bytes(5, t) for t in inits)
    graph += _bytes(11, _value_info(in_name, in_shape)) + _bytes(12, _value_info(out_name, out_shape))
    # ModelProto: ir_version=1, producer_name=2, graph=7, opset_import=8 (domain=1, version=2)
    return _int(1, IR_VERSION) + _bytes(2, "ednas-lut") + _bytes(7, graph) + _bytes(8, _bytes(1, "") + _int(2, OPSET))


class _Graph:
    """Accumulates nodes and random initializers for one small model."""

    def __init__(self, seed=0):
        self.nodes, self.inits, self.n = [], [], 0
        self.rng = np.random.default_rng(seed)

    def _name(self, stem):
        self.n += 1
        return "%s%d" % (stem, self.n)

    def conv(self, x, cin, cout, k, s, g, relu):
        w, b = self._name("w"), self._name("b")
        fan_in = (cin // g) * k * k
        # scaled so activations stay O(1): no denormals, no overflow in long chains
        self.inits.append(_tensor(w, self.rng.uniform(-1, 1, (cout, cin // g, k, k)) * (1.0 / fan_in) ** 0.5))
        self.inits.append(_tensor(b, self.rng.uniform(-0.1, 0.1, (cout,))))
        y = self._name("conv")
        self.nodes.append(_node("Conv", [x, w, b], [y], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4, group=g))
        if relu:
            r = self._name("relu")
            self.nodes.append(_node("Relu", [y], [r]))
            y = r
        return y

    def scale(self, x, c, rank4=True):
        """The context operator P: a channel-wise scale (1 x 1 depthwise conv)."""
        if rank4:
            return self.conv(x, c, c, 1, 1, c, False)
        s = self._name("s")
        self.inits.append(_tensor(s, self.rng.uniform(0.5, 1.5, (1, c))))
        y = self._name("mul")
        self.nodes.append(_node("Mul", [x, s], [y]))
        return y

    def op(self, x, op, block_input=None):
        """Append operator ``op`` (parsed key) to ``x``; returns the output name."""
        t = op["type"]
        if t == "add":
            y = self._name("add")
            self.nodes.append(_node("Add", [x, block_input], [y]))
            return y
        if t == "pool":
            y = self._name("gap")
            self.nodes.append(_node("GlobalAveragePool", [x], [y]))
            return y
        if t == "fc":
            w, b = self._name("w"), self._name("b")
            self.inits.append(_tensor(w, self.rng.uniform(-1, 1, (op["cout"], op["cin"])) * (1.0 / op["cin"]) ** 0.5))
            self.inits.append(_tensor(b, np.zeros(op["cout"])))
            y = self._name("fc")
            self.nodes.append(_node("Gemm", [x, w, b], [y], transB=1))
            return y
        return self.conv(x, op["cin"], op["cout"], op["kernel"], op["stride"], op["groups"], t in _RELU)

    def bytes(self, in_shape, out, out_shape):
        return _model(self.nodes, self.inits, "X", in_shape, out, out_shape)


# ---------------------------------------------------------------------------
# measurement plans: LAT(op) = sum of coefficient * time(model)


def plan(key):
    """``[(model_id, coefficient), ...]`` whose weighted sum of times is LAT(op)."""
    op = parse_key(key)
    if op["dtype"] != "f32":
        raise ValueError("operator %s: this script measures float32 models only (dtype f32)" % key)
    if op["type"] == "add":
        return [("addsw:" + key, 1.0), ("chain3:%dx%dx%d" % (op["cin"], op["h"], op["w"]), -1.0)]
    if op["type"] == "fc":
        return [("sw:" + key, 1.0), ("pair2:%d" % op["cin"], -0.5), ("pair2:%d" % op["cout"], -0.5)]
    return [
        ("sw:" + key, 1.0),
        ("pair:%dx%dx%d" % (op["cin"], op["h"], op["w"]), -0.5),
        ("pair:%dx%dx%d" % (op["cout"], op["ho"], op["wo"]), -0.5),
    ]


def build(model_id):
    """``(onnx bytes, input shape)`` of a model named by :func:`plan`."""
    kind, _, arg = model_id.partition(":")
    g = _Graph(seed=zlib.crc32(model_id.encode()))
    if kind in ("pair", "chain3"):
        c, h, w = (int(v) for v in arg.split("x"))
        x = "X"
        for _ in range(2 if kind == "pair" else 3):
            x = g.scale(x, c)
        return g.bytes([1, c, h, w], x, [1, c, h, w]), [1, c, h, w]
    if kind == "pair2":
        c = int(arg)
        x = g.scale(g.scale("X", c, rank4=False), c, rank4=False)
        return g.bytes([1, c], x, [1, c]), [1, c]
    op = parse_key(arg)
    if kind == "addsw":
        c, h, w = op["cin"], op["h"], op["w"]
        a = g.scale("X", c)
        b = g.scale(a, c)  # the add follows a conv, as the residual add follows the project conv
        y = g.scale(g.op(b, op, block_input=a), c)
        return g.bytes([1, c, h, w], y, [1, c, h, w]), [1, c, h, w]
    if kind == "sw":
        rank4 = op["type"] != "fc"
        shape = [1, op["cin"], op["h"], op["w"]] if rank4 else [1, op["cin"]]
        out_shape = [1, op["cout"], op["ho"], op["wo"]] if rank4 else [1, op["cout"]]
        y = g.scale(g.op(g.scale("X", op["cin"], rank4), op), op["cout"], rank4)
        return g.bytes(shape, y, out_shape), shape
    raise ValueError("unknown model id %r" % model_id)


def build_network(keys, in_shape=None):
    """A whole network from its operator keys in order (as ednas's deploy form).

    A block starts at an ``expand`` (or at a ``dw`` without one); an ``add``
    adds the block's input.  ``pool`` is followed by a flatten before ``fc``.
    """
    g = _Graph(seed=len(keys))
    ops = [parse_key(k) for k in keys]
    first = ops[0]
    shape = in_shape or [1, first["cin"], first["h"], first["w"]]
    x, block_in, prev = "X", "X", None
    for op in ops:
        if op["type"] == "expand" or (op["type"] == "dw" and prev != "expand"):
            block_in = x
        if op["type"] == "fc" and prev == "pool":
            y = g._name("flat")
            g.nodes.append(_node("Flatten", [x], [y], axis=1))
            x = y
        x = g.op(x, op, block_input=block_in)
        prev = op["type"]
    last = ops[-1]
    out_shape = [1, last["cout"]] if last["type"] == "fc" else [1, last["cout"], last["ho"], last["wo"]]
    return g.bytes(shape, x, out_shape), shape


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


def time_runs(run, warmup, repeats, min_time_s=0.0):
    """Time ``run()`` (a callable without arguments): ``(median ms, runs, fastest ms)``.

    ``warmup`` untimed calls, then at least ``repeats`` timed calls, and more
    until ``min_time_s`` seconds have passed.
    """
    for _ in range(warmup):
        run()
    times = []
    t0 = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - t0 < min_time_s:
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, len(times), min(times) * 1e3


def interleaved(runners, warmup=10, repeats=50, rounds=5, min_time_s=0.05, progress=None):
    """Time several models in interleaved rounds: the one end-to-end loop.

    Round r times every runner back to back (:func:`time_runs`: ``warmup``
    untimed calls, at least ``repeats`` timed ones and ``min_time_s``
    seconds, the median), in the order of ``runners``, before round r + 1
    starts; a slow episode of the machine then hits every model of a round
    alike.  ``progress(name, round)`` is called after each timing.

    Args:
        runners: ``{name: callable}``; a call runs the model once.
    Returns:
        ``{name: {"ms", "spread_ms", "min_ms", "n", "rounds_ms"}}``: the
        median over rounds of the per-round medians, the standard deviation
        of the per-round medians, the fastest single call, the number of
        timed calls and the per-round medians (ms, rounded to the ns).
    """
    if rounds < 1 or repeats < 1:
        raise ValueError(f"rounds and repeats must be >= 1, got {rounds!r} and {repeats!r}")
    per = {name: [] for name in runners}
    fastest = {name: float("inf") for name in runners}
    n = {name: 0 for name in runners}
    for r in range(rounds):
        for name, run in runners.items():
            ms, k, lo = time_runs(run, warmup, repeats, min_time_s)
            per[name].append(ms)
            fastest[name] = min(fastest[name], lo)
            n[name] += k
            if progress:
                progress(name, r)
    return {
        name: {
            "ms": round(statistics.median(v), 6),
            "spread_ms": round(statistics.pstdev(v) if len(v) > 1 else 0.0, 6),
            "min_ms": round(fastest[name], 6),
            "n": n[name],
            "rounds_ms": [round(x, 6) for x in v],
        }
        for name, v in per.items()
    }


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


def measure_op(key, threads=1, warmup=10, repeats=100, rounds=5, min_time_s=0.02, cache=None, max_rounds=None, rel_tol=0.02, abs_tol_ms=0.0005):
    """``{"ms", "spread_ms", "n", "rounds"}`` of one operator (see the module docstring).

    At least ``rounds`` rounds; while the standard error of the median of the
    per-round estimates exceeds ``rel_tol`` of the estimate (and
    ``abs_tol_ms``), more rounds are run, up to ``max_rounds`` (default
    3 x rounds): the difference of two large timings is noisy for operators
    on big feature maps, and a busy machine makes it noisier.
    ``spread_ms`` is the standard deviation of the per-round estimates; ``n``
    the number of timed runs of the operator's own model.
    """
    terms = plan(key)
    cache = {} if cache is None else cache
    max_rounds = max(rounds, max_rounds if max_rounds is not None else 3 * rounds)
    runners = []
    for mid, coef in terms:
        if mid not in cache:
            data, shape = build(mid)
            s = session(data, threads)
            cache[mid] = _runner(s, feed(s, shape))
        runners.append((cache[mid], coef))
    estimates, n = [], 0
    while len(estimates) < max_rounds:
        est = 0.0
        for run, coef in runners:
            ms, k, _ = time_runs(run, warmup, repeats, min_time_s)
            est += coef * ms
            n += k if coef > 0 else 0
        estimates.append(est)
        if len(estimates) >= rounds:
            # standard error of a median ~ 1.25 sd / sqrt(n)
            se = 1.25 * statistics.pstdev(estimates) / len(estimates) ** 0.5
            if se <= max(rel_tol * abs(statistics.median(estimates)), abs_tol_ms):
                break
    ms = statistics.median(estimates)
    spread = statistics.pstdev(estimates) if len(estimates) > 1 else 0.0
    # a nearly free operator can come out a hair below zero by noise
    return {"ms": round(max(ms, 0.0), 6), "spread_ms": round(spread, 6), "n": n, "rounds": len(estimates)}


def measure_networks(models, threads=1, warmup=10, repeats=50, rounds=5, min_time_s=0.05, progress=None):
    """End-to-end ms of several ONNX models, timed by :func:`interleaved`.

    Args:
        models: ``{name: (onnx bytes, input shape)}``.
    Returns:
        ``{name: {"ms", "spread_ms", "min_ms", "n", "rounds_ms"}}``: median
        over rounds of the per-round medians (see :func:`interleaved`).
    """
    runners = {}
    for name, (data, shape) in models.items():
        s = session(data, threads)
        runners[name] = _runner(s, feed(s, shape))
    return interleaved(runners, warmup, repeats, rounds, min_time_s, progress)


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


def main(argv=None):
    p = argparse.ArgumentParser(description="Measure ednas latency-table operators with ONNX Runtime.")
    p.add_argument("--ops", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops.json"), help="operator list written by 'ednas lut script'")
    p.add_argument("--out", default="lut_board.json", help="output table (rerun to resume: measured entries are kept)")
    p.add_argument("--target", default=None, help="target name recorded in the table (default: from ops.json)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-networks", action="store_true", help="skip the end-to-end networks")
    args = p.parse_args(argv)
    with open(args.ops) as f:
        spec = json.load(f)
    if spec.get("key_version") != KEY_VERSION:
        sys.exit("error: %s has key version %r; this script reads version %d" % (args.ops, spec.get("key_version"), KEY_VERSION))
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "key_version": KEY_VERSION,
        "target": args.target or spec.get("target", "board"),
        "input_size": spec["input_size"],
        "num_classes": spec.get("num_classes"),
        "space": spec.get("space"),
        "dtype": "f32",
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
            "statistic": "median over rounds of (median of repeats) differences",
            "graph_optimization": "all",
            "script": "measure_ops.py",
        },
        "tools": tools(),
        "machine": machine(),
    }
    table = dict(header, entries={}, networks={})
    if os.path.exists(args.out):
        with open(args.out) as f:
            old = json.load(f)
        same = all(old.get(k) == header[k] for k in ("input_size", "key_version", "target")) and old.get("measurement", {}).get("threads") == args.threads
        if not same:
            sys.exit("error: %s was measured with other settings (target, input size or threads); use another --out" % args.out)
        table["entries"], table["networks"] = old.get("entries", {}), old.get("networks", {})
    todo = [k for k in spec["ops"] if k not in table["entries"]]
    cache = {}
    t0 = time.time()
    for i, key in enumerate(todo):
        table["entries"][key] = measure_op(key, args.threads, args.warmup, args.repeats, args.rounds, cache=cache)
        _write_json(args.out, table)
        print("[%d/%d] %-55s %.4f ms  (%.0f s)" % (i + 1, len(todo), key, table["entries"][key]["ms"], time.time() - t0), flush=True)
        if len(cache) > 64:  # sessions hold weights; keep memory bounded on small boards
            cache.clear()
    nets = [n for n in spec.get("networks", []) if n["name"] not in table["networks"]]
    if nets and not args.no_networks:
        print("timing %d networks end to end ..." % len(nets), flush=True)
        models = {n["name"]: build_network(n["ops"]) for n in nets}
        res = measure_networks(models, args.threads, args.warmup, max(args.repeats // 2, 10), args.rounds)
        for n in nets:
            table["networks"][n["name"]] = dict(res[n["name"]], role=n.get("role", "fit"), arch=n.get("arch"), ops=n["ops"])
        _write_json(args.out, table)
    print("wrote %s: %d operators, %d networks" % (args.out, len(table["entries"]), len(table["networks"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
