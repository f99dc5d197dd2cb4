"""Benchmark: LiteRT (XNNPACK) against ONNX Runtime on this host, fp32 and int8, for real networks.

For each network, the same fused PyTorch module is written as ONNX (fp32,
int8 QDQ: ``ednas export``'s files) and as LiteRT (fp32, full-integer int8:
``ednas export --format tflite``), and the four files are timed batch 1, one
thread, in the same interleaved rounds (:func:`ednas.runtime.interleaved`,
``Timing()``'s defaults), so their ratios are measured in one run.  Where a
trained ``model.pt`` is given, ``ednas export --format onnx,tflite`` also
gives the int8 drop in both runtimes on the data's test split.

Networks (each skipped with a note when its file is absent):

* ``ednas``: the trained ``model.pt`` of Pareto v2's ``ednas`` row (B2 =
  0.5 of the range, seed 0; ``--model``), exported with ``--format
  onnx,tflite`` on the CIFAR-10 sample (its test split, 1000 images);
* ``mobilenetv2-cifar``: torchvision's MobileNetV2 in the CIFAR layout at
  width 1.0 and 0.35 (``ednas.report.baselines.build_baseline``; latency
  only, untrained weights: the time does not depend on them);
* ``ops``: single depthwise layers (3x3, 5x5, 7x7 on 96 channels at 16 x 16)
  and a 1 x 1 conv, to show which kernels each runtime has fast paths for.

    python benchmarks/litert_vs_ort.py            # writes results/litert_vs_ort.json (needs the litert extra)
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MODEL = ROOT / "runs" / "pareto-v2" / "cifar10" / "seed0" / "frac0.5" / "ednas" / "train" / "model.pt"
CIFAR = ROOT.parent / "shared" / "data" / "cifar10"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def _files(module, size: int, work: Path, calib) -> dict:
    """The module as fp32/int8 ONNX and fp32/int8 LiteRT files."""
    from ednas.deploy.calibration import CalibrationReader
    from ednas.deploy.quantize import QuantSettings, quantize_onnx
    from ednas.runtime import export_onnx
    from ednas.runtime.litert import export_tflite

    work.mkdir(parents=True, exist_ok=True)
    onnx32 = export_onnx(module, work / "m.onnx", size)
    onnx8 = work / "m_int8.onnx"
    quantize_onnx(onnx32, onnx8, CalibrationReader(calib, "input", 1), QuantSettings(bits=8))
    t32 = export_tflite(module, work / "m.tflite", size)["file"]
    t8 = export_tflite(module, work / "m_int8.tflite", size, quant="int8", calib=calib)["file"]
    return {"ort_fp32": str(onnx32), "ort_int8": str(onnx8), "litert_fp32": t32, "litert_int8": t8}


def _time(files: dict, size: int, timing) -> dict:
    from ednas.runtime import interleaved
    from ednas.runtime.board import runner
    from ednas.runtime.litert import TFLiteModel

    runners = {}
    for k, f in files.items():
        runners[k] = runner(f, timing.threads, [1, 3, size, size]) if k.startswith("ort") else TFLiteModel(f, timing.threads).runner()
    res = interleaved(runners, timing.warmup, timing.repeats, timing.rounds, timing.min_time_s, stat=timing.stat, **timing.adaptive())
    out = {k: {"ms": v["ms"], "rounds_ms": v["rounds_ms"]} for k, v in res.items()}
    out["ratio_litert_over_ort_fp32"] = round(res["litert_fp32"]["ms"] / res["ort_fp32"]["ms"], 3)
    out["ratio_litert_over_ort_int8"] = round(res["litert_int8"]["ms"] / res["ort_int8"]["ms"], 3)
    out["int8_speedup_ort"] = round(res["ort_fp32"]["ms"] / res["ort_int8"]["ms"], 3)
    out["int8_speedup_litert"] = round(res["litert_fp32"]["ms"] / res["litert_int8"]["ms"], 3)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=MODEL, help="a trained ednas model.pt (default: Pareto v2's ednas row, B2, seed 0)")
    ap.add_argument("--data", default=f"cifar10:{CIFAR}", help="the data its int8 drop is measured on (test split)")
    ap.add_argument("--out", type=Path, default=RESULTS / "litert_vs_ort.json")
    a = ap.parse_args(argv)

    import numpy as np
    import torch

    from ednas._perf import set_threads, tune_malloc
    from ednas.runtime import Timing
    from ednas.runtime.litert import available, versions

    if not available():
        sys.exit("the litert extra is not installed: pip install -e '.[litert]'")
    tune_malloc()
    set_threads(1)
    timing = Timing()
    rec = {"machine": platform.processor() or platform.machine(), "commit": _commit(), "python": platform.python_version(),
           "torch": torch.__version__, "litert": versions(), "timing": {"threads": timing.threads, "rounds": timing.rounds,
                                                                          "repeats": timing.repeats, "stat": timing.stat},
           "networks": {}, "notes": []}
    import onnxruntime

    rec["onnxruntime"] = onnxruntime.__version__
    rng = np.random.default_rng(0)
    calib = rng.normal(size=(32, 3, 32, 32)).astype(np.float32)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # 1. the trained ednas network: export in both formats (accuracy and drop), then the four files timed together
        if a.model.is_file():
            from ednas.cli import main as ednas_main

            out = tmp / "ednas"
            rc = ednas_main(["export", "--model", str(a.model), "--out", str(out), "--format", "onnx,tflite", "--data", a.data])
            if rc == 0:
                r = json.loads((out / "export.json").read_text())
                t = r["tflite"]
                files = {"ort_fp32": r["onnx"], "ort_int8": r["onnx_quant"], "litert_fp32": t["file"], "litert_int8": t["file_int8"]}
                rec["networks"]["ednas"] = {
                    "model": str(a.model.relative_to(ROOT)) if a.model.is_relative_to(ROOT) else str(a.model), "arch": r["arch"],
                    "data": r["data"], "n_eval": r["n_eval"],
                    "ort": {"top1_fp32": r["top1_fp32"], "top1_int8": r["top1_quant"], "drop": r["drop"], "max_abs_diff": r["max_abs_diff"]},
                    "litert": {"top1_fp32": t["top1_fp32"], "top1_int8": t["top1_int8"], "drop": t["drop"], "max_abs_diff": t["max_abs_diff"],
                               "agreement": t["agreement"]},
                    "latency": _time(files, 32, timing),
                }
            else:
                rec["notes"].append(f"ednas export of {a.model} failed (exit {rc})")
        else:
            rec["notes"].append(f"no trained model at {a.model}: the ednas row is skipped")
        # 2. MobileNetV2-CIFAR, latency only
        from ednas.report.baselines import build_baseline

        for w in (1.0, 0.35):
            m, _ = build_baseline("tv-mobilenetv2", 10, 32, width=w)
            m = m.eval()
            files = _files(m, 32, tmp / f"mbv2_{w}", calib)
            rec["networks"][f"mobilenetv2-cifar_w{w}"] = {"latency": _time(files, 32, timing)}
        # 3. single layers
        for name, (c, k, g) in {"dw3": (96, 3, 96), "dw5": (96, 5, 96), "dw7": (96, 7, 96), "pw": (96, 1, 1)}.items():
            # a 3-channel image in (a 1 x 1 conv to 96 channels), so the files take the same input as a network
            net = torch.nn.Sequential(torch.nn.Conv2d(3, c, 1), torch.nn.Conv2d(c, c, k, padding=k // 2, groups=g), torch.nn.ReLU()).eval()
            files = _files(net, 16, tmp / name, calib[:, :, :16, :16].copy())
            rec["networks"][f"op_{name}_c96_16x16"] = {"latency": _time(files, 16, timing)}
    rec["wall_s"] = round(time.time() - t0, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rec, indent=1))
    for n, v in rec["networks"].items():
        lat = v["latency"]
        print(f"{n:28s} ORT fp32 {lat['ort_fp32']['ms']:.4f} int8 {lat['ort_int8']['ms']:.4f} | LiteRT fp32 {lat['litert_fp32']['ms']:.4f} "
              f"int8 {lat['litert_int8']['ms']:.4f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
