"""Benchmark: cost of a search step vs a training step of the largest fixed network.

For each preset and variant, a fresh process times one training step (forward,
cross-entropy, backward, SGD step; median of >= 20 after 5 warm-up steps) and
measures peak memory (ru_maxrss after the steps minus before the first one),
at 2 threads, in channels_last, with ednas's malloc tuning:

* ``fixed``: the space's largest network (every depthwise at its largest kernel);
* ``metakernel``: the E-DNAS supernet, one conv per layer (eq. 9), weight step
  with soft Gumbel samples;
* ``darts``: the same space with the depthwise candidates duplicated and mixed;
* ``fbnet``: the same space with whole blocks duplicated and mixed;
* ``metakernel_alpha``: the architecture step (CE + lambda * E[LAT], Adam on
  alpha) of the meta-kernel supernet, for the full cost of one Alg. 1 iteration;
* ``metakernel_joint``: the single-level step (``--search.update joint``): one
  forward and backward on one batch, SGD on the weights and Adam on alpha;
* ``fixed_nchw``, ``metakernel_nchw``: the same in the default NCHW layout, to
  measure what ``channels_last`` (which ednas uses everywhere) buys.

    python benchmarks/search_cost.py [--presets cifar imagenet] [--steps 20]

Targets: metakernel <= 1.1x fixed in time and memory (the elastic ``cifar``:
<= 1.15x, its masks for depth, width and expansion included); fbnet >= 2x
metakernel in time and memory; a cheaper search schedule at most 1.3x a
fixed step per iteration.  The schedules' iteration cost is derived from the
step times: Algorithm 1 (``alternate``) is a weight step plus an alpha step;
``--search.arch-every k`` a weight step plus 1/k of an alpha step; ``joint``
one joint step.

    python benchmarks/search_cost.py --quick      # one round, 5 steps, cifar only: proves it runs
    python benchmarks/search_cost.py --presets cifar --variants fixed metakernel --name search_cost_cifar   # a part, kept apart
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, write_result  # noqa: E402

BATCH = {"cifar": 64, "cifar-kernels": 64, "imagenet": 8, "imagenet-mbv2": 8}
VARIANTS = ["fixed", "metakernel", "darts", "fbnet", "metakernel_alpha", "metakernel_joint", "fixed_nchw", "metakernel_nchw"]
ARCH_EVERY = (1, 2, 4, 8)


def child(preset: str, variant: str, steps: int, warmup: int) -> dict:
    import torch
    import torch.nn.functional as F

    from ednas import build_model, build_supernet
    from ednas import preset as get_preset
    from ednas._perf import set_threads, tune_malloc
    from ednas.arch.spec import PRESETS
    from ednas.search.gumbel import sample_choices
    from ednas.train.recipe import make_optimizer

    tune_malloc()
    set_threads(2)
    torch.manual_seed(0)
    space = get_preset(preset)
    size, batch = PRESETS[preset][1], BATCH[preset]
    nchw = variant.endswith("_nchw")
    variant = variant.removesuffix("_nchw")
    fmt = torch.contiguous_format if nchw else torch.channels_last
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    if variant == "fixed":
        net = build_model(space.largest(), 10)
        params = list(net.parameters())
    else:
        net = build_supernet(space, 10, kind=variant.replace("_alpha", "").replace("_joint", ""))
        params = net.weight_parameters()
    net = net.to(memory_format=fmt).train()
    opt = make_optimizer(params, 0.05, 0.9, 5e-5)
    alpha_opt = torch.optim.Adam(net.arch_parameters(), lr=0.01) if variant.endswith(("_alpha", "_joint")) else None
    g = torch.Generator().manual_seed(0)

    def stand_in_latency():
        return sum((c.weights() * torch.arange(len(c.alpha), dtype=torch.float32)).sum() for c in net.choices())

    def step():
        if variant == "fixed":
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        elif alpha_opt is None:  # the weight step of the search
            with torch.no_grad():
                sample_choices(net.choices(), 1.0, False, g)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        elif variant.endswith("_joint"):  # single level: one backward to weights and alpha
            sample_choices(net.choices(), 1.0, False, g)
            loss = F.cross_entropy(net(x), y) + 0.01 * stand_in_latency()
            opt.zero_grad(set_to_none=True)
            alpha_opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            alpha_opt.step()
        else:  # the architecture step: gradient to alpha only, latency term from a stand-in table
            sample_choices(net.choices(), 1.0, False, g)
            for p in params:
                p.requires_grad_(False)
            loss = F.cross_entropy(net(x), y) + 0.01 * stand_in_latency()
            alpha_opt.zero_grad(set_to_none=True)
            loss.backward()
            alpha_opt.step()
            for p in params:
                p.requires_grad_(True)

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append((time.perf_counter() - t) * 1e3)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"preset": preset, "variant": variant + ("_nchw" if nchw else ""), "batch": batch, "input": size, "median_ms": statistics.median(times),
            "min_ms": min(times), "times_ms": [round(t, 2) for t in times], "peak_mib": (rss1 - rss0) / 1024.0,
            "params": sum(p.numel() for p in params)}


def main() -> None:
    from ednas.arch.spec import preset as get_preset

    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["cifar", "imagenet"])
    ap.add_argument("--variants", nargs="+", default=VARIANTS)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the variants (medians are taken over rounds)")
    ap.add_argument("--child", nargs=2, metavar=("PRESET", "VARIANT"))
    ap.add_argument("--quick", action="store_true", help="cifar only, 5 steps, 1 round, the schedule variants only")
    ap.add_argument("--name", help="results/NAME.json (default search_cost, or search_cost_quick with --quick)")
    a = ap.parse_args()
    if a.quick:
        a.presets, a.steps, a.warmup, a.rounds = ["cifar"], 5, 2, 1
        a.variants = ["fixed", "metakernel", "metakernel_alpha", "metakernel_joint"]
    if a.child:
        print(json.dumps(child(a.child[0], a.child[1], a.steps, a.warmup)))
        return
    runs: dict = {}
    for r in range(a.rounds):
        for preset in a.presets:
            for v in a.variants:
                if v.startswith("fbnet") and any(b.widths for st in get_preset(preset).stages for b in st):
                    continue  # fbnet's candidate blocks are separate networks: it does not search widths
                out = subprocess.run([sys.executable, __file__, "--child", preset, v, "--steps", str(a.steps), "--warmup", str(a.warmup)],
                                     capture_output=True, text=True, cwd=ROOT, check=True).stdout
                res = json.loads(out.strip().splitlines()[-1])
                runs.setdefault(preset, {}).setdefault(v, []).append(res)
                print(f"round {r} {preset:9s} {v:17s} {res['median_ms']:9.1f} ms  {res['peak_mib']:8.1f} MiB", flush=True)
    summary = {}
    for preset, vs in runs.items():
        med = {v: statistics.median(x["median_ms"] for x in rs) for v, rs in vs.items()}
        mem = {v: statistics.median(x["peak_mib"] for x in rs) for v, rs in vs.items()}
        s = {"batch": BATCH[preset], "step_ms": med, "peak_mib": mem}
        if "fixed" in med and "metakernel" in med:
            s["metakernel_over_fixed_time"] = med["metakernel"] / med["fixed"]
            s["metakernel_over_fixed_mem"] = mem["metakernel"] / mem["fixed"]
        for mp in ("darts", "fbnet"):
            if mp in med and "metakernel" in med:
                s[f"{mp}_over_metakernel_time"] = med[mp] / med["metakernel"]
                s[f"{mp}_over_metakernel_mem"] = mem[mp] / mem["metakernel"]
        for v in ("fixed", "metakernel"):
            if f"{v}_nchw" in med and v in med:
                s[f"{v}_channels_last_speedup"] = med[f"{v}_nchw"] / med[v]
        if "metakernel_alpha" in med and "fixed" in med:
            s["alg1_iteration_over_fixed_time"] = (med["metakernel"] + med["metakernel_alpha"]) / med["fixed"]
            # per weight step: the weight step and 1/k of an alpha step (--search.arch-every k)
            s["schedule_iteration_over_fixed_time"] = {
                f"arch_every_{k}": (med["metakernel"] + med["metakernel_alpha"] / k) / med["fixed"] for k in ARCH_EVERY}
        if "metakernel_joint" in med and "fixed" in med:
            s.setdefault("schedule_iteration_over_fixed_time", {})["joint"] = med["metakernel_joint"] / med["fixed"]
        summary[preset] = s
    write_result(a.name or ("search_cost_quick" if a.quick else "search_cost"), {"threads": 2, "steps": a.steps, "warmup": a.warmup, "rounds": a.rounds,
                                 "memory_format": "channels_last (the _nchw variants: NCHW)", "summary": summary, "runs": runs})


if __name__ == "__main__":
    main()
