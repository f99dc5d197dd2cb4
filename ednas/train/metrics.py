"""Classification metrics: top-k accuracy (percent) and mean loss."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["topk_correct", "evaluate", "scores_and_targets", "topk_from_scores"]


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks=(1, 5)) -> list[int]:
    """Number of samples whose target is among the top k logits, for each k (k capped at C)."""
    c = logits.shape[1]
    top = logits.topk(min(max(ks), c), dim=1).indices
    hit = top == target.view(-1, 1)
    return [int(hit[:, : min(k, c)].any(dim=1).sum()) for k in ks]


def topk_from_scores(scores: np.ndarray, targets: np.ndarray, ks=(1, 5)) -> list[float]:
    """Top-k accuracy in percent from an N x C score array."""
    s, t = torch.as_tensor(scores), torch.as_tensor(targets)
    return [100.0 * n / max(len(t), 1) for n in topk_correct(s, t, ks)]


@torch.no_grad()
def scores_and_targets(model, loader) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    out, tgt = [], []
    for x, y in loader:
        out.append(model(x).float())
        tgt.append(y)
    return torch.cat(out).numpy(), torch.cat(tgt).numpy()


@torch.no_grad()
def evaluate(model, loader) -> dict:
    """``{"top1", "top5", "loss", "n"}`` of ``model`` on ``loader`` (top-k in percent)."""
    scores, targets = scores_and_targets(model, loader)
    s, t = torch.from_numpy(scores), torch.from_numpy(targets)
    top1, top5 = topk_from_scores(scores, targets)
    return {"top1": top1, "top5": top5, "loss": float(F.cross_entropy(s, t)), "n": int(len(t))}
