"""Classification metrics of a model on a loader: top-k accuracy (percent) or mAP, and mean loss."""

from __future__ import annotations

import numpy as np
import torch

from ednas.metrics import task_metrics, topk_correct, topk_from_scores
from ednas.train.task import task_loss

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
def evaluate(model, loader, multilabel: bool = False, classes: list[str] | None = None) -> dict:
    """Metrics of ``model`` on ``loader``, by task (:func:`ednas.metrics.task_metrics`), with ``loss`` and ``n``.

    Single-label: ``top1``, ``top5`` (percent), ``loss`` the cross-entropy.
    Multi-label: ``map``, ``map_voc07`` (percent), per-class ``ap``,
    ``ap_voc07``, ``loss`` the task loss (:func:`ednas.train.task.task_loss`);
    ``top1``/``top5`` are ``None``.  ``score`` is the headline of either.
    """
    scores, targets = scores_and_targets(model, loader)
    s, t = torch.from_numpy(scores), torch.from_numpy(targets)
    m = task_metrics(scores, targets, multilabel, classes)
    return {**m, "loss": float(task_loss(s, t, multilabel)), "n": int(len(t))}
