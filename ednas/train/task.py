"""The task loss: the one place that picks it from the data set's task.

* single-label data: cross-entropy with the recipe's label smoothing (the CE
  term of eq. 13, and the training loss);
* multi-label data (Pascal VOC, :mod:`ednas.data.voc`): binary
  cross-entropy with logits, one sigmoid per class, averaged over the
  (image, class) entries that count.  A target of ``-1`` (the class is
  present only as ``difficult`` objects) is left out, as the VOC protocol
  leaves it out of the AP.  Label smoothing is a single-label technique
  (it spreads probability over the other classes of one softmax) and is
  not applied to the sigmoids.

The training loop (:func:`ednas.train.trainer.fit`), the evaluation
(:func:`ednas.train.metrics.evaluate`) and both steps of the search take
their loss from :func:`task_loss`.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["task_loss", "criterion"]


def task_loss(logits: torch.Tensor, target: torch.Tensor, multilabel: bool = False, label_smoothing: float = 0.0) -> torch.Tensor:
    """The loss of ``logits`` (N x C) against ``target`` (N labels, or N x C rows of 1 / 0 / -1 when ``multilabel``)."""
    if not multilabel:
        return F.cross_entropy(logits, target, label_smoothing=label_smoothing)
    logits = logits.float()
    counted = (target >= 0).to(logits.dtype)
    per_entry = F.binary_cross_entropy_with_logits(logits, (target > 0).to(logits.dtype), reduction="none")
    return (per_entry * counted).sum() / counted.sum().clamp_min(1.0)


def criterion(data, label_smoothing: float = 0.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(logits, target)`` for ``data``'s task (``data.multilabel``), with the recipe's label smoothing."""
    multilabel = bool(getattr(data, "multilabel", False))

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return task_loss(logits, target, multilabel, label_smoothing)

    return loss
