"""The board in the loop: a measurement server that runs on the device, and its client.

Self-contained like :mod:`ednas.runtime.board` (Python 3.8+, the standard
library, numpy and onnxruntime; no torch, no ednas): ``ednas lut script``
copies it to ``DIR/remote.py`` beside ``measure_ops.py``, and
``python3 measure_ops.py serve`` starts the server with the measuring code
of that ``measure_ops.py``; ``ednas lut serve`` starts it with
:mod:`ednas.runtime.board`, so the device and the host time with the same
code, the same graphs and the same session options.  The board module is
passed in (``board=``), never imported here.

Endpoints (JSON in, JSON out)::

    GET  /health     {"ok": true, "busy": bool, "stats": {...}}
    GET  /info       the device: machine, CPU, ONNX Runtime version and providers, threads, optimisation level
    POST /ops        {"keys": [...], "threads", "warmup", "repeats", "rounds", "stat", "quant", "reference": [keys]}
                     -> {"entries": {key: entry}}  (board.measure_op: sandwich graphs, rounds, reference units)
    POST /networks   {"models": {name: {"onnx": base64, "shape": [..] or null}}, "reference": {"onnx", "shape", "ms"} or null,
                      "threads", "warmup", "repeats", "rounds", "min_time_s", "stat"}
                     -> {"results": {...}}  (board.interleaved, the host's end-to-end loop and statistic)

What the server trusts.  Only requests signed with its token: every
request carries ``X-Ednas-Time`` (Unix seconds), ``X-Ednas-Nonce`` (16-64
lower-case hex digits) and ``X-Ednas-Signature``, the hex HMAC-SHA256 under
the token of ``PROTOCOL, time, nonce, method, path, sha256(body)`` joined by
newlines (:func:`sign`), checked with :func:`hmac.compare_digest`; a
timestamp more than :data:`MAX_SKEW_S` from the server's clock, or a nonce
it has already seen, is refused (401).  It reads JSON only (models inside
it as base64 ONNX bytes, loaded by ONNX Runtime from memory): never pickle,
never a path, never a library.  ``Content-Length`` is checked against
:data:`MAX_BODY_BYTES` (``/networks``) or :data:`MAX_JSON_BYTES` (other
requests) before the body is read (413 above it); reading a request times
out after :data:`READ_TIMEOUT_S`.  A model ONNX Runtime cannot load, an
unknown operator key or a malformed field is a 400 with one line saying
what; the server goes on serving.  One measurement at a time: a second
measuring request while one runs gets 503 ``busy`` (the client waits and
retries).  It binds 127.0.0.1 unless told otherwise; docs/board.md says how
to reach it over an SSH tunnel.

Tokens.  ``--token-file FILE`` (created, mode 0600, when it does not
exist), else :func:`default_token_path`; a token file that group or others
may read is refused.  The host reads the token from ``EDNAS_REMOTE_TOKEN``,
``ednas ... --remote-token-file FILE`` or the default path.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import http.client
import json
import math
import os
import re
import secrets
import socket
import sys
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROTOCOL = "ednas-remote-1"
#: largest body of ``POST /networks`` (base64 ONNX files inside JSON), bytes
MAX_BODY_BYTES = 64 * 2**20
#: largest body of any other request, bytes
MAX_JSON_BYTES = 1 * 2**20
#: a request's timestamp may differ from the server's clock by this much, seconds
MAX_SKEW_S = 60.0
#: nonces remembered (each for 2 x MAX_SKEW_S); when full, signed requests are refused with 503 until some expire
MAX_NONCES = 100000
#: seconds to read a request before the connection is dropped
READ_TIMEOUT_S = 30.0
DEFAULT_PORT = 8765
#: most operator keys or models in one request
MAX_ITEMS = 512
#: most elements of one tensor of an operator or a model input (a bound on what a request may allocate)
MAX_ELEMENTS = 2**26

ENDPOINTS = {("GET", "/health"): "health", ("GET", "/info"): "info", ("POST", "/ops"): "ops", ("POST", "/networks"): "networks"}
_NONCE = re.compile(r"^[0-9a-f]{16,64}$")
_SIG = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.:+-]{1,128}$")


class RequestError(Exception):
    """A request the server refuses: ``status`` (4xx/5xx) and a one-line message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = int(status)
        self.message = message


class RemoteError(Exception):
    """The client's error: the server unreachable, refusing the request, or answering with an error (``status``)."""

    def __init__(self, message, status=None, retryable=False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class TokenError(Exception):
    """A token file that is missing, unsafe (readable by others) or too short."""


# ---------------------------------------------------------------------------
# tokens and signatures


def default_token_path():
    """``$XDG_CONFIG_HOME/ednas/remote.token`` (``~/.config/ednas/remote.token``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "ednas", "remote.token")


def read_token(path):
    """The token in ``path``; refused when group or others may read the file, or the token is shorter than 32 characters."""
    try:
        st = os.stat(path)
        if st.st_mode & 0o077:
            raise TokenError("token file %s may be read by group or others (mode %03o); run 'chmod 600 %s'" % (path, st.st_mode & 0o777, path))
        with open(path) as f:
            token = f.read().strip()
    except OSError as err:
        raise TokenError("cannot read token file %s: %s" % (path, err.strerror or err)) from err
    if len(token) < 32:
        raise TokenError("token file %s holds %d characters; a token has at least 32 (delete it to have a new one made)" % (path, len(token)))
    return token


def ensure_token(path=None):
    """``(token, path, created)``: the token of ``path`` (default :func:`default_token_path`), made (mode 0600) if the file does not exist."""
    path = path or default_token_path()
    if not os.path.exists(path):
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never another mode, even for an instant
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        return read_token(path), path, True
    return read_token(path), path, False


def body_hash(body):
    return hashlib.sha256(body or b"").hexdigest()


def signature(token, timestamp, nonce, method, path, body):
    """Hex HMAC-SHA256 under ``token`` of the request's timestamp, nonce, method, path and body hash."""
    msg = "\n".join([PROTOCOL, str(timestamp), str(nonce), str(method).upper(), str(path), body_hash(body)])
    return hmac.new(token.encode(), msg.encode(), hashlib.sha256).hexdigest()


def sign(token, method, path, body, now=None, nonce=None):
    """The authentication headers of one request (a fresh nonce each time)."""
    ts = "%.3f" % (time.time() if now is None else now)
    nonce = nonce or secrets.token_hex(16)
    return {"X-Ednas-Time": ts, "X-Ednas-Nonce": nonce, "X-Ednas-Signature": signature(token, ts, nonce, method, path, body)}


class Auth:
    """The server's token and the nonces it has seen (thread-safe)."""

    def __init__(self, token, max_skew_s=MAX_SKEW_S, max_nonces=MAX_NONCES):
        self.token = token
        self.max_skew_s = float(max_skew_s)
        self.max_nonces = int(max_nonces)
        self._seen = OrderedDict()  # nonce -> time it was accepted, oldest first
        self._lock = threading.Lock()

    def check(self, method, path, headers, body, now=None):
        """Raise :class:`RequestError` (401) unless the request is signed with the token, fresh and new."""
        now = time.time() if now is None else now
        ts, nonce, sig = (headers.get(h) for h in ("x-ednas-time", "x-ednas-nonce", "x-ednas-signature"))
        if not (isinstance(ts, str) and isinstance(nonce, str) and isinstance(sig, str)):
            raise RequestError(401, "unauthenticated: the request lacks the X-Ednas-Time, X-Ednas-Nonce and X-Ednas-Signature headers")
        try:
            t = float(ts)
        except ValueError:
            t = float("nan")
        if not math.isfinite(t):
            raise RequestError(401, "unauthenticated: X-Ednas-Time is not a number of seconds")
        if abs(now - t) > self.max_skew_s:
            raise RequestError(401, "stale request: its timestamp is %.0f s from the server's clock (at most %.0f s); "
                                    "set both clocks (NTP)" % (t - now, self.max_skew_s))
        if not _NONCE.match(nonce) or not _SIG.match(sig):
            raise RequestError(401, "unauthenticated: malformed nonce or signature")
        if not hmac.compare_digest(signature(self.token, ts, nonce, method, path, body), sig):
            raise RequestError(401, "bad signature: the request was not signed with this server's token")
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now - 2 * self.max_skew_s:
                self._seen.popitem(last=False)
            if nonce in self._seen:
                raise RequestError(401, "replayed request: this nonce was already used")
            if len(self._seen) >= self.max_nonces:
                raise RequestError(503, "too many requests in the last %.0f s; retry later" % (2 * self.max_skew_s))
            self._seen[nonce] = now


# ---------------------------------------------------------------------------
# request parsing (no sockets: tested directly)


def body_limit(path):
    return MAX_BODY_BYTES if path == "/networks" else MAX_JSON_BYTES


def content_length(method, path, headers):
    """The body's length from its ``Content-Length`` header, checked against the limit before anything is read."""
    raw = headers.get("content-length")
    if raw is None:
        if method == "POST":
            raise RequestError(411, "a POST needs a Content-Length header")
        return 0
    if not (isinstance(raw, str) and raw.strip().isdigit() and len(raw.strip()) <= 12):
        raise RequestError(400, "Content-Length must be a non-negative integer")
    n = int(raw.strip())
    if n > body_limit(path):
        raise RequestError(413, "request body of %d bytes is larger than the limit of %d bytes for %s" % (n, body_limit(path), path))
    return n


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
    if not isinstance(v, dict) or not isinstance(v.get("onnx"), str):
        raise RequestError(400, "model %r must be an object with 'onnx' (base64 ONNX bytes)" % name)
    try:
        data = base64.b64decode(v["onnx"].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise RequestError(400, "model %r: 'onnx' is not base64" % name) from None
    shape = v.get("shape")
    if shape is not None:
        if (not isinstance(shape, list) or not 1 <= len(shape) <= 6
                or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 65536 for s in shape)
                or math.prod(shape) > MAX_ELEMENTS):
            raise RequestError(400, "model %r: 'shape' must be null or 1-6 positive integers" % name)
    return data, shape


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
        data, shape = _model(ref, "reference")
        ms = ref.get("ms")
        if ms is not None and (isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 < ms < 1e6):
            raise RequestError(400, "reference 'ms' must be null or a positive number")
        p["reference"] = (data, shape, ms)
    return endpoint, p


# ---------------------------------------------------------------------------
# the server


def _first_line(err):
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


class Device:
    """What the server measures with: the board module, its session options, caches, counters and the one-at-a-time lock."""

    def __init__(self, board, optimization="all", auth=None):
        if optimization not in board.OPTIMIZATIONS:
            raise ValueError("optimization must be one of %s" % ", ".join(board.OPTIMIZATIONS))
        self.board = board
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
        import onnxruntime as ort

        b = self.board
        return {"protocol": PROTOCOL, "machine": b.machine(), "tools": b.tools(), "providers": list(ort.get_available_providers()),
                "session": {"providers": ["CPUExecutionProvider"], "graph_optimization": self.optimization, "inter_op_threads": 1,
                            "execution_mode": "sequential", "threads": "per request (the table's)"},
                "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                "key_version": b.KEY_VERSION, "max_body_bytes": MAX_BODY_BYTES, "max_json_bytes": MAX_JSON_BYTES}

    def _session_runner(self, data, threads, shape, what):
        try:
            s = self.board.session(data, threads, self.optimization)
        except Exception as err:  # ORT raises its own types for a model it cannot load
            raise RequestError(400, "%s cannot be loaded by ONNX Runtime: %s" % (what, _first_line(err))) from None
        try:
            fd = self.board.feed(s, shape)
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
            op = self.board.parse_key(key)
            self.board.plan(key)
        except Exception as err:  # a malformed key (ValueError), a zero stride, ...
            raise RequestError(400, "operator %s: %s" % (key[:120], _first_line(err))) from None
        weights = op["cout"] * (op["cin"] // max(op["groups"], 1)) * op["kernel"] ** 2
        if max(op["cin"] * op["h"] * op["w"], op["cout"] * op["ho"] * op["wo"], weights) > MAX_ELEMENTS or op["groups"] < 1 \
                or op["cin"] % op["groups"] or op["kernel"] > 63 or op["stride"] < 1:
            raise RequestError(400, "operator %s: out of the shapes this server builds" % key[:120])
        return op

    def measure_ops(self, p):
        b = self.board
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
                    data, shape = b.build_network(p["reference"], quant=p["quant"])
                except Exception as err:
                    raise RequestError(400, "the reference network cannot be built: %s" % _first_line(err)) from None
                self._ref = (rk, self._session_runner(data, p["threads"], shape, "the reference network"))
            ref = self._ref[1]
        cache = self._cache.setdefault((p["threads"], qkey, self.optimization), {})
        out = {}
        for key in p["keys"]:
            for mid, _ in b.plan(key):
                if mid not in cache:
                    try:
                        data, shape = b.build(mid, p["quant"])
                    except Exception as err:
                        raise RequestError(400, "operator %s cannot be built: %s" % (key[:120], _first_line(err))) from None
                    cache[mid] = self._session_runner(data, p["threads"], shape, "model %s of operator %s" % (mid[:60], key[:120]))
            out[key] = b.measure_op(key, p["threads"], p["warmup"], p["repeats"], p["rounds"], cache=cache, quant=p["quant"], reference=ref,
                                    stat=p["stat"])
            self.count("ops_measured")
            if len(cache) > 64:  # sessions hold weights; keep memory bounded on small boards
                cache.clear()
        return {"entries": out}

    def time_networks(self, p):
        runners = {name: self._session_runner(data, p["threads"], shape, "model %r" % name) for name, (data, shape) in p["models"].items()}
        ref, ref_ms = None, None
        if p["reference"] is not None:
            data, shape, ref_ms = p["reference"]
            ref = self._session_runner(data, p["threads"], shape, "the reference network")
        res = self.board.interleaved(runners, p["warmup"], p["repeats"], p["rounds"], p["min_time_s"], reference=ref, ref_ms=ref_ms, stat=p["stat"])
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


def make_server(board, host="127.0.0.1", port=DEFAULT_PORT, token=None, optimization="all", quiet=False):
    """A :class:`Server` (not yet serving) measuring with ``board``; ``port`` 0 picks a free one."""
    if not token or len(token) < 32:
        raise TokenError("the server never runs without a token of at least 32 characters")
    return Server((host, int(port)), Device(board, optimization, Auth(token)), quiet)


def serve_main(argv, board):
    """``measure_ops.py serve`` / ``ednas lut serve``: the server in the foreground until interrupted."""
    p = argparse.ArgumentParser(prog="measure_ops.py serve", description="Serve latency measurements of this device to ednas (see docs/board.md).")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: reach it over an SSH tunnel)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0: a free one, printed)")
    p.add_argument("--token-file", default=None, help="token file (made, mode 0600, when missing; default %s)" % default_token_path())
    p.add_argument("--optimization", default="all", choices=board.OPTIMIZATIONS, help="ONNX Runtime graph optimisation level (default all, as deployed)")
    p.add_argument("--quiet", action="store_true", help="no line per request")
    a = p.parse_args(argv)
    return serve(board, a.host, a.port, a.token_file, a.optimization, a.quiet)


def serve(board, host="127.0.0.1", port=DEFAULT_PORT, token_file=None, optimization="all", quiet=False, ready=None):
    """Run the server until interrupted; prints where it listens and which token file it uses."""
    try:
        token, path, created = ensure_token(token_file)
    except TokenError as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    try:
        srv = make_server(board, host, port, token, optimization, quiet)
    except OSError as err:
        print("error: cannot listen on %s:%s: %s" % (host, port, err.strerror or err), file=sys.stderr)
        return 2
    h, prt = srv.server_address[:2]
    print("token file: %s%s" % (path, " (new; copy it to the host, keep it mode 0600)" if created else ""), flush=True)
    print("listening on http://%s:%d (protocol %s, graph optimisation %s)" % (h, prt, PROTOCOL, optimization), flush=True)
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


# ---------------------------------------------------------------------------
# the client


class Client:
    """Signed requests to a measurement server, with timeouts and retries.

    A connection that fails or drops, and a ``busy`` server (503), are
    retried ``retries`` times, waiting ``backoff_s`` x 2^attempt between
    tries (each try signed anew); a refusal (4xx) is not retried.
    """

    def __init__(self, host, port, token, timeout_s=900.0, connect_timeout_s=10.0, retries=5, backoff_s=1.0):
        self.host, self.port, self.token = host, int(port), token
        self.timeout_s, self.connect_timeout_s = float(timeout_s), float(connect_timeout_s)
        self.retries, self.backoff_s = int(retries), float(backoff_s)

    @property
    def where(self):
        return "%s:%d" % (self.host, self.port)

    def _once(self, method, path, body):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout_s)
        try:
            conn.connect()
            conn.sock.settimeout(self.timeout_s)  # a measurement may take minutes
            headers = dict(sign(self.token, method, path, body), **{"Content-Type": "application/json", "Content-Length": str(len(body))})
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read(MAX_BODY_BYTES + 1)
            status = resp.status
        except (OSError, http.client.HTTPException) as err:
            raise RemoteError("cannot reach the measurement server at %s: %s" % (self.where, _first_line(err) or type(err).__name__),
                              retryable=True) from err
        finally:
            conn.close()
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise RemoteError("the server at %s answered %d with something that is not JSON (is it an ednas measurement server?)"
                              % (self.where, status), status) from None
        if status == 200 and isinstance(obj, dict):
            return obj
        msg = obj.get("error") if isinstance(obj, dict) else None
        raise RemoteError("the measurement server at %s answered %d: %s" % (self.where, status, msg or "no reason given"), status,
                          retryable=status == 503)

    def request(self, method, path, payload=None, retries=None):
        body = json.dumps(payload).encode() if payload is not None else b""
        if len(body) > body_limit(path):  # the server would refuse it (413) before reading it: say so here, not as a broken pipe
            raise RemoteError("a request of %d bytes to %s is over the server's limit of %d bytes" % (len(body), path, body_limit(path)), 413)
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                return self._once(method, path, body)
            except RemoteError as err:
                if not err.retryable or attempt == retries:
                    raise
                time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def health(self, retries=None):
        return self.request("GET", "/health", retries=retries)

    def info(self, retries=None):
        return self.request("GET", "/info", retries=retries)

    def measure_ops(self, keys, threads=1, warmup=10, repeats=100, rounds=5, stat="median", quant=None, reference=None):
        """``{key: entry}`` as :func:`board.measure_op` gives them, measured on the device."""
        payload = {"keys": list(keys), "threads": threads, "warmup": warmup, "repeats": repeats, "rounds": rounds, "stat": stat, "quant": quant,
                   "reference": list(reference) if reference else None}
        return self.request("POST", "/ops", payload)["entries"]

    def time_networks(self, models, threads=1, warmup=10, repeats=50, rounds=5, min_time_s=0.05, stat="median", reference=None):
        """:func:`board.interleaved`'s result for ``{name: (onnx bytes, shape or None)}`` timed on the device.

        ``reference``: ``(onnx bytes, shape or None, table ms or None)``.
        Networks whose request would pass the server's body limit are sent in
        several requests, each under it and each with the reference, so that
        every figure is still scaled to the reference's speed (without a
        reference, the requests are timed one after the other); the
        reference's own entry is then the last request's.
        """
        enc = lambda data, shape: {"onnx": base64.b64encode(data).decode("ascii"), "shape": list(shape) if shape else None}  # noqa: E731
        payload = {"models": {}, "threads": threads, "warmup": warmup, "repeats": repeats,
                   "rounds": rounds, "min_time_s": min_time_s, "stat": stat, "reference": None}
        if reference is not None:
            payload["reference"] = dict(enc(reference[0], reference[1]), ms=reference[2])
        room = body_limit("/networks") - len(json.dumps(payload)) - 4096
        chunks, size = [{}], 0
        for n, (d, s) in models.items():
            m = enc(d, s)
            k = len(json.dumps({n: m}))
            if chunks[-1] and size + k > room:
                chunks.append({})
                size = 0
            chunks[-1][n] = m
            size += k
        results = {}
        for chunk in chunks:
            results.update(self.request("POST", "/networks", dict(payload, models=chunk))["results"])
        return results
