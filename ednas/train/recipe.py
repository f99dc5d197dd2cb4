"""The training recipe shared by the search's weight steps and the training of fixed networks.

SGD with Nesterov momentum, a learning rate that rises linearly for
``lr_warmup_epochs`` then follows the cosine of eq. (16), label smoothing,
and no weight decay on BN parameters and biases (the bag of tricks the
paper's Sec. IV-A cites), and how many non-finite steps in a row are
skipped before a run stops (:mod:`ednas.train.guard`).  :class:`Recipe` is declared once here; the
search's and the training's settings extend it, so ``ednas run`` has
``--search.lr`` and ``--train.lr``, each with this one default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn as nn

from ednas.errors import ConfigError

__all__ = ["Recipe", "param_groups", "make_optimizer"]


@dataclass
class Recipe:
    """SGD recipe of eq. (16) with linear warm-up."""

    #: images per batch and process (under torchrun the global batch is this x the processes of a path, or of the world for training)
    batch_size: int = 64
    #: peak learning rate (eq. 16's lr0), used as given whatever the number of processes (scale it with the global batch yourself)
    lr: float = 0.1
    #: linear learning-rate warm-up, in epochs
    lr_warmup_epochs: float = 1.0
    #: SGD momentum (Nesterov)
    momentum: float = 0.9
    #: weight decay (not on BN parameters and biases)
    weight_decay: float = 5e-5
    #: label smoothing of the cross-entropy
    label_smoothing: float = 0.1
    #: steps in a row with a non-finite loss or gradient that are skipped (and counted) before the run stops
    max_skipped_steps: int = 20

    def check(self, name) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"{name('batch_size')} must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ConfigError(f"{name('lr')} must be > 0, got {self.lr}")
        if self.lr_warmup_epochs < 0:
            raise ConfigError(f"{name('lr_warmup_epochs')} must be >= 0, got {self.lr_warmup_epochs}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"{name('momentum')} must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ConfigError(f"{name('weight_decay')} must be >= 0, got {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"{name('label_smoothing')} must be in [0, 1), got {self.label_smoothing}")
        if self.max_skipped_steps < 1:
            raise ConfigError(f"{name('max_skipped_steps')} must be >= 1, got {self.max_skipped_steps}")


def param_groups(params: Iterable[nn.Parameter], weight_decay: float, decay_all: bool = False) -> list[dict]:
    """Two groups: decayed weights, and BN parameters and biases (1-d) without decay."""
    params = [p for p in params if p.requires_grad]
    if decay_all:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(params: Iterable[nn.Parameter], lr: float, momentum: float, weight_decay: float, decay_all: bool = False):
    """SGD with Nesterov momentum over ``params`` (see :func:`param_groups`)."""
    return torch.optim.SGD(param_groups(params, weight_decay, decay_all), lr=lr, momentum=momentum, nesterov=momentum > 0)
