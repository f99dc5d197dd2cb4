"""The host's side of the protocol: signed requests to a measurement server, with timeouts and retries."""

from __future__ import annotations

import base64
import http.client
import json
import time

from .protocol import MAX_BODY_BYTES, RemoteError, _first_line, body_limit, sign


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

    def time_networks(self, models, threads=1, warmup=10, repeats=50, rounds=5, min_time_s=0.05, stat="median", reference=None, kind="onnx",
                      max_rounds=None, rel_tol=0.02):
        """:func:`board.interleaved`'s result for ``{name: (model bytes, shape or None)}`` timed on the device.

        ``reference``: ``(model bytes, shape or None, table ms or None)``;
        ``kind``: ``onnx`` (an ONNX Runtime server) or ``tflite`` (a LiteRT one).
        ``max_rounds``, ``rel_tol``: the adaptive rounds of :func:`board.interleaved`.
        Networks whose request would pass the server's body limit are sent in
        several requests, each under it and each with the reference, so that
        every figure is still scaled to the reference's speed (without a
        reference, the requests are timed one after the other); the
        reference's own entry is then the last request's.
        """
        enc = lambda data, shape: {kind: base64.b64encode(data).decode("ascii"), "shape": list(shape) if shape else None}  # noqa: E731
        payload = {"models": {}, "threads": threads, "warmup": warmup, "repeats": repeats,
                   "rounds": rounds, "min_time_s": min_time_s, "stat": stat, "reference": None, "max_rounds": max_rounds, "rel_tol": rel_tol}
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
