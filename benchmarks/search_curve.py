"""Benchmark: the search's per-epoch score of its argmax network, with the supernet's BN statistics and with its own.

Runs the default run's search (digits, host-ort int8 table, budget 0.5 of
the range, every search default) twice through ``ednas search``, with
``--bn-images 0`` (the argmax network scored with the supernet's running BN
statistics, gathered under the soft Gumbel mixture: what every version
before did) and with the default ``--bn-images`` (its statistics recomputed
on a fixed, seeded set of weight-split images first, ednas.nn.bn).  The
recalibration changes no step of the search, so both runs must follow the
same trajectory (checked: the argmax latency of every epoch is equal).  Then
trains the final argmax network from scratch (``ednas train``, the run's
training defaults) to show what the curve should approach.

    python benchmarks/search_curve.py [--work DIR]

Writes results/search_curve.json and results/search_curve.png.
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
from _common import RESULTS, ROOT, write_result  # noqa: E402


def _ednas(*args: str) -> float:
    t = time.time()
    subprocess.run([sys.executable, "-m", "ednas.cli", *args, "--no-progress", "-q"], check=True, cwd=ROOT)
    return time.time() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", help="work directory (kept; reruns skip finished runs)")
    ap.add_argument("--data", default="digits")
    a = ap.parse_args()
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="search_curve_"))
    cache = work / "lut"
    common = ["--data", a.data, "--target", "host-ort", "--dtype", "int8", "--budget-frac", "0.5", "--cache", str(cache), "--no-tensorboard"]
    runs, walls = {}, {}
    for name, extra in (("supernet_bn", ["--bn-images", "0"]), ("recomputed_bn", [])):
        out = work / name
        if not (out / "search.json").is_file():
            walls[name] = _ednas("search", "--out", str(out), "--resume", *common, *extra)  # resumes an interrupted search
        runs[name] = json.loads((out / "search.json").read_text())
    hist = {k: [h for h in r["history"] if "val_top1" in h] for k, r in runs.items()}
    same = [h1["argmax_lat_ms"] for h1 in hist["supernet_bn"]] == [h2["argmax_lat_ms"] for h2 in hist["recomputed_bn"]]
    trained = work / "trained"
    if not (trained / "metrics.json").is_file():
        walls["train"] = _ednas("train", "--data", a.data, "--arch", str(work / "recomputed_bn" / "arch.yaml"), "--out", str(trained), "--resume")
    tr = json.loads((trained / "metrics.json").read_text())
    rows = [{"epoch": h1["epoch"], "argmax_lat_ms": h1["argmax_lat_ms"], "val_top1_supernet_bn": h1["val_top1"],
             "val_top1_recomputed_bn": h2["val_top1"], "bn_recalibration_s": h2.get("bn_recalibration_s")}
            for h1, h2 in zip(hist["supernet_bn"], hist["recomputed_bn"])]

    def spread(key):
        v = [r[key] for r in rows]
        return {"min": min(v), "max": max(v), "last": v[-1]}

    epoch_s = runs["recomputed_bn"].get("wall_s", 0) / max(len(rows), 1)
    cost = [r["bn_recalibration_s"] for r in rows if r["bn_recalibration_s"] is not None]
    result = {
        "data": a.data, "target": "host-ort int8", "budget_frac": 0.5, "bn_images": rows and runs["recomputed_bn"]["history"][-1].get("bn_images"),
        "same_trajectory": same, "epochs": rows,
        "val_top1_supernet_bn": spread("val_top1_supernet_bn"), "val_top1_recomputed_bn": spread("val_top1_recomputed_bn"),
        "final_arch": runs["recomputed_bn"]["arch"], "trained_from_scratch_test_top1": tr["top1"],
        "trained_from_scratch_val_top1": tr["val_top1"],
        "bn_recalibration_s_mean": sum(cost) / len(cost) if cost else None, "search_epoch_s_mean": epoch_s, "walls_s": walls,
    }
    write_result("search_curve", result)
    _plot(rows, result, RESULTS / "search_curve.png")


def _plot(rows, result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    e = [r["epoch"] for r in rows]
    ax.plot(e, [r["val_top1_supernet_bn"] for r in rows], "o-", label="supernet's BN statistics (before)")
    ax.plot(e, [r["val_top1_recomputed_bn"] for r in rows], "s-", label=f"recomputed on {result['bn_images']} images (after)")
    if result["trained_from_scratch_val_top1"] is not None:
        ax.axhline(result["trained_from_scratch_val_top1"], color="grey", ls="--", label="final argmax net trained from scratch (val)")
    ax.set_xlabel("search epoch")
    ax.set_ylabel("val top-1 of the argmax network (%)")
    ax.set_title(f"search on {result['data']}: the argmax network's score per epoch")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
