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
``auto``   ``CE + lambda * (E[LAT] / B - 1)`` with lambda >= 0 raised or lowered
           by dual ascent on the constraint: after every architecture step
           ``lambda <- max(0, lambda + eta * (LAT / B - 1))`` where LAT is the
           predicted latency of the current argmax network.  lambda grows while
           the network that would be derived is over budget and shrinks to 0
           when it is under, so the search settles at the budget without
           hand-tuning (the default).
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

    def __post_init__(self):
        if self.kind not in LOSS_KINDS:
            raise ConfigError(f"unknown loss '{self.kind}'; expected one of {', '.join(LOSS_KINDS)}")
        if self.kind in ("auto", "budget") and not self.budget_ms:
            raise ConfigError(f"loss '{self.kind}' needs a latency budget (--budget-ms or --budget-frac)")

    @property
    def scale(self) -> float:
        return float(self.budget_ms or 1.0)

    def __call__(self, ce: torch.Tensor, lat_ms: torch.Tensor) -> torch.Tensor:
        r = lat_ms / self.scale
        if self.kind == "eq13":
            return ce + self.lam * r
        if self.kind == "budget":
            return ce + self.lam * torch.relu(r - 1.0)
        if self.kind == "auto":
            return ce + self.lam * (r - 1.0)
        # fbnet: CE * a * log(LAT)^b; LAT in ms can be < 1, so shift by e to keep log > 1
        return ce * self.fbnet_a * torch.log(lat_ms + math.e) ** self.fbnet_b

    def update(self, lat_ms: float) -> float:
        """Dual ascent step for ``auto`` (no-op for the others). Returns lambda."""
        if self.kind == "auto":
            self.lam = max(0.0, self.lam + self.eta * (float(lat_ms) / self.scale - 1.0))
        return self.lam

    def state_dict(self) -> dict:
        return {"kind": self.kind, "lam": self.lam, "budget_ms": self.budget_ms, "eta": self.eta}

    def load_state_dict(self, d: dict) -> None:
        self.lam = float(d["lam"])
