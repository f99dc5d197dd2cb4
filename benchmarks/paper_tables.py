"""The paper's Tables I-III and its search cost beside ours, computed: a BENCHMARKS.md section.

Everything in "ours" columns is computed by this script (or read from a
result file another benchmark wrote, named in the section); the paper's
figures sit in their own columns, as printed in the paper.

* **Table I** (ImageNet): parameters and MACs of each network from our
  profiler (timm's networks, ``pretrained=False``, :func:`count_macs`;
  ours: a network searched in the ``imagenet`` space on ``tda2x`` at
  ``--budget-frac 0.5``), its ``tda2x`` time, and ImageNet top-1 only where
  we measured one (nowhere: there is no ImageNet here).
* **Table II** (Pascal VOC 2007 test, mAP): the paper's per-class table, and
  the mAP we reached on the VOC-layout folder built from the CIFAR-10 sample
  (``benchmarks/voc_from_cifar.py``, not VOC: 10 CIFAR classes).
* **Table III** (TDA2x): parameters, MACs and the ``tda2x`` profile's time for
  MobileNetV1, NASNet-A and ours, the profile fitted to MobileNetV1 (so that
  row is fitted, the others predicted; ``benchmarks/tda2x_table3.py`` holds
  the errors both ways).
* **Search cost** (the paper's Figure 3): Figure 3's values are not in the
  paper's text; the text names NASNet (2000 GPU-days) and AmoebaNet (3150
  GPU-days), and the cited titles GDAS ("four GPU hours") and Single-Path NAS
  ("less than 4 hours").  Ours: one search iteration (weight step + alpha
  step) of the ``imagenet`` space at 224 px timed here, extrapolated to the
  search of ``ednas/configs/paper_imagenet.yaml`` on ImageNet, in CPU-hours
  of this machine (measured step times x steps) and in GPU-hours at an
  *assumed* sustained GPU throughput (labelled; no GPU in this task).

Our searched network comes from a short search (``--search-epochs``) on a
small image folder (the CIFAR-10 sample upscaled to 224 px): with so little
data the latency term decides most of its choices; its accuracy is not an
ImageNet accuracy and is not reported as one.  ``--search DIR`` uses an
existing ``ednas search`` output instead.

    python benchmarks/paper_tables.py                 # ~10-20 min on 2 idle cores (timm profiles, the search, step timing)
    python benchmarks/paper_tables.py --quick         # 1 search epoch, 2 timed steps, section to stdout only

Writes ``benchmarks/results/paper_tables.json`` and replaces the section
between ``<!-- paper_tables:begin -->`` and ``<!-- paper_tables:end -->`` in
BENCHMARKS.md (``--no-write`` prints it instead).
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import RESULTS, commit, write_result  # noqa: E402
from ednas import build_model, parse_arch, preset  # noqa: E402
from ednas.cli import main as ednas  # noqa: E402
from ednas.latency import LatencyModel, build_table, load_profile  # noqa: E402
from ednas.latency.targets import analytic_latency, reference_ops  # noqa: E402
from ednas.nn.fuse import deploy_model  # noqa: E402
from ednas.nn.macs import count_macs  # noqa: E402

CIFAR = ROOT.parent / "shared" / "data" / "cifar10"
BEGIN, END = "<!-- paper_tables:begin -->", "<!-- paper_tables:end -->"

# Table I as printed: (search method, params M, FLOPs M, top-1 %); timm's network for ours, and how it differs
TABLE1 = [
    ("MobileNetV2", "manual", 3.4, 300, 72.0, "mobilenetv2_100", ""),
    ("EfficientNet-B0", "manual", 5.3, 390, 76.3, "efficientnet_b0", ""),
    ("MnasNet", "RL", 3.9, 312, 75.2, "semnasnet_100", "MnasNet-A1 (timm semnasnet_100)"),
    ("Single-Path NAS", "gradient", 4.3, 365, 75.0, "spnasnet_100", "timm's spnasnet_100 counts 333 M: not the paper's network or count"),
    ("FBNet", "gradient", 5.5, 375, 74.9, "fbnetc_100", "FBNet-C; timm counts 385 M (+2.7 %)"),
    ("MNetV3 Large", "RL", 5.4, 219, 75.2, "mobilenetv3_large_100", ""),
    ("MixNet", "RL", 5.0, 360, 77.0, "mixnet_m", "MixNet-M; timm counts 339 M conv + linear (the paper counts more)"),
    ("MobileNetV1 (Table III)", "manual", 4.2, 569, None, "mobilenetv1_100", ""),
]
PAPER_OURS = {"params_m": 5.9, "flops_m_table1": 365, "macs_m_table3": 535, "top1": 76.9, "tda2x_ms": 38}
# Table II as printed (mAP and the 18 per-class APs the paper's table lists, in its column order)
TABLE2_COLS = ["aero", "bike", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "table", "dog", "horse", "bike", "person",
               "plant", "sheep", "sofa"]
TABLE2 = {
    "MNetV2": (75.8, [84.5, 83.4, 76.1, 68.3, 58.7, 78.9, 84.8, 86.5, 54.4, 80.7, 70.9, 84.0, 85.0, 83.6, 76.8, 48.7, 78.7, 72.8]),
    "MNetV3-S": (69.3, [77.4, 76.9, 67.0, 62.0, 43.7, 76.3, 79.1, 82.1, 47.2, 75.4, 65.2, 78.4, 81.0, 79.7, 72.5, 39.4, 68.7, 67.1]),
    "MNetV3-L": (76.7, [84.1, 84.1, 77.0, 69.9, 75.9, 84.8, 85.1, 88.1, 56.3, 84.8, 64.8, 84.3, 87.9, 84.7, 77.9, 46.3, 80.5, 73.9]),
    "metaKernel": (77.3, [86.1, 84.8, 76.8, 68.6, 59.2, 83.6, 86.3, 87.1, 56.9, 85.2, 67.2, 86.6, 87.2, 86.0, 77.7, 49.1, 80.8, 74.5]),
    "E-DNAS": (77.8, [85.8, 84.6, 74.9, 70.1, 57.4, 63.4, 87.8, 88.1, 58.7, 83.9, 72.1, 86.2, 86.3, 86.8, 87.1, 50.6, 79.6, 74.9]),
}
FIG3_TEXT = [("NASNet [5]", "2000 GPU-days", "paper text"), ("AmoebaNet [7]", "3150 GPU-days", "paper text"),
             ("GDAS [21]", "4 GPU-hours", "title of [21]"), ("Single-Path NAS [33]", "< 4 hours", "title of [33]"),
             ("E-DNAS", "not in the text (Figure 3 is an image)", "")]
# an ASSUMPTION for the GPU-hours extrapolation (no GPU in this task): a V100's fp32 peak is 7.8 T multiply-adds/s;
# depthwise-heavy networks sustain a fraction of it
V100_PEAK_TMACS, ASSUMED_UTILISATION = 7.8, 0.2
IMAGENET_TRAIN = 1_281_167


def _fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _folder(root: Path, per_class: int = 10, classes: int = 5) -> str:
    import numpy as np
    from PIL import Image

    if (root / "train").is_dir():
        return "existing"
    if (CIFAR / "data_batch_1").is_file():
        with open(CIFAR / "data_batch_1", "rb") as f:
            d = pickle.load(f, encoding="bytes")
        x = np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.asarray(d[b"labels"])
        source = "the CIFAR-10 sample upscaled to 224 px"
    else:
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 256, (classes * per_class * 2, 32, 32, 3), dtype=np.uint8), np.arange(classes * per_class * 2) % classes
        source = "random images (the CIFAR-10 sample is absent)"
    for c in range(classes):
        idx = np.flatnonzero(y == c)[: per_class + per_class // 4]
        for split, part in (("train", idx[:per_class]), ("val", idx[per_class:])):
            (root / split / str(c)).mkdir(parents=True, exist_ok=True)
            for i in part:
                Image.fromarray(x[i]).resize((224, 224), Image.BICUBIC).save(root / split / str(c) / f"{i}.png")
    return source


def _search(args) -> tuple[Path, str]:
    if args.search:
        return Path(args.search), f"ednas search output {args.search}"
    work = Path(args.work)
    source = _folder(work / "images")
    out = work / "search"
    rc = ednas(["search", "--out", str(out), "--space", "imagenet", "--data", f"folder:{work / 'images'}", "--input-size", "224",
                "--target", "tda2x", "--budget-frac", "0.5", "--epochs", str(args.search_epochs), "--warmup-epochs", "1" if args.search_epochs > 1 else "0",
                "--batch-size", "8", "--paths", "2", "--workers", "0", "--no-tensorboard", "--no-measure", "--resume"])
    if rc != 0:
        raise SystemExit(f"the search failed (exit {rc})")
    return out, f"{args.search_epochs} epoch(s) on {source} (50 training images, 5 classes), 2 feedback paths, batch 8"


def _timm_rows(prof_name: str) -> list[dict]:
    import timm

    rows = []
    for name, method, p_params, p_flops, p_top1, timm_name, note in TABLE1:
        model = timm.create_model(timm_name, pretrained=False, num_classes=1000).eval()
        macs, _ = count_macs(model, 224)
        lat = analytic_latency(model, 224, prof_name)
        rows.append({"network": name, "method": method, "paper_params_m": p_params, "paper_flops_m": p_flops, "paper_top1": p_top1,
                     "timm": timm_name, "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
                     "macs_m": round(macs / 1e6, 1), "tda2x_ms": round(lat["ms"], 1), "note": note})
        print(f"{name:<24} {rows[-1]['params_m']:>6} M {rows[-1]['macs_m']:>7} M MACs  {rows[-1]['tda2x_ms']:>7} ms", flush=True)
    return rows


def _step_times(steps: int) -> dict:
    """One weight step and one alpha step of the imagenet supernet at 224 px, batch 8 (search_cost.py's child, fresh processes)."""
    out = {}
    for variant in ("metakernel", "metakernel_alpha"):
        r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "search_cost.py"), "--child", "imagenet", variant, "--steps", str(steps),
                            "--warmup", "2"], capture_output=True, text=True, cwd=ROOT, check=True).stdout
        out[variant] = json.loads(r.strip().splitlines()[-1])
    return out


def _search_cost(steps: dict, cfg_path: Path) -> dict:
    import yaml

    cfg = yaml.safe_load(cfg_path.read_text())["search"]
    epochs, warm, batch, paths = cfg["epochs"], cfg["arch_warmup_epochs"], cfg["batch_size"], cfg["paths"]
    weight_images = 0.8 * IMAGENET_TRAIN * epochs  # every epoch each weight-split image is seen once (paths share them)
    alpha_images = 0.8 * IMAGENET_TRAIN * (epochs - warm)  # one alpha step per weight step after the warm-up
    b = steps["metakernel"]["batch"]
    per_image_s = {"weight": steps["metakernel"]["median_ms"] / 1e3 / b, "alpha": steps["metakernel_alpha"]["median_ms"] / 1e3 / b}
    cpu_h = (weight_images * per_image_s["weight"] + alpha_images * per_image_s["alpha"]) / 3600
    fwd_macs = count_macs(deploy_model(build_model(preset("imagenet").largest(), 1000)), 224)[0]  # the meta-kernel supernet runs the largest kernels
    total_macs = 3 * fwd_macs * (weight_images + alpha_images)  # forward + backward ~ 3 x forward
    gpu_h = total_macs / (V100_PEAK_TMACS * 1e12 * ASSUMED_UTILISATION) / 3600
    return {"config": str(cfg_path.relative_to(ROOT)), "epochs": epochs, "arch_warmup_epochs": warm, "batch_per_path": batch, "paths": paths,
            "weight_step_images": int(weight_images), "alpha_step_images": int(alpha_images),
            "measured_step_ms_batch8": {k: round(v["median_ms"], 1) for k, v in steps.items()},
            "cpu_hours_this_machine": round(cpu_h, 0), "supernet_forward_macs_m": round(fwd_macs / 1e6, 1),
            "total_pmacs": round(total_macs / 1e15, 1), "gpu_hours_assumed": round(gpu_h, 1),
            "gpu_assumption": f"V100 fp32 peak {V100_PEAK_TMACS} T MAC/s at {ASSUMED_UTILISATION:.0%} sustained (an assumption: no GPU was available)"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--search", help="an existing ednas search output (arch.yaml, search.json) to use as ours")
    p.add_argument("--search-epochs", type=int, default=3)
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant for the search cost")
    p.add_argument("--work", default="/tmp/ednas-paper-tables")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing BENCHMARKS.md")
    p.add_argument("--shared", action="store_true", help="label the step times as taken on a shared (loaded) machine")
    args = p.parse_args(argv)
    if args.quick:
        args.search_epochs, args.steps, args.no_write = 1, 2, True
        args.work = str(Path(args.work) / "quick")
    t0 = time.time()
    prof = load_profile("tda2x")
    # ours: the searched network
    sdir, how = _search(args)
    s = json.loads((sdir / "search.json").read_text())
    arch = parse_arch(s["arch"])
    space = preset("imagenet")
    lm = LatencyModel(space, 224, 1000, build_table("tda2x", space, 224, 1000))
    net = build_model(arch, 1000)
    ours = {"arch": arch.format(), "how": how, "params_m": round(sum(x.numel() for x in net.parameters()) / 1e6, 2),
            "macs_m": round(count_macs(deploy_model(net), 224)[0] / 1e6, 1), "tda2x_ms": round(lm.predict(arch), 1),
            "budget_ms": round(s["budget_ms"], 1), "space_ms": [round(lm.min_ms, 1), round(lm.max_ms, 1)],
            "search_wall_s": round(s["wall_s"], 1), "search_steps": s["steps"]}
    rows = _timm_rows("tda2x")
    t3 = {}
    for name, ref, paper in (("MobileNetV1", "mobilenet_v1", (4.2, 569, 75)), ("NASNet-A", "nasnet_a_mobile", (5.3, 564, 183))):
        ops = reference_ops(ref, 224, 1000, prof.dtype)
        t3[name] = {"paper": paper, "params_m": round(sum(op.params for op in ops if op.is_conv or op.type == "fc") / 1e6, 2),
                    "macs_m": round(sum(op.macs for op in ops if op.is_conv or op.type == "fc") / 1e6, 1),
                    "tda2x_ms": round(sum(prof.op_ms(op)[0] for op in ops), 1),
                    "how": "fitted (the profile's calibration row)" if ref == prof.calibration["reference"] else "predicted"}
    tda = json.loads((RESULTS / "tda2x_table3.json").read_text()) if (RESULTS / "tda2x_table3.json").is_file() else None
    voc = json.loads((RESULTS / "voc_from_cifar.json").read_text()) if (RESULTS / "voc_from_cifar.json").is_file() else None
    cost = _search_cost(_step_times(args.steps), ROOT / "ednas" / "configs" / "paper_imagenet.yaml")
    result = {"ours": ours, "table1": rows, "table3": t3, "search_cost": cost, "wall_s": round(time.time() - t0, 1), "shared": args.shared,
              "voc_result": {"commit": voc["commit"], "map": voc["summary"]["map"], "map_voc07": voc["summary"]["map_voc07"]} if voc else None,
              "tda2x_table3_commit": tda["commit"] if tda else None}
    section = render(result, tda, voc)
    if args.no_write:
        print(section)
    else:
        write_result("paper_tables", result)
        path = ROOT / "BENCHMARKS.md"
        text = path.read_text()
        section = section.replace("COMMIT", commit())
        if BEGIN in text and END in text:
            text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        path.write_text(text)
        print(f"wrote the section into {path}")
    return 0


def render(r: dict, tda: dict | None, voc: dict | None) -> str:
    o, c = r["ours"], r["search_cost"]
    L = [BEGIN, "## The paper's tables beside ours (`benchmarks/paper_tables.py`)", "",
         "Written by `benchmarks/paper_tables.py` (commit COMMIT, `results/paper_tables.json`); the paper's figures as printed, "
         "ours computed. No ImageNet and no Pascal VOC on this machine: no ImageNet accuracy is ours, and the VOC figure is on "
         "a VOC-layout folder built from the CIFAR-10 sample.", "",
         "### Table I: ImageNet networks", "",
         "| network | search | paper: params (M) | paper: FLOPs (M) | paper: top-1 (%) | ours: params (M) | ours: MACs (M) | ours: `tda2x` (ms) | ours: top-1 | timm network |",
         "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for x in r["table1"]:
        L.append(f"| {x['network']} | {x['method']} | {_fmt(x['paper_params_m'])} | {x['paper_flops_m']} | {_fmt(x['paper_top1'])} | "
                 f"{x['params_m']:.2f} | {x['macs_m']:.1f} | {x['tda2x_ms']:.1f} | not measured | `{x['timm']}`{'; ' + x['note'] if x['note'] else ''} |")
    L.append(f"| **E-DNAS (paper) / ours searched** | gradient | {PAPER_OURS['params_m']} | {PAPER_OURS['flops_m_table1']} (Table III: "
             f"{PAPER_OURS['macs_m_table3']} M MACs) | {PAPER_OURS['top1']} | {o['params_m']:.2f} | {o['macs_m']:.1f} | {o['tda2x_ms']:.1f} | not measured | ednas `imagenet` space |")
    L += ["", f"Ours searched: `{o['arch']}`, found by `ednas search --space imagenet --target tda2x --budget-frac 0.5`, {o['how']} "
          f"({o['search_steps']} steps, {o['search_wall_s']:.0f} s here): the budget is {o['budget_ms']} ms on `tda2x` in a space of "
          f"{o['space_ms'][0]}-{o['space_ms'][1]} ms; with so little data the latency term decides most choices, so this is a network "
          "of the paper's size and target, not an ImageNet result. The `tda2x` times of timm networks price convolutions and linear "
          "layers only (activations, SE gates, adds and pooling left out: lower bounds); MACs count convolutions and linear layers "
          "(the convention of the published figures). The paper's Table I column is FLOPs and gives 365 M for its network; its "
          "Table III gives 535 M MACs for the same network.", "",
          "### Table II: Pascal VOC 2007 test, mAP (%)", "",
          "| model | mAP | " + " | ".join(TABLE2_COLS) + " |", "|---|---:|" + "---:|" * len(TABLE2_COLS)]
    for name, (m, aps) in TABLE2.items():
        L.append(f"| {name} (paper) | {m} | " + " | ".join(str(a) for a in aps) + " |")
    if voc:
        s = voc["summary"]
        L += ["", f"Ours: **{s['map']:.1f} % mAP** (VOC07 11-point {s['map_voc07']:.1f} %) on the VOC-layout folder of 64x64 scenes "
              f"built from the CIFAR-10 sample ({voc['scenes']['train']} train / {voc['scenes']['val']} val / {voc['scenes']['test']} test "
              f"scenes, 10 CIFAR classes, {voc['voc']['difficult']} of {voc['voc']['objects']} objects difficult), searched and trained "
              f"by `ednas run --data voc:DIR` (`results/voc_from_cifar.json`, commit {voc['commit']}). Not comparable with the rows "
              "above: other classes, other images, no pretraining."]
    else:
        L += ["", "Ours: not run yet (`benchmarks/voc_from_cifar.py` writes `results/voc_from_cifar.json`)."]
    L += ["", "### Table III: TDA2x", "",
          "| network | paper: params (M) | paper: MACs (M) | paper: ms | ours: params (M) | ours: MACs (M) | ours: `tda2x` ms | how |",
          "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, x in r["table3"].items():
        pp, pm, pms = x["paper"]
        L.append(f"| {name} | {pp} | {pm} | {pms} | {x['params_m']:.2f} (conv + fc weights) | {x['macs_m']:.1f} | {x['tda2x_ms']:.1f} | {x['how']} |")
    near = (tda or {}).get("paper_network_budget_ms") or {}
    L.append(f"| E-DNAS (paper) / ours searched | {PAPER_OURS['params_m']} | {PAPER_OURS['macs_m_table3']} | {PAPER_OURS['tda2x_ms']} | "
             f"{o['params_m']:.2f} | {o['macs_m']:.1f} | {o['tda2x_ms']:.1f} | predicted (budget {o['budget_ms']} ms) |")
    if near:
        L += ["", f"Networks of our `imagenet` space with the paper's 535 M MACs (+-5 %) cost {near['predicted_ms']} ms on the profile "
              f"(median; {near['range_ms'][0]}-{near['range_ms'][1]} ms over {near['n']}), against the paper's 38 ms "
              "(`benchmarks/tda2x_table3.py` has the errors of every held-out row)."]
    L += ["", "### Search cost (the paper's Figure 3)", "",
          "| method | search cost | source |", "|---|---|---|"]
    for name, cost, src in FIG3_TEXT:
        L.append(f"| {name} | {cost} | {src} |")
    L.append(f"| ednas, `imagenet` space, `paper_imagenet.yaml` ({c['epochs']} epochs, {c['paths']} paths) on ImageNet | "
             f"**{c['gpu_hours_assumed']} GPU-hours, extrapolated** ({c['total_pmacs']} P multiply-adds at an assumed "
             f"{V100_PEAK_TMACS * ASSUMED_UTILISATION:.2f} T MAC/s); {c['cpu_hours_this_machine']:.0f} CPU-hours on this machine's 2 vCPUs, "
             f"extrapolated | measured step times: weight step {c['measured_step_ms_batch8']['metakernel']} ms, alpha step "
             f"{c['measured_step_ms_batch8']['metakernel_alpha']} ms at batch 8, 224 px, 2 threads{' (a shared machine: timings not representative)' if r.get('shared') else ''} |")
    L += ["", f"Not measured on a GPU (none in this task): the GPU-hours assume a V100 (the paper's GPU) sustains "
          f"{ASSUMED_UTILISATION:.0%} of its fp32 peak on this depthwise-heavy supernet; a one-step measurement on a GPU replaces the "
          "assumption. Steps: every weight-split image (80 % of ImageNet's 1.28 M) once per epoch, and one alpha step per weight step "
          "after the warm-up epochs; forward plus backward taken as 3x the forward MACs of the largest network (the meta-kernel "
          "supernet runs one convolution of the largest kernel per layer).", END]
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
