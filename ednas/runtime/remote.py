"""The measuring kit's network side under one name, for ednas's host code: protocol, server and client.

The code lives in the kit (:mod:`ednas.runtime.board`: :mod:`~ednas.runtime.board.protocol`,
:mod:`~ednas.runtime.board.server`, :mod:`~ednas.runtime.board.client`),
so a board and ednas serve and sign with the same code; ``ednas lut serve``
runs :func:`serve` here, ``python3 measure_ops.py serve`` the same function
in the kit's copy.
"""

from __future__ import annotations

from ednas.runtime.board.client import Client
from ednas.runtime.board.protocol import (
    DEFAULT_PORT,
    ENDPOINTS,
    MAX_BODY_BYTES,
    MAX_ELEMENTS,
    MAX_ITEMS,
    MAX_JSON_BYTES,
    MAX_NONCES,
    MAX_SKEW_S,
    PROTOCOL,
    READ_TIMEOUT_S,
    Auth,
    RemoteError,
    RequestError,
    TokenError,
    body_hash,
    body_limit,
    content_length,
    default_token_path,
    ensure_token,
    read_token,
    sign,
    signature,
)
from ednas.runtime.board.server import Device, Server, make_server, parse_request, serve, serve_main

__all__ = [
    "DEFAULT_PORT", "ENDPOINTS", "MAX_BODY_BYTES", "MAX_ELEMENTS", "MAX_ITEMS", "MAX_JSON_BYTES", "MAX_NONCES", "MAX_SKEW_S", "PROTOCOL",
    "READ_TIMEOUT_S", "Auth", "Client", "Device", "RemoteError", "RequestError", "Server", "TokenError", "body_hash", "body_limit",
    "content_length", "default_token_path", "ensure_token", "make_server", "parse_request", "read_token", "serve", "serve_main", "sign",
    "signature",
]
