"""Does a host table survive a busy machine?  Build it, then validate it while a CPU-bound process competes.

For each statistic of a timed batch (``--stats``: the median of the runs,
their minimum, a low percentile), this builds a fresh ``host-ort`` table of
the ``cifar`` space (with its reference network timed between the rounds)
and validates it on 30 stratified networks twice: on the machine as it is
("quiet"), and while a CPU-bound competitor that the benchmark starts
(pinned to one of the cores) runs beside it ("busy").  Each validation
reports MAPE and Spearman against the raw end-to-end timings and against
the timings scaled by the table's reference network; the competitor is
stopped whatever happens.  Writes ``benchmarks/results/lut_busy.json``.

    .venv/bin/python benchmarks/lut_busy.py                         # full: 3 statistics, f32 (about 25 min)
    .venv/bin/python benchmarks/lut_busy.py --quick                 # a proof that it runs (a few minutes)
    .venv/bin/python benchmarks/lut_busy.py --dtype i8 --stats median
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import write_result  # noqa: E402
from ednas import preset  # noqa: E402
from ednas.arch.spec import PRESETS  # noqa: E402
from ednas.latency import build_table, validate_table  # noqa: E402
from ednas.runtime import Timing  # noqa: E402

# a CPU-bound job of the kind that shares a developer's machine: dense float work, one thread
COMPETITOR = (
    "import os, numpy as np\n"
    "a = np.random.default_rng(0).random((384, 384))\n"
    "while True:\n"
    "    a = (a @ a) / 384.0\n"
)


def start_competitor(core: int) -> subprocess.Popen:
    """A one-thread CPU-bound process pinned to ``core`` (started here, stopped by :func:`stop`)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-c", COMPETITOR], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        os.sched_setaffinity(p.pid, {core})
    except (AttributeError, OSError):
        pass  # no affinity control: it still takes one core's worth of time
    time.sleep(1.0)
    return p


def stop(p: subprocess.Popen | None) -> None:
    if p is not None and p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def _short(res: dict) -> dict:
    keep = ("n", "mape", "spearman", "mape_raw", "spearman_raw", "drift", "max_abs_pct_error", "measured_range_ms", "validate_s")
    return {**{k: res.get(k) for k in keep}, "reference_ratio": (res.get("reference") or {}).get("ratio"),
            "load_before": res.get("load_before"), "pairs": res.get("pairs")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="cifar")
    p.add_argument("--dtype", default="f32", choices=["f32", "i8"])
    p.add_argument("--stats", nargs="+", default=None, help="statistics to compare (default: median p20 min; --quick: median)")
    p.add_argument("--archs", type=int, default=30)
    p.add_argument("--rounds", type=int, default=15, help="validation rounds")
    p.add_argument("--core", type=int, default=0, help="core the competitor is pinned to")
    p.add_argument("--quick", action="store_true", help="12 networks, short rounds, one statistic unless --stats: proves the script runs")
    p.add_argument("--out", default="lut_busy")
    p.add_argument("--same-core", action="store_true",
                   help="busy phase: pin this process to the competitor's core too (the timed runs then share a core with it, "
                        "as on a machine whose every core is busy)")
    args = p.parse_args(argv)
    if args.quick:
        args.stats, args.archs, args.rounds = args.stats or ["median"], 12, 5
    args.stats = args.stats or ["median", "p20", "min"]

    import torch

    torch.set_num_threads(1)  # export only; timing threads are set per session
    space, size = preset(args.space), PRESETS[args.space][1]
    ncls = 1000 if args.space == "imagenet" else 10
    result = {"what": "host-ort table built on the machine as it is, validated as it is and beside a CPU-bound competitor on one core",
              "space": args.space, "dtype": args.dtype, "archs": args.archs, "rounds": args.rounds, "quick": args.quick,
              "competitor": COMPETITOR, "competitor_core": args.core, "same_core": args.same_core, "cpus": os.cpu_count(), "command": " ".join(sys.argv), "runs": {}}
    t_all = time.time()
    tables = Path(tempfile.mkdtemp(prefix="ednas-lut-busy-"))
    for stat in args.stats:
        lut = tables / f"lut_{args.space}_{args.dtype}_{stat}.json"
        t0 = time.time()
        kw = dict(repeats=30, rounds=3) if args.quick else {}
        table = build_table("host-ort", space, size, ncls, out=lut, dtype=args.dtype, stat=stat, progress=True, **kw)
        run = {"build_s": round(time.time() - t0, 1), "load_at_build": [round(x, 2) for x in os.getloadavg()],
               "reference_ms": table.meta["reference"]["ms"], "constant_ms": table.constant_ms}
        timing = Timing(threads=1, warmup=10, repeats=20, rounds=args.rounds, stat=stat)
        for phase in ("quiet", "busy"):
            comp = start_competitor(args.core) if phase == "busy" else None
            cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
            if comp is not None and args.same_core and cpus is not None:
                os.sched_setaffinity(0, {args.core})
            try:
                load = [round(x, 2) for x in os.getloadavg()]
                t0 = time.time()
                res = validate_table(table, n=args.archs, seed=0, timing=timing)
                res["validate_s"], res["load_before"] = round(time.time() - t0, 1), load
            finally:
                stop(comp)
                if cpus is not None:
                    os.sched_setaffinity(0, cpus)
            run[phase] = _short(res)
            print(f"{stat} {phase}: MAPE {res['mape']:.2f} % (raw {res['mape_raw']:.2f} %), Spearman {res['spearman']:.3f} "
                  f"(raw {res['spearman_raw']:.3f}), reference x{res['reference'].get('ratio')}, drift {res['drift']}", flush=True)
        result["runs"][stat] = run
    result["wall_s"] = round(time.time() - t_all, 1)
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
