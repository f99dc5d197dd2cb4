"""Building the lookup table of eq. 11 for a space, from any source (``--target``).

=====================  =======================================================
target                 source of LAT(op)
=====================  =======================================================
``host-ort``           measured here with ONNX Runtime (:mod:`ednas.runtime.board`), plus
                       the fitted per-network constant
``host-litert``        measured here with LiteRT (ai-edge-litert, XNNPACK; the litert extra), float32 or
                       full-integer int8, by the same sandwich method and reference network (:mod:`ednas.runtime.litert`), plus
                       the same fitted constant
``host-openvino``      measured here with OpenVINO's CPU plugin (the openvino extra), float32 or int8 (the
                       same QDQ graphs), by the same method (:mod:`ednas.runtime.openvino`), plus the fitted constant
``host-torch``         measured here with PyTorch eager (channels_last), plus
                       the fitted constant
``tda2x``, ``tda4vm``  analytic profiles shipped in ``latency/profiles/``
``roofline``           the shipped roofline template; ``roofline:PATH.yaml``
                       a profile of your own (same schema)
``file:PATH``          a table measured on a board by the script of
                       ``ednas lut script`` (constant fitted from the
                       networks it timed)
``remote:HOST:PORT``   measured on a device by its measurement server
                       (:mod:`ednas.latency.remote`): the ``host-ort``
                       method there (ONNX Runtime, or LiteRT on a LiteRT kit's
                       server), the constant fitted on networks timed
                       there; the table records the device under ``device``
=====================  =======================================================

Every measured host target is a runtime of :mod:`ednas.runtime.interface`:
the operators are its sandwich models, timed by the one
:func:`ednas.runtime.board.measure_ops` (a few operators between two timings
of the reference network); a new runtime is one file there.

Measured builds are cached and resumable: the output file is rewritten
atomically after every operator, and a rerun with the same target, input
size and settings measures only what is missing (so the same command also
extends a table to a new space).

Precision.  ``dtype`` ``f32`` (default) times float operators; ``i8`` and
``i16`` (``i16``: ``host-ort`` only) time each operator as the quantized subgraph
ONNX Runtime runs for a file quantized by ``ednas export`` (QDQ, per-channel
weights, or ``quant={"pow2": True}`` for TIDL-style power-of-two scales;
:mod:`ednas.runtime.board` writes those graphs itself), and the constant is
fitted on networks quantized by the same quantizer as ``ednas export``.

The reference network.  A measured ``host-ort`` table times a fixed network
of the space (:func:`ednas.latency.measure.reference_arch`) between the
rounds of every operator and records each operator in units of it; the
table's ``reference`` says which network and how long it took, so later
timings on the same machine can be scaled to the table's speed.
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
from ednas.latency.measure import measure_ops_torch, reference_spec, same_machine
from ednas.latency.model import LatencyModel
from ednas.latency.ops import DTYPES, Op, dtype_name, space_ops
from ednas.latency.remote import connect, is_remote
from ednas.latency.table import POLICIES, LatencyTable, extend_hint, load_table
from ednas.latency.targets import analytic_table, load_profile
from ednas.latency.validate import fit_constant
from ednas.runtime import Timing, board
from ednas.runtime.interface import RUNTIMES, TARGETS, get_runtime, runtime_of_target
from ednas.stage import run_stage, stage_state

__all__ = ["MEASURED_TARGETS", "TABLE_MIN_TIME_S", "TABLE_ROUNDS", "build_table", "cached_table", "is_analytic", "latency_model", "target_table"]

MEASURED_TARGETS = (*TARGETS, "host-torch")
#: rounds per operator (at least; more, up to 3x, while an entry's rounds disagree): 3 since benchmarks/lut_rounds.py
#: measured the default run's int8 table as accurate with 3 as with 5 (MAPE 1.33 % and 1.34 % over 30 networks, two
#: builds each) in 0.70x the time
TABLE_ROUNDS = 3
#: each timed batch of an operator's (sandwich) models runs at least this long, in seconds (host runtimes): 0.01 since
#: benchmarks/lut_rounds.py --min-times measured the default run's int8 table as accurate with 10 ms as with 20 ms
#: (MAPE 0.98 % and 1.04 % over 30 networks, four builds each in two runs) in 0.53x the time; 5 ms was worse (1.48 %)
TABLE_MIN_TIME_S = 0.01


def is_analytic(target: str) -> bool:
    return not (target in MEASURED_TARGETS or target.startswith("file:") or is_remote(target))


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
    rounds: int = TABLE_ROUNDS,
    fit_archs: int = 5,
    fit_seed: int = 1234,
    policy: str | None = None,
    progress: bool = False,
    quant: dict | None = None,
    stat: str | None = None,
    reference: bool = True,
    remote_token_file: str | None = None,
    min_time_s: float = TABLE_MIN_TIME_S,
    ops_per_reference: int = board.OPS_PER_REFERENCE,
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
            for analytic ones); ``host-ort`` measures ``f32``, ``i8`` and
            ``i16``.
        policy: override the profile's ``mask``/``fallback`` policy.
        quant: the fixed-point scheme of an ``i8``/``i16`` host table:
            ``per_channel`` (default True), ``pow2`` (default False),
            ``weight_bits`` (default: the dtype's), as ``ednas export``'s
            settings of the same names.
        stat: statistic of one timed batch (default: :class:`ednas.runtime.Timing`'s).
        reference: time a reference network between the rounds (``host-ort``, ``remote:``).
        min_time_s: the shortest timed batch of an operator's models (host runtimes; a device's server uses its own).
        ops_per_reference: operators timed between two timings of the reference network (host runtimes;
            :func:`ednas.runtime.board.measure_ops`; a device's server times one at a time).
        remote_token_file: the token of a ``remote:HOST:PORT`` target (default:
            :func:`ednas.latency.remote.host_token`'s).

    Raises:
        EdnasError: unknown target, a resume file measured with other
            settings, or a board file that lacks operators of the space.
    """
    dtype = dtype_name(dtype)
    if dtype is not None and dtype not in DTYPES:
        raise ConfigError(f"--dtype '{dtype}' is unknown; expected one of {', '.join(DTYPES)} (or int8, int16, fp32, fp16)")
    if policy is not None and policy not in POLICIES:
        raise ConfigError(f"--policy '{policy}' is unknown; expected one of {', '.join(POLICIES)}")
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    if target.startswith("file:"):
        table = _from_board_file(target, space, input_size, num_classes, policy)
        if dtype is not None and dtype != table.dtype:
            raise ConfigError(f"board table '{target[5:]}' holds {table.dtype} operators, not --dtype {dtype}; measure a {dtype} kit "
                              f"('ednas lut script --dtype {dtype}')")
    elif target in MEASURED_TARGETS or is_remote(target):
        dtype = dtype or "f32"
        if target == "host-torch" and dtype != "f32":
            raise ConfigError(f"target {target} measures float32 operators; --dtype must be f32, got {dtype}")
        rt = runtime_of_target(target)
        if rt is not None:
            rt.check_dtype(dtype)
        if target == "host-litert" and dtype == "i8" and ((quant or {}).get("pow2") or (quant or {}).get("weight_bits") not in (None, 8)):
            raise ConfigError(f"target {target} times LiteRT's int8: 8-bit weights, scales not restricted to powers of two; "
                              f"--pow2 and --weight-bits other than 8 are not available there")
        if rt is not None:  # what the settings cannot do is said first, then what is missing to do it
            rt.require()
        if dtype not in ("f32", *board.QUANT_DTYPES):
            raise ConfigError(f"target {target} measures f32, {', '.join(board.QUANT_DTYPES)} operators; got --dtype {dtype}")
        scheme = board.quant_scheme(dtype, **(quant or {})) if dtype != "f32" else None
        device = connect(target, remote_token_file) if is_remote(target) else None
        if device is not None and device.runtime in RUNTIMES:
            get_runtime(device.runtime).check_dtype(dtype)  # what the device's runtime measures (OpenVINO, LiteRT: no i16)
        if device is not None and device.runtime == "litert":  # a LiteRT kit's server: it measures the models converted for it
            kit = device.kit
            if dtype != kit.get("dtype", "f32") or (scheme or None) != kit.get("quant"):
                raise ConfigError(f"the device {target} serves a LiteRT kit of {kit.get('dtype')} operators (scheme {kit.get('quant')}), "
                                  f"not the {dtype} (scheme {scheme}) asked for; write and serve a kit of that precision "
                                  f"('ednas lut script --runtime litert --dtype {dtype}')")
        table = _measured(target, space, input_size, num_classes, out, threads, warmup, repeats, rounds, fit_archs, fit_seed, policy, progress,
                          dtype, scheme, stat or Timing().stat, reference and target != "host-torch", device, min_time_s, ops_per_reference)
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


def _measured(target, space, input_size, num_classes, out, threads, warmup, repeats, rounds, fit_archs, fit_seed, policy, progress,
              dtype="f32", scheme=None, stat="median", reference=True, device=None, min_time_s=TABLE_MIN_TIME_S,
              ops_per_reference=board.OPS_PER_REFERENCE) -> LatencyTable:
    runtime = device.runtime if device is not None else ("torch" if target == "host-torch" else runtime_of_target(target).name)
    rt = get_runtime(runtime) if runtime in RUNTIMES else None
    sandwich = rt is not None
    measurement = {
        "runtime": runtime,
        "method": "sandwich" if sandwich else "module call, channels_last",
        "threads": int(threads),
        "warmup": int(warmup),
        "repeats": int(repeats),
        "rounds": int(rounds),
        "stat": stat,
        "statistic": f"median over rounds of ({stat} of repeats)" + (" differences" if sandwich else "")
        + (", in units of the reference network" if reference else ""),
        **({"max_rounds": 3 * int(rounds), "rel_tol": board.REL_TOL} if sandwich else {}),
        **({"min_time_s": float(min_time_s)} if sandwich and device is None else {}),
        **({"ops_per_reference": int(ops_per_reference)} if sandwich and device is None and reference else {}),
        "graph_optimization": rt.describe()["graph_optimization"] if rt is not None else "eager",
    }
    if rt is not None and device is None and runtime != "onnxruntime":  # ONNX Runtime's version is in the table's tools
        measurement[runtime] = rt.describe()[runtime]
    if device is not None and runtime != "litert":
        measurement["graph_optimization"] = (device.info.get("session") or {}).get("graph_optimization", "all")
    if device is not None:
        measurement["where"] = "on the device, by its measurement server (ednas.runtime.remote)"
    if runtime == "torch":
        measurement["malloc_tuned"] = tune_malloc()
    meta = {"measurement": measurement, "tools": _tools(), "machine": board.machine() if device is None else device.machine}
    if device is not None:
        meta["device"] = device.describe()
    if scheme:
        meta["quant"] = scheme
    if reference:
        meta["reference"] = reference_spec(space, input_size, num_classes, dtype)
    table = LatencyTable(target=target, input_size=input_size, entries={}, policy=policy or "fallback", num_classes=num_classes,
                         space=space.format(), dtype=dtype, meta=meta)
    if out is not None and Path(out).is_file():
        old = load_table(out)
        if device is None:  # this host: the same target, measured on this kind of processor (a file without a machine record cannot tell)
            same_target = old.target == target and (not old.meta.get("machine") or same_machine(old.meta["machine"], meta["machine"]))
        else:
            same_target = is_remote(old.target) and same_machine(old.meta.get("machine"), device.machine)
        old_m = old.meta.get("measurement") or {}
        # the missing entries are timed as the file's were: the same rounds, runs, shortest batch and operators per reference
        # timing (a file from before a setting was recorded cannot tell, and resumes; the operators per reference timing were
        # one, on this host, before they were recorded)
        was = {"stat": "median", "ops_per_reference": 1 if "ops_per_reference" in measurement else None}
        same = (
            same_target
            and old.input_size == input_size
            and old.dtype == dtype
            and old.meta.get("quant") == (scheme or None)
            and bool(old.meta.get("reference")) == bool(reference)
            and all(old_m.get(k, was.get(k)) == measurement[k] for k in ("runtime", "threads", "method", "stat"))
            and all(old_m.get(k, was.get(k, measurement.get(k))) == measurement.get(k)
                    for k in ("warmup", "repeats", "rounds", "min_time_s", "ops_per_reference"))
        )
        if not same:
            raise LatencyTableError(
                f"'{out}' holds a table measured with other settings (target {old.target}, machine {_kind(old.meta.get('machine'))}, "
                f"input {old.input_size}, dtype {old.dtype}, "
                f"quantization {old.meta.get('quant')}, measurement {old.meta.get('measurement')}); write to another --out or delete it"
            )
        table.entries.update(old.entries)
        for k in ("constant", "created", "reference"):  # the reference network stays the one the entries were measured against
            if k in old.meta:
                table.meta[k] = old.meta[k]
        table.constant_ms = old.constant_ms
    ops = [op for op in space_ops(space, input_size, num_classes, dtype) if op.key not in table.entries]
    bar = progress_bar(progress, len(ops), f"{target} {dtype} operators", unit="op")

    def keep(op: Op, entry: dict) -> None:
        table.entries[op.key] = entry
        if reference:
            table.meta["reference"]["ms"] = board.rescale(table.entries)
        if out is not None:
            table.save(out)  # atomic: an interrupted build keeps every finished operator
        if bar is not None:
            bar.update(1)

    if device is not None:
        ref_keys = table.meta["reference"]["ops"] if reference else None
        for op in ops:  # one request per operator: a dropped connection loses at most the operator being measured
            keep(op, device.measure_op(op.key, threads, warmup, repeats, rounds, quant=scheme, reference=ref_keys, stat=stat))
    elif rt is not None:
        by_key = {op.key: op for op in ops}
        ref = rt.reference(table.meta["reference"]["ops"], None, scheme) if reference else None
        rt.measure_ops([op.key for op in ops], threads, warmup, repeats, rounds, on_entry=lambda k, e: keep(by_key[k], e), reference=ref,
                       min_time_s=min_time_s, stat=stat, quant=scheme, group=ops_per_reference)
    else:
        measure_ops_torch(ops, threads, warmup, repeats, rounds, on_entry=keep)
    if bar is not None:
        bar.close()
    fitted_for = (table.meta.get("constant") or {}).get("space")
    if fit_archs > 0 and (ops or fitted_for != space.format()):
        # refit whenever entries changed: the constant absorbs what the operators miss
        timing = Timing(threads=threads, warmup=warmup, repeats=max(repeats // 2, 20), rounds=rounds, stat=stat)
        info = fit_constant(table, space, input_size, num_classes, fit_archs, fit_seed, "stratified", timing=timing, device=device)
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
    fitted = table.meta.get("constant") or {}
    if not fit and fitted.get("constant_ms") is not None and fitted.get("space") in (None, space.format()):
        info = dict(fitted)  # a measured (remote:, host-ort) table keeps the constant fitted for this space where it was measured
    if fit:
        resid, sums = [], []
        for v in fit.values():
            s = sum(table.ms(Op.from_key(k)) for k in v["ops"])
            sums.append(round(s, 6))
            resid.append((v["scaled_ms"] if v.get("scaled_ms") is not None else v["ms"]) - s)  # at the table's speed when the board had a reference
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


def _kind(m: dict | None) -> str:
    """A ``machine`` record in a few words: CPU name, processor kind, cores."""
    if not m:
        return "not recorded"
    return f"{m.get('cpu') or '?'} ({m.get('cpu_id') or 'kind not recorded'}), {m.get('cores')} cores"


def _cache_dir(target: str, space: ArchSpec, input_size: int, num_classes: int, cache: str, dtype: str | None = None,
               quant: dict | None = None) -> tuple[Path, dict]:
    import hashlib

    dtype = dtype or "f32"
    settings = {"target": target, "space": space.format(), "input_size": int(input_size), "num_classes": int(num_classes),
                "measurement": {"threads": 1, "warmup": 10, "repeats": 100, "rounds": TABLE_ROUNDS, "fit_archs": 5, "fit_seed": 1234, "stat": Timing().stat,
                                "reference": target in TARGETS or is_remote(target),
                                **({"min_time_s": TABLE_MIN_TIME_S, "ops_per_reference": board.OPS_PER_REFERENCE} if target in TARGETS else {})}}
    key_text = f"{target}|{space.format()}|{input_size}|{num_classes}"
    if dtype != "f32" or quant:  # f32 tables keep the folders they always had
        settings["dtype"], settings["quant"] = dtype, quant or None
        key_text += f"|{dtype}|{sorted((quant or {}).items())}"
    if target in MEASURED_TARGETS:  # a host table holds this kind of processor's costs: another kind gets its own table
        m = board.machine()
        settings["machine"] = {k: m.get(k) for k in ("system", "arch", "cpu", "cpu_id", "cores")}
        key_text += f"|{m.get('cpu')}|{m.get('cpu_id')}|{m.get('cores')}"
    key = hashlib.sha1(key_text.encode()).hexdigest()[:12]
    target = target.replace(":", "_").replace("/", "_").replace("[", "").replace("]", "")  # a remote:HOST:PORT as a folder name
    return Path(cache).expanduser() / f"{target}-{dtype}-{input_size}-{key}" if dtype != "f32" else Path(cache).expanduser() / f"{target}-{input_size}-{key}", settings


def cached_table(target: str, space: ArchSpec, input_size: int, num_classes: int, cache: str, dtype: str | None = None,
                 quant: dict | None = None) -> LatencyTable | None:
    """The complete cached table of a measured target (``remote:`` too), or ``None`` (nothing is measured)."""
    folder, settings = _cache_dir(target, space, input_size, num_classes, cache, dtype, quant)
    if (target in MEASURED_TARGETS or is_remote(target)) and stage_state(folder, settings) == "complete":
        return load_table(folder / "lut.json", input_size=input_size)
    return None


def target_table(target: str, space: ArchSpec, input_size: int, num_classes: int, cache: str = "~/.cache/ednas/lut",
                 progress: bool | None = None, dtype: str | None = None, quant: dict | None = None,
                 remote_token_file: str | None = None) -> LatencyTable:
    """The latency table of ``target`` (a target name, or a table file) for a space.

    A measured table (``host-ort``, ``host-torch``, ``remote:HOST:PORT``) is built once per target,
    space, input size, classes, measurement settings and precision
    (``dtype`` and the fixed-point scheme ``quant``) in its own folder under
    ``cache`` and reused (:func:`ednas.stage.run_stage`: an interrupted
    build resumes from the operators it measured; a folder of other
    settings is kept aside).  Analytic profiles and board files are
    computed each time (instantly); ``dtype`` then overrides a profile's
    and must match a board file's.  A table file is used as it is (its
    dtype must be ``dtype`` when one is asked for).  ``remote_token_file``:
    the token of a ``remote:HOST:PORT`` target (see :func:`build_table`).
    """
    dtype = dtype_name(dtype)
    if target.endswith(".json") and not target.startswith("file:"):
        table = load_table(target, input_size=input_size)
        if dtype is not None and table.dtype != dtype:
            raise ConfigError(f"latency table '{target}' holds {table.dtype} operators, not the {dtype} asked for; "
                              f"build one with 'ednas lut build --dtype {dtype}' or ask for {table.dtype}")
        return table
    if target in MEASURED_TARGETS or is_remote(target):
        folder, settings = _cache_dir(target, space, input_size, num_classes, cache, dtype, quant)
        run_stage(folder, settings, lambda d: {"entries": len(build_table(target, space, input_size, num_classes, out=d / "lut.json",
                                                                            progress=progress, dtype=dtype, quant=quant,
                                                                            remote_token_file=remote_token_file).entries)},
                  name=f"lut cache {folder.name}")
        return load_table(folder / "lut.json", input_size=input_size)
    return build_table(target, space, input_size, num_classes, progress=progress, dtype=dtype)


def latency_model(target: str, space: ArchSpec, input_size: int, num_classes: int, cache: str = "~/.cache/ednas/lut",
                  progress: bool | None = None, dtype: str | None = None, quant: dict | None = None):
    """The :class:`~ednas.latency.model.LatencyModel` of a target name or table file (see :func:`target_table`)."""

    return LatencyModel(space, input_size, num_classes, target_table(target, space, input_size, num_classes, cache, progress, dtype, quant))
