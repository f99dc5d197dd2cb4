"""Baseline networks for the report's accuracy-vs-latency plot.

By default (``names = default``) two hand-designed networks **at the
budget**: MobileNetV2 and MobileNetV3-Large with the width multiplier
chosen so that their latency on the run's target matches the budget
(``mobilenetv2@match``, ``mobilenetv3@match``; :func:`match_width`).  That is
the comparison a user needs: at the latency they can afford, does the
searched network beat what they would otherwise ship?  Any baseline can be
matched (``NAME@match``) or given a width (``NAME@WIDTH``); ``fixed`` names
the six networks at the width of their input size (:func:`default_width`).

MobileNetV2, MobileNetV3-Large, MnasNet-B1, FBNet-C, Single-Path NAS and
MixNet-S, built from timm's own generators (``pretrained=False``: nothing
downloads) and, for the three torchvision has, from torchvision
(``tv-mobilenetv2``, ``tv-mobilenetv3``, ``tv-mnasnet``).  Each is trained
with the derived network's recipe and number of epochs
(:func:`ednas.train.trainer.fit`), scored on the same test split, counted
(:mod:`ednas.nn.macs`) and timed on the same target
(:func:`ednas.runtime.time_onnx` / :func:`~ednas.runtime.time_torch`).

**Adapting an ImageNet network to small inputs** (a decision of ours):

* *Resolution.*  These networks downsample 32x (a stride-2 stem and four
  stride-2 stages), which turns a 32x32 image into a 1x1 map after the fifth
  stage.  :func:`adapt_strides` removes the earliest downsamplings (the stem's
  first) until the last feature map is at least 4x4, i.e. the same
  32 -> 4 schedule as the ednas ``cifar`` preset.  That is what the common
  CIFAR ports of MobileNetV2 do (stem and the second stage at stride 1); at
  224x224 nothing changes.  It is done on the built network by setting
  ``stride = 1`` on every convolution at a removed downsampling (grouped by
  the resolution it reads, so MixNet's split kernels move together); padding
  is ``k // 2`` in all these networks, so shapes stay consistent, and blocks
  that were strided keep no residual, as built.
* *Width matched to the budget* (``NAME@match``).  The latency of a width is
  taken as the report takes it (below): measured on a host target,
  predicted by the profile on an analytic one.  :func:`match_width` bisects
  the widths of :data:`MATCH_WIDTHS` (latency grows with width) for the
  widest network within the budget; every width it timed is recorded
  (``width_probes``).  When even the narrowest is over the budget, the
  narrowest is kept and ``width_matched`` is False.  A board table
  (``file:PATH``) cannot price these networks, so there the width is
  :func:`default_width`'s and ``width_matched`` is False.
* *Width otherwise.*  At full width the re-strided networks cost 66-117 M MACs at
  32x32, about 10x the ednas ``cifar`` space (7.5-10.7 M), and are too slow
  to train within ``ednas run``'s budget on 2 cores.  :func:`default_width` scales the channels
  with the input: ``0.35`` for inputs up to 64 (the smallest width timm
  publishes for MobileNetV2), ``0.5`` up to 128, ``1.0`` above.  Heads keep
  their published widths (timm's rule: ``max(1280, 1280 * w)``), so the
  classifier input is as wide as at ImageNet scale.
* *Latency.*  Host targets are measured here: ONNX Runtime (fp32, batch 1,
  the table's threads; ORT folds BN into the convolutions) for
  ``host-ort``, PyTorch eager for ``host-torch``.  For an analytic target
  (``tda2x``, ``tda4vm``, ``roofline``) nothing is measured: the profile
  prices each convolution and linear layer with its roofline
  (:func:`ednas.latency.targets.analytic_latency`), which leaves out
  activations (hard-swish, SiLU), SE gates, adds and pooling, so these
  figures are lower bounds and say so in ``latency_source``.  A board table
  (``file:PATH``) cannot price networks outside its space: the host ORT
  figure is recorded and the target latency is ``None``.

**Multi-label data** (Pascal VOC, ``voc:``): a baseline is trained exactly
as the derived network is (the same :func:`~ednas.train.trainer.fit`, so
binary cross-entropy with logits over the classes' sigmoids, difficult
entries left out) and reports what the derived network reports: ``map``
(area under the precision-recall curve, the report's accuracy axis),
``map_voc07`` and per-class ``ap`` on the test split; ``top1``/``top5``
are ``None``.

Results are cached per network in ``OUT/<name>/result.json`` (training resumes
from ``OUT/<name>/checkpoint.pt``), so an interrupted run picks up where it
stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Optional, Sequence

import torch
import torch.nn as nn

from ednas.config import config_dict
from ednas.data import DataSet
from ednas.device import Hardware
from ednas.errors import ConfigError
from ednas.io import atomic_write_json, read_json
from ednas.latency.measure import measure_onnx_ms, measure_torch_ms
from ednas.latency.targets import analytic_latency
from ednas.nn.macs import count_macs, trace
from ednas.runtime import Timing
from ednas.seeds import derive
from ednas.stage import run_stage
from ednas.train.trainer import TrainConfig, fit

__all__ = [
    "BASELINES",
    "DEFAULT_BASELINES",
    "FIXED_BASELINES",
    "MATCH_WIDTHS",
    "Baseline",
    "BaselinesConfig",
    "baseline_names",
    "adapt_strides",
    "build_baseline",
    "default_width",
    "load_baselines",
    "match_width",
    "run_baselines",
]

RESULT_FORMAT = 1

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Baseline:
    """A baseline family: how to build it at a width multiplier."""

    title: str
    source: str  # "timm" or "torchvision"
    build: Callable[[float, int], nn.Module]  # (width, num_classes) -> module
    reference: str  # the published full-width model it scales


def _timm_gen(module: str, gen: str, variant: str):
    def build(width: float, num_classes: int) -> nn.Module:
        import importlib

        mod = importlib.import_module(f"timm.models.{module}")
        fn = getattr(mod, gen, None)
        if fn is None:  # private generators; guard against a timm that renamed them
            raise ConfigError(f"this timm ({_timm_version()}) has no timm.models.{module}.{gen}; baseline '{variant}' cannot be width-scaled")
        return fn(variant, channel_multiplier=width, pretrained=False, num_classes=num_classes)

    return build


def _timm_version() -> str:
    import timm

    return timm.__version__


def _tv(name: str):
    def build(width: float, num_classes: int) -> nn.Module:
        import torchvision.models as tvm

        if name == "mnasnet":
            return tvm.MNASNet(alpha=width, num_classes=num_classes)
        fn = {"mobilenet_v2": tvm.mobilenet_v2, "mobilenet_v3_large": tvm.mobilenet_v3_large}[name]
        return fn(weights=None, width_mult=width, num_classes=num_classes)

    return build


BASELINES: dict[str, Baseline] = {
    "mobilenetv2": Baseline("MobileNetV2", "timm", _timm_gen("efficientnet", "_gen_mobilenet_v2", "mobilenetv2_100"), "mobilenetv2_100"),
    "mobilenetv3": Baseline("MobileNetV3-Large", "timm", _timm_gen("mobilenetv3", "_gen_mobilenet_v3", "mobilenetv3_large_100"), "mobilenetv3_large_100"),
    "mnasnet": Baseline("MnasNet-B1", "timm", _timm_gen("efficientnet", "_gen_mnasnet_b1", "mnasnet_100"), "mnasnet_100"),
    "fbnetc": Baseline("FBNet-C", "timm", _timm_gen("efficientnet", "_gen_fbnetc", "fbnetc_100"), "fbnetc_100"),
    "spnasnet": Baseline("Single-Path NAS", "timm", _timm_gen("efficientnet", "_gen_spnasnet", "spnasnet_100"), "spnasnet_100"),
    "mixnet": Baseline("MixNet-S", "timm", _timm_gen("efficientnet", "_gen_mixnet_s", "mixnet_s"), "mixnet_s"),
    "tv-mobilenetv2": Baseline("MobileNetV2 (torchvision)", "torchvision", _tv("mobilenet_v2"), "mobilenet_v2"),
    "tv-mobilenetv3": Baseline("MobileNetV3-Large (torchvision)", "torchvision", _tv("mobilenet_v3_large"), "mobilenet_v3_large"),
    "tv-mnasnet": Baseline("MnasNet (torchvision)", "torchvision", _tv("mnasnet"), "mnasnet1_0"),
}

#: the hand-designed and searched networks users compare against, from timm, at the width of their input size (``fixed``)
FIXED_BASELINES: tuple[str, ...] = ("mobilenetv2", "mobilenetv3", "mnasnet", "fbnetc", "spnasnet", "mixnet")

#: the set ``ednas run`` trains by default: MobileNetV2 and V3 at the width whose latency matches the budget
DEFAULT_BASELINES: tuple[str, ...] = ("mobilenetv2@match", "mobilenetv3@match")

#: the width multipliers :func:`match_width` chooses from
MATCH_WIDTHS: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0, 1.25, 1.5, 2.0)

MATCH = "match"


def default_width(input_size: int) -> float:
    """The width multiplier for an input side (see the module docstring)."""
    if input_size <= 64:
        return 0.35
    if input_size <= 128:
        return 0.5
    return 1.0


def _parse_name(name: str) -> tuple[str, float | str | None]:
    """``NAME``, ``NAME@WIDTH`` or ``NAME@match`` -> (registry key, width, ``"match"`` or None)."""
    key, _, w = str(name).partition("@")
    if key not in BASELINES:
        raise ConfigError(f"unknown baseline '{key}'; baselines: {', '.join(BASELINES)} "
                          "(optionally NAME@WIDTH, e.g. mobilenetv2@0.5, or NAME@match: the width whose latency matches the budget)")
    if not w:
        return key, None
    if w == MATCH:
        return key, MATCH
    try:
        width = float(w)
    except ValueError as err:
        raise ConfigError(f"baseline '{name}': width '{w}' is not a number") from err
    if not 0.05 <= width <= 4.0:
        raise ConfigError(f"baseline '{name}': width {width} is outside 0.05..4")
    return key, width


# ---------------------------------------------------------------------------
# resolution


@torch.no_grad()
def _downsamplings(model: nn.Module, input_size: int, in_channels: int = 3) -> list[tuple[int, list[nn.Conv2d]]]:
    """Stride-2 convolutions grouped by the resolution they read, largest first."""
    seen: dict[int, list[nn.Conv2d]] = {}

    def hook(m, inputs, output):
        if max(m.stride) > 1:
            seen.setdefault(int(inputs[0].shape[-1]), []).append(m)

    trace(model, input_size, (nn.Conv2d,), hook, in_channels)
    return sorted(seen.items(), key=lambda kv: -kv[0])


def adapt_strides(model: nn.Module, input_size: int, min_final: int = 4, in_channels: int = 3) -> dict:
    """Remove the earliest downsamplings until the last feature map is >= ``min_final``.

    Args:
        model: a built network (changed in place).
        input_size: the image side it will see.
        min_final: the smallest last feature map side to keep (4: the
            ednas ``cifar`` preset's).

    Returns:
        ``{"removed": [resolutions whose downsampling was removed], "final": side}``.
    """
    groups = _downsamplings(model, input_size, in_channels)
    final = input_size
    for _ in groups:
        final = (final + 1) // 2
    removed = []
    for size, convs in groups:
        if final >= min_final:
            break
        for c in convs:
            c.stride = (1, 1)
        removed.append(size)
        final *= 2
    return {"removed": removed, "final": int(final), "downsamplings": len(groups) - len(removed)}


def build_baseline(name: str, num_classes: int, input_size: int, width: float | None = None) -> tuple[nn.Module, dict]:
    """Build a width-scaled, re-strided baseline.

    Args:
        name: a key of :data:`BASELINES`, optionally ``NAME@WIDTH``.
        num_classes: classifier outputs.
        input_size: image side (sets the default width and the strides).
        width: width multiplier (overrides ``NAME@WIDTH`` and the default).

    Returns:
        ``(model, info)`` with the title, source, width and stride changes.
    """
    key, w = _parse_name(name)
    if w == MATCH:
        w = None  # the caller matched the width and passes it
    b = BASELINES[key]
    width = float(width or w or default_width(input_size))
    model = b.build(width, num_classes)
    strides = adapt_strides(model, input_size)
    info = {
        "name": name,
        "key": key,
        "title": b.title,
        "source": b.source,
        "reference": b.reference,
        "width": width,
        "input_size": int(input_size),
        "strides_removed_at": strides["removed"],
        "final_map": strides["final"],
    }
    return model, info


def match_width(build: Callable[[float], nn.Module], latency_of: Callable[[nn.Module], float | None], budget_ms: float,
                widths: Sequence[float] = MATCH_WIDTHS) -> dict:
    """The widest of ``widths`` whose network is within ``budget_ms`` (bisection: latency grows with width).

    Args:
        build: width -> the network (built, re-strided).
        latency_of: network -> its latency on the target in ms (``None``: cannot be priced).
        budget_ms: the budget.
        widths: the candidates, ascending.

    Returns:
        ``{"width", "latency_ms", "matched", "probes": [[width, ms], ...]}``;
        ``matched`` is False when even the narrowest network is over the budget
        (the narrowest is returned) or the target cannot price a network.
    """
    widths = sorted(widths)
    probes: dict[float, float | None] = {}

    def ms(i: int) -> float | None:
        w = widths[i]
        if w not in probes:
            probes[w] = latency_of(build(w))
        return probes[w]

    first = ms(0)
    if first is None:
        return {"width": None, "latency_ms": None, "matched": False, "probes": [[w, v] for w, v in probes.items()]}
    if first > budget_ms:
        return {"width": widths[0], "latency_ms": first, "matched": False, "probes": [[w, v] for w, v in probes.items()]}
    lo, hi = 0, len(widths)  # widths[lo] fits; widths[hi:] do not (as far as probed)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ms(mid) <= budget_ms:
            lo = mid
        else:
            hi = mid
    return {"width": widths[lo], "latency_ms": probes[widths[lo]], "matched": True,
            "probes": sorted([[w, v] for w, v in probes.items()])}


# ---------------------------------------------------------------------------
# training and measuring


def _target_ms(model: nn.Module, input_size: int, target: str, timing: Timing) -> float | None:
    """The latency the report takes for ``model`` on ``target`` (see the module docstring); None for a board table."""
    if target == "host-ort":
        return measure_onnx_ms(model, input_size, timing=timing)
    if target == "host-torch":
        return measure_torch_ms(model, input_size, timing=timing)
    if target.startswith("file:"):
        return None
    return analytic_latency(model, input_size, target)["ms"]


def _latency(model: nn.Module, input_size: int, target: str, threads: int, timing: Timing | None = None) -> dict:
    """Latency on ``target`` and, always, on the host with ONNX Runtime (both timed with ``timing``, default ``Timing(threads)``)."""
    timing = timing or Timing(threads=threads)
    threads = timing.threads
    host = measure_onnx_ms(model, input_size, timing=timing)
    out = {"latency_ms_host_ort": host, "threads": int(threads), "target": target}
    if target == "host-ort":
        out.update(latency_ms=host, latency_source=f"measured: ONNX Runtime fp32, {threads} thread(s), batch 1")
    elif target == "host-torch":
        out.update(latency_ms=measure_torch_ms(model, input_size, timing=timing), latency_source=f"measured: PyTorch eager (channels_last, BN unfolded), {threads} thread(s), batch 1")
    elif target.startswith("file:"):
        out.update(latency_ms=None, latency_source="not available: a board table prices only the operators of its own space; measure this network on the board")
    else:
        a = analytic_latency(model, input_size, target)
        out.update(
            latency_ms=a["ms"],
            latency_source=f"predicted: {target} profile, convolutions and linear layers only (activations, SE gates, adds, pooling not priced: a lower bound)",
            unsupported=a["unsupported"],
        )
    return out


@dataclass
class BaselinesConfig:
    """Reference networks trained and timed beside the searched one (the report's comparison)."""

    PRIMARY: ClassVar[str] = "names"

    #: baseline networks: default (MobileNetV2 and V3 width-matched to the budget), fixed (six at their input size's width), none, or a comma-separated list of NAME, NAME@WIDTH or NAME@match
    names: str = "default"
    #: one width multiplier for all of them (default: by input size, see default_width)
    width: Optional[float] = None

    def check(self, name) -> None:
        for n in baseline_names(self.names):
            _parse_name(n)  # a typo fails before any work
        if self.width is not None and not 0.05 <= self.width <= 4.0:
            raise ConfigError(f"{name('width')} {self.width} is outside 0.05..4")


def baseline_names(spec: str) -> list[str]:
    """The networks a ``--baselines`` value names (``default``, ``fixed``, ``none`` or a list)."""
    if spec in ("none", "", "0"):
        return []
    if spec == "default":
        return list(DEFAULT_BASELINES)
    if spec == "fixed":
        return list(FIXED_BASELINES)
    return [s.strip() for s in spec.split(",") if s.strip()]


def run_baselines(
    data: DataSet,
    out_dir,
    names: Sequence[str] = DEFAULT_BASELINES,
    recipe: TrainConfig | None = None,
    *,
    target: str = "host-ort",
    timing: Timing | None = None,
    seed: int = 0,
    width: float | None = None,
    budget_ms: float | None = None,
    progress: bool | None = None,
    on_result: Callable[[str, dict], None] | None = None,
    hardware: Hardware | None = None,
) -> list[dict]:
    """Train, count and time baseline networks; each in its own stage folder ``out_dir/<name>``.

    Args:
        data: the loaded data set (the derived network's).
        out_dir: one folder per network: ``result.json``, training files,
            ``stage.json`` (:func:`ednas.stage.run_stage`: a complete network
            is not trained again; an interrupted one resumes; one trained with
            other settings is kept aside).
        names: keys of :data:`BASELINES`, optionally ``NAME@WIDTH``.
        recipe: the derived network's training settings (epochs included),
            so that every network is trained the same way; ednas-only
            options (branches, inherit) are turned off.
        target: the run's target (``host-ort``, ``host-torch``, a profile
            name, ``roofline:PATH`` or ``file:PATH``); see the module docstring.
        timing: how the host latency is measured (the run's; threads = the table's).
        seed: training seed.
        width: one width multiplier for all (default: per input size);
            ``NAME@match`` networks are matched to ``budget_ms`` instead.
        budget_ms: the budget that ``NAME@match`` networks are matched to.
        progress: the trainer's progress bars.
        on_result: called ``(name, result)`` after each network.
        hardware: where they are trained (:mod:`ednas.device`; default the CPU).

    Returns:
        One dict per network, in ``names`` order (see ``result.json``).
    """
    names = list(names)
    for n in names:
        if _parse_name(n)[1] == MATCH and budget_ms is None:
            raise ConfigError(f"baseline '{n}': a width matched to the budget needs the budget (budget_ms)")
    recipe = dataclasses.replace(recipe or TrainConfig(), branches=False, inherit=None)
    timing = timing or Timing()
    out_dir = Path(out_dir)
    results = []
    for name in names:
        key, w = _parse_name(name)
        matched = w == MATCH
        settings = {"format": RESULT_FORMAT, "name": name, "data": data.spec, "input_size": data.input_size, "target": target,
                    "width": width, "seed": seed, "recipe": config_dict(recipe), "timing": config_dict(timing)}
        if matched:
            settings.update(width=None, budget_ms=budget_ms)

        def work(folder: Path, name=name, key=key, matched=matched) -> dict:
            t0 = time.time()
            match = None
            use_width = width
            if matched:
                def build(wm: float) -> nn.Module:
                    return build_baseline(key, data.num_classes, data.input_size, wm)[0].eval()

                match = match_width(build, lambda m: _target_ms(m, data.input_size, target, timing), budget_ms)
                use_width = match["width"] or default_width(data.input_size)
                log.info("baseline %s: width %s, %s ms on %s (budget %.4g ms)%s", key, use_width, match["latency_ms"], target, budget_ms,
                         "" if match["matched"] else ": not matched")
            torch.manual_seed(derive(seed, "init"))
            model, info = build_baseline(name, data.num_classes, data.input_size, use_width)
            if match is not None:
                info.update(width_matched=match["matched"], width_matched_to_ms=budget_ms, width_probes=match["probes"])
            metrics = fit(model, data, recipe, folder, seed=seed, progress=progress, tensorboard=False, resume=True, save=False,
                          hardware=hardware)
            model = model.eval().to("cpu", memory_format=torch.contiguous_format)
            macs, _ = count_macs(model, data.input_size)
            res = {
                "format": RESULT_FORMAT,
                **info,
                "data": data.spec,
                "epochs": int(recipe.epochs),
                "top1": metrics["top1"],
                "top5": metrics["top5"],
                **({k: metrics[k] for k in ("task", "map", "map_voc07", "ap")} if data.multilabel else {}),
                "n_test": metrics["n_test"],
                "params": int(sum(p.numel() for p in model.parameters())),
                "macs": int(macs),
                **_latency(model, data.input_size, target, timing.threads),
                "train_wall_s": metrics["wall_s"],
                "wall_s": time.time() - t0,
                "recipe": {k: getattr(recipe, k) for k in ("batch_size", "lr", "lr_warmup_epochs", "momentum", "weight_decay", "label_smoothing", "quant_friendly")} | {"seed": seed},
            }
            atomic_write_json(folder / "result.json", res)
            ck = folder / "checkpoint.pt"
            if ck.is_file():  # the result is what is kept; the checkpoint only served a resume
                ck.unlink()
            return res

        res = run_stage(out_dir / _folder(name), settings, work, name=f"baseline {name}").result
        results.append(res)
        if on_result:
            on_result(name, res)
    return results


def _folder(name: str) -> str:
    return name.replace("@", "_w")


def load_baselines(out_dir) -> list[dict]:
    """Every ``<name>/result.json`` under ``out_dir`` (for the report), in folder-name order; unreadable ones are left out."""
    out = []
    for p in sorted(Path(out_dir).glob("*/result.json")):
        try:
            out.append(read_json(p))
        except (OSError, ValueError):
            continue
    return out
