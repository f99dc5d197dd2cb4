"""Benchmark: README's first command, `ednas run --out DIR`, end to end on 2 cores.

Runs the real command in a fresh process with the defaults (digits,
host-ort, --budget-frac 0.5, baselines on) and records its summary.json,
the process wall time and its checks: summary complete, measured latency of
the deployed file within the budget (+5 %), whole run <= 5 min (and the
earlier <= 10 min).  Then runs the same
command again to show that every stage is skipped when complete.

    python benchmarks/run_e2e.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, write_result  # noqa: E402

KEYS = ("data", "target", "budget_ms", "arch", "params", "macs", "top1", "top1_int8", "latency_ms_predicted",
        "latency_ms_measured", "onnx_max_abs_diff", "wall_s", "stages")


def run(out: Path) -> float:
    t = time.time()
    subprocess.run([sys.executable, "-m", "ednas.cli", "run", "--out", str(out), "--no-progress"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", help="run in this directory and keep it")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        out = Path(a.keep) if a.keep else Path(d) / "demo"
        first = run(out)
        s = json.loads((out / "summary.json").read_text())
        second = run(out)
        s2 = json.loads((out / "summary.json").read_text())
    write_result("run_e2e", {
        "command": "ednas run --out DIR",
        "process_wall_s": first,
        "rerun_process_wall_s": second,
        "rerun_all_stages_skipped": all(v.get("skipped") for k, v in s2["stages"].items() if k != "report"),
        "summary_complete": all(k in s and s[k] is not None for k in KEYS),
        "measured_within_budget_5pct": s["latency_ms_measured"] <= 1.05 * s["budget_ms"],
        "under_10_min": first <= 600,
        "under_5_min": first <= 300,
        "stage_wall_s": {k: v.get("wall_s") for k, v in s["stages"].items()},
        "summary": s,
    })


if __name__ == "__main__":
    main()
