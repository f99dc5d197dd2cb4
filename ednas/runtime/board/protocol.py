"""The kit's network protocol: limits, errors, tokens and signed requests (the standard library only).

What the server trusts.  Only requests signed with its token: every
request carries ``X-Ednas-Time`` (Unix seconds), ``X-Ednas-Nonce`` (16-64
lower-case hex digits) and ``X-Ednas-Signature``, the hex HMAC-SHA256 under
the token of ``PROTOCOL, time, nonce, method, path, sha256(body)`` joined by
newlines (:func:`sign`), checked with :func:`hmac.compare_digest`; a
timestamp more than :data:`MAX_SKEW_S` from the server's clock, or a nonce
it has already seen, is refused (401).  ``Content-Length`` is checked
against :data:`MAX_BODY_BYTES` (``/networks``) or :data:`MAX_JSON_BYTES`
(other requests) before the body is read (413 above it).

Tokens.  ``--token-file FILE`` (created, mode 0600, when it does not
exist), else :func:`default_token_path`; a token file that group or others
may read is refused.  The host reads the token from ``EDNAS_REMOTE_TOKEN``,
``ednas ... --remote-token-file FILE`` or the default path.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets
import threading
import time
from collections import OrderedDict

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
# request sizes (checked before a body is read)


def body_limit(path):
    return MAX_BODY_BYTES if path == "/networks" else MAX_JSON_BYTES


def content_length(method, path, headers):
    """The body's length from its ``Content-Length`` header, checked against the limit before anything is read."""
    raw = headers.get("content-length")
    if raw is None:
        if method == "POST":
            raise RequestError(411, "a POST needs a Content-Length header")
        return 0
    if not (isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit() and len(raw.strip()) <= 12):
        raise RequestError(400, "Content-Length must be a non-negative integer")
    n = int(raw.strip())
    if n > body_limit(path):
        raise RequestError(413, "request body of %d bytes is larger than the limit of %d bytes for %s" % (n, body_limit(path), path))
    return n



def _first_line(err):
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]

