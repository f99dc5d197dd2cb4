"""Does the host-ort table predict end-to-end latency, in fp32 and in int8?

For each space (``cifar`` at 32x32, ``imagenet`` at 224x224) and each
precision (``f32``; ``i8``: every operator timed as the quantized subgraph
ONNX Runtime runs) this builds a fresh ``host-ort`` table (1 thread; its
reference network timed between the rounds; the constant fitted on 5
networks drawn with seed 1234), then validates it on 30 networks drawn with
seed 0 (excluding the fit ones), each fused, exported to ONNX (and, for
``i8``, quantized by the quantizer of ``ednas export``) and timed end to end
with the same session options, interleaved over rounds beside the
reference network.  The primary sampling is ``stratified`` (it spans the
space from cheapest to most expensive); ``uniform`` sampling is reported
beside it.  MAPE and Spearman are given against the timings scaled by the
reference network (``mape``) and against the raw timings (``mape_raw``).

Writes ``benchmarks/results/lut_validation.json`` (``spaces``: f32,
``spaces_i8``: int8; + one scatter PNG per space, precision and sampling,
and the tables ``lut_host-ort_<space>[_i8].json``).

    .venv/bin/python benchmarks/lut_validation.py            # both spaces, f32 and i8 (about 25 min on a quiet 2-core machine)
    .venv/bin/python benchmarks/lut_validation.py --quick    # a proof that it runs (cifar, 12 networks, short rounds)
    .venv/bin/python benchmarks/lut_validation.py --spaces cifar --dtypes i8 --archs 30
    .venv/bin/python benchmarks/lut_validation.py --spaces imagenet --samplings uniform \
        --keep-tables --out benchmarks/results/lut_validation_rerun.json   # revalidate a table
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ednas import preset  # noqa: E402
from ednas.arch.spec import PRESETS  # noqa: E402
from ednas.io import atomic_write_json  # noqa: E402
from ednas.latency import build_table, load_table, validate_table  # noqa: E402
from ednas.latency.validate import scatter_plot  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CLASSES = {"cifar": 10, "imagenet": 1000, "imagenet-mbv2": 1000}


def _sh(cmd: str) -> str:
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=ROOT, timeout=30).stdout.strip()
    except Exception as e:  # noqa: BLE001 - provenance only
        return f"unavailable: {e}"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spaces", nargs="+", default=["cifar", "imagenet"])
    p.add_argument("--archs", type=int, default=30)
    p.add_argument("--samplings", nargs="+", default=["stratified", "uniform"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtypes", nargs="+", default=["f32", "i8"], choices=["f32", "i8", "i16"])
    p.add_argument("--rounds", type=int, default=15, help="validation rounds")
    p.add_argument("--quick", action="store_true", help="cifar only, 12 networks, 5 rounds, a short build: proves the script runs")
    p.add_argument("--out", default=str(RESULTS / "lut_validation.json"), type=lambda v: str(Path(v).resolve()))
    p.add_argument("--keep-tables", action="store_true", help="validate the existing lut_host-ort_<space>.json instead of rebuilding it")
    args = p.parse_args(argv)
    if args.quick:
        args.spaces, args.archs, args.rounds, args.samplings = ["cifar"], 12, 5, args.samplings[:1]

    import torch

    torch.set_num_threads(1)  # export only; timing threads are set per session
    result = {
        "what": "host-ort table (sum of operators + fitted constant) vs end-to-end ONNX Runtime latency of sampled architectures",
        "targets": {"mape_pct_max": 10.0, "spearman_min": 0.95, "archs_min": 30},
        "git_commit": _sh("git rev-parse HEAD"),
        "git_dirty": bool(_sh("git status --porcelain -- ednas/latency benchmarks/lut_validation.py")),
        "machine": _sh("lscpu | head -20"),
        "nproc": os.cpu_count(),
        "threads": args.threads,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv),
        "quick": args.quick,
        "spaces": {},
    }
    for dtype, name in [(d, n) for d in args.dtypes for n in args.spaces]:
        section = "spaces" if dtype == "f32" else f"spaces_{dtype}"
        result.setdefault(section, {})
        space, size = preset(name), PRESETS[name][1]
        ncls = CLASSES.get(name, 10)
        suffix = ("" if dtype == "f32" else f"_{dtype}") + ("_quick" if args.quick else "")  # a quick table never replaces a full one
        lut = RESULTS / f"lut_host-ort_{name}{suffix}.json"
        entry = {"input_size": size, "num_classes": ncls, "space": space.format(), "dtype": dtype, "table": str(lut.relative_to(ROOT))}
        if args.keep_tables and lut.exists():
            table = load_table(lut, input_size=size)
            entry["table_reused_from"] = table.meta.get("created")
        else:
            if lut.exists():
                lut.unlink()  # a fresh table: the benchmark measures the build too
            entry["load_before_build"] = _load()
            t0 = time.time()
            quick = dict(repeats=30, rounds=3) if args.quick else {}
            table = build_table("host-ort", space, size, ncls, out=lut, threads=args.threads, progress=True, dtype=dtype, **quick)
            entry["build_s"] = round(time.time() - t0, 1)
        entry["entries"] = len(table)
        entry["constant_ms"] = table.constant_ms
        entry["constant_fit_residuals_ms"] = table.meta["constant"]["residuals_ms"]
        entry["reference_ms"] = (table.meta.get("reference") or {}).get("ms")
        for sampling in args.samplings:
            entry[f"load_before_{sampling}"] = _load()
            t0 = time.time()
            res = validate_table(table, n=args.archs, seed=0, sampling=sampling, rounds=args.rounds)
            res["validate_s"] = round(time.time() - t0, 1)
            tag = "" if dtype == "f32" else f"_{dtype}"
            png = Path(args.out).with_name(f"{Path(args.out).stem}_{name}{tag}_{sampling}.png")
            res["plot"] = str(png.relative_to(ROOT))
            scatter_plot(res, png, title=f"{name} {size}x{size}, host-ort {dtype}, 1 thread, {sampling} sample\n"
                                         f"MAPE {res['mape']:.1f} %, Spearman {res['spearman']:.3f}, n {res['n']}")
            entry[sampling] = res
            print(f"{name} {dtype} {sampling}: n={res['n']} MAPE={res['mape']:.2f}% (raw {res['mape_raw']:.2f}%) Spearman={res['spearman']:.4f} "
                  f"(raw {res['spearman_raw']:.4f}) reference x{res['reference'].get('ratio')} drift={res['drift']}", flush=True)
        entry["load_after"] = _load()
        result[section][name] = entry
        atomic_write_json(args.out, result)
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
