"""Benchmark: searched networks against hand-designed ones, random search and multi-path search.

Two versions, one script; ``--v2`` picks the second.

**v1** (the default; ``results/pareto.json``): for each data set (the CIFAR-10
sample; digits as a quick pass), three budgets on ``host-ort`` (fractions of
the space's range on the measured table), and each seed, every method gives
one network, trained from scratch with the same recipe and epochs, then
tested, counted and timed alike.  The space is ``cifar-kernels`` (kernels
{3, 5, 7} on a fixed skeleton: the ``cifar`` preset v1 ran on, before the
elastic space took its name); the test split is the data set's own (1000
CIFAR images, 360 digits).

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
train_wall_s, test_data`` (``budget_ms`` is null for ``smallest``/``largest``,
``latency_ms_argmax`` for networks no search derived; ``test_data`` is the
data spec of the split ``top1`` was measured on; results written before it
existed lack it and mean the data set's own test split).  Everything else a
row knows (architecture, fit changes, beta spread, steps, compute, widths)
is in ``results/pareto_details.json``.  Each row runs in its own folder under
``--work`` through :func:`ednas.stage.run_stage`: rerunning the command skips
finished rows and resumes an interrupted one from its checkpoints.

    python benchmarks/pareto.py            # v1 (sized for about 2 h on an idle 2-core machine)
    python benchmarks/pareto.py --quick    # digits, one budget, one seed, tiny epochs: proves it runs (minutes)
    python benchmarks/pareto.py --report   # the BENCHMARKS.md tables and results/pareto_<dataset>.png from the results

v1 sizes: CIFAR-10 sample (4500 training images): 10 search epochs (3
weights only), 10 training epochs; digits (1257): 10 and 8.  Budgets
0.25, 0.5, 0.75; seeds 0 and 1.

**v2** (``--v2``; ``results/pareto_v2.json``, ``results/pareto_v2_details.json``,
work folder ``runs/pareto-v2``; v1's files are left alone): the question
again, with the evidence v1 lacked.

* Space: the elastic ``cifar`` preset (depth 1-3 and two widths per stage,
  expansions {2, 4, 6}, kernels {3, 5, 7}; 5.8x from its smallest network to
  its largest on ``host-ort``), budgets at 0.2, 0.5 and 0.8 of its range on
  the measured fp32 ``host-ort`` table, seeds 0, 1 and 2.
* Data: trained on the CIFAR-10 sample (4500 training images, 500
  validation), tested on the 7000-image ``cifar10-test7k`` set (binomial
  standard error about 0.6 point near 55 %; ``--test``), which every row
  records as ``test_data``.
* Latency: every network timed once after training, in ONNX Runtime fp32,
  batch 1, the table's thread, beside the table's reference network and
  scaled to the table's speed where it has one (as ``ednas run`` checks the
  deployed file); the widths of the two matched networks are chosen the
  same way (:func:`ednas.report.baselines.match_width`: the widest of a
  fine ladder, steps of 0.05, whose timed latency is within B).
* Methods (same recipe and epochs for every trained network):

==================  ===================================================================
``ednas``           Algorithm 1 (P = 2, dealt batches, alternating steps, ``auto``
                    loss, fit), the default search when v2 began; pinned to
                    ``alternate`` so that its rows keep one meaning (the default went
                    to ``joint`` and back as these rows came in: docs/search.md)
``ednas-p1``        the same with one path
``ednas-joint``     the cheaper schedule kept from v1: single-level joint update (the
                    default search: v2's 9 pairs tie it with Algorithm 1, +0.26).  v1
                    measured the same mean top-1 for it and ``ednas-every4`` against
                    the default (+0.77 and +0.75 points on CIFAR) but a narrower spread
                    (-1.0 to +2.2 against -2.6 to +4.4) and the cheaper iteration
                    (1.03x a fixed step against 1.23x); and with v2's shorter search an
                    arch step every 4 batches would leave alpha a quarter of few steps
``fbnet``           the multi-path supernet on the same elastic space (width masks on
                    each path, :class:`ednas.nn.multipath.FBNetBlock`), same steps
``random``          4 networks drawn in [0.9 B, B], trained for the ``ednas`` search's
                    compute in all, the best by validation retrained
``uniform``         the hand-designed network of the same skeleton: the space's
                    ``largest()`` with kernel 3 everywhere (expansion 6, every
                    repeat, the wider width of each stage: MobileNetV2's choices),
                    its width multiplier (:func:`ednas.arch.scale.scale_space`)
                    matched to B by measured latency
``mobilenetv2-cifar``  torchvision's MobileNetV2 with the CIFAR layout (stride-1
                    stem, the first stride-2 stage at stride 1: the last map is
                    4x4, as ``adapt_strides`` makes it), width matched to B the same way
==================  ===================================================================

* Across sessions: a session starts from a fresh checkout (no ``--work``
  folders) and may land on a machine in another speed state, so v2 pins
  its table: the first run saves it as ``results/pareto_v2_lut.json``
  (committed) and every later run prices with that file (budgets fixed,
  networks timed beside its reference network and scaled to its speed);
  rows already in ``results/pareto_v2.json`` (and their details) are kept
  when their budget is the pinned table's, and only the missing ones run.
  The first 16 rows, measured with an earlier table on a machine 1.5x
  faster than the one that pinned it, are kept apart in
  ``results/pareto_v2_machine1*.json`` (their budgets differ).
* ``--report --v2`` gives, besides v1's tables, the paired differences
  (ednas minus each method over the (budget, seed) pairs, mean and 95 %
  t-interval), the targets (measured latency at most 1.05 B at each budget;
  ednas's mean top-1 at least ``uniform`` + 1 point and at least
  ``random``) and two plots: ``pareto_v2_cifar10.png`` (top-1 against
  measured latency) and ``pareto_v2_diffs.png`` (the paired differences).

v2 sizes (``V2_FULL``): 6 search epochs (2 of them weights only), 10
training epochs (v1's), 4 random-search networks; 63 rows.  Estimated from
v1's measured minutes per row (CIFAR: search 6.4 s an epoch, fbnet 12.5 s,
training 3.5-4.7 s an epoch) and the cost of a training step (batch 64,
2 threads) measured here, each against v1's networks: the elastic
metakernel supernet 2.1x v1's supernet, the elastic fbnet supernet 5.0x v1's
fbnet (7.1x the elastic metakernel supernet: 9 whole paths per block), the
networks at the three budgets about 0.8x, 1.2x and 1.7x v1's largest
network, MobileNetV2 about 1.5x.  That gives per (budget, seed) cell about
80 s for each of the three ednas searches, 370 s for fbnet, 40 s for random
search and 60 s for each of the 7 trainings (7000 test images included):
about 2.8 h for the 63 rows with the table's measurement, on an idle 2-core
machine.  ``fbnet`` alone is a third of it.

    python benchmarks/pareto.py --v2            # the v2 benchmark; rerun the same command to resume
    python benchmarks/pareto.py --v2 --quick    # 640/128/1000 images, budget 0.5, seed 0, 1-2 epochs (results/pareto_v2_quick.json)
    python benchmarks/pareto.py --v2 --report   # the tables, paired differences, targets and plots from results/pareto_v2.json
    python benchmarks/pareto.py --v2 --seeds 1 --shard s1   # a second process on other seeds (results/pareto_v2_shard-s1*.json)
    python benchmarks/pareto.py --v2 --merge s1 # when both have stopped: fold the shard's rows into results/pareto_v2.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, commit, machine  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
CIFAR = Path(os.environ.get("EDNAS_CIFAR_SAMPLE", SHARED / "cifar10"))
CIFAR_TEST7K = Path(os.environ.get("EDNAS_CIFAR_TEST7K", SHARED / "cifar10-test7k"))
ROW_KEYS = ("dataset", "method", "budget_ms", "seed", "top1", "latency_ms_measured", "latency_ms_argmax", "macs", "params",
            "search_wall_s", "train_wall_s", "test_data")
#: the searches, each pinned to the schedule it ran with: ``ednas`` is Algorithm 1 (P = 2, alternating steps), ``ednas-joint``
#: the single-level step, the default search (docs/search.md says why)
SEARCHES = {
    "ednas": {"update": "alternate"},
    "ednas-p1": {"paths": 1, "update": "alternate"},
    "ednas-shared": {"path_batches": "shared", "update": "alternate"},
    "ednas-every4": {"arch_every": 4, "update": "alternate"},
    "ednas-joint": {"update": "joint"},
    "fbnet": {"supernet": "fbnet", "update": "alternate"},
}
#: v2's remedies (issue 21: where a target is missed, try at least two), each ``ednas-joint`` (the default when they began) with one change;
#: run with ``--methods``, reported beside the methods they change (Pareto v2 s0 measured the search picking kernel 7 in 60 % of its
#: blocks and the narrow width of the last stage in 5 of 6 networks, against 35 % and 2 of 4 for random search)
REMEDIES = {
    # straight-through one-hot samples: each step trains one sub-network, as single-path one-shot samplers do, instead of a
    # soft mixture in which every larger kernel's outer ring and every wider width is always partly on
    "ednas-hard": {"update": "joint", "hard": True},
    # a longer weights-only warm-up at the same total compute: 4 of the 6 search epochs instead of 2, so that alpha starts from
    # weights trained as long as the stand-alone networks' first epochs
    "ednas-warm4": {"update": "joint", "arch_warmup_epochs": 4},
    # half the search of Algorithm 1 (3 epochs, 1 of them weights only): does the search need its epochs? (the default
    # ``ednas run`` spends 45 % of its time searching; issue 21 asks it to fit in 4 minutes)
    "ednas-e3": {"update": "alternate", "epochs_frac": 0.5},
    # half the search of the default (`joint`, 3 epochs, 1 of them weights only): the last lever on the default ``ednas run``'s
    # time that no row had measured (ednas-e3 halves Algorithm 1, not the default); reported against ``ednas-joint``
    "ednas-joint-e3": {"update": "joint", "epochs_frac": 0.5},
    # the search re-centred: a budget in the outer quarter of the range (either end, here; the library's --latency.recentre
    # re-centres only the top, because of these rows) is searched in the skeleton scaled to put it nearest the middle (at 0.8
    # of the range the searches sat at the space's ceiling while the uniform network matched to it is wider than anything the
    # space holds); each scaled skeleton's table measured and put in the pinned table's units (``Bench.recentred``)
    "ednas-wide": {"update": "joint", "recentre": 0.25},
}
#: the search each remedy changes (the one it is reported against); ``ednas-joint`` where not named
REMEDY_BASE = {"ednas-e3": "ednas"}
BASELINES = {"mobilenetv2": "mobilenetv2@match", "mobilenetv3": "mobilenetv3@match"}
#: v2's networks whose width multiplier is matched to the budget on a fine ladder: the uniform network of the space, MobileNetV2 (CIFAR layout)
MATCHED = {"uniform": None, "mobilenetv2-cifar": "tv-mobilenetv2"}
FIXED = ("smallest", "largest")
V1_METHODS = (*SEARCHES, "random", *BASELINES, *FIXED)
V2_METHODS = ("ednas", "ednas-p1", "ednas-joint", "fbnet", "random", "uniform", "mobilenetv2-cifar")
METHODS = (*V1_METHODS, *MATCHED, *REMEDIES)
#: v1's space: the kernel-only skeleton it ran on (then named ``cifar``)
V1_SPACE = "cifar-kernels"
V2_SPACE = "cifar"

FULL = {"digits": {"search_epochs": 10, "warmup": 3, "train_epochs": 8},
        "cifar10": {"search_epochs": 10, "warmup": 3, "train_epochs": 10}}
QUICK = {"digits": {"search_epochs": 2, "warmup": 1, "train_epochs": 1},
         "cifar10": {"search_epochs": 2, "warmup": 1, "train_epochs": 1}}
V2_FULL = {"cifar10": {"search_epochs": 6, "warmup": 2, "train_epochs": 10}}
#: the quick pass keeps the first images of each split (the test set is interleaved by class: 100 of each)
V2_QUICK = {"cifar10": {"search_epochs": 2, "warmup": 1, "train_epochs": 1, "subset": {"train": 640, "val": 128, "test": 1000}}}


def _say(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def _rel(path: Path) -> str:
    """A data folder as the README names it: relative to the repository when it is beside it."""
    path = Path(path).resolve()
    try:
        return os.path.relpath(path, ROOT) if path.is_relative_to(ROOT.parent) else str(path)
    except ValueError:
        return str(path)


class Bench:
    """One data set's context (data, space, table, budgets) and the rows run on it.

    ``space``: the search space (v1: ``cifar-kernels``, v2: ``cifar``);
    ``test``: a CIFAR folder whose test batch replaces the data set's test
    split (v2: ``cifar10-test7k``); ``priced``: time networks beside the
    table's reference network and scale to the table's speed (v2).
    """

    def __init__(self, a, name: str, spec: str, sizes: dict, space: str, test: Path | None = None, priced: bool = False):
        from ednas.context import RunContext
        from ednas.data import DataConfig, load_data
        from ednas.latency.config import LatencyConfig

        self.a, self.name, self.sizes, self.priced = a, name, sizes, priced
        pinned = _names(a)["table"]
        target = str(pinned) if pinned is not None and pinned.is_file() else "host-ort"
        self.ctx = RunContext(data=DataConfig(spec=spec), space=space, latency=LatencyConfig(target=target, cache=str(a.work / "lut"), recentre=0.0),
                              needs_space=True, progress=False)
        self.data, self.space = self.ctx.data, self.ctx.space
        self.test_data = f"cifar10:{_rel(test)}" if test is not None else (spec if name == "digits" else f"cifar10:{_rel(Path(spec.partition(':')[2]))}")
        if test is not None:
            self.data.splits["test"] = load_data(f"cifar10:{test}", splits=("test",)).splits["test"]
        for split, n in sizes.get("subset", {}).items():
            x, y = self.data.splits[split]
            self.data.splits[split] = (x[:n], y[:n])
        self.n = {s: int(len(self.data.splits[s][1])) for s in ("train", "val", "test")}
        self.model = self.ctx.latency_model()  # measures the table once (cached under --work), or reads the pinned one
        if pinned is not None and not pinned.is_file():  # pin it: later sessions (a fresh checkout) price with the same table
            self.model.table.save(pinned)
        self.timing = self.ctx.timing
        self.table = self.model.table if priced else None

    def settings(self) -> dict:
        """What v2 adds to a row's stage settings (v1's stay as they were, so that its folders resume)."""
        return {"space": self.space.format(), "test_data": self.test_data, "images": self.n, "priced": True} if self.priced else {}

    def search_cfg(self, **overrides):
        from ednas.search import SearchConfig

        s, frac = self.sizes, overrides.pop("epochs_frac", 1.0)
        # a fraction of the search's epochs (and of its warm-up), at least one epoch with alpha steps
        epochs = max(2, round(s["search_epochs"] * frac))
        warmup = min(epochs - 1, max(1, round(s["warmup"] * frac)))
        return dataclasses.replace(SearchConfig(), **{"epochs": epochs, "arch_warmup_epochs": warmup, "measure": False, **overrides})

    def train_cfg(self):
        from ednas.train.trainer import TrainConfig

        return TrainConfig(epochs=self.sizes["train_epochs"])

    def pricing(self):
        from ednas.report.baselines import Pricing

        return Pricing.of("host-ort", self.timing, self.table)

    def measure(self, arch: str) -> float:
        from ednas import build_model, parse_arch
        from ednas.latency.measure import measure_latency

        return measure_latency(build_model(parse_arch(arch), self.data.num_classes), self.data.input_size, timing=self.timing, table=self.table)

    def predict(self, arch: str) -> float | None:
        """The table's latency of a network of the space (None for one outside it, e.g. a scaled width)."""
        from ednas import parse_arch
        from ednas.errors import EdnasError

        try:
            return float(self.model.predict(parse_arch(arch)))
        except (EdnasError, KeyError, ValueError):
            return None

    def train_row(self, folder: Path, arch: str, seed: int) -> dict:
        from ednas.train.trainer import train

        m = train(self.train_cfg(), folder / "train", arch=arch, data=self.data, seed=seed, progress=False, tensorboard=False, resume=True)
        return {"top1": m["top1"], "macs": m["macs"], "params": m["params"], "train_wall_s": m["wall_s"],
                "latency_ms_measured": self.measure(arch), "val_top1": m["val_top1"], "n_test": m.get("n_test"),
                "train_steps": m["epochs"] * (len(self.data.labels("train")) // self.train_cfg().batch_size)}

    # -- the methods ---------------------------------------------------------------
    def run_search(self, folder: Path, method: str, budget, seed: int) -> dict:
        from ednas.search import search

        over = dict({**SEARCHES, **REMEDIES}[method])  # a copy: search_cfg pops from it
        recentre = over.pop("recentre", 0.0)
        mult, space, model = self.recentred(budget.ms, recentre) if recentre else (1.0, self.space, self.model)
        if mult != 1.0:
            budget = dataclasses.replace(model.budget(ms=budget.ms), width_mult=mult)
        cfg = self.search_cfg(**over)
        r = search(cfg, folder / "search", data=self.data, latency=model, budget=budget, space=space, timing=self.timing,
                   seed=seed, progress=False, tensorboard=False, resume=True)
        t = self.train_row(folder, r["arch"], seed)
        details = {k: r.get(k) for k in ("arch", "argmax_arch", "predicted_latency_ms", "argmax_in_band", "n_fit_changes", "fit_changes",
                                         "beta_spread", "steps", "arch_steps", "compute_images", "images_seen", "paths",
                                         "path_batches", "update", "arch_every", "supernet", "val_top1_argmax", "lambda", "lambda_low")}
        details["beta_spread_per_epoch"] = [h.get("beta_spread") for h in r["history"]]
        if recentre:
            details.update({"width_mult": mult, "space": space.format(), "range_ms": [model.min_ms, model.max_ms],
                            "budget_position": (budget.ms - model.min_ms) / (model.max_ms - model.min_ms)})
        return {"row": {"latency_ms_argmax": r["latency_ms_argmax"], "search_wall_s": r["wall_s"], **_pick(t)},
                "details": {**details, **{k: t[k] for k in ("val_top1", "train_steps", "n_test")}}}

    def recentred(self, budget_ms: float, recentre: float):
        """``(width_mult, space, latency model)`` for a search re-centred as ``--latency.recentre`` does (:mod:`ednas.latency.fit`).

        A scaled skeleton needs its own table, and the rows are priced in the
        pinned table's units: its table is measured on host-ort (cached under
        ``--work``), its reference network timed beside the pinned table's
        (``measure_latency`` with the pinned table: scaled to its speed), and
        every entry scaled by that ratio; the result is pinned as
        ``results/pareto_v2_lut_x{MULT}.json`` so that every seed prices with it.
        """
        from ednas import build_model
        from ednas.arch.scale import WIDTH_MULTS, scale_space
        from ednas.latency.build import target_table
        from ednas.latency.fit import fit_width_mult, needs_fit
        from ednas.latency.measure import measure_latency, reference_arch
        from ednas.latency.model import LatencyModel
        from ednas.latency.table import LatencyTable, load_table

        lo, hi = self.model.min_ms, self.model.max_ms
        if not (needs_fit(budget_ms, lo, hi, recentre) or (budget_ms - lo) / (hi - lo) < recentre):  # either end (see REMEDIES)
            return 1.0, self.space, self.model
        size, nc, pinned = self.data.input_size, self.data.num_classes, self.model.table

        def model_of(space):
            m = next(m for m in WIDTH_MULTS if scale_space(self.space, m) == space)
            pin = _names(self.a)["table"]  # beside the pinned table; a quick pass keeps it in its work folder
            path = (pin.parent if pin is not None else self.a.work) / f"pareto_v2_lut_x{m:g}.json"
            if not path.is_file():
                t = target_table("host-ort", space, size, nc, str(self.a.work / "lut"), False, pinned.dtype)
                ref_ms = measure_latency(build_model(reference_arch(space), nc).eval(), size, timing=self.timing, table=pinned)
                f = ref_ms / t.meta["reference"]["ms"]
                d = json.loads(json.dumps({k: v for k, v in t.to_dict().items() if k != "checksum"}))  # a deep copy
                for e in d["entries"].values():
                    for k in ("ms", "spread_ms"):
                        if e.get(k) is not None:
                            e[k] *= f
                d["constant_ms"] *= f
                d["reference"] = {**d["reference"], "ms": ref_ms}
                d["rescaled"] = {"to": "pareto_v2_lut.json", "factor": f, "measured_reference_ms": t.meta["reference"]["ms"],
                                 "how": "this skeleton's reference network timed beside the pinned table's, scaled to its speed"}
                LatencyTable.from_dict(d).save(path)
                _say(f"table for width x{m:g} measured and put in the pinned table's units (x{f:.4f}): {_rel(path)}")
            return LatencyModel(space, size, nc, load_table(path, input_size=size))

        return fit_width_mult(self.space, budget_ms, self.model, model_of, target="host-ort")

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
                            "val_top1": t["val_top1"], "train_steps": t["train_steps"], "n_test": t["n_test"]}}

    def run_baseline(self, folder: Path, method: str, budget, seed: int) -> dict:
        from ednas.report.baselines import run_baselines

        b = run_baselines(self.data, folder, [BASELINES[method]], self.train_cfg(), target="host-ort", timing=self.timing, seed=seed,
                          budget_ms=budget.ms, progress=False, table=self.table)[0]
        return {"row": {"top1": b["top1"], "latency_ms_measured": b["latency_ms"], "latency_ms_argmax": None, "macs": b["macs"],
                        "params": b["params"], "search_wall_s": None, "train_wall_s": b["train_wall_s"]},
                "details": {k: b.get(k) for k in ("width", "width_matched", "width_probes", "title", "reference", "n_test")}}

    def match(self, folder: Path, method: str, budget) -> dict:
        """The widest width of the library's ladder (0.05 to 2.0 in steps of 0.05) whose network is timed within the budget (kept in ``folder/match.json``)."""
        from ednas import build_model
        from ednas.arch.scale import scale_space, uniform_arch
        from ednas.io import atomic_write_json, read_json
        from ednas.report.baselines import MATCH_WIDTHS, build_baseline, match_width

        path = folder / "match.json"
        if path.is_file():
            return read_json(path)
        nc, size = self.data.num_classes, self.data.input_size
        if MATCHED[method] is None:
            base = uniform_arch(self.space)
            build = lambda w: build_model(scale_space(base, w), nc).eval()  # noqa: E731
        else:
            build = lambda w: build_baseline(MATCHED[method], nc, size, w)[0].eval()  # noqa: E731
        pricing = self.pricing()
        m = match_width(build, lambda net: pricing.measure(net, size), budget.ms, widths=MATCH_WIDTHS)
        m = {k: m[k] for k in ("width", "latency_ms", "matched", "probes")}
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, m)
        return m

    def run_matched(self, folder: Path, method: str, budget, seed: int) -> dict:
        """``uniform`` or ``mobilenetv2-cifar`` at the width matched to the budget, trained with the recipe and timed once after training."""
        from ednas.arch.scale import scale_space, uniform_arch
        from ednas.report.baselines import run_baselines

        m = self.match(folder, method, budget)
        info = {"width": m["width"], "width_matched": m["matched"], "width_probes": m["probes"], "latency_ms_at_match": m["latency_ms"]}
        if MATCHED[method] is None:
            arch = scale_space(uniform_arch(self.space), m["width"]).format()
            t = self.train_row(folder, arch, seed)
            return {"row": {"latency_ms_argmax": None, "search_wall_s": None, **_pick(t)},
                    "details": {"arch": arch, "predicted_latency_ms": self.predict(arch), **info,
                                **{k: t[k] for k in ("val_top1", "train_steps", "n_test")}}}
        b = run_baselines(self.data, folder / "net", [f"{MATCHED[method]}@{m['width']:g}"], self.train_cfg(), target="host-ort",
                          timing=self.timing, seed=seed, progress=False, table=self.table)[0]
        return {"row": {"top1": b["top1"], "latency_ms_measured": b["latency_ms"], "latency_ms_argmax": None, "macs": b["macs"],
                        "params": b["params"], "search_wall_s": None, "train_wall_s": b["train_wall_s"]},
                "details": {**info, **{k: b.get(k) for k in ("title", "reference", "strides_removed_at", "final_map", "n_test")}}}

    def run_fixed(self, folder: Path, method: str, seed: int) -> dict:
        net = self.space.smallest_kernels() if method == "smallest" else self.space.largest()
        arch = net.format()
        t = self.train_row(folder, arch, seed)
        return {"row": {"latency_ms_argmax": None, "search_wall_s": None, **_pick(t)},
                "details": {"arch": arch, "predicted_latency_ms": self.model.predict(net), "val_top1": t["val_top1"],
                            "train_steps": t["train_steps"], "n_test": t["n_test"]}}


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


def _names(a) -> dict:
    """The result files and plots of this version and mode."""
    v = "_v2" if a.v2 else ""
    q = "_quick" if a.quick else ""
    out = {"rows": RESULTS / f"pareto{v}{q}.json", "details": RESULTS / f"pareto{v}_details{q}.json", "prefix": f"pareto{v}", "suffix": q,
           "table": RESULTS / "pareto_v2_lut.json" if a.v2 and not a.quick else None}
    if getattr(a, "shard", None):  # a second process's rows, kept apart until --merge
        out["main_rows"], out["main_details"] = out["rows"], out["details"]
        out["rows"], out["details"] = RESULTS / f"pareto{v}_shard-{a.shard}.json", RESULTS / f"pareto{v}_shard-{a.shard}_details.json"
    return out


def _read_rows(rows_path: Path, details_path: Path) -> list[tuple[dict, dict]]:
    """(row, details) pairs of a results file and its details file (empty when either is missing)."""
    if not (rows_path.is_file() and details_path.is_file()):
        return []
    rows = json.loads(rows_path.read_text())["rows"]
    details = json.loads(details_path.read_text())["rows"]
    return [(r, d) for r, d in zip(rows, details) if (r["dataset"], r["method"], r["seed"]) == (d["dataset"], d["method"], d["seed"])]


def _ordered(pairs: list) -> list:
    """(row, details) pairs in the order :func:`plan` runs them: by seed, then budget, random search last in its cell (stable)."""
    return sorted(pairs, key=lambda p: (p[1]["dataset"], p[1]["seed"], -1 if p[1]["frac"] is None else p[1]["frac"], p[1]["method"] == "random"))


def merge(a) -> None:
    """Fold a shard's rows (``--shard NAME``'s files) into the main results files: rows the main files lack are added, sorted as
    :func:`plan` orders them; the shard's files are removed."""
    from ednas.io import atomic_write_json

    a.shard = a.merge
    files = _names(a)
    main = _read_rows(files["main_rows"], files["main_details"])
    have = {(d["dataset"], d["method"], d["frac"], d["seed"]) for _, d in main}
    new = [(r, d) for r, d in _read_rows(files["rows"], files["details"]) if (d["dataset"], d["method"], d["frac"], d["seed"]) not in have]
    both = _ordered(main + new)
    res = json.loads(files["main_rows"].read_text())
    det = json.loads(files["main_details"].read_text())
    res["rows"], det["rows"] = [r for r, _ in both], [d for _, d in both]
    atomic_write_json(files["main_rows"], res)
    atomic_write_json(files["main_details"], det)
    for f in (files["rows"], files["details"]):
        f.unlink(missing_ok=True)
    _say(f"merged {len(new)} rows of shard {a.merge} into {files['main_rows'].name} ({len(both)} rows)")


def _kept(a, files: dict) -> dict:
    """v2: the rows (and details) already in the results files, by (data set, method, frac, seed): an earlier session's work.

    A session starts from a fresh checkout without ``--work``'s folders, so
    finished rows resume from the committed results (their budgets come
    from the pinned table, so they are the budgets this run asks for; a row
    of another budget is not kept).
    """
    if not (a.v2 and not a.quick):
        return {}
    pairs = _read_rows(files["rows"], files["details"])
    if "main_rows" in files:  # a shard also keeps what the main files hold
        pairs = _read_rows(files["main_rows"], files["main_details"]) + pairs
    return {(d["dataset"], d["method"], d["frac"], d["seed"]): (r, d) for r, d in pairs}


def run(a) -> None:
    from ednas._perf import set_threads, tune_malloc
    from ednas.io import atomic_write_json
    from ednas.stage import run_stage

    tune_malloc()
    set_threads(a.threads)
    a.work.mkdir(parents=True, exist_ok=True)
    todo = plan(a)
    files = _names(a)
    rows, details = [], []
    kept = _kept(a, files)
    benches: dict[str, Bench] = {}
    t_start, done_fresh, fresh_wall = time.time(), 0, 0.0
    _say(f"{len(todo)} rows; work folder {a.work}")
    sizes_of = (V2_QUICK if a.quick else V2_FULL) if a.v2 else (QUICK if a.quick else FULL)
    for n, (ds, seed, frac, method) in enumerate(todo, 1):
        if ds not in benches:
            spec = "digits" if ds == "digits" else f"cifar10:{a.cifar}"
            benches[ds] = Bench(a, ds, spec, sizes_of[ds], V2_SPACE if a.v2 else V1_SPACE, test=a.test if a.v2 else None, priced=a.v2)
            b = benches[ds]
            _say(f"{ds}: {b.space.format()}; host-ort table {b.model.min_ms:.4g}-{b.model.max_ms:.4g} ms; images {b.n}; test {b.test_data}")
        b = benches[ds]
        budget = b.model.budget(frac=frac) if frac is not None else None
        folder = a.work / ds / f"seed{seed}" / (f"frac{frac}" if frac is not None else "fixed") / method
        settings = {"dataset": b.data.spec, "seed": seed, "frac": frac, "method": method, "sizes": b.sizes,
                    "budget_ms": budget.ms if budget else None, "timing": dataclasses.asdict(b.timing), **b.settings()}
        if method == "random":
            ref = next((d for d in details if d["dataset"] == ds and d["seed"] == seed and d["frac"] == frac and d["method"] == "ednas"), None)
            if ref is None:
                raise SystemExit("random search needs the ednas row of its cell (include the method ednas)")
            settings.update(compute_images=ref["compute_images"], samples=a.random_samples)

        def run_row(d: Path, b=b, method=method, budget=budget, seed=seed, settings=settings) -> dict:
            if method in SEARCHES or method in REMEDIES:
                return b.run_search(d, method, budget, seed)
            if method == "random":
                return b.run_random(d, budget, seed, settings["compute_images"])
            if method in BASELINES:
                return b.run_baseline(d, method, budget, seed)
            if method in MATCHED:
                return b.run_matched(d, method, budget, seed)
            return b.run_fixed(d, method, seed)

        def work(d: Path, run_row=run_row) -> dict:
            from ednas.runtime.board.timing import cpu_id

            out = run_row(d)
            # the kind of processor that measured the row: "AMD EPYC" names a Zen 3 and a Zen 4, whose operator costs
            # differ by more than the pinned table's reference network carries (BENCHMARKS.md, sixth session)
            out["details"]["cpu_id"] = cpu_id()
            return out

        old = kept.get((ds, method, frac, seed))
        if old is not None and old[0]["budget_ms"] == settings["budget_ms"]:
            rows.append(old[0])
            details.append(old[1])
            _say(f"[{n}/{len(todo)}] {ds} seed {seed} frac {frac} {method}: top-1 {old[0]['top1']:.2f} % (kept from the results file)")
            continue
        st = run_stage(folder, settings, work, name=f"{ds} seed {seed} frac {frac} {method}", quiet=True)
        row = {"dataset": ds, "method": method, "budget_ms": budget.ms if budget else None, "seed": seed, **st.result["row"],
               "test_data": b.test_data}
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
        # the rows of this run so far, and every row the results files held that this run has not reached (a later cell, a
        # method or seed outside --methods/--seeds): an interrupted or narrower run never drops a finished row
        done_keys = {(d["dataset"], d["method"], d["frac"], d["seed"]) for d in details}
        both = _ordered([*zip(rows, details), *(v for k, v in kept.items() if k not in done_keys)])
        atomic_write_json(files["rows"], {"machine": machine(), "commit": commit(), "rows": [r for r, _ in both]})
        atomic_write_json(files["details"], {
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit(), "quick": a.quick, "version": 2 if a.v2 else 1,
            "space": {ds: b_.space.format() for ds, b_ in benches.items()}, "fracs": a.fracs, "seeds": a.seeds,
            "sizes": {ds: sizes_of[ds] for ds in a.datasets}, "images": {ds: b_.n for ds, b_ in benches.items()},
            "test_data": {ds: b_.test_data for ds, b_ in benches.items()}, "random_samples": a.random_samples, "threads": a.threads,
            "wall_s": time.time() - t_start, "rows": [d for _, d in both]})
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


# two-sided 95 % quantiles of Student's t by degrees of freedom, for when scipy is absent
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179,
         13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000}


def t975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (scipy's, else the table's nearest smaller df)."""
    try:
        from scipy.stats import t

        return float(t.ppf(0.975, df))
    except ImportError:
        return _T975[max(k for k in _T975 if k <= df)] if df >= 1 else math.nan


def paired(diffs: list[float]) -> dict:
    """Mean, sd and 95 % t-interval of paired differences."""
    n = len(diffs)
    mean = statistics.fmean(diffs) if diffs else math.nan
    sd = statistics.stdev(diffs) if n > 1 else math.nan
    half = t975(n - 1) * sd / math.sqrt(n) if n > 1 else math.nan
    return {"n": n, "mean": mean, "sd": sd, "lo": mean - half, "hi": mean + half}


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


def _blocks(arch: str) -> list[list[tuple[int, int, int]]]:
    """The (kernel, expansion, width) of each block of each searched stage of a fixed architecture string (``_rN`` repeats a block)."""
    import re

    stages = []
    for stage in arch.split("|")[1:-1]:
        blocks = []
        for tok in stage.split():
            k, e, c = (int(re.search(f"_{x}(\\d+)", tok).group(1)) for x in "kec")
            r = re.search(r"_r(\d+)", tok)
            blocks += [(k, e, c)] * (int(r.group(1)) if r else 1)
        stages.append(blocks)
    return stages


def _choices(det: list, methods: list, space: str) -> list[str]:
    """What each search chose: the share of kernels and expansions over its blocks, the depth, the last stage's width.

    Random search's four drawn candidates are counted apart (``random (drawn)``): they show what the space offers
    in the band without any choosing.
    """
    import re

    last = [int(c) for c in re.search(r"_c([\d.]+)", space.split("|")[-2]).group(1).split(".")]
    groups: dict[str, list[str]] = {}
    for d in det:
        if d["method"] in methods and d["method"] not in MATCHED and d.get("arch"):
            groups.setdefault(d["method"], []).append(d["arch"])
        if d["method"] == "random":
            groups.setdefault("random (drawn)", []).extend(c["arch"] for c in d.get("candidates") or [])
    out = ["What the searches chose (share of all blocks of all their networks; the last stage's width among "
           f"{', '.join(map(str, last))}):", "",
           "| method | networks | k3 | k5 | k7 | e2 | e4 | e6 | blocks per network | last stage at its widest |", "|---|---|---|---|---|---|---|---|---|---|"]
    for m in [*[m for m in methods if m in groups], "random (drawn)"]:
        archs = groups.get(m) or []
        if not archs:
            continue
        blocks = [b for a in archs for st in _blocks(a) for b in st]
        share = lambda f, blocks=blocks: sum(1 for b in blocks if f(b)) / len(blocks)  # noqa: E731
        wide = sum(1 for a in archs if _blocks(a)[-1][0][2] >= max(last))
        out.append(f"| {m} | {len(archs)} | {share(lambda b: b[0] == 3):.2f} | {share(lambda b: b[0] == 5):.2f} | {share(lambda b: b[0] == 7):.2f} "
                   f"| {share(lambda b: b[1] == 2):.2f} | {share(lambda b: b[1] == 4):.2f} | {share(lambda b: b[1] == 6):.2f} "
                   f"| {len(blocks) / len(archs):.1f} | {wide}/{len(archs)} |")
    return [*out, ""]


def _v2_sections(rs: list, budgets: list, methods: list, prefix: str, suffix: str, ds: str) -> list[str]:
    """v2's paired differences (ednas minus each method over the (budget, seed) pairs), its targets and the differences' plot."""
    out = ["Paired differences, ednas minus each method, over the (budget, seed) pairs (test top-1 points; 95 % t-interval; "
           "latency: ednas's measured over the method's, mean of the pairs' ratios):", "",
           "| method | pairs | mean difference | sd | 95 % interval | ednas ≥ in | B1 | B2 | B3 | latency ednas / method |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    stats = {}
    for m in methods:
        if m == "ednas":
            continue
        pairs = _pairs(rs, m)
        if not pairs:
            continue
        p = paired([e["top1"] - o["top1"] for e, o in pairs])
        stats[m] = p
        per_b = []
        for B in budgets[:3]:
            d = [e["top1"] - o["top1"] for e, o in pairs if e["budget_ms"] == B]
            per_b.append(f"{_mean(d):+.2f}" if d else "-")
        per_b += ["-"] * (3 - len(per_b))
        wins = sum(1 for e, o in pairs if e["top1"] >= o["top1"])
        lat = _mean([e["latency_ms_measured"] / o["latency_ms_measured"] for e, o in pairs if e["latency_ms_measured"] and o["latency_ms_measured"]])
        sd = "-" if math.isnan(p["sd"]) else f"{p['sd']:.2f}"
        ci = "-" if math.isnan(p["lo"]) else f"[{p['lo']:+.2f}, {p['hi']:+.2f}]"
        out.append(f"| {m} | {p['n']} | {p['mean']:+.2f} | {sd} | {ci} | {wins}/{p['n']} | {' | '.join(per_b)} | {_ms(lat)} |")
    rem = [m for m in REMEDIES if m in methods]
    if rem:
        out += ["", "Remedies, each minus the search it changes, over the (budget, seed) pairs both ran:", "",
                "| remedy | minus | pairs | mean difference | 95 % interval | per pair |", "|---|---|---|---|---|---|"]
        for m in rem:
            bm = REMEDY_BASE.get(m, "ednas-joint")
            base = {(r["budget_ms"], r["seed"]): r for r in rs if r["method"] == bm}
            pairs = [(r, base[k]) for r in rs if r["method"] == m and (k := (r["budget_ms"], r["seed"])) in base]
            if pairs:
                p = paired([r["top1"] - b["top1"] for r, b in pairs])
                ci = "-" if math.isnan(p["lo"]) else f"[{p['lo']:+.2f}, {p['hi']:+.2f}]"
                each = ", ".join(f"B{budgets.index(r['budget_ms']) + 1} s{r['seed']} {r['top1'] - b['top1']:+.2f}" for r, b in pairs)
                out.append(f"| {m} | {bm} | {p['n']} | {p['mean']:+.2f} | {ci} | {each} |")
    out += ["", "Targets (means over seeds at each budget):", "", "| target | budget | result |", "|---|---|---|"]
    for bi, B in enumerate(budgets, 1):
        g = [r for r in rs if r["budget_ms"] == B and r["latency_ms_measured"] is not None]
        over = [r for r in g if r["latency_ms_measured"] > 1.05 * B]
        worst = max((r["latency_ms_measured"] / B for r in g), default=None)
        e = [r for r in g if r["method"] == "ednas"]
        e_worst = max((r["latency_ms_measured"] / B for r in e), default=None)
        out.append(f"| measured latency ≤ 1.05 B, every network | B{bi} | {len(g) - len(over)}/{len(g)} within; worst {_ms(worst)} B"
                   + (f" ({', '.join(sorted({r['method'] for r in over}))})" if over else "")
                   + f"; ednas worst {_ms(e_worst)} B: {'met' if not over else 'missed'} |")
        for other, margin, what in (("uniform", 1.0, "ednas top-1 ≥ uniform + 1 point"), ("random", 0.0, "ednas top-1 ≥ random search")):
            pairs = [(e_, o) for e_, o in _pairs(rs, other) if e_["budget_ms"] == B]
            if not pairs:
                continue
            et, ot = _mean([x["top1"] for x, _ in pairs]), _mean([o["top1"] for _, o in pairs])
            out.append(f"| {what} | B{bi} | {et:.2f} vs {ot:.2f} % ({et - ot:+.2f}, {len(pairs)} seeds): {'met' if et >= ot + margin else 'missed'} |")
    for other, margin in (("uniform", 1.0), ("random", 0.0)):
        if other in stats:
            p = stats[other]
            ci = "" if math.isnan(p["lo"]) else f", 95 % interval [{p['lo']:+.2f}, {p['hi']:+.2f}]"
            out.append(f"| all budgets, paired | - | ednas − {other}: {p['mean']:+.2f} points{ci}; the interval's lower end "
                       f"{'≥' if not math.isnan(p['lo']) and p['lo'] >= margin else '<'} {margin:g} |")
    out.append("")
    if stats:
        path = RESULTS / f"{prefix}_diffs{suffix}.png"
        path.write_bytes(_diff_plot(stats, f"{ds}: ednas − method, test top-1 over (budget, seed) pairs, mean and 95 % t-interval"))
        out += [f"![{ds} paired differences](benchmarks/results/{path.name})", ""]
    return out


def _diff_plot(stats: dict, title: str) -> bytes:
    """A forest plot: each method's mean paired difference with its 95 % interval, the zero and +1 point lines."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(stats)
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(names) + 1.5))
    for i, m in enumerate(names):
        p = stats[m]
        if not math.isnan(p["lo"]):
            ax.plot([p["lo"], p["hi"]], [i, i], color="tab:blue", lw=2)
        ax.plot([p["mean"]], [i], "o", color="tab:blue")
        ax.annotate(f"{p['mean']:+.2f} (n={p['n']})", (p["mean"], i), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.axvline(0, color="grey", lw=1)
    ax.axvline(1, color="grey", lw=1, ls=":")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("ednas − method, test top-1 (points)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def report(a) -> str:
    from ednas.report import figures

    files = _names(a)
    res = json.loads(files["rows"].read_text())
    det = json.loads(files["details"].read_text())["rows"] if files["details"].is_file() else []
    rows = res["rows"]
    key = lambda r: (r["dataset"], r["method"], r["seed"], r["budget_ms"])  # noqa: E731
    dmap = {key(d): d for d in det}
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    searches = [m for m in (*SEARCHES, *REMEDIES) if m in methods]
    out = [f"Machine: {res['machine'].get('Model name', '?')}, {res['machine'].get('CPU(s)', '?')} CPU(s); commit `{res['commit']}`.", ""]
    for ds in sorted({r["dataset"] for r in rows}):
        rs = [r for r in rows if r["dataset"] == ds]
        budgets = sorted({r["budget_ms"] for r in rs if r["budget_ms"] is not None})
        fixed = [r for r in rs if r["budget_ms"] is None]
        tests = sorted({r.get("test_data") or "the data set's own test split" for r in rs})
        out += [f"### {ds}", "", f"Tested on: {', '.join(f'`{t}`' for t in tests)}.", "",
                "| budget B (ms) | method | seeds | test top-1 (%) | measured (ms) | measured / B | argmax before fit / B | MACs | params | search wall (s) | train wall (s) |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for bi, B in enumerate(budgets, 1):
            for m in methods:
                g = [r for r in rs if r["budget_ms"] == B and r["method"] == m]
                if not g:
                    continue
                lat, arg = _mean([r["latency_ms_measured"] for r in g]), _mean([r["latency_ms_argmax"] for r in g])
                w = _mean([dmap.get(key(r), {}).get("width") for r in g])
                unmatched = sum(1 for r in g if dmap.get(key(r), {}).get("width_matched") is False)
                label = m + (f" (x{w:.2f}" + (f", over B at its narrowest in {unmatched}/{len(g)}" if unmatched else "") + ")" if w is not None else "")
                out.append(f"| B{bi} = {B:.4g} | {label} | {len(g)} | {_mean_sd([r['top1'] for r in g])} | {_ms(lat)} | {_ms(lat / B if lat else None)} "
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
                "| budget | seed | " + " | ".join(searches) + " |", "|---|---|" + "---|" * len(searches)]
        for bi, B in enumerate(budgets, 1):
            for seed in sorted({r["seed"] for r in rs}):
                cells = []
                for m in searches:
                    r = next((r for r in rs if r["budget_ms"] == B and r["seed"] == seed and r["method"] == m), None)
                    d = dmap.get((ds, m, seed, B), {})
                    cells.append("-" if r is None or r["latency_ms_argmax"] is None else
                                 f"{r['latency_ms_argmax'] / B:.3f}{'' if d.get('argmax_in_band') else ' (out)'}; {d.get('n_fit_changes', '?')}")
                out.append(f"| B{bi} | {seed} | " + " | ".join(cells) + " |")
        out.append("")
        # beta spread, search wall at equal steps, iteration cost against a training step
        out += ["| search | mean beta spread | steps per path | arch steps | search wall (s) | per-path iteration / training step |", "|---|---|---|---|---|---|"]
        for m in searches:
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
        if a.v2:
            out += _v2_sections(rs, budgets, methods, files["prefix"], files["suffix"], ds)
            dd = json.loads(files["details"].read_text())
            out += _choices([d for d in det if d["dataset"] == ds], methods, dd["space"][ds])
        # the plot: means over seeds, one colour per method, labels B1..B3
        points = []
        for bi, B in enumerate(budgets, 1):
            for m in methods:
                g = [r for r in rs if r["budget_ms"] == B and r["method"] == m]
                if g:
                    points.append({"label": f"B{bi}", "latency_ms": _mean([r["latency_ms_measured"] for r in g]), "top1": _mean([r["top1"] for r in g]), "kind": m})
        for m in FIXED:
            g = [r for r in fixed if r["method"] == m]
            if g:
                points.append({"label": m, "latency_ms": _mean([r["latency_ms_measured"] for r in g]), "top1": _mean([r["top1"] for r in g]), "kind": m})
        xlabel = ("measured latency, host-ort fp32, 1 thread, scaled to the table's reference network (ms)" if a.v2
                  else "measured latency, host-ort, 1 thread (ms)")
        png = figures.accuracy_latency(points, None, xlabel, title=f"{ds}: test top-1 against measured latency (mean over seeds)", budgets=budgets)
        path = RESULTS / f"{files['prefix']}_{ds}{files['suffix']}.png"
        path.write_bytes(png)
        out += [f"![{ds}](benchmarks/results/{path.name})", ""]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--v2", action="store_true", help="the v2 benchmark: elastic space, 7000 test images, 3 seeds (results/pareto_v2*.json)")
    ap.add_argument("--quick", action="store_true", help="v1: digits, budget 0.5, seed 0, tiny epochs; v2: a subset, budget 0.5, seed 0 "
                    "(results/*_quick.json)")
    ap.add_argument("--report", action="store_true", help="print the tables and write the plots from the results, run nothing")
    ap.add_argument("--datasets", nargs="+", choices=("digits", "cifar10"), default=None)
    ap.add_argument("--fracs", type=float, nargs="+", default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=None)
    ap.add_argument("--random-samples", type=int, default=4, help="networks the random search trains")
    ap.add_argument("--threads", type=int, default=2, help="training threads")
    ap.add_argument("--cifar", type=Path, default=CIFAR, help="the CIFAR-10 sample's folder (python batches)")
    ap.add_argument("--test", type=Path, default=CIFAR_TEST7K, help="v2: the folder whose CIFAR test batch every network is tested on")
    ap.add_argument("--work", type=Path, default=None, help="the rows' folders (default runs/pareto[-v2][-quick])")
    ap.add_argument("--shard", default=None, help="v2: write the rows to results/pareto_v2_shard-NAME*.json, so that a second process can "
                    "run other seeds beside the main one (it keeps the main files' rows too); --merge NAME folds them in")
    ap.add_argument("--merge", default=None, metavar="NAME", help="v2: fold shard NAME's rows into the main results files, run nothing")
    a = ap.parse_args()
    if a.merge:
        a.v2 = True
        merge(a)
        return
    if a.report:
        print(report(a))
        return
    if a.v2:
        if not (a.cifar / "data_batch_1").is_file() or not (a.test / "test_batch").is_file():
            raise SystemExit(f"v2 needs the CIFAR-10 sample ({a.cifar}) and the 7000-image test set ({a.test}); see shared/data/README.md")
        a.datasets = ["cifar10"]
        a.methods = a.methods or list(V2_METHODS)
        a.fracs = a.fracs or ([0.5] if a.quick else [0.2, 0.5, 0.8])
        a.seeds = a.seeds if a.seeds is not None else ([0] if a.quick else [0, 1, 2])
    else:
        a.methods = a.methods or list(V1_METHODS)
        a.datasets = a.datasets or (["digits"] if a.quick else ["digits", "cifar10"])
        if "cifar10" in a.datasets and not (a.cifar / "data_batch_1").is_file():
            _say(f"no CIFAR-10 sample at {a.cifar}: digits only")
            a.datasets = [d for d in a.datasets if d != "cifar10"]
        a.fracs = a.fracs or ([0.5] if a.quick else [0.25, 0.5, 0.75])
        a.seeds = a.seeds if a.seeds is not None else ([0] if a.quick else [0, 1])
    if a.quick:
        a.random_samples = min(a.random_samples, 2)
    a.work = (a.work or ROOT / "runs" / ("pareto" + ("-v2" if a.v2 else "") + ("-quick" if a.quick else ""))).resolve()
    run(a)


if __name__ == "__main__":
    main()
