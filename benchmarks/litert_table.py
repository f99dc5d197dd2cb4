"""Benchmark: a ``host-litert`` (or ``host-openvino``) latency table built and validated end to end, as ``host-ort``'s is.

Builds the table of ``--space`` (default the elastic ``cifar`` preset) on
``--target`` (``host-litert``: LiteRT, XNNPACK; ``host-openvino``: OpenVINO's
CPU plugin) with the defaults of ``ednas lut build`` (1 thread, the
sandwich method, the reference network, 5 fit networks), then validates it
on ``--archs`` (30) networks sampled across the space's range (stratified,
seed 0, the fit networks excluded), each converted by litert-torch and timed
in LiteRT end to end beside the reference network.  Writes
``results/litert_table.json``: the build's wall time and size, the
validation's MAPE and Spearman (scaled and raw), the constant, and the ratio
of each 7x7 depthwise entry to its 3x3 twin.

    python benchmarks/litert_table.py                 # needs the litert extra; about 15 min on an idle 2-core machine
    python benchmarks/litert_table.py --space cifar-kernels --archs 30
    python benchmarks/litert_table.py --dtype i8       # full-integer int8 (results/litert_table_i8.json)
    python benchmarks/litert_table.py --target host-openvino [--dtype i8]   # results/openvino_table[_i8].json
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="cifar")
    ap.add_argument("--archs", type=int, default=30, help="validation networks")
    ap.add_argument("--dtype", default="f32", choices=("f32", "i8"), help="f32, or i8: full-integer int8 operators and networks")
    ap.add_argument("--target", default="host-litert", choices=("host-litert", "host-openvino"))
    ap.add_argument("--out", type=Path, default=None, help="default results/litert_table.json (i8: litert_table_i8.json; openvino_...)")
    a = ap.parse_args(argv)
    stem = "litert" if a.target == "host-litert" else "openvino"
    a.out = a.out or RESULTS / (f"{stem}_table.json" if a.dtype == "f32" else f"{stem}_table_{a.dtype}.json")

    from ednas._perf import set_threads, tune_malloc
    from ednas.arch.spec import load_space
    from ednas.latency.build import build_table
    from ednas.latency.validate import validate_table
    from ednas.runtime.interface import runtime_of_target

    rt = runtime_of_target(a.target)
    if not rt.available():
        sys.exit(f"{a.target} needs its extra: {rt.extra}")
    tune_malloc()
    set_threads(1)
    space = load_space(a.space, 32)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        table = build_table(a.target, space, 32, 10, out=Path(tmp) / "lut.json", dtype=a.dtype)
        build_s = time.time() - t0
        t1 = time.time()
        v = validate_table(table, space, n=a.archs, num_classes=10)
        validate_s = time.time() - t1
    e = table.entries
    ratios = {k: round(e[k]["ms"] / e[k.replace("_k7_", "_k3_")]["ms"], 2) for k in e
              if k.startswith("dw_") and "_k7_" in k and "_s1_" in k and e.get(k.replace("_k7_", "_k3_"), {}).get("ms", 0) > 0}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    rec = {
        "space": a.space, "target": a.target, "dtype": a.dtype, "quant": table.meta.get("quant"), "commit": commit, "machine": platform.processor() or platform.machine(),
        rt.name: rt.versions(), "operators": len(e), "build_s": round(build_s, 1), "validate_s": round(validate_s, 1),
        "constant_ms": table.constant_ms, "reference_ms": table.meta["reference"]["ms"],
        "validation": {k: v[k] for k in ("n", "mape", "spearman", "mape_raw", "spearman_raw", "max_abs_pct_error", "mean_pct_error",
                                         "measured_range_ms", "predicted_range_ms", "drift", "measured_with")},
        "dw7_over_dw3_stride1": ratios,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rec, indent=1))
    print(json.dumps({k: rec[k] for k in ("space", "operators", "build_s", "validate_s", "validation")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
