"""Classification metrics of a model on a loader: top-k accuracy (percent) or mAP, and mean loss."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from ednas.metrics import task_metrics, topk_correct, topk_from_scores
from ednas.train.task import task_loss

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
def evaluate(model, loader, multilabel: bool = False, classes: list[str] | None = None, hardware=None) -> dict:
    """Metrics of ``model`` on ``loader``, by task (:func:`ednas.metrics.task_metrics`), with ``loss`` and ``n``.

    Single-label: ``top1``, ``top5`` (percent), ``loss`` the cross-entropy.
    Multi-label: ``map``, ``map_voc07`` (percent), per-class ``ap``,
    ``ap_voc07``, ``loss`` the task loss (:func:`ednas.train.task.task_loss`);
    ``top1``/``top5`` are ``None``.  ``score`` is the headline of either.
    ``hardware``: an :class:`ednas.device.Hardware` whose autocast the forward passes run under.
    """
    scores, targets = scores_and_targets(model, loader, hardware)
    s, t = torch.from_numpy(scores), torch.from_numpy(targets)
    m = task_metrics(scores, targets, multilabel, classes)
    return {**m, "loss": float(task_loss(s, t, multilabel)), "n": int(len(t))}
