"""Benchmark: the report's default baselines on digits, as ``ednas run`` trains them.

Trains every network of ``FIXED_BASELINES`` (width-scaled, re-strided for
32x32; see ``ednas/report/baselines.py``) with the training recipe for
``--epochs`` epochs on the built-in digits, 2 training threads, and times
each with ONNX Runtime at 1 thread (the table's).  Records per network: test
top-1, params, MACs, latency, training and total wall time; and the total,
which must stay within ``ednas run``'s 10-minute budget (target: 2-3 min).

    python benchmarks/profile_baselines.py [--epochs 10] [--names mobilenetv2,mixnet]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402


def main() -> None:
    from ednas._perf import set_threads, tune_malloc
    from ednas.data import load_data
    from ednas.report.baselines import FIXED_BASELINES, run_baselines
    from ednas.runtime import Timing
    from ednas.train import TrainConfig

    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--names", default=",".join(FIXED_BASELINES))
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    tune_malloc()
    set_threads(a.threads)
    names = [n for n in a.names.split(",") if n]
    with tempfile.TemporaryDirectory() as d:
        t = time.time()
        res = run_baselines(load_data("digits"), Path(d), names, TrainConfig(epochs=a.epochs), target="host-ort",
                            timing=Timing(threads=1), progress=False)
        total = time.time() - t
    keep = ("name", "title", "width", "strides_removed_at", "top1", "params", "macs", "latency_ms", "train_wall_s", "wall_s")
    write_result("profile_baselines", {
        "command": f"run_baselines('digits', names={names}, epochs={a.epochs}, threads=1, target='host-ort'), {a.threads} training threads",
        "epochs": a.epochs,
        "total_wall_s": total,
        "target_total_wall_s": 180.0,
        "networks": [{k: r.get(k) for k in keep} for r in res],
    })


if __name__ == "__main__":
    main()
