"""Benchmark: the feedback block on vs off (issue 6), on the CIFAR-10 sample.

P = 1 (plain single-path search) against P = 2 (two paths merged every step)
with the same number of images seen (the epoch's batches are dealt out to the
paths, so both see every weight-split image once per epoch), over several
seeds; for P = 2 also each merge mode (kernels, kernels+alpha, all).  Records
the search-time accuracy curve (validation top-1 of the argmax network after
every epoch), the derived architecture, and the test top-1 of the derived
network after the same short training from scratch.  Skips without the sample.

    python benchmarks/feedback_ablation.py [--seeds 0 1 2] [--epochs 10] [--train-epochs 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, write_result  # noqa: E402

CIFAR = ROOT.parent / "shared" / "data" / "cifar10"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--warmup-epochs", type=int, default=3)
    ap.add_argument("--train-epochs", type=int, default=8)
    ap.add_argument("--target", default="host-ort")
    ap.add_argument("--budget-frac", type=float, default=0.5)
    ap.add_argument("--configs", nargs="+", default=["p1", "p2-all", "p2-kernels", "p2-kernels+alpha"])
    ap.add_argument("--data", default=f"cifar10:{CIFAR}")
    a = ap.parse_args()
    if a.data.startswith("cifar10:") and not Path(a.data.split(":", 1)[1]).is_dir():
        write_result("feedback_ablation", {"skipped": f"no CIFAR-10 sample at {CIFAR}"})
        return

    from ednas.commands import SearchCommand, TrainCommand, search_command, train_command
    from ednas.config import resolve_config

    runs = []
    with tempfile.TemporaryDirectory() as d:
        for seed in a.seeds:
            for name in a.configs:
                paths = 1 if name == "p1" else 2
                merge = "all" if paths == 1 else name.split("-", 1)[1]
                out = Path(d) / f"{name}-{seed}"
                s = search_command(resolve_config(SearchCommand, dict(
                    out=str(out / "search"), space="cifar", data=a.data, target=a.target, budget_frac=a.budget_frac,
                    epochs=a.epochs, warmup_epochs=a.warmup_epochs, paths=paths, merge=merge, seed=seed,
                    progress=False, tensorboard=False, measure=False)))
                t = train_command(resolve_config(TrainCommand, dict(
                    out=str(out / "train"), arch=str(out / "search" / "arch.yaml"), data=a.data, epochs=a.train_epochs,
                    seed=seed, progress=False, tensorboard=False)))
                run = {"config": name, "paths": paths, "merge": merge, "seed": seed, "images_seen": s["images_seen"],
                       "steps_per_path": s["steps"], "search_wall_s": s["wall_s"], "arch": s["arch"],
                       "predicted_latency_ms": s["predicted_latency_ms"], "budget_ms": s["budget_ms"],
                       "curve_val_top1": [h["val_top1"] for h in s["history"]],
                       "derived_top1": t["top1"], "derived_train_wall_s": t["wall_s"]}
                runs.append(run)
                print({k: run[k] for k in ("config", "seed", "derived_top1", "search_wall_s")}, flush=True)
    summary = {}
    for name in a.configs:
        rs = [r for r in runs if r["config"] == name]
        tops = [r["derived_top1"] for r in rs]
        finals = [r["curve_val_top1"][-1] for r in rs]
        curves = list(zip(*[r["curve_val_top1"] for r in rs]))
        summary[name] = {
            "derived_top1_mean": statistics.fmean(tops), "derived_top1_std": statistics.pstdev(tops),
            "search_final_val_top1_mean": statistics.fmean(finals), "search_final_val_top1_std": statistics.pstdev(finals),
            "curve_mean": [statistics.fmean(c) for c in curves],
            "search_wall_s_mean": statistics.fmean(r["search_wall_s"] for r in rs),
            "images_seen": rs[0]["images_seen"], "steps_per_path": rs[0]["steps_per_path"],
        }
    write_result("feedback_ablation", {"data": a.data, "space": "cifar", "target": a.target, "budget_frac": a.budget_frac,
                                       "search_epochs": a.epochs, "warmup_epochs": a.warmup_epochs,
                                       "train_epochs": a.train_epochs, "seeds": a.seeds, "summary": summary, "runs": runs})


if __name__ == "__main__":
    main()
