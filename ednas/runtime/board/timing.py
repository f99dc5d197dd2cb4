"""How the kit times: ONNX Runtime sessions (or OpenVINO, :mod:`.openvino_rt`), interleaved rounds, operators by sandwich, the reference network.

:func:`session` opens every ONNX Runtime session of ednas (the deployment's
options); :func:`time_runs` is one timing; :func:`interleaved` times several
models in rounds, beside a reference network when one is given;
:func:`measure_op` measures one operator from the models :mod:`.graphs`
plans for it, :func:`measure_ops` several, a few between two reference timings; :func:`rescale` puts a table measured beside a reference at
one speed.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np

from .graphs import build, plan

OPTIMIZATIONS = ("all", "extended", "basic", "none")


def session(model, threads=1, optimization="all", profile_prefix=None):
    """An ONNX Runtime CPU session with ednas's deployment options.

    ``model`` is the model's bytes or a path.  Intra-op ``threads``, one
    inter-op thread, sequential execution, graph optimisation
    ``optimization`` (``all``, ``extended``, ``basic`` or ``none``; ``all``
    is how ednas deploys and measures: the ORT optimisation level changes
    depthwise timings by 3-7x, so tables must be measured with the options
    used to deploy).  ``profile_prefix`` turns on ONNX Runtime's profiler.
    ednas opens every session through this function (``ednas.runtime.ort_session``
    adds clear errors for missing or broken files).
    """
    import onnxruntime as ort

    levels = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }
    if optimization not in levels:
        raise ValueError(f"optimization must be one of {', '.join(OPTIMIZATIONS)}, got {optimization!r}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = levels[optimization]
    so.log_severity_level = 3
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = str(profile_prefix)
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    return ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])


STATISTICS = ("median", "min", "p10", "p20", "p25")


def _statistic(times, stat):
    """``median``, ``min`` or a low percentile ``pNN`` of a list of times."""
    if stat == "median":
        return statistics.median(times)
    if stat == "min":
        return min(times)
    if stat.startswith("p") and stat[1:].isascii() and stat[1:].isdigit():
        return float(np.percentile(times, int(stat[1:])))
    raise ValueError("statistic must be one of %s, got %r" % (", ".join(STATISTICS), stat))


def time_runs(run, warmup, repeats, min_time_s=0.0, stat="median"):
    """Time ``run()`` (a callable without arguments): ``(statistic ms, runs, fastest ms)``.

    ``warmup`` untimed calls, then at least ``repeats`` timed calls, and more
    until ``min_time_s`` seconds have passed; ``stat`` (:data:`STATISTICS`)
    is the median (default), the minimum or a low percentile of the runs.
    """
    for _ in range(warmup):
        run()
    times = []
    t0 = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - t0 < min_time_s:
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return _statistic(times, stat) * 1e3, len(times), min(times) * 1e3


REFERENCE = "reference"


#: more rounds while the standard error of a figure's median exceeds this share of it (table entries and whole networks alike)
REL_TOL = 0.02


def _settled(vals, scale, rel_tol, abs_tol_ms):
    """Whether the median of per-round figures ``vals`` (times ``scale`` in ms) is known well enough.

    The standard error of a median is about 1.25 sd / sqrt(n); it must be at
    most ``rel_tol`` of the median (or ``abs_tol_ms``).  Blind to what the
    figure is compared with (a budget): it only asks how much the rounds agree.
    """
    se = 1.25 * statistics.pstdev(vals) * scale / len(vals) ** 0.5
    return se <= max(rel_tol * abs(statistics.median(vals)) * scale, abs_tol_ms)


def _figures(v, refs, reference):
    """``(values, scale)`` whose agreement says whether a model's figure is settled: ratios to the reference (times its median) or raw ms."""
    if reference is None:
        return v, 1.0
    return [m / q for m, q in zip(v, refs)], statistics.median(refs)


def interleaved(runners, warmup=10, repeats=50, rounds=5, min_time_s=0.05, progress=None, reference=None, ref_ms=None, ref_every=8,
                stat="median", max_rounds=None, rel_tol=REL_TOL, abs_tol_ms=0.0005):
    """Time several models in interleaved rounds: the one end-to-end loop.

    Round r times every runner back to back (:func:`time_runs`: ``warmup``
    untimed calls, at least ``repeats`` timed ones and ``min_time_s``
    seconds, the statistic ``stat`` of the runs), in the order of
    ``runners``, before round r + 1 starts; a slow episode of the machine
    then hits every model of a round alike.  ``progress(name, round)`` is
    called after each timing.

    ``reference`` (a runner: a fixed reference network) is timed the same
    way at the start of every round and after every ``ref_every`` models;
    each model's timing is then divided by the mean of the two reference
    timings around it, so a change of the machine's speed between rounds or
    between a table's build and now cancels: ``rel`` is the model's time in
    units of the reference's, and with ``ref_ms`` (the reference's time when
    the table was built) ``scaled_ms = rel * ref_ms`` is the model's time at
    the table's speed.  The raw figures are kept beside.

    Adaptive rounds, as a table entry gets them (:func:`measure_op`): after
    ``rounds`` rounds, a model whose figure is not yet settled (the standard
    error of the median of its per-round figures, in reference units when
    there is a reference, above ``rel_tol`` of it and above ``abs_tol_ms``)
    is timed in further rounds, up to ``max_rounds`` (default 3 x
    ``rounds``; ``max_rounds=rounds`` turns this off).  A further round
    times only the unsettled models, in their order, still between
    reference timings.  A transient slow spell that covers several of the
    first rounds, which the reference did not see (it happens: round figures
    of 1.59, 1.57, 1.56, 1.07, 1.04 ms with the reference steady), then no
    longer decides the median.

    Args:
        runners: ``{name: callable}``; a call runs the model once.
    Returns:
        ``{name: {"ms", "spread_ms", "min_ms", "n", "rounds_ms"}}``: the
        median over rounds of the per-round figures, the standard deviation
        of the per-round figures, the fastest single call, the number of
        timed calls and the per-round figures (ms, rounded to the ns); with
        a reference also ``"rel"``, ``"scaled_ms"`` (None without
        ``ref_ms``) and ``"ref_rounds_ms"``, and an entry :data:`REFERENCE`
        with the reference's own ``"ms"``, ``"rounds_ms"`` (every timing),
        ``"table_ms"`` (= ``ref_ms``) and ``"ratio"`` (now / table).
    """
    if rounds < 1 or repeats < 1:
        raise ValueError(f"rounds and repeats must be >= 1, got {rounds!r} and {repeats!r}")
    if reference is not None and REFERENCE in runners:
        raise ValueError("a model may not be called %r when a reference is timed" % REFERENCE)
    per = {name: [] for name in runners}
    fastest = {name: float("inf") for name in runners}
    n = {name: 0 for name in runners}
    ref_of = {name: [] for name in runners}
    ref_all, ref_n, ref_fast = [], 0, float("inf")

    def time_ref():
        nonlocal ref_n, ref_fast
        ms, k, lo = time_runs(reference, warmup, repeats, min_time_s, stat)
        ref_all.append(ms)
        ref_n += k
        ref_fast = min(ref_fast, lo)
        return ms

    max_rounds = max(rounds, max_rounds if max_rounds is not None else 3 * rounds)
    names = list(runners)
    for r in range(max_rounds):
        if r >= rounds:
            names = [name for name in names if not _settled(*_figures(per[name], ref_of[name], reference), rel_tol, abs_tol_ms)]
            if not names:
                break
        before = time_ref() if reference is not None else None
        pending = []
        for i, name in enumerate(names):
            ms, k, lo = time_runs(runners[name], warmup, repeats, min_time_s, stat)
            per[name].append(ms)
            fastest[name] = min(fastest[name], lo)
            n[name] += k
            if progress:
                progress(name, r)
            if reference is not None:
                pending.append(name)
                if len(pending) >= max(1, ref_every) or i == len(names) - 1:
                    after = time_ref()
                    for p in pending:
                        ref_of[p].append((before + after) / 2)
                    before, pending = after, []
    out = {}
    for name, v in per.items():
        out[name] = {
            "ms": round(statistics.median(v), 6),
            "spread_ms": round(statistics.pstdev(v) if len(v) > 1 else 0.0, 6),
            "min_ms": round(fastest[name], 6),
            "n": n[name],
            "rounds_ms": [round(x, 6) for x in v],
        }
        if reference is not None:
            rel = statistics.median(m / q for m, q in zip(v, ref_of[name]))
            out[name].update(rel=round(rel, 6), scaled_ms=None if ref_ms is None else round(rel * ref_ms, 6),
                             ref_rounds_ms=[round(x, 6) for x in ref_of[name]])
    if reference is not None:
        now = statistics.median(ref_all)
        out[REFERENCE] = {"ms": round(now, 6), "spread_ms": round(statistics.pstdev(ref_all), 6), "min_ms": round(ref_fast, 6), "n": ref_n,
                          "rounds_ms": [round(x, 6) for x in ref_all], "table_ms": ref_ms,
                          "ratio": None if not ref_ms else round(now / ref_ms, 6)}
    return out


def feed(sess, shape=None):
    """Random input in [-1, 1] for the session's first input (``shape``, or its own with symbolic dims at 1)."""
    inp = sess.get_inputs()[0]
    if shape is None:
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    return {inp.name: np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)}


def _runner(sess, feed):
    def run():
        return sess.run(None, feed)

    return run


#: the runtimes that time the kit's ONNX graphs (LiteRT times models the host converted: litert_rt.py)
ONNX_RUNTIMES = ("onnxruntime", "openvino")


def runner(model, threads=1, shape=None, runtime="onnxruntime"):
    """A runner (a callable without arguments) of an ONNX model (bytes or path) on random input, in ONNX Runtime or OpenVINO."""
    if runtime == "openvino":
        from .openvino_rt import runner as ov_runner

        return ov_runner(model, threads, shape)
    if runtime != "onnxruntime":
        raise ValueError("runtime must be one of %s, got %r" % (", ".join(ONNX_RUNTIMES), runtime))
    s = session(model, threads)
    return _runner(s, feed(s, shape))


#: operators measured together between two reference timings (:func:`measure_ops`): 4 since benchmarks/lut_rounds.py
#: --ref-groups measured the default run's int8 table at MAPE 1.60 % with 4 against 2.53 % with 1 (30 networks, four builds
#: each), in 0.93x the time (BENCHMARKS.md, "How many rounds a table needs"); the board kit and a device's server keep 1
OPS_PER_REFERENCE = 4


def measure_op(key, threads=1, warmup=10, repeats=100, rounds=5, min_time_s=0.02, cache=None, max_rounds=None, rel_tol=REL_TOL, abs_tol_ms=0.0005,
               quant=None, reference=None, stat="median", ref_repeats=10, runtime="onnxruntime"):
    """``{"ms", "spread_ms", "n", "rounds"}`` of one operator (see the module docstring).

    At least ``rounds`` rounds; while the standard error of the median of the
    per-round estimates exceeds ``rel_tol`` of the estimate (and
    ``abs_tol_ms``), more rounds are run, up to ``max_rounds`` (default
    3 x rounds): the difference of two large timings is noisy for operators
    on big feature maps, and a busy machine makes it noisier.
    ``spread_ms`` is the standard deviation of the per-round estimates; ``n``
    the number of timed runs of the operator's own model.  ``quant``: the
    fixed-point scheme of an operator of a fixed-point dtype.

    ``reference`` (a runner of the table's reference network) is timed
    before every round and after the last; each round's estimate is divided
    by the mean of the reference timings around it, and the entry gets
    ``"rel"`` (the median of these ratios: the operator's time in units of
    the reference's, which a change of the machine's speed does not move)
    and ``"ref_ms"`` (the reference's median time meanwhile); ``"ms"`` stays
    the raw estimate until :func:`rescale` puts the table in one speed.
    The reference is timed with ``ref_repeats`` runs (and ``min_time_s``).
    ``runtime``: what runs the models not in ``cache`` (:func:`runner`).
    """
    return measure_ops([key], threads, warmup, repeats, rounds, min_time_s, cache, max_rounds, rel_tol, abs_tol_ms, quant, reference, stat,
                       ref_repeats, runtime, group=1)[key]


def measure_ops(keys, threads=1, warmup=10, repeats=100, rounds=5, min_time_s=0.02, cache=None, max_rounds=None, rel_tol=REL_TOL,
                abs_tol_ms=0.0005, quant=None, reference=None, stat="median", ref_repeats=10, runtime="onnxruntime", group=OPS_PER_REFERENCE,
                on_entry=None):
    """``{key: entry}`` of several operators, each as :func:`measure_op` measures one, ``group`` at a time between reference timings.

    The operators of a group are timed one after the other in each round
    (each its sandwich models, as :func:`measure_op`), and the reference is
    timed once before the group's first round and after each round: every
    operator's round figure is still divided by the mean of the reference
    timings just before and just after it, now shared by the ``group``
    figures of that round.  A group's last reference timing is the next
    group's first (nothing but the table's bookkeeping runs between them).
    An operator whose rounds agree leaves its group's later rounds; the
    group ends when all have (or at ``max_rounds``).  With ``group=1`` each
    operator is timed exactly as :func:`measure_op` times it, but for the
    shared boundary timing.  ``on_entry(key, entry)`` runs after each group,
    in ``keys`` order.
    """
    if group < 1:
        raise ValueError(f"group must be >= 1, got {group!r}")
    keys = list(keys)
    cache = {} if cache is None else cache
    max_rounds = max(rounds, max_rounds if max_rounds is not None else 3 * rounds)

    def runners_of(key):
        out = []
        for mid, coef in plan(key):
            if mid not in cache:
                data, shape = build(mid, quant)
                cache[mid] = runner(data, threads, shape, runtime)
            out.append((cache[mid], coef))
        return out

    def time_ref():  # a whole network: fewer runs than an operator's, the same minimum time
        return time_runs(reference, min(warmup, 2), ref_repeats, min_time_s, stat)[0]

    out = {}
    before = None
    for start in range(0, len(keys), group):
        part = keys[start : start + group]
        runs = {k: runners_of(k) for k in part}
        est = {k: [] for k in part}
        refs = {k: [] for k in part}
        n = {k: 0 for k in part}
        if reference is not None and before is None:
            before = time_ref()
        active = list(part)
        while active:
            for k in active:
                e = 0.0
                for run, coef in runs[k]:
                    ms, c, _ = time_runs(run, warmup, repeats, min_time_s, stat)
                    e += coef * ms
                    n[k] += c if coef > 0 else 0
                est[k].append(e)
            if reference is not None:
                after = time_ref()
                for k in active:
                    refs[k].append((before + after) / 2)
                before = after
            # judged in reference units when there is a reference
            active = [k for k in active if len(est[k]) < max_rounds
                      and not (len(est[k]) >= rounds and _settled(*_figures(est[k], refs[k], reference), rel_tol, abs_tol_ms))]
        for k in part:
            ms = statistics.median(est[k])
            spread = statistics.pstdev(est[k]) if len(est[k]) > 1 else 0.0
            # a nearly free operator can come out a hair below zero by noise
            e = {"ms": round(max(ms, 0.0), 6), "spread_ms": round(spread, 6), "n": n[k], "rounds": len(est[k])}
            if reference is not None:
                rel = statistics.median(x / r for x, r in zip(est[k], refs[k]))  # each round's figure in reference units
                e.update(raw_ms=e["ms"], rel=round(max(rel, 0.0), 6), ref_ms=round(statistics.median(refs[k]), 6))
            out[k] = e
        if on_entry is not None:
            for k in part:
                on_entry(k, out[k])
    return out


def rescale(entries):
    """Put the entries measured with a reference at one speed; returns the table's reference time (ms).

    The table's reference time is the median over operators of the
    reference's time while each was measured; every entry with ``"rel"``
    gets ``ms = rel * that`` (its raw figure stays in ``"raw_ms"``).
    ``None`` when no entry has a reference timing.
    """
    refs = [e["ref_ms"] for e in entries.values() if "rel" in e and e.get("ref_ms")]
    if not refs:
        return None
    ref = statistics.median(refs)
    for e in entries.values():
        if "rel" in e:
            e["ms"] = round(e["rel"] * ref, 6)
    return round(ref, 6)


def measure_networks(models, threads=1, warmup=10, repeats=50, rounds=5, min_time_s=0.05, progress=None, reference=None, ref_ms=None,
                     stat="median", runtime="onnxruntime"):
    """End-to-end ms of several ONNX models, timed by :func:`interleaved`.

    Args:
        models: ``{name: (onnx bytes, input shape)}``.
        reference: ``(onnx bytes, input shape)`` of the reference network
            (timed alongside; see :func:`interleaved`), with ``ref_ms``.
    Returns:
        ``{name: {"ms", "spread_ms", "min_ms", "n", "rounds_ms", ...}}``:
        median over rounds of the per-round figures (see :func:`interleaved`).
    """
    runners = {name: runner(data, threads, shape, runtime) for name, (data, shape) in models.items()}
    ref = runner(reference[0], threads, reference[1], runtime) if reference is not None else None
    return interleaved(runners, warmup, repeats, rounds, min_time_s, progress, reference=ref, ref_ms=ref_ms, stat=stat)


#: the /proc/cpuinfo fields that tell one kind of processor from another under one marketing name (x86: family,
#: model, stepping-independent; ARM: implementer, part, variant)
CPU_ID_FIELDS = ("vendor_id", "cpu family", "model", "cache size", "cpu implementer", "cpu architecture", "cpu variant", "cpu part")


def cpu_id(cpuinfo: str | None = None) -> str:
    """The processor's kind beyond its name, from the first processor of ``/proc/cpuinfo`` (or the text ``cpuinfo``).

    Cloud hosts name very different processors alike (``AMD EPYC`` is a Zen 3
    with 512 KiB of L2 per core and a Zen 4 with 1 MiB), and their operators'
    costs differ by more than a reference network's ratio can carry: the
    vendor, family, model and cache (x86) or implementer, architecture,
    variant and part (ARM) tell them apart.  ``""`` where unknown.
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block only
            continue
        k, sep, v = line.partition(":")
        if sep:
            fields.setdefault(k.strip().lower(), v.strip())
    return ", ".join(f"{k} {fields[k]}" for k in CPU_ID_FIELDS if fields.get(k))


def machine():
    """Where the table was measured (recorded in its header): system, architecture, CPU name and kind (:func:`cpu_id`), cores."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"system": platform.system(), "arch": platform.machine(), "cpu": cpu, "cpu_id": cpu_id(), "cores": os.cpu_count(),
            "node": platform.node()}


def tools(runtime="onnxruntime"):
    """The versions that measured (for the table's header): Python, numpy and the runtime (``onnxruntime``, ``litert``, ``openvino``)."""
    out = {"python": platform.python_version(), "numpy": np.__version__}
    if runtime == "litert":
        from .litert_rt import version

        out["ai-edge-litert"] = version()
    elif runtime == "openvino":
        from .openvino_rt import version

        out["openvino"] = version()
    else:
        import onnxruntime as ort

        out["onnxruntime"] = ort.__version__
    return out

