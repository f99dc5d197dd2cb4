"""Building the lookup table of eq. 11 for a space, from any source (``--target``).

=====================  =======================================================
target                 source of LAT(op)
=====================  =======================================================
``host-ort``           measured here with ONNX Runtime (:mod:`ednas.runtime.board`), plus
                       the fitted per-network constant
``host-torch``         measured here with PyTorch eager (channels_last), plus
                       the fitted constant
``tda2x``, ``tda4vm``  analytic profiles shipped in ``latency/profiles/``
``roofline``           the shipped roofline template; ``roofline:PATH.yaml``
                       a profile of your own (same schema)
``file:PATH``          a table measured on a board by the script of
                       ``ednas lut script`` (constant fitted from the
                       networks it timed)
=====================  =======================================================

Measured builds are cached and resumable: the output file is rewritten
atomically after every operator, and a rerun with the same target, input
size and settings measures only what is missing (so the same command also
extends a table to a new space).
"""

from __future__ import annotations

import datetime as _dt
import platform
from pathlib import Path

from ednas import __version__
from ednas._perf import tune_malloc
from ednas._run import progress as progress_bar
from ednas.arch.spec import ArchSpec
from ednas.errors import ConfigError, LatencyTableError
from ednas.latency.measure import measure_ops_ort, measure_ops_torch
from ednas.latency.model import LatencyModel
from ednas.latency.ops import DTYPES, Op, space_ops
from ednas.latency.table import POLICIES, LatencyTable, extend_hint, load_table
from ednas.latency.targets import analytic_table, load_profile
from ednas.latency.validate import fit_constant
from ednas.runtime import board
from ednas.stage import run_stage, stage_state

__all__ = ["MEASURED_TARGETS", "build_table", "cached_table", "is_analytic", "latency_model", "target_table"]

MEASURED_TARGETS = ("host-ort", "host-torch")


def is_analytic(target: str) -> bool:
    return not (target in MEASURED_TARGETS or target.startswith("file:"))


def _profile_ref(target: str) -> str:
    return target[len("roofline:"):] if target.startswith("roofline:") else target


def _tools() -> dict:
    import numpy
    import onnxruntime
    import torch

    return {"ednas": __version__, "python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "numpy": numpy.__version__}


def build_table(
    target: str,
    space: ArchSpec,
    input_size: int,
    num_classes: int = 10,
    out=None,
    dtype: str | None = None,
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 100,
    rounds: int = 5,
    fit_archs: int = 5,
    fit_seed: int = 1234,
    policy: str | None = None,
    progress: bool = False,
) -> LatencyTable:
    """The latency table of every operator ``space`` can need (see the module docstring).

    Args:
        target: ``host-ort``, ``host-torch``, a profile name, ``roofline:PATH``
            or ``file:PATH``.
        out: where to write it (atomically; measured builds resume from it).
        threads, warmup, repeats, rounds: measurement settings (host targets).
        fit_archs, fit_seed: networks the per-network constant is fitted on
            (never the validation ones: validation uses another seed and
            excludes them).
        dtype: operator dtype (default: f32 for host targets, the profile's
            for analytic ones).
        policy: override the profile's ``mask``/``fallback`` policy.

    Raises:
        EdnasError: unknown target, a resume file measured with other
            settings, or a board file that lacks operators of the space.
    """
    if dtype is not None and dtype not in DTYPES:
        raise ConfigError(f"--dtype '{dtype}' is unknown; expected one of {', '.join(DTYPES)}")
    if policy is not None and policy not in POLICIES:
        raise ConfigError(f"--policy '{policy}' is unknown; expected one of {', '.join(POLICIES)}")
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    if target.startswith("file:"):
        table = _from_board_file(target, space, input_size, num_classes, policy)
    elif target in MEASURED_TARGETS:
        if dtype not in (None, "f32"):
            raise ConfigError(f"target {target} measures float32 operators; --dtype must be f32, got {dtype}")
        table = _measured(target, space, input_size, num_classes, out, threads, warmup, repeats, rounds, fit_archs, fit_seed, policy, progress)
    else:
        prof = load_profile(_profile_ref(target))
        prof.dtype = dtype or prof.dtype
        ops = space_ops(space, input_size, num_classes, prof.dtype)
        table = analytic_table(prof, ops, input_size, num_classes, space.format(), policy)
        table.target = target if target.startswith("roofline:") else prof.name
    table.meta.setdefault("created", now)
    table.meta.setdefault("tools", _tools())
    if out is not None:
        table.save(out)
        table.path = str(out)
    return table


def _measured(target, space, input_size, num_classes, out, threads, warmup, repeats, rounds, fit_archs, fit_seed, policy, progress) -> LatencyTable:
    runtime = "onnxruntime" if target == "host-ort" else "torch"
    measurement = {
        "runtime": runtime,
        "method": "sandwich" if runtime == "onnxruntime" else "module call, channels_last",
        "threads": int(threads),
        "warmup": int(warmup),
        "repeats": int(repeats),
        "rounds": int(rounds),
        "statistic": "median over rounds of (median of repeats)" + (" differences" if runtime == "onnxruntime" else ""),
        **({"max_rounds": 3 * int(rounds), "rel_tol": 0.02} if runtime == "onnxruntime" else {}),
        "graph_optimization": "all" if runtime == "onnxruntime" else "eager",
    }
    if runtime == "torch":
        measurement["malloc_tuned"] = tune_malloc()
    table = LatencyTable(
        target=target,
        input_size=input_size,
        entries={},
        policy=policy or "fallback",
        num_classes=num_classes,
        space=space.format(),
        meta={"measurement": measurement, "tools": _tools(), "machine": board.machine()},
    )
    if out is not None and Path(out).is_file():
        old = load_table(out)
        same = (
            old.target == target
            and old.input_size == input_size
            and all((old.meta.get("measurement") or {}).get(k) == measurement[k] for k in ("runtime", "threads", "method"))
        )
        if not same:
            raise LatencyTableError(
                f"'{out}' holds a table measured with other settings (target {old.target}, input {old.input_size}, "
                f"measurement {old.meta.get('measurement')}); write to another --out or delete it"
            )
        table.entries.update(old.entries)
        for k in ("constant", "created"):
            if k in old.meta:
                table.meta[k] = old.meta[k]
        table.constant_ms = old.constant_ms
    ops = [op for op in space_ops(space, input_size, num_classes, "f32") if op.key not in table.entries]
    bar = progress_bar(progress, len(ops), f"{target} operators", unit="op")

    def keep(op: Op, entry: dict) -> None:
        table.entries[op.key] = entry
        if out is not None:
            table.save(out)  # atomic: an interrupted build keeps every finished operator
        if bar is not None:
            bar.update(1)

    measure = measure_ops_ort if runtime == "onnxruntime" else measure_ops_torch
    measure(ops, threads, warmup, repeats, rounds, on_entry=keep)
    if bar is not None:
        bar.close()
    fitted_for = (table.meta.get("constant") or {}).get("space")
    if fit_archs > 0 and (ops or fitted_for != space.format()):
        # refit whenever entries changed: the constant absorbs what the operators miss
        info = fit_constant(table, space, input_size, num_classes, fit_archs, fit_seed, "stratified", threads, warmup, max(repeats // 2, 20), rounds)
        info["space"] = space.format()
        table.constant_ms = info["constant_ms"]
        table.meta["constant"] = info
    return table


def _from_board_file(target: str, space, input_size: int, num_classes: int, policy) -> LatencyTable:
    src = target[len("file:"):]
    table = load_table(src, input_size=input_size)
    needed = space_ops(space, input_size, num_classes, table.dtype)
    missing = table.missing(needed)
    if missing:
        raise LatencyTableError(
            f"board table '{src}' has no entry for operator '{missing[0].key}' ({missing[0].describe()})"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
            + " of the space; "
            + extend_hint(target, space.format(), input_size, None)
        )
    nets = table.meta.get("networks") or {}
    fit = {k: v for k, v in nets.items() if v.get("role", "fit") == "fit"}
    info = {"method": "no fit networks were timed on the board: constant 0", "constant_ms": 0.0}
    if fit:
        resid, sums = [], []
        for v in fit.values():
            s = sum(table.ms(Op.from_key(k)) for k in v["ops"])
            sums.append(round(s, 6))
            resid.append(v["ms"] - s)
        import statistics

        info = {
            "constant_ms": round(statistics.median(resid), 6),
            "method": "median over the board's fit networks of (measured end to end - sum of operator entries)",
            "fitted_on": [v.get("arch") for v in fit.values()],
            "sum_ms": sums,
            "measured_ms": [v["ms"] for v in fit.values()],
            "residuals_ms": [round(r, 6) for r in resid],
        }
    table.constant_ms = info["constant_ms"]
    table.meta["constant"] = info
    table.meta["source"] = src
    table.target = target
    table.space = table.space or space.format()
    if policy:
        table.policy = policy
    return table


# ---------------------------------------------------------------------------
# a target name (or table file) -> the table, with measured tables cached


def _cache_dir(target: str, space: ArchSpec, input_size: int, num_classes: int, cache: str) -> tuple[Path, dict]:
    import hashlib

    settings = {"target": target, "space": space.format(), "input_size": int(input_size), "num_classes": int(num_classes),
                "measurement": {"threads": 1, "warmup": 10, "repeats": 100, "rounds": 5, "fit_archs": 5, "fit_seed": 1234}}
    key = hashlib.sha1(f"{target}|{space.format()}|{input_size}|{num_classes}".encode()).hexdigest()[:12]
    return Path(cache).expanduser() / f"{target}-{input_size}-{key}", settings


def cached_table(target: str, space: ArchSpec, input_size: int, num_classes: int, cache: str) -> LatencyTable | None:
    """The complete cached table of a measured target, or ``None`` (nothing is measured)."""
    folder, settings = _cache_dir(target, space, input_size, num_classes, cache)
    if target in MEASURED_TARGETS and stage_state(folder, settings) == "complete":
        return load_table(folder / "lut.json", input_size=input_size)
    return None


def target_table(target: str, space: ArchSpec, input_size: int, num_classes: int, cache: str = "~/.cache/ednas/lut",
                 progress: bool | None = None) -> LatencyTable:
    """The latency table of ``target`` (a target name, or a table file) for a space.

    A measured table (``host-ort``, ``host-torch``) is built once per target,
    space, input size and classes in its own folder under ``cache`` and
    reused (:func:`ednas.stage.run_stage`: an interrupted build resumes from
    the operators it measured; a folder of other settings is kept aside).
    Analytic profiles and board files are computed each time (instantly).
    """
    if target.endswith(".json") and not target.startswith("file:"):
        return load_table(target, input_size=input_size)
    if target in MEASURED_TARGETS:
        folder, settings = _cache_dir(target, space, input_size, num_classes, cache)
        run_stage(folder, settings, lambda d: {"entries": len(build_table(target, space, input_size, num_classes, out=d / "lut.json",
                                                                            progress=progress).entries)},
                  name=f"lut cache {folder.name}")
        return load_table(folder / "lut.json", input_size=input_size)
    return build_table(target, space, input_size, num_classes, progress=progress)


def latency_model(target: str, space: ArchSpec, input_size: int, num_classes: int, cache: str = "~/.cache/ednas/lut",
                  progress: bool | None = None):
    """The :class:`~ednas.latency.model.LatencyModel` of a target name or table file (see :func:`target_table`)."""

    return LatencyModel(space, input_size, num_classes, target_table(target, space, input_size, num_classes, cache, progress))
