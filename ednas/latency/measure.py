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
  (:func:`ednas.runtime.time_onnx`); given the table, in the table's
  precision (quantized as ``ednas export`` quantizes) and scaled by the
  table's reference network.

The reference network.  A shared or throttled machine changes speed by
1.5-2x for tens of seconds at a time, longer than a table's phases.  So a
measured table is built around a fixed *reference network* of the space
(:func:`reference_arch`: every layer at its middle candidate): it is timed
between the rounds of every few operators (four on this host,
:data:`ednas.runtime.board.OPS_PER_REFERENCE`; one on a board or a device's
server), each operator is recorded in units of
it (``rel``) and the table keeps the reference's time (``reference.ms``);
whoever times networks later on the same machine times the reference
alongside (:func:`table_reference`) and scales by it.

Threads are set explicitly (default 1): on a small shared machine,
multi-thread timings come in fast and slow episodes up to 2x apart, so
tables are built and validated at 1 thread by default.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn as nn

from ednas.arch.spec import ArchSpec
from ednas.latency.ops import Op, arch_ops
from ednas.nn.fuse import deploy_model
from ednas.runtime import Reference, Timing, board, onnx_bytes, time_onnx, time_torch
from ednas.runtime.interface import get_runtime, quant_settings, quantize_onnx_bytes, table_runtime

__all__ = ["measure_latency", "measure_onnx_ms", "measure_ops_ort", "measure_ops_torch", "measure_torch_ms", "onnx_deploy_bytes",
           "reference_arch", "reference_spec", "table_reference", "same_machine", "quant_settings", "deployed_bytes"]


# ---------------------------------------------------------------------------
# the reference network and the table's precision


def _middle(b) -> tuple[int, int]:
    if b.pairs:  # tied: the middle pair
        return b.pairs[len(b.pairs) // 2]
    return b.kernels[len(b.kernels) // 2], b.expansions[len(b.expansions) // 2]


def reference_arch(space: ArchSpec) -> ArchSpec:
    """The reference network of a space: every layer kept, at its middle kernel and expansion (a tied block: its middle pair)."""
    picks = [dict(zip(("kernel", "expansion"), _middle(l.spec)), skip=False) for l in space.layers()]
    return space.with_picks(picks, branches=False)


def reference_spec(space: ArchSpec, input_size: int, num_classes: int, dtype: str = "f32") -> dict:
    """What a table records of its reference network (its ``ms`` is filled in by the build)."""
    arch = reference_arch(space)
    return {"arch": arch.format(), "ops": [op.key for op in arch_ops(arch, input_size, num_classes, dtype)], "ms": None,
            "what": "the space's network with every layer at its middle candidate, built by ednas.runtime.board.build_network"}


def same_machine(a: dict | None, b: dict | None) -> bool:
    """Whether two ``machine`` records (a table's, :func:`ednas.runtime.board.machine`) describe the same kind of host.

    The same system, architecture, CPU name and core count, and the same
    processor kind (``cpu_id``: family, model, cache) where both records
    have one (a record from before ``cpu_id`` was kept cannot tell, and
    compares as it always did).
    """
    keys = ("system", "arch", "cpu", "cores")
    if not (a and b) or any(a.get(k) != b.get(k) for k in keys):
        return False
    return not (a.get("cpu_id") and b.get("cpu_id")) or a["cpu_id"] == b["cpu_id"]


def table_reference(table, device=None) -> tuple[Reference | None, str]:
    """The table's reference network to time alongside, or ``(None, why not)``.

    Only for a table measured with a reference on this kind of machine (the
    same CPU and core count): the reference then measures how fast this
    machine is now compared with when the table was built.  ``device`` (a
    :class:`~ednas.latency.remote.RemoteDevice`): the machine that will time
    it is that device, not this host.
    """
    ref = table.meta.get("reference") or {}
    if not ref.get("ops") or not ref.get("ms"):
        return None, "the table has no reference network (built without one, or by an older ednas)"
    rt = table_runtime(table)
    if rt is None:
        return None, f"the table was measured with {(table.meta.get('measurement') or {}).get('runtime') or 'no runtime'}, which has no reference network"
    if device is not None:
        if not same_machine(table.meta.get("machine"), device.machine):
            return None, f"the table was measured on another kind of machine than the device {device.target}"
    elif not table.is_host:
        return None, f"target {table.target} is not this host"
    elif not same_machine(table.meta.get("machine"), board.machine()):
        return None, "the table was measured on another kind of machine"
    return rt.reference(ref["ops"], float(ref["ms"]), table.meta.get("quant")), ""


def deployed_bytes(model: nn.Module, input_size: int, quant: dict | None = None, calib_images: int = 16, seed: int = 0) -> bytes:
    """The ONNX file ``model`` is deployed as: its fused deploy form, quantized as ``ednas export`` does when ``quant`` is given.

    Quantization is ednas's one quantizer (:func:`ednas.runtime.quantize.quantize_onnx`)
    calibrated on ``calib_images`` random images in [-1, 1] (what the timing
    feeds; the values do not change the kernels ONNX Runtime runs).
    """
    data = onnx_deploy_bytes(model, input_size)
    if not quant:
        return data
    return quantize_onnx_bytes(data, [1, 3, input_size, input_size], quant, calib_images, seed)


def measure_ops_ort(
    ops: Iterable[Op],
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 100,
    rounds: int = 5,
    on_entry: Callable[[Op, dict], None] | None = None,
    quant: dict | None = None,
    reference: tuple | None = None,
    stat: str = "median",
) -> dict:
    """``{key: {"ms", "spread_ms", "n", ...}}`` of each operator with ONNX Runtime.

    ``on_entry`` is called after each operator (the builder saves the table
    there, so an interrupted build keeps what it measured).  ``quant``: the
    fixed-point scheme of fixed-point operators; ``reference``: ``(onnx
    bytes, shape)`` of the reference network, timed between the rounds
    (:func:`ednas.runtime.board.measure_op`).
    """
    ort = get_runtime("onnxruntime")
    ref = Reference(reference[0], None, tuple(reference[1])) if reference is not None else None
    by_key = {op.key: op for op in ops}
    return ort.measure_ops(list(by_key), threads, warmup, repeats, rounds, on_entry=(lambda k, e: on_entry(by_key[k], e)) if on_entry else None,
                           reference=ref, stat=stat, quant=quant)


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
    model: nn.Module, input_size: int, threads: int = 1, warmup: int = 10, repeats: int = 50, rounds: int = 5, timing: Timing | None = None,
    table=None,
) -> float:
    """End-to-end ms of ``model`` with ONNX Runtime (deploy form; fused if it is not), or in the table's runtime (LiteRT, OpenVINO).

    Timed by :func:`ednas.runtime.time_onnx` with ``timing`` (default: a
    :class:`~ednas.runtime.Timing` of ``threads``, ``warmup``, ``repeats``,
    ``rounds``): the table's session options (``threads`` intra-op threads,
    sequential, full graph optimisation), the median over rounds of the
    median of at least ``repeats`` runs.  Given the latency ``table`` the
    network is what that table prices: quantized in the table's fixed-point
    scheme (:func:`deployed_bytes`), and, when the table has a reference
    network measured on this kind of machine, timed beside it and scaled to
    the table's speed (:func:`table_reference`).
    """
    timing = timing or Timing(threads=threads, warmup=warmup, repeats=repeats, rounds=rounds)
    quant = table.meta.get("quant") if table is not None else None
    ref = table_reference(table)[0] if table is not None else None
    rt = table_runtime(table) if table is not None else None
    if rt is not None and rt.name != "onnxruntime":  # the runtime the table was measured with, its file of the table's precision
        r = rt.time_modules({"model": deploy_model(model)}, input_size, timing, reference=ref, quant=quant)["model"]
        return r["scaled_ms"] if r.get("scaled_ms") is not None else r["ms"]
    r = time_onnx({"model": deployed_bytes(model, input_size, quant)}, timing, reference=ref)["model"]
    return r["scaled_ms"] if r.get("scaled_ms") is not None else r["ms"]


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
