"""The latency settings of a command: target, budget, table cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ednas.config import given
from ednas.errors import ConfigError

__all__ = ["LatencyConfig"]


@dataclass
class LatencyConfig:
    """Where latency comes from, and the budget the search must meet."""

    #: latency target: host-ort, host-torch, tda2x, tda4vm, roofline[:FILE.yaml], file:BOARD_TABLE.json, or a lut.json
    target: str = "host-ort"
    #: latency budget in ms (replaces --budget-frac; give one of the two)
    budget_ms: Optional[float] = None
    #: budget as a fraction of the way from the space's smallest (0) to its largest (1) network on the target
    budget_frac: float = 0.5
    #: folder of cached measured tables (host targets), one sub-folder per target, space and input size
    cache: str = "~/.cache/ednas/lut"

    def check(self, name) -> None:
        if self.budget_ms is not None and given(self, "budget_frac"):
            raise ConfigError(f"give {name('budget_ms')} or {name('budget_frac')}, not both")
        if self.budget_ms is not None and not self.budget_ms > 0:
            raise ConfigError(f"{name('budget_ms')} must be > 0 ms, got {self.budget_ms}")
        if not 0.0 <= self.budget_frac <= 1.0:
            raise ConfigError(f"{name('budget_frac')} {self.budget_frac} must be in [0, 1]; 0 = the space's smallest network, 1 = its largest")
        if not self.target.strip():
            raise ConfigError(f"{name('target')} must name a target or a table file")
