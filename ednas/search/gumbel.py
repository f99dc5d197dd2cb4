"""Gumbel-softmax sampling of the architecture choices (eq. 14-15) and its temperature.

Eq. (14) gives the probability of candidate i as ``softmax(alpha)_i``; eq. (15)
relaxes the categorical sample with Gumbel noise ``g_i ~ Gumbel(0, 1)``:
``softmax((log theta_i + g_i) / tau)``.  Since ``log theta_i = alpha_i -
logsumexp(alpha)`` and the constant cancels in the softmax, this is
``softmax((alpha_i + g_i) / tau)``.  ``hard=True`` returns the straight-through
one-hot: the forward pass sees one candidate, the gradient that of the soft
sample.  The noise is drawn from an explicit generator, so each feedback path
has its own noise and a resumed search draws the same noise again.

The temperature decays exponentially per epoch from ``tau0`` to ``tau_min``
(reached at the last epoch), as FBNet does.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F

from ednas.nn.choice import Choice

__all__ = ["gumbel_softmax", "sample_choices", "clear_choices", "tau_at"]


def gumbel_softmax(logits: torch.Tensor, tau: float, hard: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """One relaxed categorical sample (eq. 15); ``-inf`` logits get weight 0."""
    # drawn on the generator's device (the run's device): no copy, and the same draw after a resume
    dev = generator.device if generator is not None else logits.device
    u = torch.rand(logits.shape, generator=generator, device=dev).clamp_(1e-10, 1.0 - 1e-7)
    gumbel = -torch.log(-torch.log(u)).to(logits)
    y = F.softmax((logits + gumbel) / tau, dim=-1)
    if not hard:
        return y
    one_hot = F.one_hot(y.detach().argmax(-1), y.shape[-1]).to(y)
    return one_hot - y.detach() + y


def sample_choices(choices: Iterable[Choice], tau: float, hard: bool, generator: torch.Generator | None = None) -> None:
    """Draw a new ``g`` for every choice (the network reads it in its next forward)."""
    for c in choices:
        c.g = gumbel_softmax(c.logits(), tau, hard, generator)


def clear_choices(choices: Iterable[Choice]) -> None:
    """Forget the samples: the network then uses ``softmax(alpha)``."""
    for c in choices:
        c.g = None


def tau_at(epoch: int, epochs: int, tau0: float, tau_min: float) -> float:
    """Temperature of 0-based ``epoch``: ``tau0 * (tau_min / tau0) ** (epoch / (epochs - 1))``."""
    if epochs <= 1:
        return tau0
    return tau0 * (tau_min / tau0) ** (min(epoch, epochs - 1) / (epochs - 1))
