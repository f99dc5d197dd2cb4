"""The latency-aware loss (eq. 12-13) and its budget forms.

The paper solves ``max accuracy s.t. LAT <= Budget`` (eq. 12) by minimising
``CE + lambda * LAT`` (eq. 13).  With a fixed lambda the latency the search
lands on depends on lambda and the data, and nobody can say in advance which
lambda meets a budget: the complaint of nni#4643 and nni#4699.  So beside the
paper's form there are:

``eq13``   ``CE + lambda * E[LAT] / B``  (the paper's, latency normalised by the
           budget so that lambda is unit-free; with no budget, B = 1 ms)
``budget`` ``CE + lambda * max(0, E[LAT] / B - 1)``  (a hinge: no pressure
           below the budget)
``fbnet``  ``CE * a * log(E[LAT])^b``  (FBNet's multiplicative form, for
           comparison; LAT in ms, shifted so that log > 0)
``auto``   ``CE + (lambda - lambda_low) * (E[LAT] - B) / S``: dual ascent on
           the two edges of the band ``[low * B, B]``.  After every
           architecture step, with LAT the predicted latency of the current
           argmax network,
           ``lambda <- max(0, lambda + eta * (LAT - (1 - m) B) / S)`` and
           ``lambda_low <- max(0, lambda_low + eta * ((low + m) B - LAT) / S)``.
           lambda grows while the network that would be derived is above the
           band, lambda_low while it is below; inside both shrink to 0 and
           the cross-entropy alone moves alpha.  So the search settles inside
           the band without hand-tuning (the default; ``low = 0`` is the
           one-sided constraint ``LAT <= B``).  The margin ``m`` aims the
           multipliers a little inside the band, because the argmax network
           moves in steps of one choice and hovers around where it is aimed.
           ``S`` (``span_ms``) is the latency span one unit of lambda stands
           for: the search uses the space's range on the table (largest minus
           smallest network), so that eta means the same on a table whose
           networks differ by 20 % (a host CPU) as on one where they differ by
           a factor of two; by default it is B.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ednas.errors import ConfigError

__all__ = ["LatencyLoss", "LOSS_KINDS"]

LOSS_KINDS = ("auto", "eq13", "budget", "fbnet")


@dataclass
class LatencyLoss:
    kind: str = "auto"
    lam: float = 0.0
    budget_ms: float | None = None
    eta: float = 0.5
    fbnet_a: float = 0.2
    fbnet_b: float = 0.6
    #: lower edge of the band of ``auto`` as a fraction of the budget (0: no lower edge)
    low: float = 0.0
    #: the multiplier of the lower edge (``auto``)
    lam_low: float = 0.0
    #: ``auto``: the latency span that one unit of lambda stands for (default: the budget)
    span_ms: float | None = None
    #: ``auto``: how far inside the band the dual ascent aims, as a fraction of the budget
    margin: float = 0.0
    #: ``auto``: proportional term of each multiplier (0: pure dual ascent)
    kp: float = 0.0
    #: ``auto``: the last errors of the two edges (in spans; positive: outside that edge)
    err: float = 0.0
    err_low: float = 0.0

    def __post_init__(self):
        if self.kind not in LOSS_KINDS:
            raise ConfigError(f"unknown loss '{self.kind}'; expected one of {', '.join(LOSS_KINDS)}")
        if self.kind in ("auto", "budget") and not self.budget_ms:
            raise ConfigError(f"loss '{self.kind}' needs a latency budget (--budget-ms or --budget-frac)")

    @property
    def scale(self) -> float:
        return float(self.budget_ms or 1.0)

    @property
    def span(self) -> float:
        return float(self.span_ms or self.scale)

    def __call__(self, ce: torch.Tensor, lat_ms: torch.Tensor) -> torch.Tensor:
        r = lat_ms / self.scale
        if self.kind == "eq13":
            return ce + self.lam * r
        if self.kind == "budget":
            return ce + self.lam * torch.relu(r - 1.0)
        if self.kind == "auto":
            return ce + self.net_lam * (lat_ms - self.scale) / self.span
        # fbnet: CE * a * log(LAT)^b; LAT in ms can be < 1, so shift by e to keep log > 1
        return ce * self.fbnet_a * torch.log(lat_ms + math.e) ** self.fbnet_b

    def update(self, lat_ms: float) -> float:
        """Dual ascent step for ``auto`` (no-op for the others). Returns lambda."""
        if self.kind == "auto":
            lat, b = float(lat_ms), self.scale
            self.err = (lat - (1.0 - self.margin) * b) / self.span
            self.lam = max(0.0, self.lam + self.eta * self.err)
            if self.low > 0:
                self.err_low = ((self.low + self.margin) * b - lat) / self.span
                self.lam_low = max(0.0, self.lam_low + self.eta * self.err_low)
        return self.lam

    @property
    def net_lam(self) -> float:
        """The weight of the latency term now (``auto``: of ``(E[LAT] - B) / S``; negative: pushed to larger networks)."""
        if self.kind != "auto":
            return self.lam
        hi = max(0.0, self.lam + self.kp * self.err)
        lo = max(0.0, self.lam_low + self.kp * self.err_low) if self.low > 0 else 0.0
        return hi - lo

    def state_dict(self) -> dict:
        return {"kind": self.kind, "lam": self.lam, "lam_low": self.lam_low, "budget_ms": self.budget_ms, "eta": self.eta, "low": self.low,
                "err": self.err, "err_low": self.err_low}

    def load_state_dict(self, d: dict) -> None:
        self.lam = float(d["lam"])
        self.lam_low = float(d.get("lam_low", 0.0))
        self.err, self.err_low = float(d.get("err", 0.0)), float(d.get("err_low", 0.0))
