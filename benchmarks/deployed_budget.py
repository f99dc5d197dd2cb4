"""Does the budget hold for the file that is deployed?  `ednas run --quant int8` on digits, and fp32 with `--latency-dtype f32`.

Runs the real command in a fresh process for each precision (``int8``: the
default, the search prices the int8 table; ``f32``: ``--latency-dtype f32``)
and several budgets, with the baselines off, and records from summary.json
the budget, its precision, the prediction, the measured latency of the
deployed file (``model_int8.onnx`` or ``model.onnx``) at the table's speed
(scaled by the table's reference network) and raw, the run's LUT check and
its verdict.  Target: measured <= 1.05 B.  Writes
``benchmarks/results/deployed_budget.json``.

    .venv/bin/python benchmarks/deployed_budget.py                  # int8 and f32, budget fractions 0.25 0.5 0.75 (about 15 min)
    .venv/bin/python benchmarks/deployed_budget.py --quick          # one budget, short search and training
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

PRECISIONS = {"int8": [], "f32": ["--latency-dtype", "f32"]}


def run(out: Path, extra: list[str], cache: Path) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "ednas.cli", "run", "--out", str(out), "--baselines", "none", "--no-progress", "--lut-cache", str(cache), *extra]
    t = time.time()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    return time.time() - t, " ".join(["ednas", *cmd[3:]])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fracs", nargs="+", type=float, default=[0.25, 0.5, 0.75])
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    ap.add_argument("--quick", action="store_true", help="budget fraction 0.5, 4 search and 2 training epochs")
    ap.add_argument("--keep", help="keep the run folders here")
    a = ap.parse_args(argv)
    extra = ["--search-epochs", "4", "--warmup-epochs", "1", "--train-epochs", "2"] if a.quick else []
    fracs = [0.5] if a.quick else a.fracs
    rows = []
    with tempfile.TemporaryDirectory() as d:
        base = Path(a.keep) if a.keep else Path(d)
        cache = base / "lut-cache"  # fresh tables: the benchmark measures what a new user's first run measures
        for prec in a.precisions:
            for frac in fracs:
                out = base / f"{prec}-{frac}"
                wall, cmd = run(out, [*PRECISIONS[prec], "--budget-frac", str(frac), *extra], cache)
                s = json.loads((out / "summary.json").read_text())
                b, m = s["budget_ms"], s["latency_ms_measured"]
                rows.append({
                    "precision": prec, "budget_frac": frac, "command": cmd, "process_wall_s": round(wall, 1),
                    "latency_dtype": s["latency_dtype"], "budget_ms": b, "predicted_ms": s["latency_ms_predicted"],
                    "measured_ms": m, "measured_raw_ms": s["latency_ms_measured_raw"], "measured_over_budget": round(m / b, 4) if m else None,
                    "within_1_05_budget": bool(m is not None and m <= 1.05 * b), "deployed_file": s["deployed"]["file"],
                    "reference": s["deployed"]["reference"], "host_fp32_ms": s["latency_ms_host_fp32"], "host_int8_ms": s["latency_ms_host_int8"],
                    "lut_check": s["lut_check"], "verdict_ok": s["verdict"]["ok"], "failures": s["verdict"]["failures"],
                    "top1": s["top1"], "top1_int8": s["top1_int8"], "arch": s["arch"],
                })
                r = rows[-1]
                print(f"{prec} frac {frac}: budget {b:.4g} ({r['latency_dtype']}) predicted {r['predicted_ms']:.4g} measured {m:.4g} "
                      f"({r['measured_over_budget']} B; raw {r['measured_raw_ms']:.4g}) verdict {'ok' if r['verdict_ok'] else 'MISSED'}", flush=True)
    write_result("deployed_budget" + ("_quick" if a.quick else ""), {"quick": a.quick, "target": "measured latency of the deployed file <= 1.05 x budget", "rows": rows,
                                     "all_within": all(r["within_1_05_budget"] for r in rows)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
