"""Analytic target profiles and operator support: LAT(op) of eq. 11 without a board.

A profile (YAML, ``ednas/latency/profiles/*.yaml`` or a user file) describes
a target by its peak compute, memory bandwidth and per-operator-class
efficiency, and prices each operator with a roofline::

    LAT(op) = scale * max(MACs / (peak * eff[class]), bytes / bandwidth) + overhead

``class`` is ``pointwise`` (1 x 1 dense conv), ``conv`` (dense k x k),
``depthwise``, ``elementwise`` (residual add, pooling) or ``fc``; ``bytes``
counts input, output and weights at the profile's dtype.  ``scale`` is 1, or
fitted so that a named reference network (e.g. MobileNetV1 for ``tda2x``,
paper Table III) takes the published time.  One number is fitted to one
row; the other rows of a table are predictions: :func:`calibrated` fits a
profile to any reference row, so a row can be held out and its error
reported (``benchmarks/tda2x_table3.py``).

A profile also declares **operator support**: rules listing the
(kernel, stride) pairs its accelerator runs for some operator types.  What
it does not run falls back to a host core, priced by the ``fallback``
section (its own peak/efficiency/bandwidth plus a ``transfer_ms`` for leaving
and re-entering the accelerator).  Its ``policy`` says what the search does
with an unsupported *candidate*: ``mask`` (never choose it) or ``fallback``
(choose it if it pays, at the fallback cost).  A fixed layer (the stem) can
not be masked: it is always charged its fallback cost, and
:func:`unsupported_layers` flags it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn
import yaml

from ednas.arch.spec import ArchSpec
from ednas.errors import ConfigError, LatencyTableError
from ednas.latency.ops import DTYPE_BYTES, Op, arch_layer_ops, out_size
from ednas.latency.table import POLICIES, LatencyTable
from ednas.nn.macs import count_macs

__all__ = [
    "PROFILE_DIR",
    "Profile",
    "load_profile",
    "profile_names",
    "op_class",
    "analytic_table",
    "reference_ops",
    "unsupported_layers",
    "analytic_latency",
    "calibrated",
    "REFERENCES",
]

PROFILE_DIR = Path(__file__).parent / "profiles"
OP_CLASSES = ("pointwise", "conv", "depthwise", "elementwise", "fc")


def op_class(op: Op) -> str:
    """The efficiency class of an operator (see the module docstring)."""
    if op.type in ("add", "pool"):
        return "elementwise"
    if op.type == "fc":
        return "fc"
    if op.depthwise or op.type in ("dw", "stem-dw"):
        return "depthwise"
    return "pointwise" if op.kernel == 1 else "conv"


@dataclass
class Engine:
    """One compute engine: peak, bandwidth, efficiencies, per-operator overhead."""

    name: str = "engine"
    peak_gmacs: float = 1.0
    bandwidth_gbs: float = 1.0
    efficiency: dict = field(default_factory=dict)
    overhead_ms: float = 0.0
    transfer_ms: float = 0.0

    def ms(self, op: Op, dtype_bytes: int) -> float:
        eff = float(self.efficiency.get(op_class(op), 1.0))
        compute = op.macs / (self.peak_gmacs * eff * 1e6) if op.macs else 0.0
        n_in, n_out = op.elements()
        memory = (n_in + n_out + op.params) * dtype_bytes / (self.bandwidth_gbs * 1e6)
        return max(compute, memory)


@dataclass
class Profile:
    """An analytic target (see the module docstring and docs/latency.md)."""

    name: str
    description: str = ""
    sources: list = field(default_factory=list)
    dtype: str = "f32"
    engine: Engine = field(default_factory=Engine)
    fallback: Engine | None = None
    policy: str = "fallback"
    policy_why: str = ""
    support_default: bool = True
    rules: list = field(default_factory=list)
    calibration: dict | None = None
    path: str | None = None
    scale: float = 1.0

    # -- support ---------------------------------------------------------------
    def support(self, op: Op) -> tuple[bool, str]:
        """``(supported, reason)`` of ``op`` on the accelerator."""
        for rule in self.rules:
            if op.type not in rule["types"]:
                continue
            pairs = [tuple(p) for p in rule.get("allow", [])]
            if (op.kernel, op.stride) in pairs:
                return True, ""
            allowed = ", ".join(f"{k}x{k} s{s}" for k, s in pairs)
            why = rule.get("reason", "")
            return False, f"{op.type} {op.kernel}x{op.kernel} stride {op.stride} is not among {allowed}" + (f" ({why})" if why else "")
        return (True, "") if self.support_default else (False, f"{op.type} is not supported by {self.name}")

    # -- latency ------------------------------------------------------------------
    def raw_ms(self, op: Op) -> float:
        """Accelerator time before calibration (roofline + overhead)."""
        return self.engine.ms(op, DTYPE_BYTES[self.dtype]) + self.engine.overhead_ms

    def fallback_ms(self, op: Op) -> float:
        """Cost on the host core, plus leaving and re-entering the accelerator."""
        fb = self.fallback
        if fb is None:
            raise LatencyTableError(f"target profile '{self.name}': operator {op.describe()} is unsupported but the profile has no 'fallback' section")
        # the host core runs float: transfers and compute at 4 bytes per element
        return fb.ms(op, 4) + fb.overhead_ms + fb.transfer_ms

    def op_ms(self, op: Op) -> tuple[float, bool]:
        """``(ms, supported)``: accelerator cost, or fallback cost if unsupported."""
        ok, _ = self.support(op)
        if ok:
            return self.scale * self.raw_ms(op), True
        return self.fallback_ms(op), False


def _engine(d: dict, where: str, name: str) -> Engine:
    if not isinstance(d, dict):
        raise LatencyTableError(f"target profile {where}: '{name}' must be a mapping")
    known = {f.name for f in dataclasses.fields(Engine)}
    bad = set(d) - known
    if bad:
        raise LatencyTableError(f"target profile {where}: unknown key(s) {sorted(bad)} in '{name}'; valid: {sorted(known)}")
    e = Engine(**{k: v for k, v in d.items()})
    for k in ("peak_gmacs", "bandwidth_gbs"):
        if not isinstance(getattr(e, k), (int, float)) or getattr(e, k) <= 0:
            raise LatencyTableError(f"target profile {where}: '{name}.{k}' must be a positive number, got {getattr(e, k)!r}")
    for c, v in e.efficiency.items():
        if c not in OP_CLASSES:
            raise LatencyTableError(f"target profile {where}: '{name}.efficiency' has unknown class '{c}'; classes: {', '.join(OP_CLASSES)}")
        if not isinstance(v, (int, float)) or not 0 < v <= 1:
            raise LatencyTableError(f"target profile {where}: '{name}.efficiency.{c}' must be in (0, 1], got {v!r}")
    return e


def profile_names() -> list[str]:
    """Profiles shipped with ednas (``--target NAME``)."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name (``tda2x``, ``tda4vm``, ``roofline``) or a YAML file.

    Raises:
        EdnasError: unknown name, unreadable file, or a bad field (named).
    """
    s = str(name_or_path)
    path = Path(s) if s.endswith((".yaml", ".yml")) or "/" in s else PROFILE_DIR / f"{s}.yaml"
    if not path.is_file():
        raise LatencyTableError(
            f"target profile '{s}' not found; shipped profiles: {', '.join(profile_names())}, or give a YAML file (roofline:PATH.yaml)"
        )
    where = f"'{path}'"
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise LatencyTableError(f"target profile {where} is not valid YAML: {e}") from e
    if not isinstance(d, dict):
        raise LatencyTableError(f"target profile {where}: expected a mapping")
    valid = {"name", "description", "sources", "dtype", "accelerator", "fallback", "policy", "policy_why", "support", "calibration"}
    bad = set(d) - valid
    if bad:
        raise LatencyTableError(f"target profile {where}: unknown key(s) {sorted(bad)}; valid keys: {sorted(valid)}")
    if "accelerator" not in d:
        raise LatencyTableError(f"target profile {where}: 'accelerator' (peak_gmacs, bandwidth_gbs, efficiency, overhead_ms) is required")
    policy = d.get("policy", "fallback")
    if policy not in POLICIES:
        raise LatencyTableError(f"target profile {where}: 'policy' is '{policy}', expected one of {', '.join(POLICIES)}")
    dtype = d.get("dtype", "f32")
    if dtype not in DTYPE_BYTES:
        raise LatencyTableError(f"target profile {where}: 'dtype' is '{dtype}', expected one of {', '.join(DTYPE_BYTES)}")
    support = d.get("support") or {}
    rules = support.get("rules") or []
    for i, r in enumerate(rules):
        if not isinstance(r, dict) or "types" not in r or "allow" not in r:
            raise LatencyTableError(f"target profile {where}: support.rules[{i}] needs 'types' (operator types) and 'allow' ([kernel, stride] pairs)")
    prof = Profile(
        name=str(d.get("name", path.stem)),
        description=str(d.get("description", "")),
        sources=list(d.get("sources") or []),
        dtype=dtype,
        engine=_engine(d["accelerator"], where, "accelerator"),
        fallback=_engine(d["fallback"], where, "fallback") if d.get("fallback") else None,
        policy=policy,
        policy_why=str(d.get("policy_why", "")),
        support_default=bool(support.get("default", True)),
        rules=rules,
        calibration=d.get("calibration"),
        path=str(path),
    )
    if prof.rules and prof.fallback is None:
        raise LatencyTableError(f"target profile {where}: declares support rules but no 'fallback' engine to price unsupported operators")
    if prof.calibration:
        prof.scale = _calibrate(prof, where)
    return prof


def calibrated(profile: Profile, reference: str, ms: float, input_size: int = 224, num_classes: int = 1000) -> Profile:
    """A copy of ``profile`` whose one fitted number, ``scale``, makes ``reference`` take ``ms``.

    Args:
        profile: a loaded profile (its own calibration is replaced).
        reference: a name of :data:`REFERENCES`.
        ms: the reference network's published time.
    """
    cal = {"reference": reference, "ms": float(ms), "input_size": int(input_size), "num_classes": int(num_classes)}
    prof = dataclasses.replace(profile, calibration=cal, scale=1.0)
    prof.scale = _calibrate(prof, f"'{profile.name}' calibrated on {reference}")
    return prof


def _calibrate(prof: Profile, where: str) -> float:
    c = prof.calibration
    try:
        ref, ms = str(c["reference"]), float(c["ms"])
    except (KeyError, TypeError, ValueError) as err:
        raise LatencyTableError(f"target profile {where}: 'calibration' needs 'reference' (a reference network) and 'ms'") from err
    ops = reference_ops(ref, int(c.get("input_size", 224)), int(c.get("num_classes", 1000)), prof.dtype)
    raw = sum(prof.raw_ms(op) for op in ops)
    return ms / raw


# ---------------------------------------------------------------------------
# reference networks (op lists from their standard definitions)


def _mobilenet_v1(size: int, num_classes: int, dtype: str) -> list[Op]:
    """MobileNetV1 1.0 (Howard et al. 2017, Table 1): 569 M MACs at 224."""
    ops = [Op("conv", size, size, 3, 32, 3, 2, 1, 1, dtype)]
    h, c = (size - 1) // 2 + 1, 32
    # (stride, output channels) of the 13 depthwise-separable layers
    for s, co in [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)] + [(1, 512)] * 5 + [(2, 1024), (1, 1024)]:
        ops.append(Op("dw", h, h, c, c, 3, s, c, 1, dtype))
        h = (h - 1) // s + 1
        ops.append(Op("conv", h, h, c, co, 1, 1, 1, 1, dtype))
        c = co
    ops += [Op("pool", h, h, c, c, 0, 1, 1, 1, dtype), Op("fc", 1, 1, c, num_classes, 1, 1, 1, 1, dtype)]
    return ops


def _nasnet_a_mobile(size: int, num_classes: int, dtype: str) -> list[Op]:
    """NASNet-A Mobile (4 @ 1056; Zoph et al. 2018): 564 M MACs at 224 (ours: 567 M).

    Built from the published cells: a VALID 3x3 stride-2 stem conv, two stem
    reduction cells (11 and 22 filters), 12 normal cells at 44/88/176
    filters with reduction cells before the 2nd and 3rd groups; separable
    convolutions applied twice (dw, pw, dw, pw), the first strided.  A 3x3
    pooling is priced as a 3x3 depthwise (it reads the same), a concat as an
    elementwise copy.  An approximation for pricing, not a network to train.
    """
    ops: list[Op] = [Op("conv", size, size, 3, 32, 3, 2, 1, 1, dtype)]

    def conv1x1(h, cin, cout, stride=1):
        ops.append(Op("conv", h, h, cin, cout, 1, stride, 1, 1, dtype))

    def sep(h, c, k, stride):
        ops.append(Op("dw", h, h, c, c, k, stride, c, 1, dtype))
        h = out_size(h, stride)
        ops.extend([Op("conv", h, h, c, c, 1, 1, 1, 1, dtype), Op("dw", h, h, c, c, k, 1, c, 1, dtype), Op("conv", h, h, c, c, 1, 1, 1, 1, dtype)])

    def pool(h, c, stride):
        ops.append(Op("dw", h, h, c, c, 3, stride, c, 1, dtype))

    def add(h, c):
        ops.append(Op("add", h, h, c, c, 0, 1, 1, 1, dtype))

    def concat(h, c):
        ops.append(Op("add", h, h, c // 2 or 1, c, 0, 1, 1, 1, dtype))

    def base(cur, pp, f):
        (hc, cc), (hp, cp) = cur, pp
        conv1x1(hc, cc, f)
        if hp != hc:  # factorised reduction: two strided 1x1 convs of f / 2
            conv1x1(hp, cp, f // 2, 2)
            conv1x1(hp, cp, f // 2, 2)
        elif cp != f:
            conv1x1(hp, cp, f)
        return hc

    def reduction(cur, pp, f):
        h = base(cur, pp, f)
        ho = out_size(h, 2)
        sep(h, f, 5, 2), sep(h, f, 7, 2), add(ho, f)
        pool(h, f, 2), sep(h, f, 7, 2), add(ho, f)
        pool(h, f, 2), sep(h, f, 5, 2), add(ho, f)
        pool(ho, f, 1), add(ho, f)
        sep(ho, f, 3, 1), pool(h, f, 2), add(ho, f)
        concat(ho, 4 * f)
        return ho, 4 * f

    def normal(cur, pp, f):
        h = base(cur, pp, f)
        for k1, k2 in ((5, 3), (5, 3)):
            sep(h, f, k1, 1), sep(h, f, k2, 1), add(h, f)
        pool(h, f, 1), add(h, f)
        pool(h, f, 1), pool(h, f, 1), add(h, f)
        sep(h, f, 3, 1), add(h, f)
        concat(h, 6 * f)
        return h, 6 * f

    h = (size - 3) // 2 + 1  # the stem conv is VALID-padded: 111 at 224
    prev, prev_prev = (h, 32), (h, 32)
    for f in (11, 22):  # the two stem reduction cells
        prev, prev_prev = reduction(prev, prev_prev, f), prev
    f = 44
    for cell in range(12):
        if cell in (4, 8):
            f *= 2
            prev, prev_prev = reduction(prev, prev_prev, f), prev
        prev, prev_prev = normal(prev, prev_prev, f), prev
    h, c = prev
    ops += [Op("pool", h, h, c, c, 0, 1, 1, 1, dtype), Op("fc", 1, 1, c, num_classes, 1, 1, 1, 1, dtype)]
    return ops


REFERENCES = {"mobilenet_v1": _mobilenet_v1, "nasnet_a_mobile": _nasnet_a_mobile}


def reference_ops(name: str, input_size: int = 224, num_classes: int = 1000, dtype: str = "f32") -> list[Op]:
    """The operator list of a named reference network (``mobilenet_v1``, ``nasnet_a_mobile``)."""
    if name not in REFERENCES:
        raise ConfigError(f"unknown reference network '{name}'; known: {', '.join(REFERENCES)}")
    return REFERENCES[name](input_size, num_classes, dtype)


# ---------------------------------------------------------------------------


def analytic_table(profile: Profile, ops: list[Op], input_size: int, num_classes: int | None = None, space: str | None = None, policy: str | None = None) -> LatencyTable:
    """A table for ``ops`` from a profile (every entry says whether it is supported)."""
    entries = {}
    for op in ops:
        ms, ok = profile.op_ms(op)
        e: dict[str, Any] = {"ms": round(ms, 6), "macs": op.macs}
        if not ok:
            e.update(supported=False, fallback=True, reason=profile.support(op)[1])
        entries[op.key] = e
    return LatencyTable(
        target=profile.name,
        input_size=input_size,
        entries=entries,
        constant_ms=0.0,
        policy=policy or profile.policy,
        dtype=profile.dtype,
        num_classes=num_classes,
        space=space,
        meta={
            "measurement": {"runtime": "analytic", "method": "roofline: scale * max(MACs / (peak * eff), bytes / bandwidth) + overhead", "profile": profile.path, "scale": profile.scale},
            "profile": {"description": profile.description, "sources": profile.sources, "policy_why": profile.policy_why, "calibration": profile.calibration},
        },
    )


def unsupported_layers(arch: ArchSpec, target: str | Profile | LatencyTable, input_size: int, num_classes: int = 1000) -> list[dict]:
    """The layers of a fixed network that the target's accelerator does not run.

    Args:
        arch: a fixed network.
        target: a profile name/path, a :class:`Profile`, or a table whose
            entries carry ``supported`` flags.
    Returns:
        ``[{"layer", "op", "what", "reason", "policy", "fallback_ms"}]``
        (empty for measured host targets, which run everything).
    """
    if isinstance(target, str):
        if target.startswith(("host-", "file:")):
            return []
        target = load_profile(target[len("roofline:"):] if target.startswith("roofline:") else target)
    out = []
    for label, ops in arch_layer_ops(arch, input_size, num_classes, target.dtype):
        for op in ops:
            if isinstance(target, Profile):
                ok, reason = target.support(op)
                ms = None if ok else target.fallback_ms(op)
                policy = target.policy
            else:
                ok = target.supported(op)
                e = target.entries.get(op.key, {})
                reason, ms, policy = e.get("reason", "marked unsupported in the table"), e.get("ms"), target.policy
            if not ok:
                out.append({"layer": label, "op": op.key, "what": op.describe(), "reason": reason, "policy": policy, "fallback_ms": ms})
    return out


def _profile_of(target: str):
    return load_profile(target[len("roofline:"):] if target.startswith("roofline:") else target)


def analytic_latency(model: nn.Module, input_size: int, target: str) -> dict:
    """Price any network's convolutions and linear layers with an analytic profile.

    Each executed ``Conv2d`` becomes an operator of the latency key scheme
    (``dw`` when depthwise, so the profile's depthwise support rules apply;
    ``conv`` otherwise) and each ``Linear`` an ``fc``; the profile's roofline
    (or fallback, for unsupported ones) prices it.  Activations, SE gates,
    adds and pooling are not priced.

    Returns:
        ``{"ms", "unsupported": [...], "scope"}``.
    """
    prof = _profile_of(target)
    _, rows = count_macs(model, input_size)
    total, bad = 0.0, []
    for r in rows:
        if r.type == "Linear":
            op = Op("fc", 1, 1, r.input_shape[-1], r.output_shape[-1], dtype=prof.dtype)
        else:
            cin, h, w = r.input_shape
            kind = "dw" if r.type == "Conv2d (depthwise)" and r.output_shape[0] == cin else "conv"
            op = Op(kind, h, w, cin, r.output_shape[0], max(r.kernel), max(r.stride), r.groups, 1, prof.dtype)
        ms, ok = prof.op_ms(op)
        total += ms
        if not ok:
            bad.append({"layer": r.name, "op": op.key, "what": op.describe(), "reason": prof.support(op)[1], "policy": prof.policy, "fallback_ms": ms})
    return {"ms": float(total), "unsupported": bad, "scope": "convolutions and linear layers only"}
