"""Classification metrics on score arrays, with one tie rule.

Quantized networks produce integer-valued logits, so two classes often tie
for the top score.  Every accuracy in ednas (training, ``ednas eval``,
``ednas export``, the baselines) is computed here, and ties are broken the
way ``numpy.argmax`` does: the lowest class index wins.  Before this was one
rule, ``torch.topk`` (whose choice among ties is unspecified) scored an int8
file differently from ``argmax`` on the same scores.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["topk_correct", "topk_from_scores", "top1"]


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks=(1, 5)) -> list[int]:
    """Number of samples whose target is among the top k logits, for each k (k capped at C; ties: lowest index first)."""
    c = logits.shape[1]
    k_max = min(max(ks), c)
    top = torch.sort(logits, dim=1, descending=True, stable=True).indices[:, :k_max]
    hit = top == target.view(-1, 1)
    return [int(hit[:, : min(k, c)].any(dim=1).sum()) for k in ks]


def topk_from_scores(scores: np.ndarray, targets: np.ndarray, ks=(1, 5)) -> list[float]:
    """Top-k accuracy in percent from an N x C score array."""
    s, t = torch.as_tensor(np.asarray(scores)), torch.as_tensor(np.asarray(targets))
    return [100.0 * n / max(len(t), 1) for n in topk_correct(s, t, ks)]


def top1(scores: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent (NaN for no samples)."""
    if len(labels) == 0:
        return float("nan")
    return topk_from_scores(scores, labels, (1,))[0]
