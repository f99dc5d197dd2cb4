"""Benchmark: accuracy drop and host latency of the quantized exports (``ednas export``).

Trains the ``cifar`` preset on ``digits`` (10 epochs, seeds 0..2, the default
recipe and ``--quant-friendly``) with ``ednas train``'s library function, then
exports each model with :func:`ednas.deploy.export_model` (int8 QDQ,
per-channel: the default) and quantizes the same fused ONNX file in the other
modes (per-tensor int8, power-of-two int8 as TIDL on TDA4VM, power-of-two with
16-bit first/last layers, int8 with 16-bit first/last layers, int16, int16
power-of-two).  Every top-1 is measured through ONNX Runtime on the test split.
Then the same on the CIFAR-10 sample (``../shared/data/cifar10``; skipped with
a note when absent), and host latency at batch 1 of fp32 vs the quantized
files at 1 and 2 threads, timed interleaved, two passes each.

    python benchmarks/quantization.py [--seeds 0 1 2] [--digits-epochs 10]
        [--cifar-epochs 20] [--skip-cifar] [--quick] [--work DIR]
    python benchmarks/quantization.py --latency-from DIR/digits_default_0/export

Writes ``benchmarks/results/quantization.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, write_result  # noqa: E402

CIFAR = Path(os.environ.get("EDNAS_CIFAR_SAMPLE", ROOT.parent / "shared" / "data" / "cifar10"))

# name -> QuantSettings kwargs; "int8" is export_model's default and is measured there
VARIANTS = {
    "int8_pertensor": dict(bits=8, per_channel=False),
    "int8_pow2": dict(bits=8, pow2=True),
    "int8_pow2_mixed": dict(bits=8, pow2=True, mixed=True),
    "int8_mixed": dict(bits=8, mixed=True),
    "int16": dict(bits=16),
    "int16_pow2": dict(bits=16, pow2=True),
}


def train_one(out: Path, data: str, epochs: int, seed: int, quant_friendly: bool) -> dict:
    from ednas.commands import TrainCommand, train_command
    from ednas.config import resolve_config

    cfg = resolve_config(TrainCommand, dict(out=str(out), arch="cifar", data=data, epochs=epochs, seed=seed, quant_friendly=quant_friendly,
                                            threads=2, progress=False, tensorboard=False))
    m = train_command(cfg)
    return {"top1_torch": m["top1"], "train_wall_s": m["wall_s"], "epochs": epochs, "seed": seed, "quant_friendly": quant_friendly, "arch": m["arch"]}


def quantize_all(model_pt: Path, out: Path, calib_images: int) -> dict:
    """export_model (int8 default) + every other variant on the same fused ONNX; top-1 through ORT."""
    from ednas.commands import ExportCommand, export_command
    from ednas.config import resolve_config
    from ednas.data import load_data
    from ednas.deploy import CalibrationReader, QuantSettings, calibration_images, onnx_scores, quantize_onnx, top1
    from ednas.deploy.calibration import with_normalisation
    from ednas.nn.files import load_model_file

    r = export_command(resolve_config(ExportCommand, dict(model=str(model_pt), out=str(out), calib_images=calib_images,
                                                          latency_rounds=1, latency_runs=10)))
    res = {"max_abs_diff": r["max_abs_diff"], "top1_fp32": r["top1_fp32"], "n_eval": r["n_eval"],
           "int8": {"top1": r["top1_quant"], "drop": r["drop"], "agreement": r["agreement"]}}
    meta = load_model_file(model_pt)
    data = with_normalisation(load_data(meta["data"]), meta["mean"], meta["std"])
    images = calibration_images(data, calib_images)
    fp, _ = onnx_scores(out / "model.onnx", data, "test")
    for name, kw in VARIANTS.items():
        s = QuantSettings(**kw)
        path = out / f"model_{s.name}.onnx"
        t = time.time()
        info = quantize_onnx(out / "model.onnx", path, CalibrationReader(images), s)
        scores, labels = onnx_scores(path, data, "test")
        q = top1(scores, labels)
        res[name] = {"top1": q, "drop": r["top1_fp32"] - q, "agreement": float((scores.argmax(1) == fp.argmax(1)).mean() * 100),
                     "all_scales_pow2": info["all_scales_pow2"], "quantize_s": time.time() - t}
    return res


def summarize(runs: list[dict]) -> dict:
    """Mean/min/max drop per variant over seeds."""
    out = {"top1_fp32_mean": statistics.fmean(r["top1_fp32"] for r in runs)}
    for name in ["int8", *VARIANTS]:
        drops = [r[name]["drop"] for r in runs]
        out[name] = {"drop_mean": statistics.fmean(drops), "drop_min": min(drops), "drop_max": max(drops),
                     "top1_mean": statistics.fmean(r[name]["top1"] for r in runs)}
    return out


def latency(out: Path, rounds: int, runs: int) -> dict:
    """fp32 vs quantized at 1 and 2 threads; two interleaved passes (1, 2, 1, 2 threads)."""
    from ednas.deploy import compare_latency

    files = {"fp32": out / "model.onnx", "int8": out / "model_int8.onnx", "int8_pertensor": out / "model_int8_pertensor.onnx",
             "int8_pow2": out / "model_int8_pow2.onnx", "int8_mixed": out / "model_int8_mixed.onnx", "int16": out / "model_int16.onnx"}
    passes = []
    for p in range(2):
        for threads in (1, 2):
            lat = compare_latency(files, threads=threads, rounds=rounds, runs=runs)
            passes.append({"pass": p + 1, "threads": threads, **{k: v["median_ms"] for k, v in lat.items()},
                           "round_medians_ms": {k: v["round_medians_ms"] for k, v in lat.items()}})
    summary = {}
    for threads in (1, 2):
        ps = [p for p in passes if p["threads"] == threads]
        summary[f"{threads}_thread"] = {k: statistics.median(p[k] for p in ps) for k in files}
        summary[f"{threads}_thread"]["speedup_int8"] = summary[f"{threads}_thread"]["fp32"] / summary[f"{threads}_thread"]["int8"]
    return {"ms": summary, "passes": passes, "rounds": rounds, "runs": runs, "batch": 1, "input": "1x3x32x32"}


def profile_nodes(path: Path, runs: int = 200, top: int = 6) -> dict:
    """Per-node time (ORT profiler, 1 thread, batch 1): where the time of a model goes."""
    import collections
    import json

    import numpy as np

    from ednas.runtime import ort_session

    sess = ort_session(path, 1, profile_prefix=str(Path(tempfile.gettempdir()) / f"ednas_prof_{path.stem}"))
    feed = {"input": np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)}
    for _ in range(runs):
        sess.run(None, feed)
    prof = Path(sess.end_profiling())
    events = json.loads(prof.read_text())
    prof.unlink()
    per, ops = collections.Counter(), {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            name = e["name"][: -len("_kernel_time")]
            per[name] += e["dur"] / runs
            ops[name] = e["args"].get("op_name")
    total = sum(per.values())
    return {"total_us": total, "top": [{"node": k, "op": ops[k], "us": v, "share": v / total} for k, v in per.most_common(top)]}


def run_data(name: str, spec: str, epochs: int, seeds: list[int], tmp: Path, calib_images: int) -> dict:
    res: dict = {"data": spec, "epochs": epochs, "seeds": seeds}
    for qf in (False, True):
        key = "quant_friendly" if qf else "default"
        runs = []
        for seed in seeds:
            d = tmp / f"{name}_{key}_{seed}"
            t = train_one(d / "train", spec, epochs, seed, qf)
            q = quantize_all(d / "train" / "model.pt", d / "export", calib_images)
            runs.append({**t, **q})
            print(f"[{name} {key} seed {seed}] torch {t['top1_torch']:.2f} fp32 {q['top1_fp32']:.2f} "
                  + " ".join(f"{v}:{q[v]['drop']:+.2f}" for v in ["int8", *VARIANTS]), flush=True)
        res[key] = {"runs": runs, "summary": summarize(runs)}
    return res


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--digits-epochs", type=int, default=10)
    p.add_argument("--cifar-epochs", type=int, default=20)
    p.add_argument("--cifar-seeds", type=int, nargs="+", default=[0])
    p.add_argument("--calib-images", type=int, default=256)
    p.add_argument("--skip-cifar", action="store_true")
    p.add_argument("--quick", action="store_true", help="one seed, 2 epochs, no CIFAR: a smoke run")
    p.add_argument("--work", help="keep the trained models and exports here (default: a temporary folder)")
    p.add_argument("--latency-from", metavar="EXPORT_DIR", help="only re-time the files of an earlier run's export folder "
                   "(WORK/digits_default_0/export) and update the result file")
    a = p.parse_args()
    if a.quick:
        a.seeds, a.digits_epochs, a.skip_cifar = [0], 2, True
    t0 = time.time()
    load0 = os.getloadavg()
    res: dict = {"settings": vars(a), "variants": {"int8": "export_model default: QDQ, uint8 asymmetric activations, int8 per-channel weights", **{k: str(v) for k, v in VARIANTS.items()}}}
    name = "quantization" if not a.quick else "quantization_quick"
    if a.latency_from:
        # re-time an earlier run's files (e.g. when the machine was busy): same models, new latency and profile
        import json

        from _common import RESULTS

        res = json.loads((RESULTS / f"{name}.json").read_text())
        res.setdefault("accuracy_run", {"commit": res.get("commit"), "date": res.get("date")})  # the trainings are not redone
        for k in ("benchmark", "date", "commit", "machine", "perf_env"):
            res.pop(k, None)
        res["latency"], res["profile_1_thread"] = timings(Path(a.latency_from))
        res["latency"]["retimed"] = time.strftime("%Y-%m-%d %H:%M:%S")
        res["latency"]["loadavg_start_end"] = [load0, os.getloadavg()]
        write_result(name, res)
        return
    with tempfile.TemporaryDirectory(prefix="ednas-quant-bench-") as d:
        tmp = Path(a.work) if a.work else Path(d)
        res["digits"] = run_data("digits", "digits", a.digits_epochs, a.seeds, tmp, a.calib_images)
        res["latency"], res["profile_1_thread"] = timings(tmp / f"digits_default_{a.seeds[0]}" / "export")
        if CIFAR.is_dir() and (CIFAR / "data_batch_1").is_file() and not a.skip_cifar:
            res["cifar10_sample"] = run_data("cifar10", f"cifar10:{CIFAR}", a.cifar_epochs, a.cifar_seeds, tmp, a.calib_images)
        else:
            res["cifar10_sample"] = {"skipped": "--skip-cifar" if a.skip_cifar else f"no CIFAR-10 sample at {CIFAR}"}
    res["wall_s"] = time.time() - t0
    res["loadavg_start_end"] = [load0, os.getloadavg()]  # other users of the 2 cores show up here
    write_result(name, res)


def timings(exp: Path) -> tuple[dict, dict]:
    """Latency (1 and 2 threads, interleaved, two passes) and a 1-thread per-node profile of an export folder."""
    lat = latency(exp, rounds=5, runs=100)
    lat["loadavg"] = os.getloadavg()
    prof = {k: profile_nodes(exp / f) for k, f in (("fp32", "model.onnx"), ("int8", "model_int8.onnx"), ("int8_mixed", "model_int8_mixed.onnx"))}
    return lat, prof


if __name__ == "__main__":
    main()
