"""An architecture choice: one vector of logits alpha over a layer's candidates.

The network reads the candidate weights ``g`` from :meth:`Choice.weights`:
whatever the search last sampled into ``g`` (Gumbel-softmax, eq. 14-15), or
``softmax(alpha)`` (eq. 14) when nothing was sampled.  ``fixed`` pins a
candidate (a one-hot), which is how a derived choice is evaluated inside the
supernet.  ``allowed`` (a bool buffer) masks candidates a target cannot run:
they get probability 0 and are never the argmax.  The network itself knows
nothing of the sampling.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Choice"]


class Choice(nn.Module):
    """Logits ``alpha`` over ``candidates`` of one ``kind`` (kernel, expansion, skip)."""

    def __init__(self, kind: str, candidates: Sequence, init_std: float = 1e-3):
        super().__init__()
        self.kind = kind
        self.candidates = tuple(candidates)
        # Alg. 1: random initialization of alpha, small so the start is near uniform
        self.alpha = nn.Parameter(init_std * torch.randn(len(self.candidates)))
        self.register_buffer("allowed", torch.ones(len(self.candidates), dtype=torch.bool), persistent=False)
        self.g: torch.Tensor | None = None
        self.fixed: int | None = None

    def set_allowed(self, allowed) -> None:
        allowed = torch.as_tensor(list(allowed), dtype=torch.bool)
        if allowed.shape != self.allowed.shape or not allowed.any():
            raise ValueError(f"{self.kind} choice over {self.candidates}: allowed mask {allowed.tolist()} must keep one candidate")
        self.allowed.copy_(allowed)

    def logits(self) -> torch.Tensor:
        """alpha with masked candidates at -inf."""
        if bool(self.allowed.all()):
            return self.alpha
        return self.alpha.masked_fill(~self.allowed, float("-inf"))

    def weights(self) -> torch.Tensor:
        if self.fixed is not None:
            return F.one_hot(torch.tensor(self.fixed, device=self.alpha.device), len(self.candidates)).to(self.alpha)
        if self.g is not None:
            return self.g
        return F.softmax(self.logits(), dim=-1)

    def probs(self) -> torch.Tensor:
        return F.softmax(self.logits().detach(), dim=-1)

    def argmax(self) -> int:
        return int(torch.argmax(self.logits().detach()))

    def margin(self) -> float:
        """Gap between the two most probable candidates (how sure the choice is)."""
        p = self.probs()
        if len(p) < 2:
            return float("inf")
        top = torch.topk(p, 2).values
        return float(top[0] - top[1])

    def extra_repr(self) -> str:
        return f"{self.kind}, candidates={self.candidates}"
