"""Measuring LAT(op) of eq. 11 on this host, and whole networks end to end.

* ``host-ort``: every operator timed with ONNX Runtime by the same code that
  runs on a board (:mod:`ednas.runtime.board`: in-context "sandwich" models,
  fixed threads, warm-up, median of repeats, median over rounds).
* ``host-torch``: every operator timed in PyTorch eager mode, channels_last,
  as its deploy-form module (conv with bias, ReLU); in eager mode each
  module runs on its own, so the operator alone is what the network runs.
  The rounds are those of the one end-to-end loop
  (:func:`ednas.runtime.board.interleaved`).
* :func:`measure_latency`: one model end to end with ONNX Runtime, in deploy
  form (fused if needed), with the same session options as the table
  (:func:`ednas.runtime.time_onnx`).

Threads are set explicitly (default 1): on a small shared machine,
multi-thread timings come in fast and slow episodes up to 2x apart, so
tables are built and validated at 1 thread by default.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn as nn

from ednas.latency.ops import Op
from ednas.nn.fuse import deploy_model
from ednas.runtime import Timing, board, onnx_bytes, time_onnx, time_torch

__all__ = ["measure_latency", "measure_onnx_ms", "measure_ops_ort", "measure_ops_torch", "measure_torch_ms", "onnx_deploy_bytes"]


def measure_ops_ort(
    ops: Iterable[Op],
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 100,
    rounds: int = 5,
    on_entry: Callable[[Op, dict], None] | None = None,
) -> dict:
    """``{key: {"ms", "spread_ms", "n"}}`` of each operator with ONNX Runtime.

    ``on_entry`` is called after each operator (the builder saves the table
    there, so an interrupted build keeps what it measured).
    """
    out, cache = {}, {}
    for op in ops:
        e = board.measure_op(op.key, threads, warmup, repeats, rounds, cache=cache)
        out[op.key] = e
        if on_entry:
            on_entry(op, e)
        if len(cache) > 64:  # each session holds its weights
            cache.clear()
    return out


def _torch_op(op: Op) -> tuple[nn.Module, tuple]:
    """The deploy-form module of ``op`` and its input shape."""
    if op.type == "fc":
        return nn.Linear(op.cin, op.cout), (1, op.cin)
    if op.type == "pool":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)), (1, op.cin, op.h, op.w)
    if op.type == "add":
        return _Add(), (1, op.cin, op.h, op.w)
    conv = nn.Conv2d(op.cin, op.cout, op.kernel, op.stride, op.kernel // 2, groups=op.groups, bias=True)
    return (nn.Sequential(conv, nn.ReLU()) if op.relu else nn.Sequential(conv)), (1, op.cin, op.h, op.w)


class _Add(nn.Module):
    def forward(self, x):
        return x + x


def measure_ops_torch(
    ops: Iterable[Op],
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 100,
    rounds: int = 5,
    on_entry: Callable[[Op, dict], None] | None = None,
) -> dict:
    """``{key: {"ms", "spread_ms", "n"}}`` of each operator in PyTorch eager, channels_last.

    Each operator's module is timed by :func:`ednas.runtime.time_torch`
    (``rounds`` rounds of at least ``repeats`` calls and 20 ms).
    """
    out = {}
    timing = Timing(threads=threads, warmup=warmup, repeats=repeats, rounds=rounds, min_time_s=0.02)
    for op in ops:
        m, shape = _torch_op(op)
        r = time_torch({op.key: m}, timing=timing, inputs={op.key: torch.rand(shape) * 2 - 1})[op.key]
        e = {k: r[k] for k in ("ms", "spread_ms", "n")}
        out[op.key] = e
        if on_entry:
            on_entry(op, e)
    return out


# ---------------------------------------------------------------------------
# whole networks


def onnx_deploy_bytes(model: nn.Module, input_size: int) -> bytes:
    """ONNX bytes of the deploy form of ``model``."""
    return onnx_bytes(deploy_model(model), input_size)


def measure_latency(
    model: nn.Module, input_size: int, threads: int = 1, warmup: int = 10, repeats: int = 50, rounds: int = 5, timing: Timing | None = None
) -> float:
    """End-to-end ms of ``model`` with ONNX Runtime (deploy form; fused if it is not).

    Timed by :func:`ednas.runtime.time_onnx` with ``timing`` (default: a
    :class:`~ednas.runtime.Timing` of ``threads``, ``warmup``, ``repeats``,
    ``rounds``): the table's session options (``threads`` intra-op threads,
    sequential, full graph optimisation), the median over rounds of the
    median of at least ``repeats`` runs.
    """
    timing = timing or Timing(threads=threads, warmup=warmup, repeats=repeats, rounds=rounds)
    return time_onnx({"model": onnx_deploy_bytes(model, input_size)}, timing)["model"]["ms"]


def measure_onnx_ms(model: nn.Module, input_size: int, threads: int = 1, rounds: int = 5, repeats: int = 50, timing: Timing | None = None) -> float:
    """Batch-1 fp32 ONNX Runtime ms of ``model`` on this host (median over rounds).

    Timed by :func:`ednas.runtime.time_onnx` with ``timing`` (default: a
    :class:`~ednas.runtime.Timing` of ``threads``, ``rounds``, ``repeats``):
    the latency table's session options (sequential, one inter-op thread,
    all graph optimisations, which fold BN into the convolutions).
    """
    timing = timing or Timing(threads=threads, repeats=repeats, rounds=rounds)
    return time_onnx({"m": onnx_bytes(model.eval(), input_size)}, timing)["m"]["ms"]


def measure_torch_ms(model: nn.Module, input_size: int, threads: int = 1, rounds: int = 5, repeats: int = 50, timing: Timing | None = None) -> float:
    """Batch-1 PyTorch eager (channels_last) ms of ``model`` on this host (:func:`ednas.runtime.time_torch`)."""
    timing = timing or Timing(threads=threads, repeats=repeats, rounds=rounds)
    return time_torch({"m": model.eval()}, input_size, timing)["m"]["ms"]
