"""Does a table measured in fewer rounds predict end-to-end latency as well? (issue 21: a lever of the 4-minute run)

The default ``ednas run``'s table (digits, the space it resolves to, int8 as
the run prices it, ``host-ort``, 1 thread) is built with each round count of
``--rounds`` (default 5, the default, and 3), alternately (5, 3, 5, 3, ... so
that a slow spell of the machine hits both alike), ``--builds`` times each,
every build's wall time recorded.  Entries still get the adaptive extra
rounds (up to 3x) wherever their rounds disagree.

Then every build is checked against the same networks: ``--check`` networks
drawn stratified (seed 0) from the space, quantized as deployed and timed
once end to end in ``--check-rounds`` interleaved rounds beside the
reference network.  A network's measurement is its time in units of the
reference network (``rel``); a table's prediction is divided by that table's
own reference time, so both sides are in reference units and the machine's
speed at each build cancels.  Reported per build: MAPE and Spearman against
the measured ``rel``, and the build's wall time; per round count their means.

    python benchmarks/lut_rounds.py                  # 5 vs 3 rounds, 2 builds each, 30 check networks
    python benchmarks/lut_rounds.py --quick          # 1 build each, 8 networks: proves it runs
    python benchmarks/lut_rounds.py --rounds 3 --min-times 0.02 0.01 0.005 --name lut_min_time
                                                     # the shortest timed batch instead (TABLE_MIN_TIME_S)
    python benchmarks/lut_rounds.py --rounds 3 --ref-groups 1 4 8 --name lut_ref_group
                                                     # operators between two reference timings (OPS_PER_REFERENCE)

Writes ``results/lut_rounds.json`` (``--quick``: ``lut_rounds_quick.json``; ``--name``: ``NAME.json``).
With several ``--min-times`` every (rounds, min time) pair is a variant,
built in turn within each build round, and the summary is keyed ``rR_tT``;
with several ``--ref-groups`` (operators timed between two timings of the
reference network) every (rounds, min time, group) is, keyed ``rR_tT_gG``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, commit, machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, nargs="+", default=[5, 3])
    ap.add_argument("--builds", type=int, default=2, help="builds per round count, interleaved")
    ap.add_argument("--check", type=int, default=30, help="networks every build is checked against")
    ap.add_argument("--check-rounds", type=int, default=15)
    ap.add_argument("--min-times", type=float, nargs="+", default=None,
                    help="shortest timed batch of an operator's models, seconds (default: the table's, TABLE_MIN_TIME_S)")
    ap.add_argument("--ref-groups", type=int, nargs="+", default=None,
                    help="operators timed between two reference timings (default: the table's, OPS_PER_REFERENCE)")
    ap.add_argument("--name", default=None, help="results/NAME.json")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.builds, a.check, a.check_rounds = 1, 8, 5

    from scipy.stats import spearmanr

    from ednas._perf import set_threads, tune_malloc
    from ednas.context import RunContext
    from ednas.data import DataConfig
    from ednas.io import atomic_write_json
    from ednas.latency import LatencyModel, build_table
    from ednas.latency.build import TABLE_MIN_TIME_S
    from ednas.latency.measure import table_reference
    from ednas.latency.validate import sample_picks, time_networks
    from ednas.pipeline import RunConfig, table_precision
    from ednas.runtime import Reference, Timing, board

    tune_malloc()
    set_threads(1)
    cfg = RunConfig(out="unused")
    e = cfg.export
    dtype, quant = table_precision(cfg.latency, e.quant, e.pow2, e.per_channel, e.weight_bits)
    ctx = RunContext(data=DataConfig(spec=cfg.data.spec), space=cfg.search.space, needs_space=True, progress=False)
    space, size, nc = ctx.space, ctx.data.input_size, ctx.data.num_classes
    print(f"space {space.format()}; input {size}; {dtype} {quant}", flush=True)

    min_times = a.min_times or [TABLE_MIN_TIME_S]
    groups = a.ref_groups or [board.OPS_PER_REFERENCE]
    variants = [(r, t, g) for r in a.rounds for t in min_times for g in groups]

    def label(r, t, g):
        if len(groups) > 1:
            return f"r{r}_t{t:g}_g{g}"
        return str(r) if len(min_times) == 1 else f"r{r}_t{t:g}"

    builds = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(a.builds):
            for r, t, g in variants:
                t0 = time.perf_counter()
                table = build_table("host-ort", space, size, nc, out=Path(tmp) / f"r{r}_t{t:g}_g{g}_{k}.json", dtype=dtype, quant=quant, rounds=r,
                                    min_time_s=t, ops_per_reference=g)
                wall = time.perf_counter() - t0
                extra = sum(1 for v in table.entries.values() if isinstance(v, dict) and v.get("rounds", r) > r)
                builds.append({"variant": label(r, t, g), "rounds": r, "min_time_s": t, "ops_per_reference": g, "build": k, "wall_s": round(wall, 1),
                               "entries": len(table.entries), "entries_with_more_rounds": extra,
                               "ref_ms": table.meta.get("reference", {}).get("ms") if isinstance(table.meta.get("reference"), dict) else None,
                               "table": table})
                print(f"{label(r, t, g)} build {k}: {wall:.1f} s, {len(table.entries)} entries ({extra} with extra rounds)", flush=True)

        ref0, why = table_reference(builds[0]["table"])
        if ref0 is None:
            raise SystemExit(f"no reference network: {why}")
        picks = sample_picks(space, a.check, 0, "stratified")
        archs = {f"val-{i}": space.with_picks(p, branches=False) for i, p in enumerate(picks)}
        t0 = time.perf_counter()
        meas = time_networks("onnxruntime", archs, size, nc, Timing(rounds=a.check_rounds), quant=builds[0]["table"].meta.get("quant"),
                             reference=Reference(ref0.onnx, None, ref0.shape, ref0.format))
        check_wall = time.perf_counter() - t0
        rel = {n: meas[n]["rel"] for n in archs}
        for b in builds:
            table = b.pop("table")
            lm = LatencyModel(space, size, nc, table)
            tref, _ = table_reference(table)
            pred = {n: lm.predict(a_, allow_masked=True) / tref.ms for n, a_ in archs.items()}
            err = [abs(pred[n] - rel[n]) / rel[n] for n in archs]
            b["ref_ms"] = tref.ms
            b["mape"] = round(100 * statistics.fmean(err), 3)
            b["max_ape"] = round(100 * max(err), 3)
            b["spearman"] = round(float(spearmanr([pred[n] for n in archs], [rel[n] for n in archs]).statistic), 4)
            print(f"{b['variant']} build {b['build']}: MAPE {b['mape']:.2f} %, max {b['max_ape']:.1f} %, Spearman {b['spearman']:.3f}",
                  flush=True)
    summary = {}
    for v in variants:
        g = [b for b in builds if b["variant"] == label(*v)]
        summary[label(*v)] = {"wall_s": round(statistics.fmean(b["wall_s"] for b in g), 1), "mape": round(statistics.fmean(b["mape"] for b in g), 3),
                              "max_ape": round(max(b["max_ape"] for b in g), 3),
                              "spearman": round(statistics.fmean(b["spearman"] for b in g), 4), "builds": len(g)}
    base = summary[label(*variants[0])]["wall_s"]
    for v in variants:
        summary[label(*v)]["wall_ratio"] = round(summary[label(*v)]["wall_s"] / base, 3)
    out = {"benchmark": "lut_rounds", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit(), "machine": machine(), "quick": a.quick,
           "space": space.format(), "input_size": size, "dtype": dtype, "quant": quant, "min_times": min_times, "ref_groups": groups, "check": a.check, "check_rounds": a.check_rounds,
           "check_wall_s": round(check_wall, 1), "builds": builds, "summary": summary,
           "measured_rel": {n: {"arch": archs[n].format(), "rel": rel[n], "rounds": len(meas[n]["rounds_ms"])} for n in archs}}
    path = RESULTS / (f"{a.name}.json" if a.name else "lut_rounds_quick.json" if a.quick else "lut_rounds.json")
    atomic_write_json(path, out)
    print(summary, flush=True)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
