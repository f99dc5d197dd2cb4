"""Benchmark: each preset's latency range on ``host-ort``: how much room a budget has to choose.

For each preset, builds (or reuses from the cache) its ``host-ort`` table in
each precision asked for, and reports the table's range (the cheapest and the
dearest network of the space, exact over coupled widths:
``LatencyModel.min_ms``/``max_ms``), then times those two networks end to end
as the table prices networks (``measure_latency`` with the table: its
precision, scaled to its reference network's speed), interleaved over rounds,
and gives the ratio largest / smallest both ways.  Parameters and MACs of the
two networks are counted too.

    python benchmarks/space_range.py [--presets cifar cifar-kernels imagenet] [--dtypes f32 i8] [--rounds 3]

Writes results/space_range.json; rows of presets and precisions not rerun
are kept from the file (each row records its date and commit).  Target: the
elastic ``cifar`` at least 4x (largest / smallest) on ``host-ort``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, commit, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["cifar", "cifar-kernels", "imagenet"])
    ap.add_argument("--dtypes", nargs="+", default=["f32", "i8"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cache", default="~/.cache/ednas/lut")
    a = ap.parse_args()

    from ednas._perf import set_threads, tune_malloc
    from ednas.arch.spec import PRESETS, preset
    from ednas.latency.build import target_table
    from ednas.latency.measure import measure_latency
    from ednas.latency.model import LatencyModel
    from ednas.nn import build_model, count_macs

    tune_malloc()
    set_threads(1)
    rows = []
    for name in a.presets:
        size = PRESETS[name][1]
        classes = 10 if size <= 64 else 1000
        space = preset(name)
        for dtype in a.dtypes:
            if size > 64 and dtype != "f32":
                continue  # the 224-px space: fp32 only (an int8 table of it takes hours here)
            t0 = time.time()
            table = target_table("host-ort", space, size, classes, a.cache, False, dtype)
            build_s = time.time() - t0
            model = LatencyModel(space, size, classes, table)
            picks = {"smallest": model.extreme_picks(True), "largest": model.extreme_picks(False)}
            archs = {k: space.with_picks(p, branches=False) for k, p in picks.items()}
            nets = {k: build_model(arch, classes).eval() for k, arch in archs.items()}
            e2e = {k: [] for k in nets}
            for _ in range(a.rounds):
                for k, net in nets.items():
                    e2e[k].append(measure_latency(net, size, table=table))
            med = {k: statistics.median(v) for k, v in e2e.items()}
            row = {
                "preset": name, "dtype": dtype, "input_size": size, "entries": len(table.entries), "table_build_s": round(build_s, 1),
                "table_min_ms": model.min_ms, "table_max_ms": model.max_ms, "table_ratio": model.max_ms / model.min_ms,
                "e2e_smallest_ms": med["smallest"], "e2e_largest_ms": med["largest"], "e2e_ratio": med["largest"] / med["smallest"],
                "e2e_rounds": e2e,
                "smallest": {"arch": archs["smallest"].format(), "params": sum(p.numel() for p in nets["smallest"].parameters()),
                             "macs": int(count_macs(nets["smallest"], size)[0])},
                "largest": {"arch": archs["largest"].format(), "params": sum(p.numel() for p in nets["largest"].parameters()),
                            "macs": int(count_macs(nets["largest"], size)[0])},
            }
            row.update(date=time.strftime("%Y-%m-%d %H:%M:%S"), commit=commit())
            rows.append(row)
            print(f"{name:14s} {dtype}: table {model.min_ms:.4f}-{model.max_ms:.4f} ms ({row['table_ratio']:.2f}x), "
                  f"end to end {med['smallest']:.4f}-{med['largest']:.4f} ms ({row['e2e_ratio']:.2f}x)", flush=True)
    write_result("space_range", {"target": "host-ort", "threads": 1, "rounds": a.rounds, "rows": _kept(rows) + rows})


def _kept(rows: list) -> list:
    """The rows of the results file whose (preset, precision) was not rerun, each with its file's date and commit."""
    import json

    path = RESULTS / "space_range.json"
    if not path.is_file():
        return []
    old = json.loads(path.read_text())
    done = {(r["preset"], r["dtype"]) for r in rows}
    return [{"date": old.get("date"), "commit": old.get("commit"), **r} for r in old.get("rows", []) if (r["preset"], r["dtype"]) not in done]


if __name__ == "__main__":
    main()
