"""Benchmark: searched networks against hand-designed ones, random search and multi-path search.

For each data set (the CIFAR-10 sample; digits as a quick pass), three
budgets on ``host-ort`` (fractions of the space's range on the measured
table), and each seed, every method gives one network, trained from scratch
with the same recipe and epochs, then tested, counted and timed alike:

================  =====================================================================
``ednas``         ``ednas search`` with every default (P = 2, dealt batches, budget fit)
``ednas-p1``      the same with one path (no feedback block)
``ednas-shared``  the feedback block as the paper means it: the paths see the same batch
                  and differ only in their Gumbel noise (``--search.path-batches shared``)
``ednas-every4``  a cheaper schedule: an architecture step every 4 weight steps
``ednas-joint``   a cheaper schedule: single-level joint update of weights and alpha
``fbnet``         the multi-path (FBNet-style) supernet, same space, budget and steps
``random``        random search in [0.9 B, B] with the compute of the ``ednas`` search,
                  the best by validation retrained with the same recipe
``mobilenetv2``   MobileNetV2 with the width multiplier whose measured latency matches B
``mobilenetv3``   MobileNetV3-Large, the same
``smallest``      the space's network of the smallest candidates (no budget)
``largest``       the space's network of the largest candidates (no budget)
================  =====================================================================

``results/pareto.json`` holds exactly ``{"machine", "commit", "rows"}``, one
row per network: ``dataset, method, budget_ms, seed, top1,
latency_ms_measured, latency_ms_argmax, macs, params, search_wall_s,
train_wall_s`` (``budget_ms`` is null for ``smallest``/``largest``,
``latency_ms_argmax`` for networks no search derived).  Everything else a
row knows (architecture, fit changes, beta spread, steps, compute, widths)
is in ``results/pareto_details.json``.  Each row runs in its own folder under
``--work`` through :func:`ednas.stage.run_stage`: rerunning the command skips
finished rows and resumes an interrupted one from its checkpoints.

    python benchmarks/pareto.py            # the full benchmark (sized for about 2 h on an idle 2-core machine)
    python benchmarks/pareto.py --quick    # digits, one budget, one seed, tiny epochs: proves it runs (minutes)
    python benchmarks/pareto.py --report   # the BENCHMARKS.md tables and results/pareto_<dataset>.png from the results

Full sizes: CIFAR-10 sample (4500 training images): 10 search epochs (3
weights only), 10 training epochs; digits (1257): 10 and 8.  Budgets
0.25, 0.5, 0.75; seeds 0 and 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, commit, machine  # noqa: E402

CIFAR = Path(os.environ.get("EDNAS_CIFAR_SAMPLE", ROOT.parent / "shared" / "data" / "cifar10"))
ROW_KEYS = ("dataset", "method", "budget_ms", "seed", "top1", "latency_ms_measured", "latency_ms_argmax", "macs", "params",
            "search_wall_s", "train_wall_s")
SEARCHES = {
    "ednas": {},
    "ednas-p1": {"paths": 1},
    "ednas-shared": {"path_batches": "shared"},
    "ednas-every4": {"arch_every": 4},
    "ednas-joint": {"update": "joint"},
    "fbnet": {"supernet": "fbnet"},
}
BASELINES = {"mobilenetv2": "mobilenetv2@match", "mobilenetv3": "mobilenetv3@match"}
FIXED = ("smallest", "largest")
METHODS = (*SEARCHES, "random", *BASELINES, *FIXED)

FULL = {"digits": {"search_epochs": 10, "warmup": 3, "train_epochs": 8},
        "cifar10": {"search_epochs": 10, "warmup": 3, "train_epochs": 10}}
QUICK = {"digits": {"search_epochs": 2, "warmup": 1, "train_epochs": 1},
         "cifar10": {"search_epochs": 2, "warmup": 1, "train_epochs": 1}}


def _say(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


class Bench:
    """One data set's context (data, table, budgets) and the rows run on it."""

    def __init__(self, a, name: str, spec: str, sizes: dict):
        from ednas.context import RunContext
        from ednas.data import DataConfig
        from ednas.latency.config import LatencyConfig

        self.a, self.name, self.sizes = a, name, sizes
        self.ctx = RunContext(data=DataConfig(spec=spec), latency=LatencyConfig(target="host-ort", cache=str(a.work / "lut")),
                              needs_space=True, progress=False)
        self.data, self.space = self.ctx.data, self.ctx.space
        self.model = self.ctx.latency_model()  # measures the table once (cached under --work)
        self.timing = self.ctx.timing

    def search_cfg(self, **overrides):
        from ednas.search import SearchConfig

        s = self.sizes
        return dataclasses.replace(SearchConfig(), epochs=s["search_epochs"], arch_warmup_epochs=s["warmup"], measure=False, **overrides)

    def train_cfg(self):
        from ednas.train.trainer import TrainConfig

        return TrainConfig(epochs=self.sizes["train_epochs"])

    def measure(self, arch: str) -> float:
        from ednas import build_model, parse_arch
        from ednas.latency.measure import measure_latency

        return measure_latency(build_model(parse_arch(arch), self.data.num_classes), self.data.input_size, timing=self.timing)

    def train_row(self, folder: Path, arch: str, seed: int) -> dict:
        from ednas.train.trainer import train

        m = train(self.train_cfg(), folder / "train", arch=arch, data=self.data, seed=seed, progress=False, tensorboard=False, resume=True)
        return {"top1": m["top1"], "macs": m["macs"], "params": m["params"], "train_wall_s": m["wall_s"],
                "latency_ms_measured": self.measure(arch), "val_top1": m["val_top1"],
                "train_steps": m["epochs"] * (len(self.data.labels("train")) // self.train_cfg().batch_size)}

    # -- the methods ---------------------------------------------------------------
    def run_search(self, folder: Path, method: str, budget, seed: int) -> dict:
        from ednas.search import search

        cfg = self.search_cfg(**SEARCHES[method])
        r = search(cfg, folder / "search", data=self.data, latency=self.model, budget=budget, space=self.space, timing=self.timing,
                   seed=seed, progress=False, tensorboard=False, resume=True)
        t = self.train_row(folder, r["arch"], seed)
        details = {k: r.get(k) for k in ("arch", "argmax_arch", "predicted_latency_ms", "argmax_in_band", "n_fit_changes", "fit_changes",
                                         "beta_spread", "steps", "arch_steps", "compute_images", "images_seen", "paths",
                                         "path_batches", "update", "arch_every", "supernet", "val_top1_argmax", "lambda", "lambda_low")}
        details["beta_spread_per_epoch"] = [h.get("beta_spread") for h in r["history"]]
        return {"row": {"latency_ms_argmax": r["latency_ms_argmax"], "search_wall_s": r["wall_s"], **_pick(t)},
                "details": {**details, **{k: t[k] for k in ("val_top1", "train_steps")}}}

    def run_random(self, folder: Path, budget, seed: int, compute_images: int) -> dict:
        from ednas.search import RandomSearchConfig, random_search

        r = random_search(RandomSearchConfig(samples=self.a.random_samples), folder / "random", data=self.data, latency=self.model,
                          budget=budget, space=self.space, recipe=self.train_cfg(), compute_images=compute_images, seed=seed,
                          progress=False)
        t = self.train_row(folder, r["arch"], seed)
        return {"row": {"latency_ms_argmax": None, "search_wall_s": r["wall_s"], **_pick(t)},
                "details": {"arch": r["arch"], "predicted_latency_ms": r["predicted_latency_ms"], "epochs_each": r["epochs_each"],
                            "compute_images": r["compute_images"], "compute_images_target": compute_images,
                            "candidates": [{k: c[k] for k in ("arch", "predicted_latency_ms", "val_top1")} for c in r["candidates"]],
                            "val_top1": t["val_top1"], "train_steps": t["train_steps"]}}

    def run_baseline(self, folder: Path, method: str, budget, seed: int) -> dict:
        from ednas.report.baselines import run_baselines

        b = run_baselines(self.data, folder, [BASELINES[method]], self.train_cfg(), target="host-ort", timing=self.timing, seed=seed,
                          budget_ms=budget.ms, progress=False)[0]
        return {"row": {"top1": b["top1"], "latency_ms_measured": b["latency_ms"], "latency_ms_argmax": None, "macs": b["macs"],
                        "params": b["params"], "search_wall_s": None, "train_wall_s": b["train_wall_s"]},
                "details": {k: b.get(k) for k in ("width", "width_matched", "width_probes", "title", "reference")}}

    def run_fixed(self, folder: Path, method: str, seed: int) -> dict:
        arch = (self.space.smallest_kernels() if method == "smallest" else self.space.largest()).format()
        t = self.train_row(folder, arch, seed)
        return {"row": {"latency_ms_argmax": None, "search_wall_s": None, **_pick(t)},
                "details": {"arch": arch, "predicted_latency_ms": self.model.predict(self.space.smallest_kernels() if method == "smallest"
                                                                                     else self.space.largest()),
                            "val_top1": t["val_top1"], "train_steps": t["train_steps"]}}


def _pick(t: dict) -> dict:
    return {k: t[k] for k in ("top1", "latency_ms_measured", "macs", "params", "train_wall_s")}


def plan(a) -> list[tuple]:
    """Every row to run, in order: (dataset, seed, frac or None, method)."""
    out = []
    for ds in a.datasets:
        for seed in a.seeds:
            for method in a.methods:
                if method in FIXED:
                    out.append((ds, seed, None, method))
            for frac in a.fracs:
                for method in a.methods:
                    if method not in FIXED:
                        out.append((ds, seed, frac, method))
    # random search needs the compute of the ednas search of its cell
    return sorted(out, key=lambda r: (a.datasets.index(r[0]), r[1], -1 if r[2] is None else r[2], r[3] == "random"))


def run(a) -> None:
    from ednas._perf import set_threads, tune_malloc
    from ednas.io import atomic_write_json
    from ednas.stage import run_stage

    tune_malloc()
    set_threads(a.threads)
    a.work.mkdir(parents=True, exist_ok=True)
    todo = plan(a)
    rows, details = [], []
    benches: dict[str, Bench] = {}
    t_start, done_fresh, fresh_wall = time.time(), 0, 0.0
    _say(f"{len(todo)} rows; work folder {a.work}")
    for n, (ds, seed, frac, method) in enumerate(todo, 1):
        if ds not in benches:
            spec = "digits" if ds == "digits" else f"cifar10:{a.cifar}"
            benches[ds] = Bench(a, ds, spec, (QUICK if a.quick else FULL)[ds])
            _say(f"{ds}: {benches[ds].space.format()}; host-ort table {benches[ds].model.min_ms:.4g}-{benches[ds].model.max_ms:.4g} ms")
        b = benches[ds]
        budget = b.model.budget(frac=frac) if frac is not None else None
        folder = a.work / ds / f"seed{seed}" / (f"frac{frac}" if frac is not None else "fixed") / method
        settings = {"dataset": b.data.spec, "seed": seed, "frac": frac, "method": method, "sizes": b.sizes,
                    "budget_ms": budget.ms if budget else None, "timing": dataclasses.asdict(b.timing)}
        if method == "random":
            ref = next((d for d in details if d["dataset"] == ds and d["seed"] == seed and d["frac"] == frac and d["method"] == "ednas"), None)
            if ref is None:
                raise SystemExit("random search needs the ednas row of its cell (include the method ednas)")
            settings.update(compute_images=ref["compute_images"], samples=a.random_samples)

        def work(d: Path, b=b, method=method, budget=budget, seed=seed, settings=settings) -> dict:
            if method in SEARCHES:
                return b.run_search(d, method, budget, seed)
            if method == "random":
                return b.run_random(d, budget, seed, settings["compute_images"])
            if method in BASELINES:
                return b.run_baseline(d, method, budget, seed)
            return b.run_fixed(d, method, seed)

        st = run_stage(folder, settings, work, name=f"{ds} seed {seed} frac {frac} {method}", quiet=True)
        row = {"dataset": ds, "method": method, "budget_ms": budget.ms if budget else None, "seed": seed, **st.result["row"]}
        rows.append({k: row.get(k) for k in ROW_KEYS})
        details.append({"dataset": ds, "method": method, "frac": frac, "seed": seed, "budget_ms": row["budget_ms"], **st.result["details"],
                        "row_wall_s": st.wall_s})
        if not st.skipped:
            done_fresh += 1
            fresh_wall += st.wall_s
        left = len(todo) - n
        eta = f", about {left * fresh_wall / done_fresh / 60:.0f} min left" if done_fresh and left else ""
        _say(f"[{n}/{len(todo)}] {ds} seed {seed} frac {frac} {method}: top-1 {row['top1']:.2f} %, {row['latency_ms_measured']:.4g} ms"
             + (f" (B {row['budget_ms']:.4g})" if row["budget_ms"] else "") + (" (done before)" if st.skipped else f" in {st.wall_s:.0f} s") + eta)
        suffix = "_quick" if a.quick else ""
        atomic_write_json(RESULTS / f"pareto{suffix}.json", {"machine": machine(), "commit": commit(), "rows": rows})
        atomic_write_json(RESULTS / f"pareto_details{suffix}.json", {
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit(), "quick": a.quick, "fracs": a.fracs, "seeds": a.seeds,
            "sizes": {ds: (QUICK if a.quick else FULL)[ds] for ds in a.datasets}, "random_samples": a.random_samples, "threads": a.threads,
            "wall_s": time.time() - t_start, "rows": details})
    _say(f"done: {len(rows)} rows in {(time.time() - t_start) / 60:.1f} min")


# ---------------------------------------------------------------------------
# the BENCHMARKS.md tables and the plots


def _ms(v) -> str:
    return "-" if v is None else f"{v:.4g}"


def _mean_sd(vals) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.2f}"
    return f"{statistics.fmean(vals):.2f} ± {statistics.stdev(vals):.2f}"


def _mean(vals):
    vals = [v for v in vals if v is not None]
    return statistics.fmean(vals) if vals else None


def _pairs(rs: list, method: str) -> list[tuple[dict, dict]]:
    """(ednas row, ``method`` row) of the same budget and seed."""
    ednas = {(r["budget_ms"], r["seed"]): r for r in rs if r["method"] == "ednas"}
    return [(ednas[k], r) for r in rs if r["method"] == method and (k := (r["budget_ms"], r["seed"])) in ednas]


def _vs(rs: list, B: float, other: str) -> tuple[str, bool | None]:
    """ednas against ``other`` at budget B: mean top-1 and measured latency over seeds, and the paired seed wins."""
    pairs = [(e, o) for e, o in _pairs(rs, other) if e["budget_ms"] == B]
    if not pairs:
        return "-", None
    et, ot = _mean([e["top1"] for e, _ in pairs]), _mean([o["top1"] for _, o in pairs])
    el, ol = _mean([e["latency_ms_measured"] for e, _ in pairs]), _mean([o["latency_ms_measured"] for _, o in pairs])
    wins = sum(1 for e, o in pairs if e["top1"] >= o["top1"])
    met = et >= ot and el <= ol
    return (f"{et:.2f} vs {ot:.2f} % ({et - ot:+.2f}), {el:.4g} vs {ol:.4g} ms ({(el / ol - 1) * 100:+.1f} %), "
            f"ednas ≥ in {wins}/{len(pairs)} seeds: {'met' if met else 'missed'}"), met


def _targets(rs: list, dmap: dict, key, budgets: list) -> list[str]:
    """The issue's targets, computed from one data set's rows and their details (nothing typed in by hand)."""
    out = ["Targets, from the rows above (means over seeds; 'met' needs ednas's top-1 ≥ and its measured latency ≤ the other's):", "",
           "| target | budget | result |", "|---|---|---|"]
    for other, what in (("mobilenetv2", "ednas top-1 ≥ width-matched MobileNetV2 at ≤ latency"),
                        ("mobilenetv3", "ednas top-1 ≥ width-matched MobileNetV3 at ≤ latency"),
                        ("random", "ednas top-1 ≥ random search, same compute, at ≤ latency")):
        for bi, B in enumerate(budgets, 1):
            txt, met = _vs(rs, B, other)
            if met is not None:
                out.append(f"| {what} | B{bi} | {txt} |")
    steps = lambda r: dmap.get(key(r), {}).get("steps")  # noqa: E731
    ratios = [e["search_wall_s"] / f["search_wall_s"] for e, f in _pairs(rs, "fbnet") if steps(e) == steps(f)]
    if ratios:
        out.append(f"| ednas search wall ≤ 0.5 × multi-path, equal steps | all | ednas / fbnet = {_mean(ratios):.3f} "
                   f"(range {min(ratios):.3f}-{max(ratios):.3f}, {len(ratios)} pairs): {'met' if max(ratios) <= 0.5 else 'missed'} |")
    for m in SEARCHES:
        g = [d for r in rs if r["method"] == m and (d := dmap.get(key(r), {})).get("argmax_in_band") is not None]
        if g:
            inb = sum(1 for d in g if d["argmax_in_band"])
            fits = sum(1 for d in g if d.get("n_fit_changes"))
            out.append(f"| argmax in [0.9 B, B] before repair | {m} | {inb}/{len(g)} in band; fit changed {fits}/{len(g)} networks |")
    for m in ("ednas-every4", "ednas-joint"):
        diffs = [r["top1"] - e["top1"] for e, r in _pairs(rs, m)]
        if diffs:
            out.append(f"| cheaper schedule, no loss in top-1 | {m} | top-1 − ednas top-1: mean {_mean(diffs):+.2f} points "
                       f"(range {min(diffs):+.2f} to {max(diffs):+.2f}, {len(diffs)} pairs) |")
    return [*out, ""]


def report(a) -> str:
    from ednas.report import figures

    suffix = "_quick" if a.quick else ""
    res = json.loads((RESULTS / f"pareto{suffix}.json").read_text())
    det_path = RESULTS / f"pareto_details{suffix}.json"
    det = json.loads(det_path.read_text())["rows"] if det_path.is_file() else []
    rows = res["rows"]
    key = lambda r: (r["dataset"], r["method"], r["seed"], r["budget_ms"])  # noqa: E731
    dmap = {key(d): d for d in det}
    out = [f"Machine: {res['machine'].get('Model name', '?')}, {res['machine'].get('CPU(s)', '?')} CPU(s); commit `{res['commit']}`.", ""]
    for ds in sorted({r["dataset"] for r in rows}):
        rs = [r for r in rows if r["dataset"] == ds]
        budgets = sorted({r["budget_ms"] for r in rs if r["budget_ms"] is not None})
        fixed = [r for r in rs if r["budget_ms"] is None]
        out += [f"### {ds}", "",
                "| budget B (ms) | method | seeds | test top-1 (%) | measured (ms) | measured / B | argmax before fit / B | MACs | params | search wall (s) | train wall (s) |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for bi, B in enumerate(budgets, 1):
            for m in METHODS:
                g = [r for r in rs if r["budget_ms"] == B and r["method"] == m]
                if not g:
                    continue
                lat, arg = _mean([r["latency_ms_measured"] for r in g]), _mean([r["latency_ms_argmax"] for r in g])
                out.append(f"| B{bi} = {B:.4g} | {m} | {len(g)} | {_mean_sd([r['top1'] for r in g])} | {_ms(lat)} | {_ms(lat / B if lat else None)} "
                           f"| {_ms(arg / B if arg else None)} | {_mean([r['macs'] for r in g]) / 1e6:.2f} M | {_mean([r['params'] for r in g]) / 1e3:.0f} k "
                           f"| {_ms(_mean([r['search_wall_s'] for r in g]))} | {_ms(_mean([r['train_wall_s'] for r in g]))} |")
        for m in FIXED:
            g = [r for r in fixed if r["method"] == m]
            if g:
                lat = _mean([r["latency_ms_measured"] for r in g])
                out.append(f"| - | {m} | {len(g)} | {_mean_sd([r['top1'] for r in g])} | {_ms(lat)} | - | - | {_mean([r['macs'] for r in g]) / 1e6:.2f} M "
                           f"| {_mean([r['params'] for r in g]) / 1e3:.0f} k | - | {_ms(_mean([r['train_wall_s'] for r in g]))} |")
        out.append("")
        # the argmax network before the budget fit, per budget and seed
        out += ["Argmax network of each search before the budget fit (predicted ms / B; fit changes):", "",
                "| budget | seed | " + " | ".join(SEARCHES) + " |", "|---|---|" + "---|" * len(SEARCHES)]
        for bi, B in enumerate(budgets, 1):
            for seed in sorted({r["seed"] for r in rs}):
                cells = []
                for m in SEARCHES:
                    r = next((r for r in rs if r["budget_ms"] == B and r["seed"] == seed and r["method"] == m), None)
                    d = dmap.get((ds, m, seed, B), {})
                    cells.append("-" if r is None or r["latency_ms_argmax"] is None else
                                 f"{r['latency_ms_argmax'] / B:.3f}{'' if d.get('argmax_in_band') else ' (out)'}; {d.get('n_fit_changes', '?')}")
                out.append(f"| B{bi} | {seed} | " + " | ".join(cells) + " |")
        out.append("")
        # beta spread, search wall at equal steps, iteration cost against a training step
        out += ["| search | mean beta spread | steps per path | arch steps | search wall (s) | per-path iteration / training step |", "|---|---|---|---|---|---|"]
        for m in SEARCHES:
            ds_ = [d for d in det if d["dataset"] == ds and d["method"] == m]
            if not ds_:
                continue
            it = []
            for d in ds_:
                r = next((r for r in rs if key(r) == key(d)), None)
                if r and d.get("steps") and d.get("train_steps") and r["train_wall_s"]:
                    it.append((r["search_wall_s"] / (d["steps"] * (d.get("paths") or 1))) / (r["train_wall_s"] / d["train_steps"]))
            out.append(f"| {m} | {_ms(_mean([d.get('beta_spread') for d in ds_]))} | {ds_[0].get('steps')} | {ds_[0].get('arch_steps')} "
                       f"| {_ms(_mean([r['search_wall_s'] for r in rs if r['method'] == m]))} | {_ms(_mean(it))} |")
        out.append("")
        out += _targets(rs, dmap, key, budgets)
        # the plot: means over seeds, one colour per method, labels B1..B3
        points = []
        for bi, B in enumerate(budgets, 1):
            for m in METHODS:
                g = [r for r in rs if r["budget_ms"] == B and r["method"] == m]
                if g:
                    points.append({"label": f"B{bi}", "latency_ms": _mean([r["latency_ms_measured"] for r in g]), "top1": _mean([r["top1"] for r in g]), "kind": m})
        for m in FIXED:
            g = [r for r in fixed if r["method"] == m]
            if g:
                points.append({"label": m, "latency_ms": _mean([r["latency_ms_measured"] for r in g]), "top1": _mean([r["top1"] for r in g]), "kind": m})
        png = figures.accuracy_latency(points, None, "measured latency, host-ort, 1 thread (ms)", title=f"{ds}: test top-1 against measured latency (mean over seeds)",
                                       budgets=budgets)
        path = RESULTS / f"pareto_{ds}{suffix}.png"
        path.write_bytes(png)
        out += [f"![{ds}](benchmarks/results/{path.name})", ""]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="digits, budget 0.5, seed 0, tiny epochs (results/*_quick.json)")
    ap.add_argument("--report", action="store_true", help="print the tables and write the plots from the results, run nothing")
    ap.add_argument("--datasets", nargs="+", choices=("digits", "cifar10"), default=None)
    ap.add_argument("--fracs", type=float, nargs="+", default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--random-samples", type=int, default=4, help="networks the random search trains")
    ap.add_argument("--threads", type=int, default=2, help="training threads")
    ap.add_argument("--cifar", type=Path, default=CIFAR, help="the CIFAR-10 sample's folder (python batches)")
    ap.add_argument("--work", type=Path, default=None, help="the rows' folders (default runs/pareto or runs/pareto-quick)")
    a = ap.parse_args()
    if a.report:
        print(report(a))
        return
    a.datasets = a.datasets or (["digits"] if a.quick else ["digits", "cifar10"])
    if "cifar10" in a.datasets and not (a.cifar / "data_batch_1").is_file():
        _say(f"no CIFAR-10 sample at {a.cifar}: digits only")
        a.datasets = [d for d in a.datasets if d != "cifar10"]
    a.fracs = a.fracs or ([0.5] if a.quick else [0.25, 0.5, 0.75])
    a.seeds = a.seeds if a.seeds is not None else ([0] if a.quick else [0, 1])
    if a.quick:
        a.random_samples = min(a.random_samples, 2)
    a.work = (a.work or ROOT / "runs" / ("pareto-quick" if a.quick else "pareto")).resolve()
    run(a)


if __name__ == "__main__":
    main()
