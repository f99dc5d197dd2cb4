"""How long must a whole network's timed batch run? (issue 21: a lever of the 4-minute run)

Every end-to-end figure of a run (the table's check, the search's measured
network, the export's fp32 and int8 files, the baselines' width match, the
verdict's confirmation) is taken by :class:`ednas.runtime.Timing`: in each of
``rounds`` interleaved rounds a network runs ``warmup`` untimed calls, then at
least ``repeats`` timed calls and ``min_time_s`` seconds, beside the table's
reference network.  This times the same files under several (min time,
repeats) settings, alternately (A, B, C, A, B, C, ...: a slow spell of the machine
hits every setting alike), ``--checks`` times each:

* the default ``ednas run``'s table (digits, its space, int8 as it prices
  it, ``host-ort``, 1 thread; from the cache, built if missing);
* ``--networks`` networks drawn stratified (seed 0) from the space, quantized
  once as deployed (the quantizer is not what is compared), timed as the
  run's check times them (``Timing`` with only the two settings changed),
  scaled to the table's speed by its reference network.

Per setting: the wall time of one check, MAPE and Spearman of the table's
prediction against the scaled figures, and the repeatability of a figure:
per network the coefficient of variation of its scaled figure over the
checks (median and largest over the networks); between settings the mean
relative difference of their per-network means (a bias a shorter batch
would bring).

    python benchmarks/e2e_timing.py                    # 50 ms / 50 runs vs 20 / 20 and 10 / 10, 6 checks each, 12 networks
    python benchmarks/e2e_timing.py --quick            # 1 check each, 4 networks: proves it runs
    python benchmarks/e2e_timing.py --settings 0.05:50 0.02:20 0.01:10

Writes ``results/e2e_timing.json`` (``--quick``: ``e2e_timing_quick.json``; ``--name``: ``NAME.json``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, commit, machine  # noqa: E402


def _setting(s: str) -> tuple[float, int]:
    t, _, r = s.partition(":")
    return float(t), int(r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--settings", nargs="+", default=["0.05:50", "0.02:20", "0.01:10"], help="MIN_TIME_S:REPEATS of each setting (the first is the base)")
    ap.add_argument("--checks", type=int, default=6, help="checks per setting, interleaved")
    ap.add_argument("--networks", type=int, default=12)
    ap.add_argument("--name", default=None, help="results/NAME.json")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.checks, a.networks = 1, 4
    settings = [_setting(s) for s in a.settings]

    from scipy.stats import spearmanr

    from ednas._perf import set_threads, tune_malloc
    from ednas.context import RunContext
    from ednas.io import atomic_write_json
    from ednas.latency import LatencyModel
    from ednas.latency.measure import table_reference
    from ednas.latency.validate import random_deploy_model, sample_picks
    from ednas.pipeline import RunConfig, table_precision
    from ednas.runtime import Timing
    from ednas.runtime.interface import get_runtime, image_inputs

    tune_malloc()
    set_threads(1)
    cfg = RunConfig(out="unused")
    e = cfg.export
    dtype, quant = table_precision(cfg.latency, e.quant, e.pow2, e.per_channel, e.weight_bits)
    ctx = RunContext(data=cfg.data, space=cfg.search.space, latency=cfg.latency, timing=cfg.timing, needs_space=True, progress=False,
                     table_dtype=dtype, table_quant=quant)
    space, size, nc, table = ctx.space, ctx.data.input_size, ctx.data.num_classes, ctx.table
    ref, why = table_reference(table)
    if ref is None:
        raise SystemExit(f"no reference network: {why}")
    lm = LatencyModel(space, size, nc, table)
    picks = sample_picks(space, a.networks, 0, "stratified")
    archs = {f"val-{i}": space.with_picks(p, branches=False) for i, p in enumerate(picks)}
    pred = {n: lm.predict(x, allow_masked=True) for n, x in archs.items()}
    rt = get_runtime("onnxruntime")
    models = {n: random_deploy_model(x, nc, seed=i) for i, (n, x) in enumerate(archs.items())}
    files = rt.files(image_inputs(models, size), table.meta.get("quant"))
    print(f"space {space.format()}; {dtype}; {len(files)} networks; table reference {ref.ms:.4f} ms", flush=True)

    label = lambda t, r: f"t{t:g}_r{r}"  # noqa: E731
    rt.time_files(files, Timing(threads=1, rounds=1, max_rounds=1), reference=ref)  # warm-up, not recorded: the first pass runs cold
    checks = []
    for k in range(a.checks):
        for t, r in settings:
            timing = Timing(threads=1, min_time_s=t, repeats=r)  # every other field as the run's default
            t0 = time.perf_counter()
            meas = rt.time_files(files, timing, reference=ref)
            wall = time.perf_counter() - t0
            scaled = {n: meas[n]["scaled_ms"] for n in archs}
            err = [abs(pred[n] - scaled[n]) / scaled[n] for n in archs]
            c = {"setting": label(t, r), "min_time_s": t, "repeats": r, "check": k, "wall_s": round(wall, 2),
                 "mape": round(100 * statistics.fmean(err), 3),
                 "spearman": round(float(spearmanr([pred[n] for n in archs], [scaled[n] for n in archs]).statistic), 4),
                 "reference_ratio": meas["reference"]["ratio"], "rounds": {n: len(meas[n]["rounds_ms"]) for n in archs}, "scaled_ms": scaled}
            checks.append(c)
            print(f"{c['setting']} check {k}: {wall:.1f} s, MAPE {c['mape']:.2f} %, Spearman {c['spearman']:.3f}, "
                  f"reference now/table {c['reference_ratio']:.3f}", flush=True)

    summary = {}
    means = {}
    for t, r in settings:
        g = [c for c in checks if c["setting"] == label(t, r)]
        per = {n: [c["scaled_ms"][n] for c in g] for n in archs}
        means[label(t, r)] = {n: statistics.fmean(v) for n, v in per.items()}
        cv = [100 * statistics.pstdev(v) / statistics.fmean(v) for v in per.values()] if len(g) > 1 else []
        summary[label(t, r)] = {"checks": len(g), "wall_s": round(statistics.fmean(c["wall_s"] for c in g), 2),
                                "mape": round(statistics.fmean(c["mape"] for c in g), 3),
                                "spearman": round(statistics.fmean(c["spearman"] for c in g), 4),
                                "cv_pct_median": round(statistics.median(cv), 3) if cv else None,
                                "cv_pct_max": round(max(cv), 3) if cv else None,
                                "extra_rounds": sum(v - Timing().rounds for c in g for v in c["rounds"].values())}
    base = label(*settings[0])
    for t, r in settings:
        s = summary[label(t, r)]
        s["wall_ratio"] = round(s["wall_s"] / summary[base]["wall_s"], 3)
        s["mean_diff_pct_vs_base"] = round(100 * statistics.fmean(means[label(t, r)][n] / means[base][n] - 1 for n in archs), 3)
    out = {"benchmark": "e2e_timing", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit(), "machine": machine(), "quick": a.quick,
           "space": space.format(), "input_size": size, "dtype": dtype, "quant": quant, "networks": {n: x.format() for n, x in archs.items()},
           "predicted_ms": pred, "table_reference_ms": ref.ms, "settings": a.settings, "checks": checks, "summary": summary}
    path = RESULTS / (f"{a.name}.json" if a.name else "e2e_timing_quick.json" if a.quick else "e2e_timing.json")
    atomic_write_json(path, out)
    for k, s in summary.items():
        print(k, s, flush=True)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
