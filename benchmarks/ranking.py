"""Benchmark: does the supernet rank networks as stand-alone training does?

A one-shot search trusts the supernet's inherited weights to tell a better
network from a worse one.  This measures that trust on the elastic ``cifar``
space and the CIFAR-10 sample:

1. **The supernet**: the default search (``ednas search`` with every
   default: P = 2, dealt batches, ``auto`` loss) at the middle of the space's
   range on ``host-ort`` (``--frac`` 0.5), run once; its ``supernet.pt`` is the
   supernet whose weights are scored.
2. **The networks**: ``--networks`` (default 12) spread over the space's
   whole latency range on the table: its smallest and its largest network,
   and one of 4000 uniform draws (every choice independent, as random search
   draws) in each of the ``networks - 2`` equal strata of predicted latency
   in between (:func:`choose`).
3. **Inherited score**: each network built with the supernet's weights
   (:func:`ednas.nn.inherit_weights`: centred kernel crops, expansion and
   width channels) and scored on the validation split (500 images) twice:
   with its BN statistics recomputed on ``--bn-images`` (1000) fixed, seeded
   training images (:func:`ednas.nn.bn.recompute_bn_stats` on
   :func:`ednas.nn.bn.bn_calibration_loader`, as the search scores its argmax
   network), and with the supernet's own running statistics (gathered under
   the search's mixture of networks), for contrast.
4. **Stand-alone**: each network trained from scratch with the training
   recipe and ``train_epochs`` epochs, tested on the 7000-image
   ``cifar10-test7k`` set (``--test``).
5. **Agreement**: Kendall's tau (tau-b) with its two-sided p-value
   (``scipy.stats.kendalltau``; without scipy the same statistic with the
   normal approximation) between each inherited score and the stand-alone
   test top-1, and, as references, between the table's predicted latency and
   the stand-alone top-1 (how far "bigger is better" alone goes) and between
   the stand-alone validation and test top-1 (how well the 500 validation
   images can rank these networks at all).

``results/ranking.json`` (``ranking_quick.json`` with ``--quick``) holds the
networks (arch, predicted latency, both inherited scores, stand-alone val and
test top-1, MACs, parameters, walls), the taus and p-values, the sizes and the
search's summary; ``results/ranking.png`` (``ranking_quick.png``) plots both
inherited scores against the stand-alone top-1.  The supernet, the choice of
networks, their scores and each network's training are stages under
``--work`` (:func:`ednas.stage.run_stage`): rerunning the command resumes
where it stopped.  Across sessions (a fresh checkout has no ``--work``),
``results/ranking_partial.json`` (``ranking_partial_quick.json``), rewritten
after the scores and after each network's training and committed, holds
the search's summary, the networks, their inherited scores and the
stand-alone results so far: a later run keeps them (the supernet is not
needed again) and trains only the missing networks; it is removed when
``ranking.json`` is written.

    python benchmarks/ranking.py            # the benchmark (about 1 h on an idle 2-core machine); rerun to resume
    python benchmarks/ranking.py --quick    # 640/128/1000 images, 5 networks, 3 epochs: proves it runs

Sizes (``FULL``): the search as the Pareto v2 search (6 epochs, 2 of them
weights only), 24 networks (the standard error of tau is about 0.15 with 24,
0.22 with 12), 20 training epochs each, so that the stand-alone ranking is
the settled one.  Estimated as the Pareto v2 sizes are (its docstring): the
search about 1.5 min, the table about 3 min, each training about 115 s on
average over the range (5.6 s an epoch and the 7000 test images), the
scoring about 2 min: about 55 min on an idle 2-core machine.  ``--networks``
and ``--epochs`` change them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, write_result  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
CIFAR = Path(os.environ.get("EDNAS_CIFAR_SAMPLE", SHARED / "cifar10"))
CIFAR_TEST7K = Path(os.environ.get("EDNAS_CIFAR_TEST7K", SHARED / "cifar10-test7k"))
SPACE = "cifar"

FULL = {"search_epochs": 6, "warmup": 2, "train_epochs": 20, "networks": 24}
#: the quick pass keeps the first images of each split (the test set is interleaved by class: 100 of each)
QUICK = {"search_epochs": 2, "warmup": 1, "train_epochs": 3, "networks": 5, "subset": {"train": 640, "val": 128, "test": 1000}}


def _say(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def kendall(x: list[float], y: list[float]) -> dict:
    """Kendall's tau-b of ``x`` and ``y`` and its two-sided p-value (scipy's where available, else the normal approximation)."""
    n = len(x)
    if n < 3:
        return {"tau": None, "p": None, "n": n, "how": "fewer than 3 networks"}
    try:
        from scipy.stats import kendalltau

        r = kendalltau(x, y)
        tau, p = float(r.statistic if hasattr(r, "statistic") else r[0]), float(r.pvalue if hasattr(r, "pvalue") else r[1])
        return {"tau": None if math.isnan(tau) else tau, "p": None if math.isnan(p) else p, "n": n, "how": "scipy.stats.kendalltau"}
    except ImportError:
        pass
    conc = disc = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            a, b = x[i] - x[j], y[i] - y[j]
            if a == 0 and b == 0:
                continue
            if a == 0:
                tx += 1
            elif b == 0:
                ty += 1
            elif (a > 0) == (b > 0):
                conc += 1
            else:
                disc += 1
    denom = math.sqrt((conc + disc + tx) * (conc + disc + ty))
    tau = (conc - disc) / denom if denom else None
    if tau is None:
        return {"tau": None, "p": None, "n": n, "how": "tau-b, constant input"}
    z = 3 * tau * math.sqrt(n * (n - 1)) / math.sqrt(2 * (2 * n + 5))
    return {"tau": tau, "p": math.erfc(abs(z) / math.sqrt(2)), "n": n, "how": "tau-b, normal approximation (no scipy)"}


def load(a, sizes: dict):
    """Context (data with the 7000-image test split, the elastic space, its host-ort table)."""
    from ednas.context import RunContext
    from ednas.data import DataConfig, load_data
    from ednas.latency.config import LatencyConfig

    ctx = RunContext(data=DataConfig(spec=f"cifar10:{a.cifar}"), space=SPACE, latency=LatencyConfig(target="host-ort", cache=str(a.work / "lut"), recentre=0.0),
                     needs_space=True, progress=False)
    data = ctx.data
    data.splits["test"] = load_data(f"cifar10:{a.test}", splits=("test",)).splits["test"]
    for split, n in sizes.get("subset", {}).items():
        x, y = data.splits[split]
        data.splits[split] = (x[:n], y[:n])
    return ctx, data


def choose(space, model, n: int, seed: int, draws: int = 4000) -> list[dict]:
    """``n`` networks over the latency range: the smallest, the largest, and one in each of ``n - 2`` equal strata between.

    ``draws`` networks are drawn uniformly (every choice independent, as
    random search draws them: :func:`ednas.search.random.sample_in_band` over
    the whole range); each stratum takes its first draw, or where none fell in
    it (the ends of the range are rare under uniform draws) the unused draw
    nearest its middle.
    """
    from ednas.search.random import sample_in_band

    lo, hi = float(model.min_ms), float(model.max_ms)
    pool = sample_in_band(space, model, hi, draws, low=0.0, seed=seed)
    used: set[int] = set()
    nets = [("smallest", model.extreme_picks(True))]
    for i in range(n - 2):
        a, b = lo + (hi - lo) * i / (n - 2), lo + (hi - lo) * (i + 1) / (n - 2)
        inside = [j for j, (_, ms) in enumerate(pool) if a <= ms <= b and j not in used]
        j = inside[0] if inside else min((j for j in range(len(pool)) if j not in used), key=lambda j: abs(pool[j][1] - (a + b) / 2))
        used.add(j)
        nets.append((f"stratum {i + 1}/{n - 2} [{a:.3g}, {b:.3g}] ms" + ("" if inside else ", nearest draw"), pool[j][0]))
    nets.append(("largest", model.extreme_picks(False)))
    return [{"name": f"net{j:02d}", "how": how, "picks": [dict(p) for p in picks], "arch": space.with_picks(picks).format(),
             "predicted_ms": float(model.predict(picks))} for j, (how, picks) in enumerate(nets)]


def score(supernet, nets: list[dict], data, bn_images: int, seed: int) -> list[dict]:
    """Each network with the supernet's weights on the validation split: with the supernet's BN statistics, then with its own."""
    from ednas import build_model, parse_arch
    from ednas.data import make_loader
    from ednas.nn import inherit_weights
    from ednas.nn.bn import bn_calibration_loader, recompute_bn_stats
    from ednas.train.metrics import evaluate

    val = make_loader(data, "val", 256, False, workers=0)
    calib = bn_calibration_loader(data, n=bn_images, seed=seed)
    out = []
    for net in nets:
        t0 = time.time()
        model = inherit_weights(build_model(parse_arch(net["arch"]), data.num_classes), supernet, net["picks"]).eval()
        mixture = evaluate(model, val)["top1"]
        seen = recompute_bn_stats(model, calib)
        own = evaluate(model, val)["top1"]
        out.append({"name": net["name"], "val_top1_inherited_bn_recomputed": own, "val_top1_inherited_bn_supernet": mixture,
                    "bn_images": seen, "wall_s": time.time() - t0})
    return out


def run(a) -> dict:
    from ednas._perf import set_threads, tune_malloc
    from ednas.io import atomic_write_json
    from ednas.nn.files import load_supernet
    from ednas.search import SearchConfig, search
    from ednas.stage import fingerprint, run_stage
    from ednas.train.trainer import TrainConfig, train

    tune_malloc()
    set_threads(a.threads)
    sizes = QUICK if a.quick else FULL
    sizes = {**sizes, "networks": a.networks or sizes["networks"], "train_epochs": a.epochs or sizes["train_epochs"]}
    a.work.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    ctx, data = load(a, sizes)
    space, model = ctx.space, ctx.latency_model()
    n_img = {s: int(len(data.splits[s][1])) for s in ("train", "val", "test")}
    base = {"space": space.format(), "data": data.spec, "test": str(a.test), "images": n_img, "seed": a.seed}
    _say(f"{space.format()}; host-ort table {model.min_ms:.4g}-{model.max_ms:.4g} ms; images {n_img}")

    # 1. the supernet: the default search at the middle of the range
    budget = model.budget(frac=a.frac)
    s_set = {**base, "what": "search", "frac": a.frac, "budget_ms": budget.ms, "epochs": sizes["search_epochs"], "warmup": sizes["warmup"]}

    def do_search(d: Path) -> dict:
        cfg = dataclasses.replace(SearchConfig(), epochs=sizes["search_epochs"], arch_warmup_epochs=sizes["warmup"], measure=False)
        r = search(cfg, d, data=data, latency=model, budget=budget, space=space, timing=ctx.timing, seed=a.seed, progress=False,
                   tensorboard=False, resume=True)
        return {k: r.get(k) for k in ("arch", "predicted_latency_ms", "argmax_in_band", "wall_s", "steps", "arch_steps", "val_top1_argmax")}

    # an earlier session's supernet, networks and scores (a session starts from a fresh checkout, without --work)
    partial_path = RESULTS / f"ranking_partial{'_quick' if a.quick else ''}.json"
    prior = json.loads(partial_path.read_text()) if partial_path.is_file() else None
    same = lambda x: json.loads(json.dumps(x))  # noqa: E731 - as the file holds it
    if prior is not None and (prior.get("sizes") != same(sizes) or prior.get("base") != same(base) or prior.get("bn_images") != a.bn_images):
        _say(f"{partial_path.name} was written with other settings: starting again")
        prior = None
    if prior is not None:
        search_res, search_fp, nets, sc_set = prior["search"], prior["search_fingerprint"], prior["nets"], prior["scores_settings"]
        scores = {s["name"]: s for s in prior["scores"]}
        _say(f"supernet, networks and inherited scores kept from {partial_path.name} ({len(prior['standalone'])} networks trained)")
    else:
        st = run_stage(a.work / "supernet", s_set, do_search, name="supernet (search)", quiet=True)
        search_res, search_fp = st.result, st.fingerprint
        _say(f"supernet: search {'done before' if st.skipped else f'in {st.wall_s:.0f} s'}; argmax {search_res['arch']}")

        # 2. the networks
        c_set = {**base, "what": "networks", "n": sizes["networks"], "table": [model.min_ms, model.max_ms]}
        nets = run_stage(a.work / "networks", c_set, lambda d: {"nets": choose(space, model, sizes["networks"], a.seed)},
                         name="networks", quiet=True).result["nets"]

        # 3. inherited scores, both BN statistics
        def do_score(d: Path) -> dict:
            supernet, _ = load_supernet(a.work / "supernet" / "supernet.pt")
            return {"scores": score(supernet, nets, data, a.bn_images, a.seed)}

        sc_set = {**base, "what": "scores", "search": search_fp, "nets": [n["arch"] for n in nets], "bn_images": a.bn_images}
        scores = {s["name"]: s for s in run_stage(a.work / "scores", sc_set, do_score, name="scores", quiet=True).result["scores"]}
    listed = ", ".join(f"{n['predicted_ms']:.3g}" for n in nets)
    _say(f"{len(nets)} networks, predicted {listed} ms")
    standalone = dict(prior["standalone"]) if prior is not None else {}

    def save_partial() -> None:  # committed between sessions: the next one resumes from it
        atomic_write_json(partial_path, {"sizes": sizes, "base": base, "bn_images": a.bn_images, "search": search_res,
                                         "search_fingerprint": search_fp, "nets": [{k: v for k, v in n.items() if k != "standalone"} for n in nets],
                                         "scores_settings": sc_set, "scores": list(scores.values()), "standalone": standalone})

    save_partial()

    # 4. stand-alone training, one stage per network
    recipe = TrainConfig(epochs=sizes["train_epochs"])
    fresh = []
    for i, net in enumerate(nets):
        t_set = {**base, "what": "train", "arch": net["arch"], "epochs": sizes["train_epochs"]}

        def do_train(d: Path, net=net) -> dict:
            m = train(recipe, d / "train", arch=net["arch"], data=data, seed=a.seed, progress=False, tensorboard=False, resume=True)
            return {k: m.get(k) for k in ("top1", "val_top1", "macs", "params", "wall_s", "n_test")}

        if net["name"] in standalone:
            net.update(standalone=standalone[net["name"]])
            _say(f"[{i + 1}/{len(nets)}] {net['name']}: stand-alone test top-1 {net['standalone']['top1']:.2f} % (kept from {partial_path.name})")
            continue
        st = run_stage(a.work / net["name"], t_set, do_train, name=f"train {net['name']}", quiet=True)
        net.update(standalone=st.result)
        standalone[net["name"]] = st.result
        save_partial()
        if not st.skipped:
            fresh.append(st.wall_s)
        left = len(nets) - i - 1
        eta = f", about {left * sum(fresh) / len(fresh) / 60:.0f} min left" if fresh and left else ""
        _say(f"[{i + 1}/{len(nets)}] {net['name']} {net['predicted_ms']:.3g} ms: stand-alone test top-1 {st.result['top1']:.2f} %, "
             f"inherited val {scores[net['name']]['val_top1_inherited_bn_recomputed']:.1f} % (BN recomputed), "
             f"{scores[net['name']]['val_top1_inherited_bn_supernet']:.1f} % (supernet BN)"
             + (" (done before)" if st.skipped else f" in {st.wall_s:.0f} s") + eta)

    # 5. agreement
    test = [n["standalone"]["top1"] for n in nets]
    rows = [{**{k: n[k] for k in ("name", "how", "arch", "predicted_ms")}, **{k: v for k, v in scores[n["name"]].items() if k != "name"},
             **{f"standalone_{k}": v for k, v in n["standalone"].items()}} for n in nets]
    taus = {
        "inherited_bn_recomputed": kendall([r["val_top1_inherited_bn_recomputed"] for r in rows], test),
        "inherited_bn_supernet": kendall([r["val_top1_inherited_bn_supernet"] for r in rows], test),
        "predicted_latency": kendall([r["predicted_ms"] for r in rows], test),
        "standalone_val": kendall([r["standalone_val_top1"] for r in rows], test),
    }
    suffix = "_quick" if a.quick else ""
    png = RESULTS / f"ranking{suffix}.png"
    png.write_bytes(_plot(rows, taus))
    result = {"quick": a.quick, "sizes": sizes, "images": n_img, "space": space.format(), "test_data": f"cifar10:{os.path.relpath(a.test, ROOT)}",
              "frac": a.frac, "budget_ms": budget.ms, "seed": a.seed, "bn_images": a.bn_images, "threads": a.threads,
              "search": search_res, "search_fingerprint": search_fp, "networks": rows, "kendall": taus, "plot": png.name,
              "wall_s": time.time() - t_start, "scores_fingerprint": fingerprint(sc_set)}
    write_result(f"ranking{suffix}", result)
    if partial_path.is_file():
        partial_path.unlink()  # the result holds it all now
    print(table(rows, taus, n_img["val"]))
    return result


def table(rows: list[dict], taus: dict, n_val: int) -> str:
    """The markdown tables for BENCHMARKS.md."""
    out = ["| network | how | predicted (ms) | inherited val top-1, BN recomputed (%) | inherited val top-1, supernet BN (%) "
           "| stand-alone val top-1 (%) | stand-alone test top-1 (%) | MACs |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['name']} | {r['how']} | {r['predicted_ms']:.4g} | {r['val_top1_inherited_bn_recomputed']:.2f} "
                   f"| {r['val_top1_inherited_bn_supernet']:.2f} | {r['standalone_val_top1']:.2f} | {r['standalone_top1']:.2f} "
                   f"| {r['standalone_macs'] / 1e6:.2f} M |")
    out += ["", "| ranking by | Kendall tau against the stand-alone test top-1 | p-value | networks |", "|---|---|---|---|"]
    names = {"inherited_bn_recomputed": "inherited weights, BN statistics recomputed", "inherited_bn_supernet": "inherited weights, the supernet's BN statistics",
             "predicted_latency": "predicted latency (bigger is better)", "standalone_val": f"stand-alone validation top-1 ({n_val} images)"}
    for k, t in taus.items():
        tau = "-" if t["tau"] is None else f"{t['tau']:+.3f}"
        p = "-" if t["p"] is None else f"{t['p']:.3g}"
        out.append(f"| {names[k]} | {tau} | {p} | {t['n']} |")
    return "\n".join(out)


def _plot(rows: list[dict], taus: dict) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    x = [r["standalone_top1"] for r in rows]
    for key, label, m in (("val_top1_inherited_bn_recomputed", "BN recomputed", "o"), ("val_top1_inherited_bn_supernet", "supernet BN", "x")):
        t = taus["inherited_" + key.split("inherited_")[1]]["tau"]
        ax.scatter(x, [r[key] for r in rows], marker=m, label=f"{label} (tau {t:+.2f})" if t is not None else label)
    ax.set_xlabel("stand-alone test top-1 (%)")
    ax.set_ylabel("inherited weights, validation top-1 (%)")
    ax.set_title("Does the supernet rank networks as stand-alone training does?", fontsize=10)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a subset, 5 networks, 2 search and 3 training epochs (results/ranking_quick.json)")
    ap.add_argument("--networks", type=int, default=None, help="networks to rank (at least 3; default 24, quick 5)")
    ap.add_argument("--epochs", type=int, default=None, help="stand-alone training epochs (default 20, quick 3)")
    ap.add_argument("--frac", type=float, default=0.5, help="the search's budget as a fraction of the space's range")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bn-images", type=int, default=1000, help="training images the BN statistics are recomputed on")
    ap.add_argument("--threads", type=int, default=2, help="training threads")
    ap.add_argument("--cifar", type=Path, default=CIFAR, help="the CIFAR-10 sample's folder (python batches)")
    ap.add_argument("--test", type=Path, default=CIFAR_TEST7K, help="the folder whose CIFAR test batch the networks are tested on")
    ap.add_argument("--work", type=Path, default=None, help="the stages' folders (default runs/ranking or runs/ranking-quick)")
    a = ap.parse_args()
    if a.networks is not None and a.networks < 3:
        raise SystemExit("--networks must be at least 3")
    if not (a.cifar / "data_batch_1").is_file() or not (a.test / "test_batch").is_file():
        raise SystemExit(f"needs the CIFAR-10 sample ({a.cifar}) and the 7000-image test set ({a.test}); see shared/data/README.md")
    a.work = (a.work or ROOT / "runs" / ("ranking-quick" if a.quick else "ranking")).resolve()
    run(a)


if __name__ == "__main__":
    main()
