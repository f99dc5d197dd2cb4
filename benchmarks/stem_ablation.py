"""Stem ablation: the depth-aware stem at 11x11, 13x13, 15x15 and 17x17.

The paper's Results: "a better accuracy with a slight increment of the number
of FLOPs can be achieved by increasing the size of this first filter to
13 x 13 until 17 x 17 ... the 11 x 11 kernel size gives the best trade-off
between accuracy, number of operations and simplicity".  Here the ``cifar``
preset's largest network (every depthwise 7x7, expansion 4) is trained with
the stem kernel as the only difference, on the CIFAR-10 sample
(``../shared/data/cifar10``: 4500 training images, 500 validation, the
1000-image test batch), with ``ednas train``'s recipe and the same epochs,
for each seed; then, per stem:

* test top-1 (mean and standard deviation over seeds);
* parameters (training form) and MACs (:func:`ednas.nn.macs.count_macs`,
  deploy form);
* latency measured here: the fused fp32 ONNX, ONNX Runtime, 1 thread,
  batch 1, the four stems timed interleaved (:func:`ednas.runtime.time_onnx`);
* latency predicted on the ``tda2x`` profile (analytic, deterministic).

The latency is the timing-sensitive part: on a shared machine it is noise;
``--latency-only`` re-times the trained models of an earlier run quietly.

    python benchmarks/stem_ablation.py                         # 4 stems x 2 seeds x 20 epochs: ~15 min on 2 idle cores
    python benchmarks/stem_ablation.py --seeds 0 1 2 --epochs 30
    python benchmarks/stem_ablation.py --quick                 # 2 epochs, 1 seed, 1000 training images: ~1 min
    python benchmarks/stem_ablation.py --latency-only          # re-time the models of the last full run

Writes ``benchmarks/results/stem_ablation.json`` (``--quick``:
``stem_ablation_quick.json``); models in ``--work`` (default
``/tmp/ednas-stem-ablation``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import write_result  # noqa: E402
from ednas._perf import set_threads, tune_malloc  # noqa: E402
from ednas.arch.spec import PRESETS, parse_arch  # noqa: E402
from ednas.data import load_data  # noqa: E402
from ednas.latency import load_profile  # noqa: E402
from ednas.latency.ops import arch_ops  # noqa: E402
from ednas.nn.files import load_model  # noqa: E402
from ednas.nn.fuse import deploy_model  # noqa: E402
from ednas.nn.macs import count_macs  # noqa: E402
from ednas.runtime import Timing, onnx_bytes, time_onnx  # noqa: E402
from ednas.train.trainer import TrainConfig, train  # noqa: E402

STEMS = (11, 13, 15, 17)
CIFAR = ROOT.parent / "shared" / "data" / "cifar10"
PAPER = "13-17 slightly more accurate than 11 at slightly more FLOPs; 11 the best trade-off (paper, Results; no figures given)"


def arch_with_stem(k: int) -> str:
    base = parse_arch(PRESETS["cifar"][0]).largest()
    text = base.format().replace(f"stem_k{base.stem.kernel}_", f"stem_k{k}_", 1)
    return parse_arch(text).format()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=f"cifar10:{CIFAR}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=2, help="training threads")
    p.add_argument("--work", default="/tmp/ednas-stem-ablation")
    p.add_argument("--quick", action="store_true", help="2 epochs, 1 seed, 1000 training images: proves the path")
    p.add_argument("--latency-only", action="store_true", help="re-time the models already in --work")
    p.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
    args = p.parse_args(argv)
    tune_malloc()
    set_threads(args.threads)
    if args.quick:
        args.seeds, args.epochs, args.rounds = args.seeds[:1], 2, 3
    work = Path(args.work) / ("quick" if args.quick else "full")
    data = load_data(args.data)
    if args.quick:  # a subset of the training split: the path, not the accuracy
        x, y = data.splits["train"]
        data.splits["train"] = (x[:1000], y[:1000])
    prof = load_profile("tda2x")
    runs: dict[int, list[dict]] = {k: [] for k in STEMS}
    t0 = time.time()
    for seed in args.seeds:
        for k in STEMS:  # stems inside seeds: a slow episode of a shared machine spreads over all stems
            out = work / f"k{k}_seed{seed}"
            if args.latency_only:
                m = json.loads((out / "metrics.json").read_text())
            else:
                m = train(TrainConfig(epochs=args.epochs), out, arch=arch_with_stem(k), data=data, seed=seed, progress=False,
                          tensorboard=False, resume=True)
            runs[k].append({"seed": seed, "top1": m["top1"], "top5": m["top5"], "wall_s": round(m["wall_s"], 1)})
            print(f"stem {k} seed {seed}: top-1 {m['top1']:.1f} %  ({m['wall_s']:.0f} s)", flush=True)
    train_s = time.time() - t0
    # latency: every stem's trained network, fused, timed interleaved
    onnx = {}
    rows = {}
    for k in STEMS:
        model, _ = load_model(work / f"k{k}_seed{args.seeds[0]}" / "model.pt")
        arch = parse_arch(arch_with_stem(k))
        onnx[k] = onnx_bytes(deploy_model(model.eval()), 32)
        top1 = [r["top1"] for r in runs[k]]
        rows[k] = {
            "arch": arch.format(),
            "top1_mean": round(statistics.mean(top1), 2),
            "top1_sd": round(statistics.stdev(top1), 2) if len(top1) > 1 else None,
            "top1_runs": top1,
            "params": int(sum(p.numel() for p in model.parameters())),
            "macs": int(count_macs(deploy_model(model.eval()), 32)[0]),
            "stem_macs": int(32 * 32 * 3 * k * k),  # the depthwise stem alone (stride 1, multiplier 1)
            "tda2x_ms": round(sum(prof.op_ms(op)[0] for op in arch_ops(arch, 32, data.num_classes, prof.dtype)), 4),
            "runs": runs[k],
        }
    t1 = time.time()
    timing = Timing(threads=1, rounds=args.rounds)
    lat = time_onnx({f"k{k}": b for k, b in onnx.items()}, timing)
    for k in STEMS:
        rows[k]["host_ms"] = round(lat[f"k{k}"]["ms"], 4)
        rows[k]["host_ms_rounds"] = [round(v, 4) for v in lat[f"k{k}"]["rounds_ms"]]
    ref = rows[11]
    for k in STEMS:
        r = rows[k]
        r["vs_11"] = {"top1_points": round(r["top1_mean"] - ref["top1_mean"], 2), "macs_ratio": round(r["macs"] / ref["macs"], 4),
                      "params_ratio": round(r["params"] / ref["params"], 4), "host_ms_ratio": round(r["host_ms"] / ref["host_ms"], 3),
                      "tda2x_ms_ratio": round(r["tda2x_ms"] / ref["tda2x_ms"], 4)}
    print(f"{'stem':<6}{'top-1 (%)':>16}{'params':>10}{'MACs':>12}{'host ms':>10}{'tda2x ms':>10}")
    for k in STEMS:
        r = rows[k]
        sd = f" ± {r['top1_sd']:.2f}" if r["top1_sd"] is not None else ""
        print(f"{k:<6}{r['top1_mean']:>9.2f}{sd:>7}{r['params']:>10,}{r['macs']:>12,}{r['host_ms']:>10.4f}{r['tda2x_ms']:>10.4f}")
    write_result("stem_ablation_quick" if args.quick else "stem_ablation", {
        "data": data.spec, "train_images": int(len(data.splits["train"][1])), "test_images": int(len(data.splits["test"][1])),
        "epochs": args.epochs, "seeds": args.seeds, "recipe": "ednas train defaults (SGD Nesterov, lr 0.1, warm-up 1 epoch, cosine, "
        "label smoothing 0.1, batch 64, no decay on BN and biases)", "training_threads": args.threads,
        "latency": {"how": "fused fp32 ONNX, ONNX Runtime, 1 thread, batch 1, interleaved rounds; median of round medians",
                    "rounds": args.rounds, "wall_s": round(time.time() - t1, 1)},
        "paper_claim": PAPER, "rows": {str(k): v for k, v in rows.items()}, "train_wall_s": round(train_s, 1),
        "latency_only": args.latency_only,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
