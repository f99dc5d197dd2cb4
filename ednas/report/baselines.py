"""Baseline networks for the report's accuracy-vs-latency plot.

By default (``names = default``) one hand-designed network **at the
budget**: ``uniform``, the search space's own skeleton with one kernel (3x3),
the largest expansion and every block everywhere
(:func:`ednas.arch.scale.uniform_arch`), its widths scaled so that its
latency on the run's target matches the budget (``uniform@match``;
:func:`match_width`).  That is the comparison a user needs: at the latency
they can afford, does the searched network beat what they would otherwise
ship -- the same network without NAS?  ``mobilenets`` names the two
width-matched MobileNets that were the default before (MobileNetV2 and
MobileNetV3-Large, ``mobilenetv2@match``, ``mobilenetv3@match``); why the
default changed is in docs/report.md (on CIFAR ``uniform`` is the stronger
rival and it costs about a third of their training).  Any baseline can be
matched (``NAME@match``) or given a width (``NAME@WIDTH``); ``fixed`` names
the six timm networks at the width of their input size (:func:`default_width`).

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
* *The space's own network* (``uniform``): built by ednas from the run's
  space (:func:`ednas.arch.scale.scale_space` scales its stem's and stages'
  widths, rounded to multiples of 8; the head keeps its width), at its
  space's resolution schedule, so nothing is re-strided; without a width it
  is the space's widths (multiplier 1).
* *Width matched to the budget* (``NAME@match``).  The latency of a width is
  taken as every baseline's is (below: measured in the budget's precision on a
  host target, scaled to the table's reference network on ``host-ort``;
  predicted by the profile on an analytic one).  :func:`match_width` searches
  the widths of :data:`MATCH_WIDTHS` (0.05 to 2.0 in steps of 0.05; latency
  grows with width) for the widest network within the budget, by
  interpolation on a line in multiply-adds through its probes (three timed
  networks in the default run; bisection took five); every width it timed is recorded
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
* *Latency: priced like the searched network, once* (:class:`Pricing`).
  Every baseline is priced in the precision the budget is for (the latency
  table's, ``table.dtype``), as the pipeline checks the deployed file against
  the budget.  On ``host-ort`` that is the network's file in that precision
  (:func:`ednas.latency.measure.deployed_bytes`: the deploy form, and with a
  fixed-point budget its quantized file, made by ednas's one quantizer
  (:mod:`ednas.runtime.quantize`) in the table's scheme), timed by
  :func:`ednas.runtime.time_onnx` with the run's :class:`~ednas.runtime.Timing`
  beside the table's reference network
  (:func:`ednas.latency.measure.table_reference`), so that the figure is at the
  speed the table and the budget were measured at (``latency_ms``; as timed:
  ``latency_ms_raw``; ``latency_reference`` says whether and by how much it
  was scaled, or why not).  A width-matched network is measured once, when its
  width is matched (untrained: the kernels ONNX Runtime runs do not depend on
  the weights' values), and *that* figure is the one recorded and plotted; a
  network of a given width is measured once, after training.
  ``host-torch`` is timed in PyTorch eager (channels_last, batch 1).  For an
  analytic target (``tda2x``, ``tda4vm``, ``roofline``) nothing is measured: the
  profile prices each convolution and linear layer with its roofline
  (:func:`ednas.latency.targets.analytic_latency`), which leaves out
  activations (hard-swish, SiLU), SE gates, adds and pooling, so these
  figures are lower bounds and say so in ``latency_source``; this host's fp32
  ONNX Runtime figure is recorded beside (``latency_ms_host_ort``, not
  plotted).  A board table (``file:PATH``) cannot price networks outside its
  space: the target latency is ``None``.
* *Accuracy.*  The test top-1 of the trained network in PyTorch (``top1``, as
  the derived network's ``top1``).  With a fixed-point budget also its
  quantized file's (``top1_int8``, ``map_int8`` on multi-label data; the
  precision in ``quant_precision``): ednas's quantizer with the settings the
  derived network's deployed file is made with (``ednas export``'s: bits,
  per-channel, power-of-two, mixed precision, calibration method, calibration
  images from the training split), scored by ONNX Runtime on the split the
  export scores (``quant_scoring``).  That is the number the report plots
  beside the derived network's int8 point.

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
from ednas.latency.measure import deployed_bytes, measure_onnx_ms, measure_torch_ms, onnx_deploy_bytes, quant_settings, table_reference
from ednas.latency.targets import analytic_latency
from ednas.nn.macs import count_macs, trace
from ednas.runtime import Reference, Timing, board, time_onnx
from ednas.runtime.interface import TARGETS, image_inputs, runtime_of_target
from ednas.seeds import derive
from ednas.stage import run_stage
from ednas.train.trainer import TrainConfig, fit

__all__ = [
    "BASELINES",
    "DEFAULT_BASELINES",
    "FIXED_BASELINES",
    "MATCH_WIDTHS",
    "MOBILENET_BASELINES",
    "Baseline",
    "BaselinesConfig",
    "Pricing",
    "baseline_names",
    "adapt_strides",
    "build_baseline",
    "comparison",
    "default_width",
    "load_baselines",
    "match_width",
    "precision_name",
    "run_baselines",
]

RESULT_FORMAT = 2  # 2: priced in the budget's precision, once, scaled to the table's reference

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
    # built from the run's space by build_baseline (its build here is never called)
    "uniform": Baseline("Uniform (the space without NAS)", "ednas", None, "uniform_arch"),
}

#: the baseline built from the run's search space rather than a registry generator
UNIFORM = "uniform"

#: the hand-designed and searched networks users compare against, from timm, at the width of their input size (``fixed``)
FIXED_BASELINES: tuple[str, ...] = ("mobilenetv2", "mobilenetv3", "mnasnet", "fbnetc", "spnasnet", "mixnet")

#: the set ``ednas run`` trains by default: the space's own network at the width whose latency matches the budget
DEFAULT_BASELINES: tuple[str, ...] = ("uniform@match",)

#: ``mobilenets``: MobileNetV2 and V3 at the width whose latency matches the budget (the default until issue 21)
MOBILENET_BASELINES: tuple[str, ...] = ("mobilenetv2@match", "mobilenetv3@match")

#: the width multipliers :func:`match_width` chooses from: 0.05 to 2.0 in steps of 0.05
MATCH_WIDTHS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 41))

MATCH = "match"

#: :func:`match_width` probes this many widths by interpolation before it bisects what is left of the bracket
INTERPOLATION_PROBES = 5

#: :func:`match_width`'s first step, before two probes give a slope: this share of the first probe's latency taken to
#: grow in proportion to the multiply-adds, the rest fixed (the default run's ``uniform`` probes at widths 1 to 1.5:
#: 0.3, the fixed cost of a small network large); a starting guess, the result does not depend on it
PRIOR_SHARE = 0.3


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


def build_baseline(name: str, num_classes: int, input_size: int, width: float | None = None, space=None) -> tuple[nn.Module, dict]:
    """Build a width-scaled, re-strided baseline.

    Args:
        name: a key of :data:`BASELINES`, optionally ``NAME@WIDTH``.
        num_classes: classifier outputs.
        input_size: image side (sets the default width and the strides).
        width: width multiplier (overrides ``NAME@WIDTH`` and the default).
        space: the run's search space (:class:`~ednas.arch.spec.ArchSpec`), which ``uniform`` is built from.

    Returns:
        ``(model, info)`` with the title, source, width and stride changes
        (``uniform``: also its ``arch`` string).
    """
    key, w = _parse_name(name)
    if w == MATCH:
        w = None  # the caller matched the width and passes it
    b = BASELINES[key]
    extra = {}
    if key == UNIFORM:
        if space is None:
            raise ConfigError("baseline 'uniform' is the search space's own network: it needs the run's space")
        from ednas.arch.scale import scale_space, uniform_arch
        from ednas.nn.build import build_model

        width = float(width or w or 1.0)
        arch = scale_space(uniform_arch(space), width)
        model = build_model(arch, num_classes)
        extra = {"arch": arch.format()}
    else:
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
        **extra,
    }
    return model, info


def match_width(build: Callable[[float], nn.Module], latency_of: Callable[[nn.Module], float | dict | None], budget_ms: float,
                widths: Sequence[float] = MATCH_WIDTHS, start: float = 1.0, size_of: Callable[[nn.Module], float] | None = None) -> dict:
    """The widest of ``widths`` whose network is within ``budget_ms`` (latency grows with width).

    A safeguarded interpolation search on the grid (regula falsi).  The
    first probe is the width nearest ``start``; each next one is where the
    line through the two probes nearest the budget (latency = a + b * size;
    with one probe, :data:`PRIOR_SHARE` of its latency taken to grow with
    size, or all of it in width) puts the budget, rounded down to the grid,
    inside the bracket still open.  The size is ``size_of`` of
    the network (the baselines: its multiply-adds, which step where the
    channels' rounding to multiples of 8 steps, as latency does), or the
    width without it.  The search ends when a width that fits and the next
    one up that does not are both probed: three or four probes where
    bisection over the 40 widths times five or six networks, each quantized
    and timed; after :data:`INTERPOLATION_PROBES` probes it bisects what is
    left.  Widths whose networks have the same parameter shapes are the same
    network and are timed once.  Latency must not fall as the width grows
    (as bisection assumed); then the result is what timing every width gives.

    Args:
        build: width -> the network (built, re-strided).
        latency_of: network -> its latency on the target in ms (``None``: cannot be priced),
            or a measurement ``{"ms": ..., ...}`` (:meth:`Pricing.measure`).
        budget_ms: the budget.
        widths: the candidates, ascending.
        start: the width probed first (the nearest candidate).
        size_of: network -> a size that grows with its latency (multiply-adds); None: the width.

    Returns:
        ``{"width", "latency_ms", "matched", "probes": [[width, ms], ...], "measurement"}``;
        ``matched`` is False when even the narrowest network is over the budget
        (the narrowest is returned) or the target cannot price a network;
        ``measurement`` is what ``latency_of`` returned for the chosen width
        (each width is measured once: ``latency_ms`` is that measurement's).
    """
    widths = sorted(widths)
    n = len(widths)
    probes: dict[float, float | dict | None] = {}
    by_shapes: dict[tuple, float | dict | None] = {}  # a network's parameter shapes -> its measurement
    sizes: dict[int, float] = {}

    def value(v):
        return v.get("ms") if isinstance(v, dict) else v

    def size(i: int) -> float:
        if i not in sizes:
            sizes[i] = float(size_of(build(widths[i]))) if size_of is not None else widths[i]
        return sizes[i]

    def ms(i: int) -> float | None:
        w = widths[i]
        if w not in probes:
            net = build(w)
            shapes = tuple(tuple(t.shape) for t in net.state_dict().values()) if isinstance(net, nn.Module) else None
            if shapes is not None and shapes in by_shapes:
                probes[w] = by_shapes[shapes]  # its channels round to those of a width already timed: the same network
            else:
                probes[w] = latency_of(net)
                if shapes is not None:
                    by_shapes[shapes] = probes[w]
        return value(probes[w])

    def listed():
        return sorted([[w, value(v)] for w, v in probes.items()])

    def guess(lo: int, hi: int) -> int:
        """The next index to probe, in (lo, hi): the budget's size on the line through the nearest probes, rounded down."""
        if not probes:
            return min(range(n), key=lambda i: abs(widths[i] - start))
        known = [(size(i), value(probes[w])) for i, w in enumerate(widths) if w in probes]
        known = [(x, t) for x, t in known if x > 0 and t is not None and t > 0]
        below = [k for k in known if k[1] <= budget_ms]
        above = [k for k in known if k[1] > budget_ms]
        if below and above:  # the bracket: the line through its two ends
            anchor, other = below[-1], above[0]
        elif below:  # one side: the probe nearest the budget and the next one with another size and latency
            anchor, other = below[-1], next((k for k in reversed(below) if k[0] < below[-1][0] and k[1] < below[-1][1]), None)
        elif above:
            anchor, other = above[0], next((k for k in above if k[0] > above[0][0] and k[1] > above[0][1]), None)
        else:
            return (lo + hi) // 2
        x0, t0 = anchor
        slope = (t0 * (PRIOR_SHARE if size_of is not None else 1.0)) / x0  # one probe: that share of its latency grows with size
        if other is not None and other[0] != anchor[0] and (other[1] - t0) / (other[0] - x0) > 0:
            slope = (other[1] - t0) / (other[0] - x0)  # the secant through the two
        target = x0 + (budget_ms - t0) / slope
        # the widest width in (lo, hi) whose size is at most the target (sizes grow with width: a bisection on them)
        a, b = lo, hi  # size(a) <= target (a = lo: assumed), size(b) > target (b = hi: assumed)
        while b - a > 1:
            m = (a + b) // 2
            if size(m) <= target * (1 + 1e-9):
                a = m
            else:
                b = m
        return min(max(a, lo + 1), hi - 1)

    # widths[lo] fits (lo = -1: none known to), widths[hi:] do not (as far as probed); the narrowest width is probed only
    # when every wider probe is over the budget (a matched width needs no probe below it)
    lo, hi, tries = -1, n, 0
    while hi - lo > 1:
        tries += 1
        i = guess(lo, hi) if tries <= INTERPOLATION_PROBES else (lo + hi) // 2
        if i == 0 and hi > 1:
            i = 1
        v = ms(i)
        if v is None:  # the target cannot price a network
            return {"width": None, "latency_ms": None, "matched": False, "probes": listed(), "measurement": probes[widths[i]]}
        if v <= budget_ms:
            lo = i
        else:
            hi = i
    w = widths[max(lo, 0)]  # lo = -1: even the narrowest (probed last) is over the budget: it is kept, unmatched
    return {"width": w, "latency_ms": value(probes[w]), "matched": lo >= 0, "probes": listed(), "measurement": probes[w]}


# ---------------------------------------------------------------------------
# training and measuring


PRECISIONS = {"f32": "fp32", "f16": "fp16", "i8": "int8", "i16": "int16"}


def precision_name(dtype: str | None) -> str | None:
    """``int8`` for a table dtype ``i8`` (``fp32``, ``fp16``, ``int16``); None stays None."""
    return None if dtype is None else PRECISIONS.get(str(dtype), str(dtype))


@dataclass
class Pricing:
    """How a baseline's latency is taken: as the run takes the deployed file's, in the precision the budget is for, once.

    ``dtype`` and ``quant`` are the latency table's (``table.dtype``, its
    ``meta["quant"]``): on ``host-ort`` a fixed-point budget prices the network's
    quantized file (:func:`ednas.latency.measure.deployed_bytes`: ednas's one
    quantizer, the table's scheme).  ``reference`` is the table's reference
    network (:func:`ednas.latency.measure.table_reference`), timed alongside, so
    the figure is at the speed the table (and the budget) were measured at.
    """

    target: str = "host-ort"
    timing: Timing = dataclasses.field(default_factory=Timing)
    #: the precision the budget is for (the table's dtype)
    dtype: str = "f32"
    #: the table's fixed-point scheme (None: float)
    quant: Optional[dict] = None
    reference: Optional[Reference] = None
    #: why there is no reference (empty when there is one)
    reference_why: str = "no latency table given"

    @classmethod
    def of(cls, target: str, timing: Timing, table=None) -> "Pricing":
        """The pricing of a run on ``target`` with latency ``table`` (None: fp32, no reference)."""
        if table is None:
            return cls(target, timing)
        ref, why = table_reference(table) if target in TARGETS else (None, f"target {target} is not timed with a runtime on this host")
        dtype = str(table.dtype or "f32")
        quant = table.meta.get("quant") if dtype in ("i8", "i16") else None
        return cls(target, timing, dtype, quant, ref, why)

    @property
    def precision(self) -> str:
        return precision_name(self.dtype) or "fp32"

    @property
    def quantized(self) -> bool:
        return self.dtype in ("i8", "i16")

    def settings(self) -> dict:
        """What decides the figures (a stage's settings)."""
        return {"target": self.target, "dtype": self.dtype, "quant": self.quant,
                "reference_ms": None if self.reference is None else self.reference.ms}

    def source(self) -> str:
        """How the figure was taken, for ``latency_source``."""
        t, threads = self.target, self.timing.threads
        if t == "host-ort":
            what = (f"ONNX Runtime {self.precision} (ednas's quantizer, the latency table's scheme)" if self.quantized
                    else "ONNX Runtime fp32")
            scaled = ("scaled to the latency table's reference network" if self.reference is not None
                      else f"not scaled ({self.reference_why})")
            return f"measured: {what}, {threads} thread(s), batch 1, {scaled}"
        if t == "host-torch":
            return f"measured: PyTorch eager (channels_last, BN unfolded), {threads} thread(s), batch 1"
        if t == "host-litert":
            scaled = ("scaled to the latency table's reference network" if self.reference is not None
                      else f"not scaled ({self.reference_why})")
            what = "LiteRT int8 (full integer, litert-torch's PT2E quantizer)" if self.quantized else "LiteRT fp32"
            return f"measured: {what} (XNNPACK), {threads} thread(s), batch 1, {scaled}"
        if t in TARGETS:
            rt = runtime_of_target(t)
            scaled = ("scaled to the latency table's reference network" if self.reference is not None
                      else f"not scaled ({self.reference_why})")
            what = f"{rt.title} {self.precision}" + (" (ednas's quantizer, the latency table's scheme, QDQ)" if self.quantized else "")
            return f"measured: {what}, {threads} thread(s), batch 1, {scaled}"
        if t.startswith("file:"):
            return "not available: a board table prices only the operators of its own space; measure this network on the board"
        return f"predicted: {t} profile, convolutions and linear layers only (activations, SE gates, adds, pooling not priced: a lower bound)"

    def _figures(self, res: dict) -> dict:
        """The figure of an interleaved timing of one ``model`` beside the reference network (at the table's speed when scaled)."""
        r, ref = res["model"], res.get(board.REFERENCE) or {}
        scaled = r.get("scaled_ms")
        return {"ms": scaled if scaled is not None else r["ms"], "raw_ms": r["ms"], "scaled": scaled is not None,
                "reference": ({"used": True, "ratio": ref.get("ratio"), "ms": ref.get("ms"), "table_ms": ref.get("table_ms")}
                              if scaled is not None else {"used": False, "why": self.reference_why})}

    def measure(self, model: nn.Module, input_size: int) -> dict:
        """The one latency figure of ``model``: ``{"ms", ...}`` (``ms`` None where the target cannot price it).

        On ``host-ort``: the file in the budget's precision, timed by
        :func:`ednas.runtime.time_onnx` with the run's ``timing`` beside the
        table's reference network: ``ms`` is at the table's speed (``raw_ms``
        as timed) -- exactly how the deployed file is checked against the
        budget.
        """
        t = self.target
        if t == "host-ort":
            return self._figures(time_onnx({"model": deployed_bytes(model, input_size, self.quant)}, self.timing, reference=self.reference))
        if t == "host-torch":
            return {"ms": measure_torch_ms(model, input_size, timing=self.timing)}
        if t in TARGETS:  # another runtime on this host: the file it deploys, in the budget's precision
            rt = runtime_of_target(t)
            files = ({"model": deployed_bytes(model, input_size, self.quant)} if rt.format == "onnx"
                     else rt.files(image_inputs({"model": model.eval()}, input_size), self.quant))
            return self._figures(rt.time_files(files, self.timing, reference=self.reference))
        if t.startswith("file:"):
            return {"ms": None}
        a = analytic_latency(model, input_size, t)
        return {"ms": a["ms"], "unsupported": a["unsupported"]}


def _latency_record(m: dict, pricing: Pricing, when: str) -> dict:
    """The result's latency keys from one measurement (:meth:`Pricing.measure`)."""
    out = {"latency_ms": m["ms"], "latency_precision": pricing.precision, "latency_source": pricing.source(), "latency_measured": when,
           "threads": int(pricing.timing.threads), "target": pricing.target}
    if "raw_ms" in m:
        out.update(latency_ms_raw=m["raw_ms"], latency_scaled=m["scaled"], latency_reference=m["reference"])
    if "unsupported" in m:
        out["unsupported"] = m["unsupported"]
    return out


def _quantized_score(model: nn.Module, data: DataSet, settings, calib_images: int, seed: int, split: str, limit: int, threads: int) -> dict:
    """The trained ``model``'s quantized file (ednas's quantizer, the deployed file's settings) scored on ``split``."""
    from ednas.deploy.calibration import calibration_images
    from ednas.deploy.measure import onnx_scores
    from ednas.metrics import task_metrics, top1
    from ednas.runtime import ort_session
    from ednas.runtime.quantize import quantize_bytes

    fp32 = onnx_deploy_bytes(model, data.input_size)
    images = calibration_images(data, calib_images, seed=seed)
    q = quantize_bytes(fp32, images, settings)
    scores, labels = onnx_scores(ort_session(q, threads), data, split, limit=limit)
    if data.multilabel:
        return {"map": task_metrics(scores, labels, True, data.classes)["map"], "calib_images": int(len(images)), "split": split, "n": int(len(labels))}
    return {"top1": top1(scores, labels), "calib_images": int(len(images)), "split": split, "n": int(len(labels))}


@dataclass
class BaselinesConfig:
    """Reference networks trained and timed beside the searched one (the report's comparison)."""

    PRIMARY: ClassVar[str] = "names"

    #: baseline networks: default (uniform: the space's own network without NAS, width-matched to the budget), mobilenets
    #: (MobileNetV2 and V3 width-matched), fixed (six at their input size's width), none, or a comma-separated list of
    #: NAME, NAME@WIDTH or NAME@match
    names: str = "default"
    #: one width multiplier for all of them (default: by input size, see default_width)
    width: Optional[float] = None

    def check(self, name) -> None:
        for n in baseline_names(self.names):
            _parse_name(n)  # a typo fails before any work
        if self.width is not None and not 0.05 <= self.width <= 4.0:
            raise ConfigError(f"{name('width')} {self.width} is outside 0.05..4")


def baseline_names(spec: str) -> list[str]:
    """The networks a ``--baselines`` value names (``default``, ``mobilenets``, ``fixed``, ``none`` or a list)."""
    if spec in ("none", "", "0"):
        return []
    if spec == "default":
        return list(DEFAULT_BASELINES)
    if spec == "mobilenets":
        return list(MOBILENET_BASELINES)
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
    table=None,
    export=None,
    space=None,
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
        timing: how latency is measured (the run's: the deployed file's; threads = the table's).
        seed: training seed (and the calibration draw of the quantized files).
        width: one width multiplier for all (default: per input size);
            ``NAME@match`` networks are matched to ``budget_ms`` instead.
        budget_ms: the budget that ``NAME@match`` networks are matched to.
        progress: the trainer's progress bars.
        on_result: called ``(name, result)`` after each network.
        hardware: where they are trained (:mod:`ednas.device`; default the CPU).
        table: the run's latency table: its precision (the budget's), its
            fixed-point scheme and its reference network decide how every
            baseline is priced (:class:`Pricing`); None: fp32, not scaled.
        export: the run's :class:`~ednas.deploy.export.ExportConfig`: with a
            fixed-point budget each baseline's quantized file is made with its
            settings (and calibration size, on the training split) and scored
            on its split, as the derived network's deployed file is.
        space: the run's search space, which ``uniform`` is built from.

    Returns:
        One dict per network, in ``names`` order (see ``result.json``).
    """
    names = list(names)
    for n in names:
        if _parse_name(n)[1] == MATCH and budget_ms is None:
            raise ConfigError(f"baseline '{n}': a width matched to the budget needs the budget (budget_ms)")
    recipe = dataclasses.replace(recipe or TrainConfig(), branches=False, inherit=None)
    timing = timing or Timing()
    pricing = Pricing.of(target, timing, table)
    scoring = _scoring(pricing, export)
    out_dir = Path(out_dir)
    results = []
    for name in names:
        key, w = _parse_name(name)
        matched = w == MATCH
        settings = {"format": RESULT_FORMAT, "name": name, "data": data.spec, "input_size": data.input_size, "target": target,
                    **({"space": space.format() if space is not None else None} if key == UNIFORM else {}),
                    "width": width, "seed": seed, "recipe": config_dict(recipe), "timing": config_dict(timing),
                    "pricing": pricing.settings(), "scoring": None if scoring is None else scoring["settings"]}
        if matched:
            settings.update(width=None, budget_ms=budget_ms)

        def work(folder: Path, name=name, key=key, matched=matched) -> dict:
            t0 = time.time()
            match = None
            use_width = width
            if matched:
                match = _match(folder, key, data, pricing, budget_ms, space)
                use_width = match["width"] or (1.0 if key == UNIFORM else default_width(data.input_size))
            torch.manual_seed(derive(seed, "init"))
            model, info = build_baseline(name, data.num_classes, data.input_size, use_width, space=space)
            if match is not None:
                info.update(width_matched=match["matched"], width_matched_to_ms=budget_ms, width_probes=match["probes"])
            metrics = fit(model, data, recipe, folder, seed=seed, progress=progress, tensorboard=False, resume=True, save=False,
                          hardware=hardware)
            model = model.eval().to("cpu", memory_format=torch.contiguous_format)
            macs, _ = count_macs(model, data.input_size)
            if match is not None and match.get("measurement") is not None:
                # the latency the width was matched at is the one reported: one measurement, never a second
                lat = _latency_record(match["measurement"], pricing, "once, at the width match (untrained weights: the kernels "
                                      "ONNX Runtime runs do not depend on their values)" if target == "host-ort" else "once, at the width match")
            else:
                lat = _latency_record(pricing.measure(model, data.input_size), pricing, "once, after training")
            if not target.startswith("host-"):  # this host's fp32 ORT figure beside a target's prediction (never plotted)
                lat["latency_ms_host_ort"] = measure_onnx_ms(model, data.input_size, timing=timing)
            quant = {}
            if scoring is not None:
                q = _quantized_score(model, data, scoring["quant"], scoring["calib_images"], seed, scoring["split"], scoring["eval_images"],
                                     timing.threads)
                qkey = "map_int8" if data.multilabel else "top1_int8"
                quant = {qkey: q["map" if data.multilabel else "top1"], "quant_precision": pricing.precision,
                         "quant_scoring": {**scoring["settings"], "n": q["n"], "calib_images": q["calib_images"]}}
            res = {
                "format": RESULT_FORMAT,
                **info,
                "data": data.spec,
                "epochs": int(recipe.epochs),
                "top1": metrics["top1"],
                "top5": metrics["top5"],
                **({k: metrics[k] for k in ("task", "map", "map_voc07", "ap")} if data.multilabel else {}),
                **quant,
                "n_test": metrics["n_test"],
                "params": int(sum(p.numel() for p in model.parameters())),
                "macs": int(macs),
                **lat,
                "train_wall_s": metrics["wall_s"],
                "wall_s": time.time() - t0,
                "recipe": {k: getattr(recipe, k) for k in ("batch_size", "lr", "lr_warmup_epochs", "momentum", "weight_decay", "label_smoothing", "quant_friendly")} | {"seed": seed},
            }
            atomic_write_json(folder / "result.json", res)
            for f in ("checkpoint.pt", "match.json"):  # the result is what is kept; these only served a resume
                if (folder / f).is_file():
                    (folder / f).unlink()
            return res

        res = run_stage(out_dir / _folder(name), settings, work, name=f"baseline {name}").result
        results.append(res)
        if on_result:
            on_result(name, res)
    return results


def _match(folder: Path, key: str, data: DataSet, pricing: Pricing, budget_ms: float, space=None) -> dict:
    """:func:`match_width` priced by ``pricing``, kept in ``folder/match.json`` (a resumed training keeps its width and latency)."""
    path = folder / "match.json"
    if path.is_file():
        try:
            return read_json(path)
        except (OSError, ValueError):
            pass

    def build(wm: float) -> nn.Module:
        return build_baseline(key, data.num_classes, data.input_size, wm, space=space)[0].eval()

    match = match_width(build, lambda m: pricing.measure(m, data.input_size), budget_ms,
                        size_of=lambda m: count_macs(m, data.input_size)[0])
    log.info("baseline %s: width %s, %s ms %s on %s (budget %.4g ms)%s", key, match["width"], match["latency_ms"], pricing.precision,
             pricing.target, budget_ms, "" if match["matched"] else ": not matched")
    atomic_write_json(path, match)
    return match


def _scoring(pricing: Pricing, export) -> dict | None:
    """How a baseline's quantized file is made and scored when the budget is fixed point (None: float budget)."""
    if not pricing.quantized:
        return None
    from ednas.runtime.quantize import QuantSettings

    if export is not None and export.quant != "none":
        settings = QuantSettings(bits=int(export.quant[3:]), weight_bits=export.weight_bits, pow2=export.pow2, per_channel=export.per_channel,
                                 mixed=export.mixed_precision, calib_method=export.calib_method)
        calib, split, limit = export.calib_images, export.split, export.eval_images
    else:
        settings = quant_settings(pricing.quant) or QuantSettings(bits=16 if pricing.dtype == "i16" else 8)
        calib, split, limit = 256, "test", 0
    return {"quant": settings, "calib_images": int(calib), "split": split, "eval_images": int(limit),
            "settings": {"quant": dataclasses.asdict(settings), "calib_images": int(calib), "calib_split": "train", "split": split,
                         "eval_images": int(limit)}}


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def comparison(summary: dict, export: dict | None, baselines: Sequence[dict], key: str = "top1", key8: str = "top1_int8") -> dict:
    """The accuracy-against-latency comparison of a run: every network in the precision the budget is for.

    The derived network in that precision is the deployed file the budget is
    checked against (``summary["latency_ms_measured"]``: at the table's speed
    when its reference network was timed beside it) with that file's score
    (``key8`` for a fixed-point budget); its other precision (the fp32 file, or
    the quantized one of an fp32 budget) is a second point, timed the same way
    by the export.  Baselines are at the latency they were matched at (or
    measured at, once) in that precision, with their quantized score when the
    budget is fixed point (``key8``; ``key`` where it is missing, and the label
    says so).  On an analytic or board target the derived network's latency is
    the table's prediction and the host files are not shown.

    Args:
        summary: the run's ``summary.json``.
        export: ``export/export.json`` (None: missing).
        baselines: the ``result.json`` of each baseline.
        key, key8: the score and its quantized counterpart (``map``/``map_int8`` on multi-label data).

    Returns:
        ``{"points", "precision", "xlabel", "title", "caption"}``; each point
        ``{"label", "latency_ms", "top1" (the score), "kind", "precision",
        "how", "score_fp32", "baseline" (its result, or None)}``, the kinds those
        of :func:`ednas.report.figures.accuracy_latency`.
    """
    exp = export if isinstance(export, dict) else {}
    target = str(summary.get("target") or "")
    on_host = not target or target.startswith("host-")
    dtype = summary.get("latency_dtype") or "f32"
    prec = precision_name(dtype)
    quantized = dtype in ("i8", "i16")
    deployed = summary.get("deployed") if isinstance(summary.get("deployed"), dict) else {}
    scaled = deployed.get("scaled_ms") is not None
    score_of = key8 if quantized else key
    if on_host and _num(summary.get("latency_ms_measured")):
        ms, how = summary["latency_ms_measured"], f"measured ({target or 'n/a'}): the deployed file" + (", scaled to the table's reference network" if scaled else "")
    else:
        ms, how = summary.get("latency_ms_predicted"), f"predicted ({target or 'n/a'}) by the latency table"
    points = [{"label": f"ednas {prec}", "latency_ms": ms, "top1": summary.get(score_of), "kind": "derived", "precision": prec, "how": how,
               "score_fp32": summary.get(key), "baseline": None}]
    if on_host and exp:
        suffix = "_scaled" if scaled else ""
        if quantized:
            other = ("fp32", exp.get(f"latency_ms_fp32{suffix}"), summary.get(key))
        else:
            other = (str(exp.get("quant") or "int8"), exp.get(f"latency_ms_quant{suffix}"), summary.get(key8))
        if _num(other[1]) and exp.get("quant", "int8") != "none":
            points.append({"label": f"ednas {other[0]}", "latency_ms": other[1], "top1": other[2], "kind": "derived-other", "precision": other[0],
                           "how": f"measured ({target or 'n/a'}): the exported file" + (", scaled to the table's reference network" if scaled else ""),
                           "score_fp32": summary.get(key), "baseline": None})
    label_score = "mAP" if key.startswith("map") else "top-1"
    for b in baselines:
        have8 = quantized and _num(b.get(key8))
        label = f"{b.get('title', b.get('name'))} x{b.get('width'):g}" if _num(b.get("width")) else str(b.get("title", b.get("name")))
        bprec = b.get("latency_precision")
        if bprec and bprec != prec:
            label += f" ({bprec} latency)"
        if quantized and not have8:
            label += f" (fp32 {label_score})"
        points.append({"label": label, "latency_ms": b.get("latency_ms"), "top1": b.get(key8) if have8 else b.get(key), "kind": "baseline",
                       "precision": bprec or "n/a", "how": b.get("latency_source") or "n/a", "score_fp32": b.get(key), "baseline": b})
    if target in TARGETS or (not target and on_host):
        runtime = runtime_of_target(target or "host-ort").title.split(" (")[0]
        xlabel = (f"latency, {prec} (ms): measured, {runtime} {prec}, batch 1, "
                  + ("scaled to the latency table's reference network" if scaled else "as timed (no reference network to scale by)"))
    elif on_host:
        xlabel = f"latency on {target}, {prec} (ms): measured"
    else:
        xlabel = f"latency on {target}, {prec} (ms): predicted by the profile"
    title = f"Accuracy against latency: every network in {prec}, the precision the budget is for"
    others = [p["label"] for p in points if p["kind"] == "derived-other"]
    caption = (f"Test {label_score} against latency on the run's target, every network in {prec} (the precision the budget is for)"
               + "; baselines priced the same way, once (a matched width: at the latency it was matched at)"
               + (f", with their {prec} {label_score}" if quantized else "")
               + (f"; hollow star: {others[0]}, the derived network's other precision" if others else "")
               + "; dashed line: the budget")
    return {"points": points, "precision": prec, "xlabel": xlabel, "title": title, "caption": caption}


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
