"""Choosing the ``imagenet`` space's skeleton by profiling, not by guessing.

The paper's ImageNet network has 5.9 M parameters and 535 M MACs (Table III).
A search space can only find a network of that size if its smallest and
largest networks bracket it.  This script profiles candidate skeletons with
ednas's own counters (parameters of the built network; MACs of
:func:`ednas.nn.macs.count_macs`, convolutions and linear layers, one
multiply-add = one MAC, the convention of the published figures) and the
``tda2x`` profile's latency, and ranks them:

* MobileNetV2's skeleton (its depths, strides and widths) at width
  multipliers 1.0-1.5, widths rounded to multiples of 8 as MobileNetV2 rounds
  them, the head 1280 x width; the depth-aware stem (11x11, multiplier 4)
  in place of the 3x3 stride-2 convolution; kernels {3, 5, 7} in every block
  and the expansion fixed at 6 or searched among {3, 6} or {4, 6};
* an MnasNet-like variant (deeper 3rd and 6th stages).

A candidate *brackets* the paper when smallest < paper < largest for both
parameters and MACs.  Among those, the one whose paper point lies nearest
the middle of its ranges (on a log scale; ``centre`` = the smaller of the
two positions' distances from an end, 0.5 = exactly in the middle) is the
``imagenet`` preset.  Deterministic; about a minute.

    python benchmarks/imagenet_space.py

Writes ``benchmarks/results/imagenet_space.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import write_result  # noqa: E402
from ednas import preset  # noqa: E402
from ednas.arch.spec import PRESETS, parse_arch  # noqa: E402
from ednas.latency import load_profile  # noqa: E402
from ednas.latency.ops import arch_ops  # noqa: E402
from ednas.nn.build import build_model  # noqa: E402
from ednas.nn.macs import count_macs  # noqa: E402

PAPER = {"params_m": 5.9, "macs_m": 535.0}
# MobileNetV2 (Sandler et al. 2018, Table 2): (expansion, width, repeats, stride) per stage
MBV2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
MNAS_DEPTHS = [1, 3, 3, 4, 3, 4, 1]  # MnasNet-like: one more block in the 2nd and 6th stages


def divisible(v: float, d: int = 8) -> int:
    """MobileNetV2's rounding of a width to a multiple of ``d`` (never more than 10 % down)."""
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def skeleton(width: float, expansions: str, depths=None) -> str:
    stem = f"stem_k11_m4_c{divisible(32 * width)}_s2"
    stages = []
    for i, (e, c, r, s) in enumerate(MBV2):
        r = depths[i] if depths else r
        ex = "1" if e == 1 else expansions
        stages.append(f"ir_k3.5.7_e{ex}_c{divisible(c * width)}" + (f"_s{s}" if s != 1 else "") + (f"_r{r}" if r != 1 else ""))
    head = f"head_c{int(1280 * max(1.0, width))}_d20"
    return " | ".join([stem] + stages + [head])


def profile(arch, prof) -> dict:
    model = build_model(arch, 1000)
    macs, _ = count_macs(model, 224)
    ms = sum(prof.op_ms(op)[0] for op in arch_ops(arch, 224, 1000, prof.dtype))
    return {"params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3), "macs_m": round(macs / 1e6, 1), "tda2x_ms": round(ms, 2)}


def position(v: float, lo: float, hi: float) -> float:
    return math.log(v / lo) / math.log(hi / lo) if lo < v < hi else float("nan")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="imagenet_space")
    args = p.parse_args(argv)
    t0 = time.time()
    prof = load_profile("tda2x")
    cands = {}
    for w in (1.0, 1.2, 1.3, 1.4, 1.5):
        for ex in ("6", "3.6", "4.6"):
            cands[f"mbv2 x{w} e{ex}"] = skeleton(w, ex)
    for w in (1.2, 1.3):
        cands[f"mnas-like x{w} e3.6"] = skeleton(w, "3.6", MNAS_DEPTHS)
    rows = []
    for name, text in cands.items():
        sp = parse_arch(text)
        lo, hi = profile(sp.smallest_kernels(), prof), profile(sp.largest(), prof)
        tp = position(PAPER["params_m"], lo["params_m"], hi["params_m"])
        tm = position(PAPER["macs_m"], lo["macs_m"], hi["macs_m"])
        brackets = not (math.isnan(tp) or math.isnan(tm))
        centre = min(tp, 1 - tp, tm, 1 - tm) if brackets else None
        rows.append({"name": name, "space": text, "smallest": lo, "largest": hi, "brackets": brackets,
                     "paper_position": {"params": None if math.isnan(tp) else round(tp, 3), "macs": None if math.isnan(tm) else round(tm, 3)},
                     "centre": round(centre, 3) if centre is not None else None})
        print(f"{name:<22} params {lo['params_m']:.2f}-{hi['params_m']:.2f} M  MACs {lo['macs_m']:.0f}-{hi['macs_m']:.0f} M  "
              f"tda2x {lo['tda2x_ms']:.0f}-{hi['tda2x_ms']:.0f} ms  {'brackets, centre %.2f' % centre if brackets else '-'}", flush=True)
    best = max((r for r in rows if r["brackets"]), key=lambda r: r["centre"])
    shipped = PRESETS["imagenet"][0]
    result = {
        "paper": PAPER,
        "rule": "smallest < paper < largest for parameters and MACs; the most central on a log scale",
        "candidates": rows,
        "chosen": best["name"],
        "chosen_space": best["space"],
        "preset_imagenet": shipped,
        "preset_is_chosen": parse_arch(shipped) == parse_arch(best["space"]),
        "preset_imagenet_mbv2": {"smallest": profile(preset("imagenet-mbv2").smallest_kernels(), prof),
                                 "largest": profile(preset("imagenet-mbv2").largest(), prof)},
        "wall_s": round(time.time() - t0, 1),
    }
    print(f"chosen: {best['name']}; the shipped imagenet preset is it: {result['preset_is_chosen']}")
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
