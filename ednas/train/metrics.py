"""Classification metrics: top-k accuracy (percent) and mean loss."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from ednas.metrics import topk_correct, topk_from_scores

__all__ = ["topk_correct", "evaluate", "scores_and_targets", "topk_from_scores"]


@torch.no_grad()
def scores_and_targets(model, loader, hardware=None) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N x C, float32) and labels of ``model`` on ``loader``'s batches (on their device; under
    ``hardware``'s autocast when given, an :class:`ednas.device.Hardware`)."""
    model.eval()
    out, tgt = [], []
    for x, y in loader:
        with hardware.autocast() if hardware is not None else contextlib.nullcontext():
            logits = model(x)
        out.append(logits.float().cpu())
        tgt.append(y.cpu())
    return torch.cat(out).numpy(), torch.cat(tgt).numpy()


@torch.no_grad()
def evaluate(model, loader, hardware=None) -> dict:
    """``{"top1", "top5", "loss", "n"}`` of ``model`` on ``loader`` (top-k in percent)."""
    scores, targets = scores_and_targets(model, loader, hardware)
    s, t = torch.from_numpy(scores), torch.from_numpy(targets)
    top1, top5 = topk_from_scores(scores, targets)
    return {"top1": top1, "top5": top5, "loss": float(F.cross_entropy(s, t)), "n": int(len(t))}
