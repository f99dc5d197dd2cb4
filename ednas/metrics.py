"""Classification metrics on score arrays: top-k with one tie rule; per-class AP and mAP.

Quantized networks produce integer-valued logits, so two classes often tie
for the top score.  Every accuracy in ednas (training, ``ednas eval``,
``ednas export``, the baselines) is computed here, and ties are broken the
way ``numpy.argmax`` does: the lowest class index wins.  Before this was one
rule, ``torch.topk`` (whose choice among ties is unspecified) scored an int8
file differently from ``argmax`` on the same scores.

Multi-label data (Pascal VOC) is scored by per-class average precision and
its mean over classes, mAP (:func:`task_metrics` picks the metrics of a
task): the area under the precision-recall curve (scikit-learn's
``average_precision_score``, the headline ``map``) and the VOC2007 devkit's
11-point AP (``map_voc07``).  Images where a class appears only as
``difficult`` objects are left out of that class's AP, as the VOC protocol
does.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["AP_MODES", "average_precision", "mean_ap", "multilabel_metrics", "per_class_ap", "task_metrics", "topk_correct", "topk_from_scores", "top1"]


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


# ---------------------------------------------------------------------------
# multi-label classification: per-class average precision and mAP
#
# Targets are an N x C array with 1 (the class is present), 0 (absent) and
# -1 (present only as objects marked ``difficult``).  As in the Pascal VOC
# protocol, a -1 entry is left out of that class's AP: the image counts
# neither as a positive nor as a negative for it.

AP_MODES = ("area", "voc07")


def _pr_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at every distinct score, highest first (tied scores enter together)."""
    order = np.argsort(-scores, kind="stable")
    s, pos = scores[order], positive[order].astype(np.float64)
    tp, fp = np.cumsum(pos), np.cumsum(1.0 - pos)
    # the last index of each run of equal scores: a threshold admits all of a tie at once
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp, fp = tp[last], fp[last]
    return tp / (tp + fp), tp / max(float(pos.sum()), 1.0)


def average_precision(scores, targets, mode: str = "area") -> float:
    """Average precision of one class from its scores and its targets (1, 0, or -1 = ignored).

    ``mode``:

    * ``area``: the area under the precision-recall step curve,
      ``sum_k (R_k - R_{k-1}) P_k`` over the distinct scores, highest first,
      without interpolation: scikit-learn's ``average_precision_score``;
    * ``voc07``: the VOC2007 devkit's 11-point AP, the mean over
      ``t = 0, 0.1, ..., 1`` of the highest precision at a recall ``>= t``
      (0 where no recall reaches ``t``).

    Tied scores are admitted together (one point of the curve), so the result
    does not depend on the order of tied images (the VOC devkit's sort does).

    Returns:
        The AP in [0, 1]; ``nan`` when the class has no positive.
    """
    if mode not in AP_MODES:
        raise ValueError(f"AP mode '{mode}' is unknown; expected one of {', '.join(AP_MODES)}")
    scores, targets = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(targets).ravel()
    keep = targets >= 0
    scores, positive = scores[keep], targets[keep] > 0
    if not positive.any():
        return float("nan")
    precision, recall = _pr_curve(scores, positive)
    if mode == "area":
        return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    points = [precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in np.linspace(0.0, 1.0, 11)]
    return float(np.mean(points))


def per_class_ap(scores, targets, mode: str = "area") -> np.ndarray:
    """AP of every class (column) of N x C scores and targets (``nan`` for a class without positives)."""
    scores, targets = np.asarray(scores), np.asarray(targets)
    if scores.shape != targets.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} must both be N x C")
    return np.array([average_precision(scores[:, c], targets[:, c], mode) for c in range(scores.shape[1])])


def mean_ap(scores, targets, mode: str = "area") -> float:
    """mAP in percent: the mean AP over the classes that have a positive (``nan`` if none has)."""
    ap = per_class_ap(scores, targets, mode)
    return float(np.nanmean(ap) * 100.0) if np.isfinite(ap).any() else float("nan")


def multilabel_metrics(scores, targets, classes: list[str] | None = None) -> dict:
    """``map`` (area), ``map_voc07`` (11-point), in percent, and per-class ``ap`` / ``ap_voc07`` (percent; ``None`` without positives)."""
    scores, targets = np.asarray(scores), np.asarray(targets)
    names = list(classes) if classes is not None else [str(c) for c in range(scores.shape[1])]
    out: dict = {}
    for key, mode in (("", "area"), ("_voc07", "voc07")):
        ap = per_class_ap(scores, targets, mode)
        out[f"map{key}"] = float(np.nanmean(ap) * 100.0) if np.isfinite(ap).any() else None
        out[f"ap{key}"] = {n: (round(float(a) * 100.0, 4) if np.isfinite(a) else None) for n, a in zip(names, ap)}
    return out


def task_metrics(scores, targets, multilabel: bool = False, classes: list[str] | None = None) -> dict:
    """The metrics of a task from an N x C score array.

    Single-label: ``top1``, ``top5`` (percent; ties: lowest index first).
    Multi-label: ``map``, ``map_voc07``, per-class ``ap``, ``ap_voc07``
    (:func:`multilabel_metrics`), with ``top1`` and ``top5`` ``None``.
    Both: ``score`` (the headline: ``top1`` or ``map``) and ``score_name``.
    """
    if multilabel:
        m = multilabel_metrics(scores, targets, classes)
        return {"top1": None, "top5": None, **m, "score": m["map"], "score_name": "map"}
    t1, t5 = topk_from_scores(scores, targets)
    return {"top1": t1, "top5": t5, "score": t1, "score_name": "top1"}
