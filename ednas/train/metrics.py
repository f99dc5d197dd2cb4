"""Classification metrics: top-k accuracy (percent) and mean loss."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ednas.metrics import topk_correct, topk_from_scores

__all__ = ["topk_correct", "evaluate", "scores_and_targets", "topk_from_scores"]


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
