"""Benchmark: the search's per-epoch score of its argmax network, on a derived copy against the pinned supernet.

After every epoch the search recomputes the argmax network's BN statistics on
``bn_images`` images and scores it on the validation split.  Until ``6751c96``
both passes ran through the supernet pinned at its argmax (every layer at its
widest width and largest kernel, masked); now they run on the network itself,
built from the supernet's weights (``_Search.argmax_network``).  This times
both ways, interleaved round by round (a change of the machine's speed hits
both alike), in the default run's search (digits, the default space, 2 paths,
1000 BN images, 2 threads), for argmax networks across the space: the
smallest, the largest and ``--random`` drawn at random (seed 0), after one
epoch of weight training so that the statistics are not an initialisation's.
Reported: each way's median time per score, their ratio, and the largest
difference of the validation loss between the two (they score the same
function).

    python benchmarks/search_score.py [--rounds 5] [--random 3]

Writes ``results/search_score.json``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402


def pinned_score(s) -> dict:
    """The score as every version up to 6751c96 took it: the supernet pinned at its argmax, its BN recalibrated and put back."""
    import torch

    from ednas.nn.bn import recalibrated_bn
    from ednas.train.metrics import evaluate

    net = s.paths[0]
    with torch.no_grad():
        for c in net.choices():
            c.g = None
        float(s.latency.expected(net))
        for c in net.choices():
            c.fixed = c.argmax()
        try:
            with recalibrated_bn(net, s.bn_loader, s.hw):
                return evaluate(net, s.val_loader, s.data.multilabel, s.data.classes, s.hw)
        finally:
            for c in net.choices():
                c.fixed = None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--random", type=int, default=3, help="random argmax networks besides the smallest and the largest")
    a = ap.parse_args()

    import torch
    import torch.nn.functional as F

    from ednas._perf import set_threads, tune_malloc
    from ednas.config import resolve_config
    from ednas.data import load_data
    from ednas.latency.model import LatencyModel
    from ednas.latency.ops import space_ops
    from ednas.latency.table import LatencyTable
    from ednas.pipeline import RunConfig
    from ednas.search.algorithm import SearchConfig, _Search

    tune_malloc()
    set_threads(2)
    run = RunConfig(out="unused")
    data = load_data(run.data.spec)
    from ednas.context import RunContext

    space = RunContext(data=run.data, space=run.search.space, needs_space=True, progress=False).space
    size, nc = data.input_size, data.num_classes
    # what the score costs does not depend on the table's values: a synthetic one prices E[LAT] and the argmax
    table = LatencyTable(target="synthetic", input_size=size, entries={op.key: 0.001 + op.macs * 1e-6 for op in space_ops(space, size, nc)})
    lm = LatencyModel(space, size, nc, table)
    cfg = resolve_config(SearchConfig, {k: v for k, v in vars(run.search).items() if k != "space"} | {"space": space.format(), "measure": False})
    with tempfile.TemporaryDirectory() as tmp:
        s = _Search(cfg, tmp, data, lm, lm.budget(frac=0.5), space, None, 0, False, False)
        t = time.perf_counter()
        s._epoch(0, None, None)
        print(f"one weight epoch: {time.perf_counter() - t:.1f} s", flush=True)
        net = s.paths[0]
        rng = random.Random(0)
        settings = {"smallest": lambda c: 0, "largest": lambda c: len(c.candidates) - 1}
        for i in range(a.random):
            settings[f"random-{i}"] = lambda c: rng.randrange(len(c.candidates))
        rows = []
        for name, pick in settings.items():
            with torch.no_grad():
                for cname, c in net.named_choices():
                    j = pick(c)
                    if cname.endswith(".skip"):  # the smallest network skips what it can, the largest keeps every block
                        j = {"smallest": len(c.candidates) - 1, "largest": 0}.get(name, j)
                    c.alpha.copy_(F.one_hot(torch.tensor(j), len(c.candidates)).float() * 3.0)
            arch = space.with_picks(net.picks(), branches=False).format()
            times = {"pinned": [], "derived": []}
            loss = {}
            for r in range(a.rounds):
                for way in (("pinned", "derived") if r % 2 == 0 else ("derived", "pinned")):
                    t = time.perf_counter()
                    if way == "pinned":
                        loss[way] = pinned_score(s)["loss"]
                    else:
                        loss[way] = s._epoch_eval(0, {"tau": 1.0}, None)["val_loss"]
                    times[way].append(time.perf_counter() - t)
            p, d = statistics.median(times["pinned"]), statistics.median(times["derived"])
            ratios = [x / y for x, y in zip(times["pinned"], times["derived"])]
            rows.append({"argmax": name, "arch": arch, "pinned_s": round(p, 4), "derived_s": round(d, 4),
                         "speedup": round(statistics.median(ratios), 3), "val_loss_diff": abs(loss["pinned"] - loss["derived"]),
                         "times": {k: [round(x, 4) for x in v] for k, v in times.items()}})
            print(f"{name}: pinned {p:.3f} s, derived {d:.3f} s, {rows[-1]['speedup']:.2f}x, loss diff {rows[-1]['val_loss_diff']:.2e}  {arch}",
                  flush=True)
    out = {"what": "the search's per-epoch score (BN recomputed on bn_images, then the validation split): pinned supernet against derived copy",
           "space": space.format(), "data": data.spec, "bn_images": cfg.bn_images, "paths": cfg.paths, "threads": 2, "rounds": a.rounds,
           "rows": rows, "median_speedup": round(statistics.median(r["speedup"] for r in rows), 3),
           "max_val_loss_diff": max(r["val_loss_diff"] for r in rows)}
    print(f"median speedup {out['median_speedup']}x; largest loss difference {out['max_val_loss_diff']:.2e}")
    print(f"wrote {write_result('search_score', out)}")


if __name__ == "__main__":
    main()
