"""Benchmark: one CPU name, two kinds of processor -- Pareto v2's pinned table on a machine of another kind.

Pareto v2's rows are priced by a table pinned to the machine it was measured
on (``results/pareto_v2_lut.json``, an ``AMD EPYC`` with 512 KiB of L2 per
core, a Zen 3) and measured beside that table's reference network,
which scales a timing to the table's speed.  Cloud hosts give one name to
different processors: on a Zen 4 (family 25 model 17, 1 MiB L2), also
``AMD EPYC``, the sixth session's rows measured the searched networks 10-15 %
under their prediction and matched the ``uniform`` rival one width step
narrower.  This script times every distinct network of Pareto v2's rows at
one budget (default 0.8 of the range, B3) here, in one interleaved loop
beside the pinned table's reference network, and sets each against (a) the
table's prediction and (b) the figure its row recorded where it ran.  Writes
``results/machine_kind.json`` (``machine_kind_f0.2.json`` for ``--frac 0.2``, and so on); its ``cpu_id`` says which
kind ran it.

    python benchmarks/machine_kind.py            # about 3 min on 2 cores
    python benchmarks/machine_kind.py --frac 0.2 # B1's networks
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result  # noqa: E402


def _rows(frac: float) -> list[dict]:
    """Pareto v2's rows at ``frac`` with their details (the main files and any unmerged shard)."""
    out = []
    for rows_f in sorted(RESULTS.glob("pareto_v2*.json")):
        if rows_f.name.endswith("_details.json") or "_lut" in rows_f.name or "machine" in rows_f.name:
            continue
        det_f = rows_f.with_name(rows_f.stem + "_details.json") if "shard" in rows_f.name else RESULTS / "pareto_v2_details.json"
        if not det_f.is_file():
            continue
        rows = json.loads(rows_f.read_text())["rows"]
        det = {(d["method"], d["seed"], d["budget_ms"]): d for d in json.loads(det_f.read_text())["rows"] if d.get("frac") == frac}
        for r in rows:
            d = det.get((r["method"], r["seed"], r["budget_ms"]))
            if d and d.get("arch") and r.get("latency_ms_measured"):
                out.append({**r, "arch": d["arch"], "predicted_ms": d.get("predicted_latency_ms"), "cpu_id": d.get("cpu_id"),
                            "width_mult": d.get("width_mult")})
    seen, uniq = set(), []
    for r in out:
        k = (r["method"], r["seed"], r["budget_ms"])
        if k not in seen:
            seen.add(k)
            uniq.append(r)
    return uniq


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frac", type=float, default=0.8, help="the rows' budget as a fraction of the range (Pareto v2: 0.2, 0.5, 0.8)")
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args(argv)

    from ednas import build_model, parse_arch
    from ednas._perf import set_threads, tune_malloc
    from ednas.latency.measure import deployed_bytes, table_reference
    from ednas.latency.model import LatencyModel
    from ednas.latency.table import load_table
    from ednas.runtime import Timing, time_onnx
    from ednas.runtime.board import machine

    tune_malloc()
    set_threads(1)
    table = load_table(RESULTS / "pareto_v2_lut.json", input_size=32)
    space = parse_arch(table.space)
    model = LatencyModel(space, 32, 10, table)
    ref, why = table_reference(table)
    if ref is None:
        sys.exit(f"the pinned table's reference network cannot be timed here: {why}")
    rows = _rows(a.frac)
    if not rows:
        sys.exit(f"no Pareto v2 rows at frac {a.frac} in {RESULTS}")
    archs = sorted({r["arch"] for r in rows})
    files = {f"n{i}": deployed_bytes(build_model(parse_arch(arch), 10).eval(), 32, table.meta.get("quant")) for i, arch in enumerate(archs)}
    timing = Timing(threads=1, rounds=a.rounds)
    res = time_onnx(files, timing, reference=ref)
    now = {arch: res[f"n{i}"] for i, arch in enumerate(archs)}

    def predicted(r):
        if r["predicted_ms"] is not None:
            return r["predicted_ms"]
        try:
            return model.predict(parse_arch(r["arch"]))
        except Exception:  # a scaled (uniform, mobilenet) network: not in the pinned table's space
            return None

    out_rows = []
    for r in rows:
        t = now[r["arch"]]
        pred = predicted(r)
        out_rows.append({"method": r["method"], "seed": r["seed"], "budget_ms": r["budget_ms"], "arch": r["arch"], "width_mult": r["width_mult"],
                         "row_cpu_id": r["cpu_id"], "row_measured_ms": r["latency_ms_measured"], "predicted_ms": pred,
                         "now_scaled_ms": t.get("scaled_ms"), "now_raw_ms": t["ms"],
                         "now_over_predicted": t["scaled_ms"] / pred if pred and t.get("scaled_ms") else None,
                         "now_over_row": t["scaled_ms"] / r["latency_ms_measured"] if t.get("scaled_ms") else None})

    here = machine()

    def summary(group):
        g = [x for x in out_rows if group(x)]
        vals = lambda k: [x[k] for x in g if x[k] is not None]  # noqa: E731
        return {"n": len(g),
                **{f"median_{k}": (statistics.median(vals(k)) if vals(k) else None) for k in ("now_over_predicted", "now_over_row")},
                **{f"range_{k}": ([min(vals(k)), max(vals(k))] if vals(k) else None) for k in ("now_over_predicted", "now_over_row")}}

    here_kind = lambda x: x["row_cpu_id"] == here["cpu_id"]  # noqa: E731
    kinds = {
        "searched, unscaled space (stem c16)": lambda x: x["width_mult"] in (None, 1.0) and x["method"] not in ("uniform", "mobilenetv2-cifar"),
        "ednas-wide (x1.25 skeleton, stem c24)": lambda x: x["method"] == "ednas-wide",
        "uniform (width-matched)": lambda x: x["method"] == "uniform",
    }
    groups = {}
    for name, kind in kinds.items():
        groups[f"{name}, rows measured on another or unrecorded processor kind"] = lambda x, kind=kind: kind(x) and not here_kind(x)
        groups[f"{name}, rows measured on this processor kind"] = lambda x, kind=kind: kind(x) and here_kind(x)
    result = {"frac": a.frac, "table": "results/pareto_v2_lut.json", "table_machine": table.meta.get("machine"), "machine_here": here,
              "reference_ms_table": table.meta["reference"]["ms"], "rounds": a.rounds,
              "summary": {k: summary(g) for k, g in groups.items()}, "rows": out_rows}
    # B3 (the default) keeps its historical name; another budget gets its own file
    path = write_result("machine_kind" if a.frac == 0.8 else f"machine_kind_f{a.frac:g}", result)
    for k, s in result["summary"].items():
        print(f"{k}: {json.dumps(s)}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
