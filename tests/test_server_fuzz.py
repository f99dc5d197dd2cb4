"""Fuzzing the measurement server's request parsing (no sockets): whatever arrives, a RequestError with a 4xx/5xx or a valid request."""

from __future__ import annotations

import base64
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ednas.runtime import remote

TOKEN = "k" * 64
NOW = 1_800_000_000.0
PATHS = ["/health", "/info", "/ops", "/networks"]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)
fields = st.fixed_dictionaries({}, optional={
    "keys": st.lists(st.sampled_from(["dw_i16x16x16_o16_k3_s1_g16_e1_f32", "nope", ""]) | st.text(max_size=20), max_size=4) | json_values,
    "threads": st.integers(-3, 300) | json_values, "warmup": json_values, "repeats": st.integers(-1, 200000), "rounds": json_values,
    "stat": st.sampled_from(["median", "p20", "p99", ""]) | json_values, "quant": st.none() | json_values | st.fixed_dictionaries(
        {"bits": st.sampled_from([8, 16, 4, True])}, optional={"pow2": st.booleans() | st.integers(), "format": st.text(max_size=5)}),
    "reference": json_values, "min_time_s": st.floats(allow_nan=True) | json_values,
    "max_rounds": st.integers(-2, 4000) | json_values, "rel_tol": st.floats(allow_nan=True) | json_values,
    "models": json_values | st.dictionaries(st.text(max_size=10), st.fixed_dictionaries(
        {"onnx": st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode()) | st.text(max_size=20)},
        optional={"shape": st.lists(st.integers(-2, 70000), max_size=7) | json_values}), max_size=3),
})


def _signed(method: str, path: str, body: bytes, nonce: str | None = None) -> dict:
    h = remote.sign(TOKEN, method, path, body, now=NOW, nonce=nonce)
    return {k.lower(): v for k, v in h.items()}


def _parse(method, path, headers, body):
    try:
        return remote.parse_request(method, path, headers, body, remote.Auth(TOKEN), now=NOW)
    except remote.RequestError as err:
        assert 400 <= err.status < 600 and err.message and "\n" not in err.message
        return err


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "get", ""]) | st.text(max_size=8), path=st.sampled_from(PATHS) | st.text(max_size=30),
       headers=st.dictionaries(st.sampled_from(["x-ednas-time", "x-ednas-nonce", "x-ednas-signature", "content-length", "x"]),
                               st.text(max_size=80), max_size=5),
       body=st.binary(max_size=200))
def test_any_unsigned_request_is_refused_with_a_status(method, path, headers, body):
    out = _parse(method, path, headers, body)
    assert isinstance(out, remote.RequestError) and out.status in (400, 401, 413)


@FUZZ
@given(path=st.sampled_from(PATHS), payload=fields | json_values)
def test_any_signed_json_body_is_a_valid_request_or_a_4xx(path, payload):
    method = "GET" if path in ("/health", "/info") else "POST"
    body = json.dumps(payload).encode()
    out = _parse(method, path, _signed(method, path, body), body)
    if isinstance(out, remote.RequestError):
        assert out.status in (400, 413) or (method == "GET" and out.status == 400)
        return
    endpoint, p = out
    assert endpoint == remote.ENDPOINTS[(method, path)]
    if endpoint in ("ops", "networks"):
        assert 1 <= p["threads"] <= 256 and p["stat"] in ("median", "min", "p10", "p20", "p25")
    if endpoint == "networks":
        assert all(isinstance(d, bytes) for d, _ in p["models"].values())
        assert p["max_rounds"] is None or p["rounds"] <= p["max_rounds"] <= 3000
        assert 0 <= p["rel_tol"] <= 1


@FUZZ
@given(body=st.binary(max_size=300), path=st.sampled_from(["/ops", "/networks"]))
def test_any_signed_binary_body_is_a_valid_request_or_a_400(body, path):
    out = _parse("POST", path, _signed("POST", path, body), body)
    assert not isinstance(out, remote.RequestError) or out.status == 400


@FUZZ
@given(body=st.binary(min_size=1, max_size=100), i=st.integers(0, 99), flip=st.integers(1, 255))
def test_a_body_changed_after_signing_is_refused(body, i, flip):
    h = _signed("POST", "/ops", body)
    changed = bytearray(body)
    changed[i % len(body)] ^= flip
    out = _parse("POST", "/ops", h, bytes(changed))
    assert isinstance(out, remote.RequestError) and out.status == 401 and "signature" in out.message


@FUZZ
@given(value=st.none() | st.text(max_size=20) | st.integers(-10, 2**80).map(str), method=st.sampled_from(["GET", "POST"]),
       path=st.sampled_from(PATHS))
def test_content_length_is_a_bounded_integer_or_refused(value, method, path):
    headers = {} if value is None else {"content-length": value}
    try:
        n = remote.content_length(method, path, headers)
    except remote.RequestError as err:
        assert err.status in (400, 411, 413)
        return
    assert 0 <= n <= remote.body_limit(path)


def test_nonce_and_skew_rules():
    auth = remote.Auth(TOKEN, max_nonces=2)
    for i in range(2):
        auth.check("GET", "/health", _signed("GET", "/health", b"", nonce=f"{i:032x}"), b"", now=NOW)
    try:  # full: refused rather than forgetting a nonce that could then be replayed
        auth.check("GET", "/health", _signed("GET", "/health", b"", nonce="f" * 32), b"", now=NOW)
        raise AssertionError("a full nonce cache accepted a request")
    except remote.RequestError as err:
        assert err.status == 503
    # once the remembered nonces are older than twice the allowed skew, there is room again
    later = NOW + 3 * remote.MAX_SKEW_S
    h = remote.sign(TOKEN, "GET", "/health", b"", now=later)
    auth.check("GET", "/health", {k.lower(): v for k, v in h.items()}, b"", now=later)
