"""Which statistic of a timed batch resists interference?  Every run recorded, each statistic computed from the same runs.

Times, in interleaved rounds, 8 sampled networks of the ``cifar`` space, the
sandwich models of 6 of its operators and the table's reference network,
first on the machine as it is ("quiet") and then beside a CPU-bound
competitor pinned to one core (``benchmarks/lut_busy.py``'s), recording the
time of every run.  Then, for each statistic (median, min, p10, p20, p25):

* the round-to-round scatter (coefficient of variation, %) of each
  network's time over the reference's, and of each operator's estimate
  (a difference of timings) over the reference's: what the tables and the
  reference scaling live on;
* how far the busy phase's figures are from the quiet phase's, scaled by
  the reference and raw.

Writes ``benchmarks/results/timing_stats.json``.

    .venv/bin/python benchmarks/timing_stats.py --dtypes f32 i8     # about 12 min on 2 cores
    .venv/bin/python benchmarks/timing_stats.py --quick             # f32, 4 rounds
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import write_result  # noqa: E402
from lut_busy import start_competitor, stop  # noqa: E402

from ednas import preset  # noqa: E402
from ednas.latency.measure import deployed_bytes, reference_spec  # noqa: E402
from ednas.latency.ops import space_ops  # noqa: E402
from ednas.latency.validate import random_deploy_model, sample_picks  # noqa: E402
from ednas.runtime import board  # noqa: E402

STATS = {"median": np.median, "min": np.min, "p10": lambda x: np.percentile(x, 10), "p20": lambda x: np.percentile(x, 20),
         "p25": lambda x: np.percentile(x, 25)}


def _runs(run, min_s=0.02, n=60, warmup=5) -> list[float]:
    for _ in range(warmup):
        run()
    ts, t0 = [], time.perf_counter()
    while len(ts) < n or time.perf_counter() - t0 < min_s:
        t = time.perf_counter()
        run()
        ts.append((time.perf_counter() - t) * 1e3)
    return ts


def record(dtype: str, rounds: int, core: int) -> dict:
    sp = preset("cifar")
    q = board.quant_scheme(dtype) if dtype != "f32" else None
    models = {"ref": board.build_network(reference_spec(sp, 32, 10, dtype)["ops"], quant=q)}
    for i, p in enumerate(sample_picks(sp, 8, 0)):
        models[f"net{i}"] = (deployed_bytes(random_deploy_model(sp.with_picks(p, branches=False), 10, i), 32, q), [1, 3, 32, 32])
    ops = [op.key for op in space_ops(sp, 32, 10, dtype) if op.type in ("dw", "stem-dw", "expand", "project")]
    ops = [str(k) for k in np.random.default_rng(0).choice(ops, 6, replace=False)]
    for k in ops:
        for mid, _ in board.plan(k):
            models.setdefault(mid, board.build(mid, q))
    runners = {n: board.runner(b, 1, s) for n, (b, s) in models.items()}
    data = {"ops": ops, "plans": {k: board.plan(k) for k in ops}, "phases": {}}
    for phase in ("quiet", "busy"):
        comp = start_competitor(core) if phase == "busy" else None
        try:
            data["phases"][phase] = {"load": list(os.getloadavg())}
            rec = {n: [] for n in runners}
            for _ in range(rounds):
                for n, run in runners.items():
                    rec[n].append(_runs(run))
            data["phases"][phase]["runs"] = rec
        finally:
            stop(comp)
    return data


def analyse(data: dict) -> dict:
    nets = [n for n in data["phases"]["quiet"]["runs"] if n.startswith("net")]
    out = {}
    for name, f in STATS.items():
        val = {}
        for ph in ("quiet", "busy"):
            s = {n: np.array([f(x) for x in v]) for n, v in data["phases"][ph]["runs"].items()}
            ref = s["ref"]
            nv = {n: (np.median(s[n] / ref), np.median(s[n]), np.std(s[n] / ref) / np.mean(s[n] / ref)) for n in nets}
            ov = {}
            for k in data["ops"]:
                est = sum(c * s[mid] for mid, c in data["plans"][k])
                ov[k] = (np.median(est / ref), np.median(est), np.std(est / ref) / max(abs(np.mean(est / ref)), 1e-12))
            val[ph] = (nv, ov, float(np.median(ref)))
        (nq, oq, rq), (nb, ob, rb) = val["quiet"], val["busy"]
        out[name] = {
            "networks_scatter_pct": round(float(np.mean([nb[n][2] for n in nets]) * 100), 3),
            "networks_busy_vs_quiet_scaled_pct": round(float(np.mean([abs(nb[n][0] - nq[n][0]) / nq[n][0] for n in nets]) * 100), 3),
            "networks_busy_vs_quiet_raw_pct": round(float(np.mean([abs(nb[n][1] - nq[n][1]) / nq[n][1] for n in nets]) * 100), 3),
            "operators_scatter_pct": round(float(np.median([ob[k][2] for k in data["ops"]]) * 100), 3),
            "operators_busy_vs_quiet_scaled_pct": round(float(np.median([abs(ob[k][0] - oq[k][0]) / abs(oq[k][0]) for k in data["ops"]]) * 100), 3),
            "operators_busy_vs_quiet_raw_pct": round(float(np.median([abs(ob[k][1] - oq[k][1]) / abs(oq[k][1]) for k in data["ops"]]) * 100), 3),
            "reference_busy_over_quiet": round(rb / rq, 4),
        }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtypes", nargs="+", default=["f32", "i8"], choices=["f32", "i8"])
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--core", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.dtypes, a.rounds = ["f32"], 4
    res = {"command": " ".join(sys.argv), "rounds": a.rounds, "quick": a.quick, "dtypes": {}}
    for dtype in a.dtypes:
        t0 = time.time()
        data = record(dtype, a.rounds, a.core)
        res["dtypes"][dtype] = {"stats": analyse(data), "load": {ph: data["phases"][ph]["load"] for ph in data["phases"]},
                                "wall_s": round(time.time() - t0, 1)}
        for name, r in res["dtypes"][dtype]["stats"].items():
            print(dtype, name, r, flush=True)
    write_result("timing_stats" + ("_quick" if a.quick else ""), res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
