"""The measurement server that runs on the device (the standard library's HTTP server, numpy, onnxruntime, onnx).

Endpoints (JSON in, JSON out)::

    GET  /health     {"ok": true, "busy": bool, "stats": {...}}
    GET  /info       the device: machine, CPU, runtime (ONNX Runtime or LiteRT) and its version, threads, optimisation level
    POST /ops        {"keys": [...], "threads", "warmup", "repeats", "rounds", "stat", "quant", "reference": [keys]}
                     -> {"entries": {key: entry}}  (timing.measure_op: sandwich graphs, rounds, reference units)
    POST /networks   {"models": {name: {"onnx": base64, "shape": [..] or null}}, "reference": {"onnx", "shape", "ms"} or null,
                      "threads", "warmup", "repeats", "rounds", "min_time_s", "stat", "max_rounds", "rel_tol"}
                     -> {"results": {...}}  (timing.interleaved, the host's end-to-end loop and statistic)

Every request is signed (:mod:`.protocol` says what the server trusts).  It
reads JSON only (models inside it as base64 ONNX bytes, loaded by ONNX
Runtime from memory): never pickle, never a path, never a library.  Reading
a request times out after :data:`~.protocol.READ_TIMEOUT_S`.  A model ONNX
Runtime cannot load, an unknown operator key or a malformed field is a 400
with one line saying what; the server goes on serving.  One measurement at
a time: a second measuring request while one runs gets 503 ``busy`` (the
client waits and retries).  It binds 127.0.0.1 unless told otherwise;
docs/board.md says how to reach it over an SSH tunnel.

With ``--runtime litert`` (in a kit written by ``ednas lut script --runtime
litert``) it times LiteRT instead: ``/ops`` measures the operators of the
kit's own converted models (``litert_models.json``; an operator, a
fixed-point scheme or a reference network that is not the kit's is a 400
saying so), and ``/networks`` takes models as ``{"tflite": base64}``,
loaded by the ai-edge-litert interpreter from memory (XNNPACK).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import math
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import graphs, timing
from .protocol import (
    _NAME,
    DEFAULT_PORT,
    ENDPOINTS,
    MAX_BODY_BYTES,
    MAX_ELEMENTS,
    MAX_ITEMS,
    MAX_JSON_BYTES,
    PROTOCOL,
    READ_TIMEOUT_S,
    Auth,
    RequestError,
    TokenError,
    _first_line,
    body_limit,
    content_length,
    default_token_path,
    ensure_token,
)

# ---------------------------------------------------------------------------
# request parsing (no sockets: tested directly)


def _int(d, name, lo, hi, default):
    v = d.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise RequestError(400, "field %r must be an integer in [%d, %d], got %r" % (name, lo, hi, v if not isinstance(v, str) else v[:40]))
    return v


def _stat(d):
    v = d.get("stat", "median")
    if v not in ("median", "min", "p10", "p20", "p25"):
        raise RequestError(400, "field 'stat' must be one of median, min, p10, p20, p25")
    return v


def _keys(v, name):
    if not isinstance(v, list) or not v or len(v) > MAX_ITEMS or not all(isinstance(k, str) and 0 < len(k) <= 200 for k in v):
        raise RequestError(400, "field %r must be a list of 1 to %d operator keys (strings)" % (name, MAX_ITEMS))
    return v


def _quant(v):
    if v is None:
        return None
    ok = (isinstance(v, dict) and set(v) <= {"format", "bits", "weight_bits", "per_channel", "pow2"} and v.get("format", "QDQ") == "QDQ"
          and v.get("bits") in (8, 16) and v.get("weight_bits", v.get("bits")) in (8, 16)
          and all(isinstance(v.get(k, False), bool) for k in ("per_channel", "pow2")))
    if not ok:
        raise RequestError(400, "field 'quant' must be null or a fixed-point scheme {format: QDQ, bits: 8|16, weight_bits, per_channel, pow2}")
    return {"format": "QDQ", "bits": v["bits"], "weight_bits": v.get("weight_bits", v["bits"]), "per_channel": bool(v.get("per_channel", True)),
            "pow2": bool(v.get("pow2", False))}


def _model(v, name):
    """``(bytes, shape, kind)`` of a model of a request; ``kind`` ``onnx`` or ``tflite``, the field it came in."""
    kind = next((k for k in ("onnx", "tflite") if isinstance(v, dict) and isinstance(v.get(k), str)), None)
    if kind is None:
        raise RequestError(400, "model %r must be an object with 'onnx' (base64 ONNX bytes) or 'tflite' (base64 LiteRT bytes)" % name)
    try:
        data = base64.b64decode(v[kind].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise RequestError(400, "model %r: '%s' is not base64" % (name, kind)) from None
    shape = v.get("shape")
    if shape is not None:
        if (not isinstance(shape, list) or not 1 <= len(shape) <= 6
                or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 65536 for s in shape)
                or math.prod(shape) > MAX_ELEMENTS):
            raise RequestError(400, "model %r: 'shape' must be null or 1-6 positive integers" % name)
    return data, shape, kind


def parse_request(method, path, headers, body, auth, now=None):
    """``(endpoint, payload)`` of a request, or :class:`RequestError` (its status and one line).

    ``headers``: a mapping with lower-case names.  Checks, in this order:
    the signature (:meth:`Auth.check`), the endpoint, the body (JSON, its
    fields and their ranges).  Never raises anything else.
    """
    if not isinstance(method, str) or not isinstance(path, str) or not isinstance(body, (bytes, bytearray)):
        raise RequestError(400, "malformed request")
    if len(body) > body_limit(path):
        raise RequestError(413, "request body larger than the limit of %d bytes" % body_limit(path))
    auth.check(method, path, headers, bytes(body), now)
    endpoint = ENDPOINTS.get((method, path))
    if endpoint is None:
        if any(p == path for _, p in ENDPOINTS):
            raise RequestError(405, "method %s is not allowed on %s" % (method[:10], path))
        raise RequestError(404, "no endpoint %s; the endpoints are %s" % (path[:100], ", ".join(sorted({p for _, p in ENDPOINTS}))))
    if method == "GET":
        if body:
            raise RequestError(400, "a GET has no body")
        return endpoint, {}
    try:
        d = json.loads(bytes(body).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RequestError(400, "the body is not JSON") from None
    if not isinstance(d, dict):
        raise RequestError(400, "the body must be a JSON object")
    p = {
        "threads": _int(d, "threads", 1, 256, 1),
        "warmup": _int(d, "warmup", 0, 10000, 10),
        "repeats": _int(d, "repeats", 1, 100000, 50),
        "rounds": _int(d, "rounds", 1, 1000, 5),
        "stat": _stat(d),
    }
    if endpoint == "ops":
        p["keys"] = _keys(d.get("keys"), "keys")
        p["quant"] = _quant(d.get("quant"))
        p["reference"] = None if d.get("reference") is None else _keys(d.get("reference"), "reference")
        return endpoint, p
    t = d.get("min_time_s", 0.05)
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 10:
        raise RequestError(400, "field 'min_time_s' must be a number in [0, 10]")
    p["min_time_s"] = float(t)
    # adaptive rounds (timing.interleaved): up to max_rounds (null: 3 x rounds) while a figure's standard error is above rel_tol of it
    p["max_rounds"] = None if d.get("max_rounds") is None else _int(d, "max_rounds", p["rounds"], 3000, None)
    tol = d.get("rel_tol", timing.REL_TOL)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol <= 1:
        raise RequestError(400, "field 'rel_tol' must be a number in [0, 1]")
    p["rel_tol"] = float(tol)
    models = d.get("models")
    if not isinstance(models, dict) or not 0 < len(models) <= MAX_ITEMS:
        raise RequestError(400, "field 'models' must be an object of 1 to %d models {name: {onnx, shape}}" % MAX_ITEMS)
    p["models"] = {}
    for name, v in models.items():
        if not _NAME.match(name) or name == "reference":
            raise RequestError(400, "model name %r must be 1-128 letters, digits or _.:+- and not 'reference'" % name[:40])
        p["models"][name] = _model(v, name)
    ref = d.get("reference")
    p["reference"] = None
    if ref is not None:
        data, shape, kind = _model(ref, "reference")
        ms = ref.get("ms")
        if ms is not None and (isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 < ms < 1e6):
            raise RequestError(400, "reference 'ms' must be null or a positive number")
        p["reference"] = (data, shape, ms, kind)
    return endpoint, p



# ---------------------------------------------------------------------------
# the server


class Device:
    """What the server measures with: the kit's graphs and timing, its session options, caches, counters and the one-at-a-time lock."""

    def __init__(self, optimization="all", auth=None, runtime="onnxruntime", kit_dir=None):
        if optimization not in timing.OPTIMIZATIONS:
            raise ValueError("optimization must be one of %s" % ", ".join(timing.OPTIMIZATIONS))
        if runtime not in ("onnxruntime", "litert", "openvino"):
            raise ValueError("runtime must be onnxruntime, litert or openvino, got %r" % (runtime,))
        self.runtime, self.kit_dir = runtime, kit_dir
        self._kit = None  # litert: (index, ops spec) of the kit's converted models
        self._litert = {}  # threads -> {model id or network name: runner}
        if runtime == "litert":
            from . import litert_rt

            self._kit = litert_rt.read_kit(kit_dir or ".")
        self.optimization = optimization
        self.auth = auth
        self.lock = threading.Lock()
        self.stats = {"requests": 0, "refused": 0, "ops_measured": 0, "networks_timed": 0}
        self._stats_lock = threading.Lock()
        self._cache = {}  # (threads, quant) -> {model id: runner}
        self._ref = (None, None)  # ((keys, quant, threads), runner)

    def count(self, name, n=1):
        with self._stats_lock:
            self.stats[name] += n

    def info(self):
        common = {"cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                  "key_version": graphs.KEY_VERSION, "max_body_bytes": MAX_BODY_BYTES, "max_json_bytes": MAX_JSON_BYTES}
        if self.runtime == "litert":
            spec = self._kit[1]
            return {"protocol": PROTOCOL, "runtime": "litert", "machine": timing.machine(), "tools": timing.tools("litert"), "providers": [],
                    "session": {"interpreter": "ai-edge-litert", "delegate": "XNNPACK (the interpreter's default)", "layout": "channels last",
                                "threads": "per request (the table's)"},
                    "kit": {"space": spec.get("space"), "dtype": spec.get("dtype", "f32"), "quant": spec.get("quant"),
                            "input_size": spec.get("input_size"), "ops": len(spec.get("ops", [])),
                            "reference": (spec.get("reference") or {}).get("ops")}, **common}
        if self.runtime == "openvino":  # the kit's ONNX graphs compiled by OpenVINO's CPU plugin
            from . import openvino_rt

            return {"protocol": PROTOCOL, "runtime": "openvino", "machine": timing.machine(), "tools": timing.tools("openvino"), "providers": [],
                    "session": {"device": "CPU", "config": dict(openvino_rt.config(1), INFERENCE_NUM_THREADS="per request (the table's)"),
                                "graph_optimization": "OpenVINO CPU plugin: LATENCY hint, 1 stream, INFERENCE_NUM_THREADS = threads",
                                "threads": "per request (the table's)"}, **common}
        import onnxruntime as ort

        return {"protocol": PROTOCOL, "runtime": "onnxruntime", "machine": timing.machine(), "tools": timing.tools(), "providers": list(ort.get_available_providers()),
                "session": {"providers": ["CPUExecutionProvider"], "graph_optimization": self.optimization, "inter_op_threads": 1,
                            "execution_mode": "sequential", "threads": "per request (the table's)"},
                "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                "key_version": graphs.KEY_VERSION, "max_body_bytes": MAX_BODY_BYTES, "max_json_bytes": MAX_JSON_BYTES}

    def _openvino_runner(self, data, threads, shape, what):
        from . import openvino_rt

        try:
            compiled = openvino_rt.compile_model(data, threads)
        except Exception as err:  # OpenVINO raises its own types for a model it cannot read
            raise RequestError(400, "%s cannot be loaded by OpenVINO: %s" % (what, _first_line(err))) from None
        try:
            dims = shape if shape is not None else [d.get_length() if d.is_static else 1 for d in compiled.input(0).get_partial_shape()]
            if math.prod(dims) > MAX_ELEMENTS:
                raise RequestError(400, "%s: its input is larger than %d elements" % (what, MAX_ELEMENTS))
            return openvino_rt.runner(data, threads, dims)
        except RequestError:
            raise
        except Exception as err:
            raise RequestError(400, "%s cannot run on a %s input: %s" % (what, list(shape) if shape else "its own", _first_line(err))) from None

    def _session_runner(self, data, threads, shape, what):
        if self.runtime == "openvino":
            return self._openvino_runner(data, threads, shape, what)
        try:
            s = timing.session(data, threads, self.optimization)
        except Exception as err:  # ORT raises its own types for a model it cannot load
            raise RequestError(400, "%s cannot be loaded by ONNX Runtime: %s" % (what, _first_line(err))) from None
        try:
            fd = timing.feed(s, shape)
            if math.prod(next(iter(fd.values())).shape) > MAX_ELEMENTS:
                raise RequestError(400, "%s: its input is larger than %d elements" % (what, MAX_ELEMENTS))
            s.run(None, fd)  # a model that loads but cannot run on its input is the client's mistake too
        except RequestError:
            raise
        except Exception as err:
            raise RequestError(400, "%s cannot run on a %s input: %s" % (what, list(shape) if shape else "its own", _first_line(err))) from None

        def run():
            return s.run(None, fd)

        return run

    def _check_key(self, key):
        try:
            op = graphs.parse_key(key)
            graphs.plan(key)
        except Exception as err:  # a malformed key (ValueError), a zero stride, ...
            raise RequestError(400, "operator %s: %s" % (key[:120], _first_line(err))) from None
        weights = op["cout"] * (op["cin"] // max(op["groups"], 1)) * op["kernel"] ** 2
        if max(op["cin"] * op["h"] * op["w"], op["cout"] * op["ho"] * op["wo"], weights) > MAX_ELEMENTS or op["groups"] < 1 \
                or op["cin"] % op["groups"] or op["kernel"] > 63 or op["stride"] < 1:
            raise RequestError(400, "operator %s: out of the shapes this server builds" % key[:120])
        return op

    def _litert_runners(self, threads):
        if threads not in self._litert:
            from . import litert_rt

            self._litert.clear()  # one set of interpreters at a time: bounded memory
            self._litert[threads] = litert_rt.runners(self.kit_dir or ".", self._kit[0], threads)
        return self._litert[threads]

    def _measure_ops_litert(self, p):
        spec = self._kit[1]
        quant = spec.get("quant") if spec.get("dtype", "f32") != "f32" else None
        if json.dumps(p["quant"], sort_keys=True) != json.dumps(quant, sort_keys=True):
            raise RequestError(400, "this LiteRT kit measures %s operators (scheme %s), not the scheme %s asked for; write a kit of that "
                               "precision ('ednas lut script --runtime litert --dtype ...')" % (spec.get("dtype", "f32"), quant, p["quant"]))
        kit_ref = (spec.get("reference") or {}).get("ops")
        if p["reference"] is not None and list(p["reference"]) != list(kit_ref or []):
            raise RequestError(400, "the reference network asked for is not this LiteRT kit's (the host's table is for another space, input size or number of classes)")
        runners = self._litert_runners(p["threads"])
        out = {}
        for key in p["keys"]:
            self._check_key(key)
            missing = [mid for mid, _ in graphs.plan(key) if mid not in runners]
            if missing:
                raise RequestError(400, "operator %s is not in this LiteRT kit (space %s); write the kit for the space you measure"
                                   % (key[:120], str(spec.get("space"))[:200]))
            out[key] = timing.measure_op(key, p["threads"], p["warmup"], p["repeats"], p["rounds"], cache=runners,
                                         reference=runners["reference"] if p["reference"] is not None else None, stat=p["stat"])
            self.count("ops_measured")
        return {"entries": out}

    def measure_ops(self, p):
        if self.runtime == "litert":
            return self._measure_ops_litert(p)
        for key in p["keys"]:
            self._check_key(key)
        qkey = json.dumps(p["quant"], sort_keys=True)
        ref = None
        if p["reference"] is not None:
            for key in p["reference"]:
                self._check_key(key)
            rk = (tuple(p["reference"]), qkey, p["threads"])
            if self._ref[0] != rk:
                try:
                    data, shape = graphs.build_network(p["reference"], quant=p["quant"])
                except Exception as err:
                    raise RequestError(400, "the reference network cannot be built: %s" % _first_line(err)) from None
                self._ref = (rk, self._session_runner(data, p["threads"], shape, "the reference network"))
            ref = self._ref[1]
        cache = self._cache.setdefault((p["threads"], qkey, self.optimization), {})
        out = {}
        for key in p["keys"]:
            for mid, _ in graphs.plan(key):
                if mid not in cache:
                    try:
                        data, shape = graphs.build(mid, p["quant"])
                    except Exception as err:
                        raise RequestError(400, "operator %s cannot be built: %s" % (key[:120], _first_line(err))) from None
                    cache[mid] = self._session_runner(data, p["threads"], shape, "model %s of operator %s" % (mid[:60], key[:120]))
            out[key] = timing.measure_op(key, p["threads"], p["warmup"], p["repeats"], p["rounds"], cache=cache, quant=p["quant"], reference=ref,
                                    stat=p["stat"])
            self.count("ops_measured")
            if len(cache) > 64:  # sessions hold weights; keep memory bounded on small boards
                cache.clear()
        return {"entries": out}

    def _litert_runner(self, data, threads, what):
        from . import litert_rt

        try:
            return litert_rt.model_runner(data, threads)
        except Exception as err:  # the interpreter raises ValueError/RuntimeError for bytes it cannot load or run
            raise RequestError(400, "%s cannot be loaded by LiteRT: %s" % (what, _first_line(err))) from None

    def _runner(self, data, threads, shape, kind, what):
        want = "tflite" if self.runtime == "litert" else "onnx"
        if kind != want:
            raise RequestError(400, "%s is %s, but this server times %s models ('%s' fields)"
                               % (what, kind, "LiteRT" if want == "tflite" else "ONNX", want))
        if kind == "tflite":
            return self._litert_runner(data, threads, what)
        return self._session_runner(data, threads, shape, what)

    def time_networks(self, p):
        runners = {name: self._runner(data, p["threads"], shape, kind, "model %r" % name) for name, (data, shape, kind) in p["models"].items()}
        ref, ref_ms = None, None
        if p["reference"] is not None:
            data, shape, ref_ms, kind = p["reference"]
            ref = self._runner(data, p["threads"], shape, kind, "the reference network")
        res = timing.interleaved(runners, p["warmup"], p["repeats"], p["rounds"], p["min_time_s"], reference=ref, ref_ms=ref_ms, stat=p["stat"],
                                  max_rounds=p["max_rounds"], rel_tol=p["rel_tol"])
        self.count("networks_timed", len(runners))
        return {"results": res}

    def handle(self, endpoint, p):
        """The answer to a parsed request: ``(status, JSON object)``."""
        if endpoint == "health":
            return 200, {"ok": True, "busy": self.lock.locked(), "stats": dict(self.stats)}
        if endpoint == "info":
            return 200, self.info()
        if not self.lock.acquire(blocking=False):
            raise RequestError(503, "busy: another measurement is running on this device (one at a time); retry later")
        try:
            return 200, self.measure_ops(p) if endpoint == "ops" else self.time_networks(p)
        finally:
            self.lock.release()


class _Handler(BaseHTTPRequestHandler):
    server_version = "ednas-remote/1"
    sys_version = ""
    timeout = READ_TIMEOUT_S  # socket timeout while a request is read
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):  # one line per request on stderr, no bodies
        if not self.server.quiet:
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def _answer(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 503:
            self.send_header("Retry-After", "2")
        self.end_headers()
        self.wfile.write(data)

    def _serve(self, method):
        device = self.server.device
        device.count("requests")
        try:
            path = self.path.split("?", 1)[0]
            headers = {k.lower(): v for k, v in self.headers.items()}
            n = content_length(method, path, headers)
            body = self.rfile.read(n) if n else b""
            if len(body) != n:
                raise RequestError(400, "the body ended after %d of %d bytes" % (len(body), n))
            endpoint, payload = parse_request(method, path, headers, body, device.auth)
            status, obj = device.handle(endpoint, payload)
        except RequestError as err:
            device.count("refused")
            status, obj = err.status, {"error": err.message, "status": err.status}
        except (socket.timeout, ConnectionError):
            return
        except Exception as err:  # never a crash: the server answers and goes on
            device.count("refused")
            status, obj = 500, {"error": "internal error: %s" % _first_line(err), "status": 500}
        try:
            self._answer(status, obj)
        except (socket.timeout, ConnectionError):
            pass

    def do_GET(self):  # noqa: N802 (http.server's names)
        self._serve("GET")

    def do_POST(self):  # noqa: N802
        self._serve("POST")

    def do_PUT(self):  # noqa: N802
        self._serve("PUT")

    def do_DELETE(self):  # noqa: N802
        self._serve("DELETE")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 16

    def __init__(self, address, device, quiet=False):
        self.device = device
        self.quiet = quiet
        super().__init__(address, _Handler)


def make_server(host="127.0.0.1", port=DEFAULT_PORT, token=None, optimization="all", quiet=False, runtime="onnxruntime", kit_dir=None):
    """A :class:`Server` (not yet serving); ``port`` 0 picks a free one; ``runtime`` ``litert``: the LiteRT kit in ``kit_dir``."""
    if not token or len(token) < 32:
        raise TokenError("the server never runs without a token of at least 32 characters")
    return Server((host, int(port)), Device(optimization, Auth(token), runtime, kit_dir), quiet)


def serve_main(argv, kit_dir=None):
    """``measure_ops.py serve`` / ``ednas lut serve``: the server in the foreground until interrupted."""
    p = argparse.ArgumentParser(prog="measure_ops.py serve", description="Serve latency measurements of this device to ednas (see docs/board.md).")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: reach it over an SSH tunnel)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0: a free one, printed)")
    p.add_argument("--token-file", default=None, help="token file (made, mode 0600, when missing; default %s)" % default_token_path())
    p.add_argument("--optimization", default="all", choices=timing.OPTIMIZATIONS, help="ONNX Runtime graph optimisation level (default all, as deployed)")
    p.add_argument("--quiet", action="store_true", help="no line per request")
    p.add_argument("--runtime", default=None, choices=("onnxruntime", "litert", "openvino"),
                   help="what to time with (default: litert in a kit written with --runtime litert, else the kit's ops.json runtime, "
                        "else onnxruntime; openvino times the kit's ONNX graphs in OpenVINO)")
    a = p.parse_args(argv)
    runtime = a.runtime
    if runtime is None:
        from .litert_rt import INDEX

        runtime = "litert" if kit_dir and os.path.exists(os.path.join(kit_dir, INDEX)) else _kit_runtime(kit_dir)
    return serve(a.host, a.port, a.token_file, a.optimization, a.quiet, runtime=runtime, kit_dir=kit_dir)


def _kit_runtime(kit_dir):
    """The runtime an ONNX kit's ops.json names (``ednas lut script --runtime openvino``), else onnxruntime."""
    path = os.path.join(kit_dir or ".", "ops.json")
    try:
        with open(path) as f:
            rt = json.load(f).get("runtime", "onnxruntime")
    except (OSError, ValueError, AttributeError):
        return "onnxruntime"
    return rt if rt in ("onnxruntime", "openvino") else "onnxruntime"


def serve(host="127.0.0.1", port=DEFAULT_PORT, token_file=None, optimization="all", quiet=False, ready=None, runtime="onnxruntime", kit_dir=None):
    """Run the server until interrupted; prints where it listens and which token file it uses."""
    try:
        token, path, created = ensure_token(token_file)
    except TokenError as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    try:
        srv = make_server(host, port, token, optimization, quiet, runtime, kit_dir)
    except OSError as err:
        print("error: cannot listen on %s:%s: %s" % (host, port, err.strerror or err), file=sys.stderr)
        return 2
    h, prt = srv.server_address[:2]
    print("token file: %s%s" % (path, " (new; copy it to the host, keep it mode 0600)" if created else ""), flush=True)
    what = {"litert": "LiteRT, the kit's models", "openvino": "OpenVINO CPU plugin"}.get(runtime, "graph optimisation %s" % optimization)
    print("listening on http://%s:%d (protocol %s, %s)" % (h, prt, PROTOCOL, what), flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print("warning: bound to %s: any machine that can reach it may try; only signed requests are answered" % host, flush=True)
    if ready is not None:
        ready(srv)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


