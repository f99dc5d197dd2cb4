"""``ednas profile``: parameters, MACs, predicted and measured latency of one network.

``--model SPEC`` is any of

* an ednas preset, arch string or arch file (a search space profiles its
  largest network), or a trained ``model.pt``: counted in deploy form
  (BN and branches fused, :func:`ednas.nn.fuse`), the form that runs;
* ``timm:NAME`` or ``torchvision:NAME``: built with ``pretrained=False``
  (nothing downloads), counted as built;
* ``baseline:NAME[@WIDTH]``: a report baseline, width-scaled and re-strided
  for the input size (:mod:`ednas.report.baselines`).

MACs come from our own counter (:mod:`ednas.nn.macs`: convolutions and
linear layers, one multiply-add = one MAC); the tests check it against
fvcore and the published figures.  ``params`` counts the network as given
(training form, BN included, as timm and ``metrics.json`` count it).

Latency, both where they can be had:

* *predicted* for ``--target``: an analytic profile (``tda2x``, ``tda4vm``,
  ``roofline``, ``roofline:PATH``) or a board table (``file:PATH``) prices
  an ednas network operator by operator through the latency module (eq. 11,
  with a per-layer breakdown); ``--lut TABLE`` uses a table you built (e.g.
  a run's ``lut/lut.json``).  A timm/torchvision network has no entries in a
  table, but an analytic profile can still price its convolutions and linear
  layers (:func:`analytic_latency`; activations, SE gates, adds and pooling
  are not priced, so it is a lower bound and labelled so);
* *measured* on this host with ONNX Runtime (fp32, batch 1, ``--threads``,
  1 by default: 2-thread timings on a shared VM fall into slow episodes),
  by :func:`ednas.runtime.time_onnx`; with ``--target remote:HOST:PORT``, on
  that device by its measurement server, with the same loop
  (docs/board.md).

Layers the target's accelerator does not run are listed (``unsupported``),
e.g. the 11x11 stride-2 stem or MixNet's 9x9/11x11 kernels on TDA4VM.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Optional

import torch.nn as nn

from ednas.arch.spec import load_arch
from ednas.device import DeviceConfig, Hardware, resolve_hardware
from ednas.errors import ArchError, CheckpointError, ConfigError, EdnasError
from ednas.io import atomic_write_json, check_writable_file
from ednas.latency.build import build_table, is_analytic
from ednas.latency.measure import measure_onnx_ms, measure_torch_ms, onnx_deploy_bytes
from ednas.latency.model import LatencyModel
from ednas.latency.remote import connect, is_remote
from ednas.latency.table import load_table
from ednas.latency.targets import analytic_latency, unsupported_layers
from ednas.nn.build import build_model
from ednas.nn.files import load_model
from ednas.nn.fuse import deploy_model
from ednas.nn.macs import count_macs
from ednas.report.baselines import build_baseline
from ednas.runtime import Timing, time_torch

__all__ = [
    "ProfileConfig",
    "profile_model",
    "run_profile",
    "load_network",
    "analytic_latency",
    "measure_onnx_ms",
    "measure_torch_ms",
]

log = logging.getLogger(__name__)


@dataclass
class ProfileConfig:
    ALIASES: ClassVar[dict] = {"input": "input_size"}  # the flag's earlier name
    FLAT: ClassVar[tuple] = ("hardware",)

    #: preset, arch string, arch file, trained model.pt, timm:NAME, torchvision:NAME or baseline:NAME[@WIDTH]
    model: str
    #: input image side (default: the one the arch file / model / preset names)
    input_size: Optional[int] = None
    #: latency target: host-ort, host-torch, tda2x, tda4vm, roofline, roofline:PATH.yaml, file:PATH or remote:HOST:PORT (measured there)
    target: Optional[str] = None
    #: a latency table (ednas lut build) to predict an ednas network's latency from
    lut: Optional[str] = None
    #: write the full profile (with the per-layer table) to this JSON file
    json: Optional[str] = None
    #: classifier outputs (default: the model's own; ednas archs: 10 below 64 px, else 1000)
    num_classes: Optional[int] = None
    #: ONNX Runtime intra-op threads for the measured latency
    threads: int = 1
    #: measure latency on this host with ONNX Runtime
    measure: bool = True
    #: timing rounds (each the median of >= 50 runs); the value is their median
    rounds: int = 5
    #: print the per-layer table to stderr
    table: bool = True
    #: token file of a remote:HOST:PORT target's server (default: EDNAS_REMOTE_TOKEN, else the file EDNAS_REMOTE_TOKEN_FILE, else the
    #: server's default token file)
    remote_token_file: Optional[str] = None
    hardware: DeviceConfig = field(default_factory=DeviceConfig)

    def check(self, name) -> None:
        for key, low in (("threads", 1), ("rounds", 1), ("num_classes", 1)):
            v = getattr(self, key)
            if v is not None and v < low:
                raise ConfigError(f"{name(key)} must be >= {low}, got {v}")


# ---------------------------------------------------------------------------
# resolving a SPEC


@dataclass
class _Network:
    model: nn.Module  # as given (training form for ednas)
    deploy: nn.Module  # what is counted and timed
    kind: str
    input_size: int | None
    num_classes: int
    arch: object | None = None  # ArchSpec of ednas networks
    info: dict | None = None


def _close(name: str, names: list[str]) -> str:
    near = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    return f"; did you mean {', '.join(near)}?" if near else ""


def _timm(name: str, num_classes: int | None) -> nn.Module:
    import timm

    if not timm.is_model(name):
        raise ConfigError(f"--model timm:{name}: timm {timm.__version__} has no model '{name}'{_close(name, timm.list_models())}")
    kw = {"num_classes": num_classes} if num_classes else {}
    return timm.create_model(name, pretrained=False, **kw)


def _torchvision(name: str, num_classes: int | None) -> nn.Module:
    import torchvision
    import torchvision.models as tvm

    names = tvm.list_models()
    if name not in names:
        raise ConfigError(f"--model torchvision:{name}: torchvision {torchvision.__version__} has no model '{name}'{_close(name, names)}")
    kw = {"num_classes": num_classes} if num_classes else {}
    return tvm.get_model(name, weights=None, **kw)


def _default_classes(size: int | None) -> int:
    return 10 if size is not None and size <= 64 else 1000


def load_network(spec: str, input_size: int | None = None, num_classes: int | None = None) -> _Network:
    """Resolve a ``--model`` SPEC (see the module docstring) to a network.

    Raises:
        EdnasError: an unknown timm/torchvision name (with close matches), a
            missing or unreadable file, a malformed arch string.
    """

    spec = str(spec).strip()
    if spec.startswith("timm:"):
        m = _timm(spec[5:], num_classes).eval()
        return _Network(m, m, "timm", input_size, int(getattr(m, "num_classes", num_classes or 1000)))
    if spec.startswith("torchvision:"):
        m = _torchvision(spec[12:], num_classes).eval()
        return _Network(m, m, "torchvision", input_size, int(num_classes or 1000))
    if spec.startswith("baseline:"):
        if input_size is None:
            raise ConfigError(f"--model {spec}: --input-size is required (a baseline is scaled to the input size)")
        m, info = build_baseline(spec[9:], num_classes or _default_classes(input_size), input_size)
        m = m.eval()
        return _Network(m, m, "baseline", input_size, num_classes or _default_classes(input_size), info=info)
    if spec.endswith(".pt"):
        if not Path(spec).is_file():
            raise CheckpointError(f"--model: model file '{spec}' does not exist")
        model, meta = load_model(spec)
        if num_classes and num_classes != int(meta["num_classes"]):
            raise CheckpointError(f"--num-classes {num_classes}: model file '{spec}' has {meta['num_classes']} outputs")
        size = input_size or int(meta["input_size"])
        return _Network(model, deploy_model(model), "ednas-model", size, int(meta["num_classes"]), arch=model.arch)

    arch, size = load_arch(spec)
    if num_classes is None and spec.endswith((".yaml", ".yml", ".json")):
        num_classes = _file_classes(spec)
    arch = arch.fixed()  # a space profiles its largest network
    size = input_size or size
    n = int(num_classes or _default_classes(size))
    model = build_model(arch, n).eval()
    return _Network(model, deploy_model(model), "ednas-arch", size, n, arch=arch)


def _file_classes(path: str) -> int | None:
    """``num_classes`` recorded in an arch file (a search's arch.yaml has it)."""
    import json

    import yaml

    try:
        text = Path(path).read_text()
        d = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
        return int(d["num_classes"]) if isinstance(d, dict) and d.get("num_classes") else None
    except Exception:  # noqa: BLE001 - load_arch has already validated the file; this key is optional
        return None


# ---------------------------------------------------------------------------
# latency


def _predict_ednas(net: _Network, target: str | None, lut: str | None) -> dict:
    """Predicted ms and per-layer breakdown of an ednas network, or why there is none."""

    out: dict = {"latency_ms_predicted": None, "latency_breakdown": None, "unsupported": []}
    if lut:
        table = load_table(lut, input_size=net.input_size)  # a table for another input size is a mistake, not a gap
        source = f"table {lut} (target {table.target})"
    elif target and (is_analytic(target) or target.startswith("file:")):
        table = build_table(target, net.arch, net.input_size, net.num_classes)
        source = f"target {target}" + (" (analytic profile)" if is_analytic(target) else " (board table)")
    else:
        if target:
            out["latency_predicted_source"] = f"none: target {target} is measured, not modelled; pass --lut TABLE (ednas lut build) to predict from a table"
        return out
    try:
        lm = LatencyModel(net.arch, net.input_size, net.num_classes, table)
        out["latency_ms_predicted"] = lm.predict(net.arch, allow_masked=True)
        out["latency_breakdown"] = lm.breakdown(net.arch)
        out["latency_predicted_source"] = f"{source}: sum of operator entries (eq. 11) + constant {table.constant_ms:g} ms"
    except EdnasError as e:  # a table that does not cover this network: say so, still profile
        out["latency_predicted_source"] = f"none: {e}"
    out["unsupported"] = unsupported_layers(net.arch, table if lut else (target or table), net.input_size, net.num_classes)
    return out


# ---------------------------------------------------------------------------
# the profile


def profile_model(
    spec: str,
    input_size: int | None = None,
    target: str | None = None,
    lut: str | None = None,
    num_classes: int | None = None,
    threads: int = 1,
    measure: bool = True,
    rounds: int = 5,
    hardware: Hardware | None = None,
    remote_token_file: str | None = None,
) -> dict:
    """The full profile of one network (see the module docstring).

    Returns:
        ``{"model", "kind", "arch", "input_size", "num_classes", "params",
        "macs", "macs_by_type", "latency_ms_predicted", "latency_ms_measured",
        "unsupported", "layers", ...}``; ``layers`` holds one row per executed
        convolution/linear layer (name, type, input/output shape, kernel,
        stride, groups, params, MACs).  With ``hardware`` on CUDA, also
        ``latency_ms_device``: the batch-1 PyTorch latency on that GPU under
        its autocast (the ONNX figure stays the host CPU's).
    """
    if threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    if input_size is not None and input_size < 8:
        raise ConfigError(f"--input-size {input_size}: the input side must be at least 8")
    net = load_network(spec, input_size, num_classes)
    if net.input_size is None:
        raise ConfigError(f"--input-size is required: '{spec}' does not name an input size")
    size = int(net.input_size)
    try:
        macs, rows = count_macs(net.deploy, size)
    except RuntimeError as e:  # e.g. an input too small for the network's downsampling
        raise ArchError(f"--model {spec} --input-size {size}: the forward pass failed ({str(e).splitlines()[0][:200]})") from e
    by_type: dict[str, int] = {}
    for r in rows:
        by_type[r.type] = by_type.get(r.type, 0) + r.macs
    prof: dict = {
        "model": spec,
        "kind": net.kind,
        "arch": net.arch.format() if net.arch is not None else None,
        "input_size": size,
        "num_classes": net.num_classes,
        "params": int(sum(p.numel() for p in net.model.parameters())),
        "params_deploy": int(sum(p.numel() for p in net.deploy.parameters())),
        "macs": int(macs),
        "macs_by_type": by_type,
        "macs_counted": "convolutions and linear layers, one multiply-add = one MAC, batch 1" + (", deploy form (BN and branches fused)" if net.arch is not None else ""),
        "target": target,
        "latency_ms_predicted": None,
        "latency_predicted_source": None,
        "latency_ms_measured": None,
        "latency_measured_how": None,
        "unsupported": [],
    }
    if net.info:
        prof["baseline"] = net.info
    if net.arch is not None:
        prof.update(_predict_ednas(net, target, lut))
    elif target and not target.startswith(("host-", "file:")) and not is_remote(target):
        a = analytic_latency(net.deploy, size, target)
        prof.update(
            latency_ms_predicted=a["ms"], unsupported=a["unsupported"],
            latency_predicted_source=f"target {target} (analytic profile), {a['scope']}: a lower bound",
        )
    elif target or lut:
        prof["latency_predicted_source"] = "none: a latency table holds ednas operators only; a timm/torchvision network is predicted only by an analytic profile"
    if measure and is_remote(target):
        device = connect(target, remote_token_file)
        r = device.time_onnx({"m": onnx_deploy_bytes(net.deploy, size)}, Timing(threads=threads, rounds=rounds))["m"]
        prof["latency_ms_measured"], prof["device"] = r["ms"], device.describe()
        prof["latency_measured_how"] = (f"ONNX Runtime fp32 on the device {target} ({device.machine.get('cpu') or '?'}), batch 1, "
                                        f"{threads} intra-op thread(s), median over {rounds} rounds")
    elif measure:
        prof["latency_ms_measured"] = measure_onnx_ms(net.deploy, size, threads, rounds)
        prof["latency_measured_how"] = f"ONNX Runtime fp32 on this host, batch 1, {threads} intra-op thread(s), median over {rounds} rounds"
        if hardware is not None and hardware.is_cuda:
            prof["latency_ms_device"] = time_torch({"m": net.deploy}, size, Timing(rounds=rounds), device=hardware.device,
                                                   amp_dtype=hardware.amp_dtype)["m"]["ms"]
            prof["latency_device_how"] = f"PyTorch eager on {hardware.describe()}, batch 1, deploy form, median over {rounds} rounds"
    prof["threads"] = int(threads)
    prof["layers"] = [r.to_dict() for r in rows]
    return prof


def format_table(prof: dict) -> str:
    """The per-layer table as aligned text."""
    head = ("layer", "type", "output", "kernel", "stride", "groups", "params", "MACs")
    lines = [head]
    for r in prof["layers"]:
        k = "x".join(map(str, r["kernel"])) if r["kernel"] else "-"
        s = str(r["stride"][0]) if r["stride"] else "-"
        lines.append((r["name"], r["type"], "x".join(map(str, r["output_shape"])), k, s, str(r["groups"]), f"{r['params']:,}", f"{r['macs']:,}"))
    lines.append(("total", "", "", "", "", "", f"{prof['params']:,}", f"{prof['macs']:,}"))
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
    out = []
    for row in lines:
        cells = [str(c).ljust(w) if i < 3 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def run_profile(cfg: ProfileConfig) -> dict:
    """``ednas profile``: writes ``--json`` (with the per-layer table) and returns the headline numbers."""

    if cfg.json:
        check_writable_file(cfg.json, "--json")
    prof = profile_model(cfg.model, cfg.input_size, cfg.target, cfg.lut, cfg.num_classes, cfg.threads, cfg.measure, cfg.rounds,
                         resolve_hardware(cfg.hardware), cfg.remote_token_file)
    if cfg.table:
        log.info(format_table(prof))
    if cfg.json:
        atomic_write_json(cfg.json, prof)
    short = {k: v for k, v in prof.items() if k not in ("layers", "latency_breakdown")}
    short["layers"] = len(prof["layers"])
    short["unsupported"] = [f"{u['layer']}: {u['what']}" for u in prof["unsupported"]]
    if cfg.json:
        short["json"] = cfg.json
    return short
