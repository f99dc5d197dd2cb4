"""Batch-norm statistics of one sub-network: recomputed before it is scored.

A supernet's BN running statistics are gathered under the mixture the search
trains (soft Gumbel weights over every candidate), not under any one network
of the space.  Scoring the argmax network (or any sub-network ranked by
inherited weights) with them measures the wrong function: on digits the
search's "val top-1 of the argmax network" swung between 10 % and 58 % from
epoch to epoch while the same network trained from scratch scored 99 %.

As Once-for-All and Single Path One-Shot do, :func:`recompute_bn_stats`
resets every BN's running statistics and re-estimates them with a forward
pass over a fixed set of training images (no augmentation, no gradients):
the cumulative average of the batches' means and variances (``momentum =
None``), the other layers in eval mode.  :func:`recalibrated_bn` does the same
inside a ``with`` block and puts back the model's own statistics (and
momentum, training flags) on exit, so the supernet's training never sees it.

:func:`bn_calibration_loader` is the fixed, seeded set: ``n`` images of a
split (default the training split, or a subset of it such as the search's
weight split), drawn without replacement with ``seed``, in a fixed order,
not augmented.  Every caller scores with the same recipe, so a supernet's
sub-network and the same fixed network built from its weights
(:func:`ednas.nn.inherit_weights`) get the same statistics and the same
accuracy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from ednas.data import make_loader

__all__ = ["BN_IMAGES", "bn_calibration_loader", "recalibrated_bn", "recompute_bn_stats"]

#: images the statistics are recomputed on by default (Once-for-All uses 2000 at 224 px; our data sets are smaller)
BN_IMAGES = 1000

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _bns(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]


def bn_calibration_loader(data, n: int = BN_IMAGES, seed: int = 0, indices=None, split: str = "train", batch_size: int = 250,
                          workers: int | None = 0, device=None):
    """The fixed set of images BN statistics are recomputed on: ``n`` images of ``split`` (of ``indices`` if given).

    Drawn without replacement by a generator seeded with ``seed``; handed out
    in a fixed order without augmentation (the loader's ``train=False``), so
    every pass over it gives the same batches.  All of the split's (or the
    subset's) images when it has no more than ``n``.
    """
    pool = np.arange(len(data.labels(split))) if indices is None else np.asarray(indices)
    if n < len(pool):
        rng = np.random.default_rng(seed)
        pool = np.sort(rng.choice(pool, size=n, replace=False))
    return make_loader(data, split, batch_size, False, pool, seed, workers=workers, drop_last=False, device=device)


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, batches: Iterable, hardware=None) -> int:
    """Reset every BN's running statistics of ``model`` and re-estimate them on ``batches``; returns the images seen.

    ``batches`` yields images or ``(images, labels)``.  BN layers run in
    training mode with ``momentum=None`` (the running statistics become the
    plain average over the batches), every other module in eval mode
    (dropout off, no Gumbel noise); afterwards the model is in eval mode and
    each BN's momentum is what it was.  ``hardware`` (an
    :class:`ednas.device.Hardware`) gives the autocast of the forward passes.
    """
    bns = _bns(model)
    momenta = [m.momentum for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    seen = 0
    try:
        for b in batches:
            x = b[0] if isinstance(b, (tuple, list)) else b
            with hardware.autocast() if hardware is not None else contextlib.nullcontext():
                model(x)
            seen += int(x.shape[0])
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.eval()
    return seen


@contextlib.contextmanager
def recalibrated_bn(model: nn.Module, batches: Iterable, hardware=None) -> Iterator[nn.Module]:
    """Within the block, ``model``'s BN layers hold statistics recomputed on ``batches`` (:func:`recompute_bn_stats`).

    On exit every BN's running mean, variance and batch count, its momentum
    and every module's training flag are what they were before: the model's
    own statistics and its training are untouched.
    """
    bns = _bns(model)
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in bns]
    modes = [(m, m.training) for m in model.modules()]
    try:
        recompute_bn_stats(model, batches, hardware)
        yield model
    finally:
        with torch.no_grad():
            for m, (mean, var, count) in zip(bns, saved):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
        for m, mode in modes:
            m.training = mode
