"""Benchmark: one network, three runtimes: ONNX Runtime, OpenVINO and LiteRT on this host, fp32 and int8, in one interleaved run.

For each network the same fused PyTorch module is written as ONNX (fp32,
int8 QDQ by ednas's quantizer: ``ednas export``'s files; ONNX Runtime and
OpenVINO read the very same two files) and as LiteRT (fp32, full-integer
int8: ``ednas export --format tflite``); the six (runtime, precision) pairs
are timed batch 1, one thread, through the runtime interface
(:meth:`ednas.runtime.interface.Runtime.runner`) in the same interleaved
rounds (:func:`ednas.runtime.interleaved`, ``Timing()``'s defaults), so
every ratio is measured in one run.

Networks:

* ``default-run``: the network of the default ``ednas run`` (digits,
  ``host-ort``, int8), trained: the run is made in ``--run`` (default
  ``runs/default-run``; resumed if it is there), its ``export/`` gives the
  ONNX files and their scores in ONNX Runtime and OpenVINO (export.json's
  ``openvino``), and ``ednas export --format tflite`` the LiteRT files and
  their scores;
* ``mobilenetv2-cifar``: torchvision's MobileNetV2 in the CIFAR layout at
  width 1.0 and 0.35 (latency only; untrained weights, calibrated on random
  images: the time does not depend on them).

    python benchmarks/runtimes.py        # needs the litert and openvino extras; writes results/runtimes.json
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
sys.path.insert(0, str(ROOT / "benchmarks"))

PAIRS = [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "int8"), ("litert", "fp32"), ("litert", "int8")]


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def _time(files: dict, size: int, timing) -> dict:
    """``files``: ``{"onnx_fp32", "onnx_int8", "tflite_fp32", "tflite_int8"}`` paths; the six pairs timed interleaved."""
    from ednas.runtime import interleaved
    from ednas.runtime.interface import get_runtime

    runners = {}
    for rt_name, prec in PAIRS:
        rt = get_runtime(rt_name)
        runners[f"{rt_name}_{prec}"] = rt.runner(files[f"{rt.format}_{prec}"], timing.threads, [1, 3, size, size])
    res = interleaved(runners, timing.warmup, timing.repeats, timing.rounds, timing.min_time_s, stat=timing.stat, **timing.adaptive())
    out = {k: {"ms": v["ms"], "rounds_ms": v["rounds_ms"], "spread_ms": v["spread_ms"]} for k, v in res.items()}
    for prec in ("fp32", "int8"):
        base = res[f"onnxruntime_{prec}"]["ms"]
        out[f"ratio_over_ort_{prec}"] = {rt: round(res[f"{rt}_{prec}"]["ms"] / base, 3) for rt in ("openvino", "litert")}
    out["int8_speedup"] = {rt: round(res[f"{rt}_fp32"]["ms"] / res[f"{rt}_int8"]["ms"], 3) for rt in ("onnxruntime", "openvino", "litert")}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "default-run", help="the default ednas run's folder (made when absent)")
    ap.add_argument("--out", type=Path, default=RESULTS / "runtimes.json")
    a = ap.parse_args(argv)

    import numpy as np
    import torch
    from litert_vs_ort import _files

    from ednas._perf import set_threads, tune_malloc
    from ednas.cli import main as ednas_main
    from ednas.runtime import Timing
    from ednas.runtime.interface import get_runtime

    missing = [n for n in ("litert", "openvino") if not get_runtime(n).available()]
    if missing:
        sys.exit(f"needs the {', '.join(missing)} extra(s): pip install -e '.[litert,openvino]'")
    tune_malloc()
    timing = Timing()
    rec = {"machine": platform.processor() or platform.machine(), "commit": _commit(), "python": platform.python_version(), "torch": torch.__version__,
           "versions": {n: get_runtime(n).versions() for n in ("onnxruntime", "openvino", "litert")},
           "timing": {"threads": timing.threads, "rounds": timing.rounds, "repeats": timing.repeats, "stat": timing.stat}, "networks": {}}
    t0 = time.time()
    # 1. the default run (resumed when its folder is there), its files and scores
    if not (a.run / "summary.json").is_file():
        rc = ednas_main(["run", "--out", str(a.run), "--no-progress"])
        if rc != 0:
            sys.exit(f"the default ednas run failed (exit {rc})")
    set_threads(1)
    summary = json.loads((a.run / "summary.json").read_text())
    exp = json.loads((a.run / "export" / "export.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tfl = tmp / "tflite"
        rc = ednas_main(["export", "--model", str(a.run / "train" / "model.pt"), "--out", str(tfl), "--format", "tflite", "--no-openvino"])
        if rc != 0:
            sys.exit(f"ednas export --format tflite failed (exit {rc})")
        t = json.loads((tfl / "export.json").read_text())["tflite"]
        size = int(exp["input_shape"][-1])
        files = {"onnx_fp32": exp["onnx"], "onnx_int8": exp["onnx_quant"], "tflite_fp32": t["file"], "tflite_int8": t["file_int8"]}
        ov = exp.get("openvino") or {}
        rec["networks"]["default-run"] = {
            "arch": summary["arch"], "data": summary["data"], "n_eval": exp["n_eval"], "input_size": size,
            "top1": {"onnxruntime": {"fp32": exp["top1_fp32"], "int8": exp["top1_quant"]},
                     "openvino": {"fp32": ov.get("top1_fp32"), "int8": ov.get("top1_quant")},
                     "litert": {"fp32": t["top1_fp32"], "int8": t["top1_int8"]}},
            "openvino_agreement_with_ort": {"fp32": ov.get("agreement_fp32"), "int8": ov.get("agreement_quant")},
            "latency": _time(files, size, timing),
        }
        # 2. MobileNetV2-CIFAR, latency only
        from ednas.report.baselines import build_baseline

        calib = np.random.default_rng(0).normal(size=(32, 3, 32, 32)).astype(np.float32)
        for w in (1.0, 0.35):
            m, _ = build_baseline("tv-mobilenetv2", 10, 32, width=w)
            f = _files(m.eval(), 32, tmp / f"mbv2_{w}", calib)
            files = {"onnx_fp32": f["ort_fp32"], "onnx_int8": f["ort_int8"], "tflite_fp32": f["litert_fp32"], "tflite_int8": f["litert_int8"]}
            rec["networks"][f"mobilenetv2-cifar_w{w}"] = {"latency": _time(files, 32, timing)}
    rec["wall_s"] = round(time.time() - t0, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rec, indent=1))
    for name, n in rec["networks"].items():
        lat = n["latency"]
        print(name, {k: lat[k]["ms"] for k in lat if "_" in k and k.split("_")[-1] in ("fp32", "int8") and isinstance(lat[k], dict) and "ms" in lat[k]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
