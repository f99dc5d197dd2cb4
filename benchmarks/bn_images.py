"""How many images the search's per-epoch score needs for its BN statistics (issue 21: a lever of the 4-minute run).

After every epoch the search scores its argmax network with BN statistics
recomputed on ``--bn-images`` weight-split images (ednas.nn.bn): one forward
pass of that network over them, about a tenth of the default run's search
with 1000.  The score changes no step of the search, so the same search run
with several image counts follows the same trajectory, and the only
difference is the curve.  This runs the default run's search (digits,
host-ort int8 table, budget 0.5 of the range, every search default, no
end-to-end measurement) through ``ednas search`` once per ``--counts``,
one after the other, and compares each curve with the first count's:
the largest and mean difference of the validation top-1 and loss per epoch,
the recalibration's total time, and whether the trajectory (argmax and
expected latency of every epoch) and the final architecture are the same.

    python benchmarks/bn_images.py                    # 1000 (the earlier default), 500, 250
    python benchmarks/bn_images.py --counts 1000 500 --work DIR

Writes ``results/bn_images.json``.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[1000, 500, 250], help="BN images of each search (the first is the base)")
    ap.add_argument("--work", default=None, help="keep the searches here (default: a temporary folder)")
    a = ap.parse_args()

    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="ednas-bn-images-"))
    runs = {}
    for n in a.counts:
        out = work / f"bn{n}"
        t = time.time()
        subprocess.run([sys.executable, "-m", "ednas.cli", "search", "--data", "digits", "--target", "host-ort", "--dtype", "i8",
                        "--budget-frac", "0.5", "--bn-images", str(n), "--no-measure", "--out", str(out), "--no-progress", "-q"],
                       check=True, cwd=ROOT)
        res = json.loads((out / "search.json").read_text())
        runs[n] = {"process_wall_s": round(time.time() - t, 1), "search_wall_s": round(res["wall_s"], 1), "arch": res["arch"],
                   "history": res["history"]}
        print(f"{n} images: search {res['wall_s']:.1f} s, recalibration "
              f"{sum(h['bn_recalibration_s'] for h in res['history']):.1f} s", flush=True)

    base = runs[a.counts[0]]["history"]
    rows = []
    for n in a.counts:
        h = runs[n]["history"]
        dt = [abs(x["val_top1"] - y["val_top1"]) for x, y in zip(h, base)]
        dl = [abs(x["val_loss"] - y["val_loss"]) for x, y in zip(h, base)]
        rows.append({
            "bn_images": n,
            "recalibration_s": round(sum(x["bn_recalibration_s"] for x in h), 2),
            "search_wall_s": runs[n]["search_wall_s"],
            "max_abs_diff_val_top1": round(max(dt), 3), "mean_abs_diff_val_top1": round(sum(dt) / len(dt), 3),
            "max_abs_diff_val_loss": round(max(dl), 5),
            "same_trajectory": all(x["argmax_lat_ms"] == y["argmax_lat_ms"] and x["E_lat_ms"] == y["E_lat_ms"] for x, y in zip(h, base)),
            "same_arch": runs[n]["arch"] == runs[a.counts[0]]["arch"],
            "val_top1": [round(x["val_top1"], 3) for x in h],
        })
        print({k: v for k, v in rows[-1].items() if k != "val_top1"}, flush=True)
    from ednas.data import load_data

    val_n = len(load_data("digits").labels("val"))
    out = {"what": "the default run's search scored each epoch with BN statistics recomputed on each count of images; curves against the first",
           "data": "digits", "target": "host-ort int8", "budget_frac": 0.5, "val_images": val_n,
           "one_val_image_pct": round(100 / val_n, 3), "counts": a.counts, "rows": rows,
           "archs": {n: runs[n]["arch"] for n in a.counts}}
    print(f"wrote {write_result('bn_images', out)}")


if __name__ == "__main__":
    main()
