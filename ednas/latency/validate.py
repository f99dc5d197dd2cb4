"""Checking eq. 11 against end-to-end measurement, and fitting its constant.

A table predicts a network as the sum of its operators plus one per-network
constant (what single-operator timing misses: the network's input and output
boundary, graph overheads).  The constant is fitted on a few *fit*
architectures (seed ``fit_seed``); the table is then checked on >= 30
*validation* architectures drawn with another seed, excluding the fit ones:
each is built, fused to its deploy form, exported to ONNX and timed end to
end with the table's runtime, threads and session options, interleaved over
rounds.  Reported: MAPE, Spearman's rank correlation, and every pair.

Fixed point.  A table of a fixed-point dtype (``i8``, ``i16``) is checked
against the networks as they are deployed: each fused ONNX file is
quantized by ednas's one quantizer (:func:`ednas.runtime.quantize.quantize_onnx`,
the table's scheme: per-channel or power-of-two, 8 or 16 bit) before it is
timed, as ``ednas export`` writes ``model_int8.onnx``.

A busy machine.  When the table has a reference network and was measured on
this kind of machine, the reference is timed alongside the networks
(:func:`ednas.runtime.board.interleaved`) and every measurement is also
given at the table's speed (``measured_scaled_ms``): ``mape`` and
``spearman`` compare the table with those, ``mape_raw`` and
``spearman_raw`` with the raw timings; ``reference.ratio`` says how much
slower (> 1) or faster the machine is than when the table was built.

Sampling.  ``uniform`` draws every choice uniformly; the networks then all
sit near the middle of the space's latency range, where ranking them tests
noise more than the table.  ``stratified`` (the default) gives network i a
size preference t_i, evenly spread over [0, 1] (with jitter), and draws each
layer's candidate index from Binomial(n - 1, t_i) (skip with probability
(1 - t_i) / 2): the sample spans the space from its cheapest to its most
expensive networks, as a search does while it moves.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from ednas.arch.spec import ArchSpec, parse_arch
from ednas.errors import ConfigError, LatencyTableError
from ednas.io import _atomic
from ednas.latency.measure import table_reference
from ednas.latency.model import LatencyModel
from ednas.nn import build_model, fuse
from ednas.runtime import Reference, Timing, board, time_torch
from ednas.runtime.interface import RUNTIMES, TARGETS, get_runtime, image_inputs

__all__ = ["SAMPLINGS", "sample_picks", "random_deploy_model", "mape", "spearman", "scatter_plot", "fit_constant", "validate_table", "time_networks"]

SAMPLINGS = ("stratified", "uniform")


def sample_picks(space: ArchSpec, n: int, seed: int, sampling: str = "stratified", exclude=()) -> list[list[dict]]:
    """``n`` distinct pick lists (one ``{kernel, expansion, skip}`` per layer).

    Args:
        exclude: pick lists that must not be drawn (the fit architectures).
    """
    if sampling not in SAMPLINGS:
        raise ConfigError(f"sampling '{sampling}' is unknown; expected one of {', '.join(SAMPLINGS)}")
    rng = random.Random(seed)
    layers = list(space.layers())
    seen = {_sig(p) for p in exclude}
    out: list[list[dict]] = []
    for _attempt in range(50 * n + 100):
        if len(out) == n:
            break
        i = len(out)
        t = (i + rng.random()) / n if sampling == "stratified" else None
        picks = []
        for layer in layers:
            b = layer.spec
            if b.pairs:  # tied (kernel, expansion) pairs: one draw
                k, e = _draw(rng, b.pairs, t)
            else:
                k, e = _draw(rng, b.kernels, t), _draw(rng, b.expansions, t)
            p_skip = (1 - t) / 2 if t is not None else 0.5
            skip = layer.can_skip and rng.random() < p_skip
            picks.append({"kernel": k, "expansion": e, "skip": skip})
        if all(p["skip"] for p in picks):
            continue
        sig = _sig(picks)
        if sig in seen:
            continue
        seen.add(sig)
        out.append(picks)
    if len(out) < n:
        raise ConfigError(f"the space has fewer than {n} distinct networks outside the excluded ones; ask for fewer")
    if sampling == "stratified":
        rng.shuffle(out)  # measured in random order, so drifts do not line up with size
    return out


def _draw(rng: random.Random, cands: tuple, t: float | None):
    if len(cands) == 1:
        return cands[0]
    if t is None:
        return rng.choice(cands)
    j = sum(rng.random() < t for _ in range(len(cands) - 1))  # Binomial(n - 1, t)
    return cands[j]


def _sig(picks: list[dict]) -> tuple:
    return tuple((bool(p.get("skip")), int(p["kernel"]), int(p["expansion"])) if not p.get("skip") else (True,) for p in picks)


def random_deploy_model(arch: ArchSpec, num_classes: int, seed: int = 0) -> nn.Module:
    """The deploy form of ``arch`` with He-initialised weights.

    Default initialisation shrinks activations by orders of magnitude through
    a deep BN-less (fused) network; tiny or subnormal floats would time
    differently from a trained network's, so weights keep activations O(1).
    """

    torch.manual_seed(seed)
    model = fuse(build_model(arch, num_classes))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.uniform_(m.bias, -0.1, 0.1)
    return model.eval()


def mape(pred, meas) -> float:
    """Mean absolute percentage error of predictions vs measurements, in percent."""
    p, m = np.asarray(pred, float), np.asarray(meas, float)
    return float(np.mean(np.abs(p - m) / m) * 100)


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for v in np.unique(x):  # ties share their mean rank
        idx = x == v
        if idx.sum() > 1:
            ranks[idx] = ranks[idx].mean()
    return ranks


def spearman(a, b) -> float:
    """Spearman's rank correlation (Pearson correlation of the ranks, ties averaged)."""
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def scatter_plot(result: dict, path, title: str | None = None) -> None:
    """Predicted vs measured ms, with the y = x line, as a PNG (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred = [p["predicted_ms"] for p in result["pairs"]]
    meas = [p["measured_ms"] for p in result["pairs"]]
    fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
    lo, hi = min(pred + meas), max(pred + meas)
    pad = (hi - lo) * 0.05 or hi * 0.05
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", lw=1, label="y = x")
    ax.scatter(meas, pred, s=16, color="tab:blue", label=f"{len(pred)} architectures")
    ax.set_xlabel("measured end to end (ms)")
    ax.set_ylabel("predicted by the table (ms)")
    ax.set_title(title or f"{result.get('target', '')}: MAPE {result['mape']:.1f} %, Spearman {result['spearman']:.3f}", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    fig.tight_layout()
    _atomic(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)


def time_networks(runtime: str, archs: dict, input_size: int, num_classes: int, timing: Timing, progress: Callable | None = None,
                  quant: dict | None = None, reference: Reference | None = None, device=None) -> dict:
    """End-to-end ms of ``{name: fixed ArchSpec}`` in a runtime of :mod:`ednas.runtime.interface` or ``torch``, interleaved.

    ``quant``: quantize each fused ONNX file with this fixed-point scheme
    first (ednas's one quantizer, as ``ednas export``); ``reference``:
    time it alongside (ONNX Runtime and LiteRT); ``device``: a
    :class:`~ednas.latency.remote.RemoteDevice` that times the files
    (ONNX, or ``.tflite`` converted here for a LiteRT kit's server) instead
    of this host.
    """

    models = {n: random_deploy_model(a, num_classes, seed=i) for i, (n, a) in enumerate(archs.items())}
    if runtime in RUNTIMES:
        rt = get_runtime(runtime)
        if device is not None:  # the device times the files, written here as its runtime reads them
            if device.runtime != runtime:
                raise LatencyTableError(f"a {runtime} table cannot be checked on {device.target}, which times {device.runtime}")
            return device.time_files(rt.files(image_inputs(models, input_size), quant), timing, reference=reference, fmt=rt.format)
        return rt.time_modules(models, input_size, timing, progress, reference=reference, quant=quant)
    if device is not None:
        raise LatencyTableError(f"a remote device times {', '.join(RUNTIMES)} files only; a {runtime} table cannot be checked on {device.target}")
    if runtime == "torch":
        if quant:
            raise LatencyTableError("host-torch tables are float32 only")
        return time_torch(models, input_size, timing, progress)
    raise LatencyTableError(f"cannot measure networks end to end for runtime '{runtime}' on this host")


def summarize(pairs: list[dict]) -> dict:
    """MAPE, Spearman and error figures of ``pairs``, against the scaled measurements where every pair has one."""
    pred = [p["predicted_ms"] for p in pairs]
    raw = [p["measured_ms"] for p in pairs]
    scaled = all(p.get("measured_scaled_ms") is not None for p in pairs)
    meas = [p["measured_scaled_ms"] for p in pairs] if scaled else raw
    rel = [(p - m) / m * 100 for p, m in zip(pred, meas)]
    return {
        "n": len(pairs),
        "mape": round(mape(pred, meas), 3),
        "spearman": round(spearman(pred, meas), 4),
        "mape_raw": round(mape(pred, raw), 3),
        "spearman_raw": round(spearman(pred, raw), 4),
        "scaled": scaled,
        "max_abs_pct_error": round(max(abs(r) for r in rel), 3),
        "mean_pct_error": round(float(np.mean(rel)), 3),
        "measured_range_ms": [min(meas), max(meas)],
        "predicted_range_ms": [min(pred), max(pred)],
    }


def _runtime(table) -> str:
    return str((table.meta.get("measurement") or {}).get("runtime", ""))


def fit_constant(
    table,
    space: ArchSpec,
    input_size: int,
    num_classes: int,
    n: int = 5,
    seed: int = 1234,
    sampling: str = "stratified",
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 50,
    rounds: int = 5,
    progress: Callable | None = None,
    timing: Timing | None = None,
    device=None,
) -> dict:
    """Fit the per-network constant: median of (measured - sum of operators) over ``n`` fit networks.

    The networks are timed end to end with ``timing`` (default: a
    :class:`~ednas.runtime.Timing` of ``threads``, ``warmup``, ``repeats``,
    ``rounds``), in the table's precision (quantized as deployed for a
    fixed-point table) and, when the table has a reference network, beside
    it and scaled to the table's speed.  Returns the constant and its
    provenance (the fit architectures, their picks, sums, measurements and
    residuals), which the table keeps so that validation can exclude them.
    """

    base = dataclasses.replace(table, constant_ms=0.0)
    lm = LatencyModel(space, input_size, num_classes, base)
    picks = sample_picks(space, n, seed, sampling)
    archs = {f"fit-{i}": space.with_picks(p, branches=False) for i, p in enumerate(picks)}
    sums = {name: lm.predict(a, allow_masked=True) for name, a in archs.items()}
    timing = timing or Timing(threads=threads, warmup=warmup, repeats=repeats, rounds=rounds)
    ref = table_reference(table, device)[0] if _runtime(table) in RUNTIMES else None
    meas = time_networks(_runtime(table), archs, input_size, num_classes, timing, progress, quant=table.meta.get("quant"), reference=ref,
                         device=device)
    at_table = {name: meas[name]["scaled_ms"] if meas[name].get("scaled_ms") is not None else meas[name]["ms"] for name in archs}
    resid = [at_table[name] - sums[name] for name in archs]
    out = {
        "constant_ms": round(float(np.median(resid)), 6),
        "method": "median over the fit networks of (measured end to end - sum of operator entries)"
        + (", measurements scaled to the table's speed by its reference network" if ref is not None else ""),
        "seed": seed,
        "sampling": sampling,
        "fitted_on": [a.format() for a in archs.values()],
        "picks": picks,
        "sum_ms": [round(sums[n_], 6) for n_ in archs],
        "measured_ms": [meas[n_]["ms"] for n_ in archs],
        "residuals_ms": [round(r, 6) for r in resid],
    }
    if ref is not None:
        out["measured_scaled_ms"] = [at_table[n_] for n_ in archs]
        out["reference_ratio"] = meas[board.REFERENCE]["ratio"]
    return out


def validate_table(
    table,
    space: ArchSpec | None = None,
    n: int = 30,
    seed: int = 0,
    sampling: str = "stratified",
    threads: int | None = None,
    warmup: int = 10,
    repeats: int = 20,
    rounds: int = 15,
    num_classes: int | None = None,
    progress: Callable | None = None,
    timing: Timing | None = None,
    scale: bool = True,
    device=None,
    drift: bool = True,
) -> dict:
    """Predicted vs end-to-end measured latency of ``n`` sampled networks.

    Host tables (``host-ort``, ``host-torch``) are measured here with the
    table's runtime and threads (or ``timing.threads``), interleaved with
    ``timing`` (default: a :class:`~ednas.runtime.Timing` of ``threads``,
    ``warmup``, ``repeats``, ``rounds``), quantized as deployed for a
    fixed-point table, and beside the table's reference network when it has
    one and this is its kind of machine (``scale=False``: never); a board
    table (``file:``) is checked against the ``validate`` networks its
    script timed on the board.  With ``device`` (a
    :class:`~ednas.latency.remote.RemoteDevice`), the sampled networks are
    timed on that device instead, beside the table's reference network
    when the table was measured on that kind of machine.  The table's fit
    networks are timed again alongside, to report how much the machine
    drifted since the build (``drift``); ``drift=False`` skips them (a table
    built moments ago, as ``ednas run`` does with the table it has just
    measured: the figure would be noise, and it costs their timings).

    Returns:
        ``{"n", "mape", "spearman", "mape_raw", "spearman_raw", "scaled",
        "reference", "drift", "pairs": [...], ...}``.
    """

    if space is None:
        if not table.space:
            raise LatencyTableError(f"latency table {table._where()} does not name its space; pass --space")
        space = parse_arch(table.space)
    num_classes = int(num_classes or table.num_classes or 10)
    lm = LatencyModel(space, table.input_size, num_classes, table)
    meas_info = dict(table.meta.get("measurement") or {})
    drift_asked, drift = drift, None
    reference: dict = {"used": False}
    board_nets = {k: v for k, v in (table.meta.get("networks") or {}).items() if v.get("role") == "validate"}
    if board_nets and device is None:
        pairs = [
            {"arch": v.get("arch"), "predicted_ms": round(lm.predict(parse_arch(v["arch"]), allow_masked=True), 6), "measured_ms": v["ms"],
             "measured_scaled_ms": v.get("scaled_ms"), "spread_ms": v.get("spread_ms")}
            for v in board_nets.values()
        ]
        how = "networks timed on the board by measure_ops.py"
        threads = meas_info.get("threads")
        if all(p["measured_scaled_ms"] is not None for p in pairs):
            reference = {"used": True, "how": "timed on the board beside the table's reference network"}
    else:
        runtime = _runtime(table)
        if device is not None and runtime != device.runtime:
            raise LatencyTableError(f"latency table {table._where()} was measured with {runtime or 'no runtime'}; the device {device.target} times "
                                    f"{device.runtime} (validate a table of its runtime there)")
        if device is None and (table.target not in (*TARGETS, "host-torch") or runtime not in (*RUNTIMES, "torch")):
            raise LatencyTableError(
                f"latency table {table._where()} (target {table.target}) cannot be measured on this machine; "
                "validate a board table with the 'validate' networks of 'ednas lut script --validate-archs N', "
                "or on the device itself with --target remote:HOST:PORT, and an analytic profile against a board table"
            )
        if timing is None:
            timing = Timing(threads=int(threads or meas_info.get("threads") or 1), warmup=warmup, repeats=repeats, rounds=rounds,
                            stat=meas_info.get("stat") or "median")
        threads, repeats, rounds = timing.threads, timing.repeats, timing.rounds
        ref, why = table_reference(table, device) if runtime in RUNTIMES else (None, "host-torch tables have no reference network")
        if not scale:
            ref, why = None, "not asked for (scale=False)"
        const = table.meta.get("constant") or {}
        fit = const.get("picks") or []
        picks = sample_picks(space, n, seed, sampling, exclude=fit)
        archs = {f"val-{i}": space.with_picks(p, branches=False) for i, p in enumerate(picks)}
        # the fit networks are timed again alongside, only to report how much the
        # machine drifted since the table was built (they are not scored)
        then = dict(zip((f"fit-{i}" for i in range(len(fit))), const.get("measured_ms") or [])) if drift_asked else {}
        timed = dict(archs, **{name: space.with_picks(fit[i], branches=False) for i, name in enumerate(then)})
        meas = time_networks(runtime, timed, table.input_size, num_classes, timing, progress, quant=table.meta.get("quant"), reference=ref,
                             device=device)
        pairs = [
            {"arch": a.format(), "predicted_ms": round(lm.predict(a, allow_masked=True), 6), "measured_ms": meas[name]["ms"],
             "measured_scaled_ms": meas[name].get("scaled_ms"), "spread_ms": meas[name]["spread_ms"]}
            for name, a in archs.items()
        ]
        if then:
            drift = float(np.median([meas[name]["ms"] / ms for name, ms in then.items()]))
        if ref is not None:
            r = meas[board.REFERENCE]
            reference = {"used": True, "table_ms": r["table_ms"], "now_ms": r["ms"], "ratio": r["ratio"], "rounds_ms": r["rounds_ms"],
                         "how": "the table's reference network timed at the start of every round and after every 8 networks; "
                                "each network's round figure divided by the mean of the reference timings around it, times the table's reference time"}
        else:
            reference = {"used": False, "why": why}
        how = f"{runtime}, {threads} thread(s), median over {rounds} interleaved rounds of the {timing.stat} of >= {repeats} runs"
        if device is not None:
            how += f", on the device {device.target} ({device.machine.get('cpu') or '?'}, {device.machine.get('arch') or '?'})"
        if table.meta.get("quant"):
            how += f"; quantized as deployed ({table.dtype})"
    out = summarize(pairs)
    out.update(
        target=table.target,
        table=table.path,
        input_size=table.input_size,
        space=space.format(),
        dtype=table.dtype,
        quant=table.meta.get("quant"),
        sampling=sampling,
        seed=seed,
        threads=threads,
        measured_with=how,
        constant_ms=table.constant_ms,
        reference=reference,
        # fit networks now / when the table was built (raw timings): far from 1 means the
        # machine changed state (load, frequency) between build and validation
        drift=None if drift is None else round(drift, 4),
        drift_timed=bool(drift_asked and drift is not None),
        table_measurement=meas_info,
        machine=table.meta.get("machine"),
        device=None if device is None else device.describe(),
        pairs=pairs,
    )
    return out
