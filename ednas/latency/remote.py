"""Remote targets: ``--target remote:HOST:PORT``, the board in the loop.

The device runs the measurement server of :mod:`ednas.runtime.remote`
(``python3 measure_ops.py serve`` from ``ednas lut script``'s kit, or
``ednas lut serve``); the host sends it operator keys, which it times with
the same sandwich graphs and rounds as ``host-ort`` (eq. 11), and ONNX
files, which it times end to end with the host's loop and statistic.  So
a table built against ``remote:`` is the device's, as a ``file:`` table
from the kit is, without the round trip, and ``ednas run`` checks the
budget where the network runs.

The token.  The file ``--remote-token-file`` when given, else
``EDNAS_REMOTE_TOKEN`` (the token itself), else the file
``EDNAS_REMOTE_TOKEN_FILE``, else the server's default file (:func:`ednas.runtime.remote.default_token_path`: right when
the server runs on this machine, or its file was copied here).  A token
file readable by group or others is refused, as on the server.

Retries.  A dropped connection or a busy server is retried
``EDNAS_REMOTE_RETRIES`` times (default 5), waiting
``EDNAS_REMOTE_BACKOFF_S`` (default 1) x 2^attempt seconds; the first
contact is tried twice only, so an unreachable device is one line at once.
"""

from __future__ import annotations

import os
import re

from ednas.errors import ConfigError, DeviceError
from ednas.runtime import remote as _remote

__all__ = ["PREFIX", "RemoteDevice", "connect", "host_token", "is_remote", "parse_target"]

PREFIX = "remote:"
_HOSTPORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})$")


def is_remote(target) -> bool:
    return isinstance(target, str) and target.startswith(PREFIX)


def parse_target(target: str) -> tuple[str, int]:
    """``(host, port)`` of ``remote:HOST:PORT`` (an IPv6 host in brackets: ``remote:[::1]:8765``)."""
    m = _HOSTPORT.match(target[len(PREFIX):]) if is_remote(target) else None
    port = int(m.group("port")) if m else 0
    if not m or not 0 < port < 65536:
        raise ConfigError(f"target '{target}' is not remote:HOST:PORT (for example remote:localhost:{_remote.DEFAULT_PORT}, "
                          "remote:[::1]:8765)")
    return m.group("v6") or m.group("host"), port


def host_token(token_file: str | None = None) -> str:
    """The token this host signs with (see the module docstring)."""
    env = os.environ.get("EDNAS_REMOTE_TOKEN", "").strip()
    if env and not token_file:
        if len(env) < 32:
            raise DeviceError("EDNAS_REMOTE_TOKEN holds fewer than 32 characters; set it to the contents of the server's token file")
        return env
    path = token_file or os.environ.get("EDNAS_REMOTE_TOKEN_FILE") or _remote.default_token_path()
    if not os.path.exists(path):
        raise DeviceError(f"no token for the measurement server: set EDNAS_REMOTE_TOKEN or pass --remote-token-file (no file '{path}'); "
                          "the server prints its token file when it starts")
    try:
        return _remote.read_token(path)
    except _remote.TokenError as err:
        raise DeviceError(str(err)) from err


def _env_number(name: str, default: float, cast=float):
    raw = os.environ.get(name)
    try:
        return cast(raw) if raw not in (None, "") else default
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None


def _why(err: _remote.RemoteError) -> str:
    msg = str(err)
    if err.status == 401:
        msg += ("; the host must sign with the server's token (EDNAS_REMOTE_TOKEN, --remote-token-file or the default token file) "
                "and both clocks be right")
    elif err.status is None:
        msg += "; is the server running ('python3 measure_ops.py serve' or 'ednas lut serve') and the SSH tunnel open?"
    return msg


class RemoteDevice:
    """A measurement server: ``target``, its ``info`` (``/info``) and what it measures, with ednas's errors."""

    def __init__(self, target: str, client: _remote.Client, info: dict):
        self.target, self.client, self.info = target, client, info

    @property
    def machine(self) -> dict:
        return self.info.get("machine") or {}

    def describe(self) -> dict:
        """What a table records under its ``device`` key."""
        return {"target": self.target, **{k: self.info.get(k) for k in ("protocol", "machine", "tools", "providers", "session", "cpus_usable")}}

    def _call(self, f, *args, **kw):
        try:
            return f(*args, **kw)
        except _remote.RemoteError as err:
            raise DeviceError(_why(err)) from err

    def measure_op(self, key: str, threads: int, warmup: int, repeats: int, rounds: int, quant: dict | None = None,
                   reference: list | None = None, stat: str = "median") -> dict:
        """One operator's entry, measured on the device (:func:`ednas.runtime.board.measure_op` there)."""
        return self._call(self.client.measure_ops, [key], threads, warmup, repeats, rounds, stat, quant, reference)[key]

    def time_onnx(self, models: dict, timing, progress=None, reference=None) -> dict:
        """:func:`ednas.runtime.time_onnx`'s result for ``{name: onnx bytes}``, timed on the device (``progress`` is not called)."""
        ref = None if reference is None else (reference.onnx, list(reference.shape) if reference.shape else None, reference.ms)
        return self._call(self.client.time_networks, {n: (d, None) for n, d in models.items()}, timing.threads, timing.warmup, timing.repeats,
                          timing.rounds, timing.min_time_s, timing.stat, ref, **timing.adaptive())


    @property
    def runtime(self) -> str:
        """What the device times with: ``onnxruntime`` or ``litert`` (a LiteRT kit's server)."""
        return self.info.get("runtime") or "onnxruntime"

    @property
    def kit(self) -> dict:
        """A LiteRT server's kit: ``{"space", "dtype", "quant", "input_size", "ops", "reference"}`` (empty for ONNX Runtime)."""
        return self.info.get("kit") or {}

    def time_tflite(self, models: dict, timing, reference=None) -> dict:
        """:func:`ednas.runtime.board.interleaved`'s result for ``{name: .tflite bytes}`` timed on a LiteRT device (``reference``:
        the table's, a :class:`~ednas.runtime.Reference` converted here as the kit's reference network was)."""
        return self.time_files(models, timing, reference=reference, fmt="tflite")

    def time_files(self, models: dict, timing, progress=None, reference=None, fmt: str = "onnx") -> dict:
        """:func:`ednas.runtime.board.interleaved`'s result for ``{name: file bytes}`` (``fmt``: ``onnx`` or ``tflite``) timed on the device."""
        if fmt == "onnx":
            return self.time_onnx(models, timing, progress, reference)
        ref = None if reference is None else (reference.onnx, None, reference.ms)
        return self._call(self.client.time_networks, {n: (d, None) for n, d in models.items()}, timing.threads, timing.warmup, timing.repeats,
                          timing.rounds, timing.min_time_s, timing.stat, ref, fmt, **timing.adaptive())


def connect(target: str, token_file: str | None = None) -> RemoteDevice:
    """Reach the server of ``remote:HOST:PORT`` and read what it is (one line, :class:`DeviceError`, when it cannot)."""
    host, port = parse_target(target)
    client = _remote.Client(host, port, host_token(token_file), retries=_env_number("EDNAS_REMOTE_RETRIES", 5, int),
                            backoff_s=_env_number("EDNAS_REMOTE_BACKOFF_S", 1.0))
    try:
        info = client.info(retries=min(client.retries, 1))
    except _remote.RemoteError as err:
        raise DeviceError(_why(err)) from err
    if info.get("protocol") != _remote.PROTOCOL:
        raise DeviceError(f"the server at {host}:{port} speaks protocol {info.get('protocol')!r}, not {_remote.PROTOCOL}; "
                          "copy this ednas's kit to the device ('ednas lut script')")
    return RemoteDevice(target, client, info)
