"""Batches: augmentation, normalisation, deterministic order.

In-memory sets are batched by :class:`TensorLoader`: a permutation drawn from
``(seed, epoch)``, then per image a random pad-crop (pad 4 at 32 px) and,
where the data set allows it, a horizontal flip, on the uint8 batch; then
scale, normalise and hand out in ``channels_last`` (far faster for depthwise
convolutions on CPU).  Everything random comes from a generator seeded by
``(seed, epoch)``, so an epoch is the same whether or not the run was
interrupted before it: that is what makes ``--resume`` exact.

``folder:`` and ``voc:`` sets are read from disk (torchvision's
``ImageFolder``, or VOC's image list) with RandomResizedCrop, flip and
ColorJitter for training (Resize + CenterCrop for evaluation; VOC: see
:mod:`ednas.data.voc`), in a ``DataLoader`` with ``workers`` processes and
the same per-epoch seeding.  Multi-label targets are batched as N x C rows.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ednas.data.datasets import DataSet, folder_dataset
from ednas.seeds import derive

__all__ = ["TensorLoader", "FolderLoader", "make_loader", "normalize"]


def normalize(x_uint8: torch.Tensor, mean, std) -> torch.Tensor:
    x = x_uint8.float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return ((x - m) / s).contiguous(memory_format=torch.channels_last)


class TensorLoader:
    """Batches of an in-memory split, augmented on the fly.

    Args:
        data: the data set.
        split: ``train``, ``val`` or ``test``.
        batch_size: images per batch.
        train: shuffle and augment (else fixed order, no augmentation).
        indices: a subset of the split (e.g. the weight or architecture split).
        seed: base of the per-epoch generator.
        drop_last: drop a last incomplete batch (training).
        shard: ``(p, P)``: hand out only batches ``p, p + P, ...`` of the
            epoch's order (the order is the same for every p), so P parallel
            paths or ranks see disjoint batches and together the whole split.
    """

    def __init__(self, data: DataSet, split: str, batch_size: int, train: bool, indices=None, seed: int = 0, drop_last: bool | None = None, shard: tuple[int, int] = (0, 1)):
        x, y = data.splits[split]
        if indices is not None:
            idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
            x, y = x[idx], y[idx]
        self.x, self.y = x, y
        self.data, self.batch_size, self.train, self.seed = data, batch_size, train, seed
        self.drop_last = train if drop_last is None else drop_last
        self.epoch = 0
        self.pad = 4 if data.input_size <= 64 else data.input_size // 8
        self.shard = shard

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> int:
        n = len(self.y)
        if self.drop_last and n >= self.batch_size:
            return n // self.batch_size
        return (n + self.batch_size - 1) // self.batch_size

    def __len__(self) -> int:
        p, world = self.shard
        return len(range(p, self._batches(), world))

    @property
    def num_images(self) -> int:
        return len(self.y)

    def _augment(self, xb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, h, w = xb.shape
        p = self.pad
        padded = F.pad(xb, (p, p, p, p))
        offs = torch.randint(0, 2 * p + 1, (n, 2), generator=g)
        out = torch.stack([padded[i, :, offs[i, 0] : offs[i, 0] + h, offs[i, 1] : offs[i, 1] + w] for i in range(n)])
        if "flip" in self.data.augment:
            flip = torch.rand(n, generator=g) < 0.5
            out[flip] = out[flip].flip(-1)
        return out

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        g = torch.Generator().manual_seed(derive(int(self.seed), "epoch", self.epoch))
        order = torch.randperm(n, generator=g) if self.train else torch.arange(n)
        p, world = self.shard
        for b in range(p, self._batches(), world):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            xb = self.x[idx]
            if self.train:
                xb = self._augment(xb, g)
            yield normalize(xb, self.data.mean, self.data.std), self.y[idx]


class FolderLoader:
    """DataLoader over an image folder, seeded per epoch like :class:`TensorLoader`."""

    def __init__(self, data: DataSet, split: str, batch_size: int, train: bool, indices=None, seed: int = 0, workers: int = 2, drop_last: bool | None = None, shard: tuple[int, int] = (0, 1)):
        ds = folder_dataset(data, split, train)
        self.shard = shard
        self.ds = torch.utils.data.Subset(ds, list(map(int, indices))) if indices is not None else ds
        self.batch_size, self.train, self.seed, self.workers = batch_size, train, seed, workers
        self.drop_last = train if drop_last is None else drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def num_images(self) -> int:
        return len(self.ds)

    def _sampler(self):
        p, world = self.shard
        s = torch.utils.data.DistributedSampler(self.ds, num_replicas=world, rank=p, shuffle=self.train, seed=int(self.seed), drop_last=self.train)
        s.set_epoch(self.epoch)
        return s

    def _drop_last(self, n: int) -> bool:
        # the same rule as TensorLoader: drop an incomplete last batch only if a full one exists
        return self.drop_last and n >= self.batch_size

    def __len__(self) -> int:
        n = len(self._sampler())
        return n // self.batch_size if self._drop_last(n) else (n + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        g = torch.Generator().manual_seed(derive(int(self.seed), "epoch", self.epoch))
        sampler = self._sampler()
        loader = torch.utils.data.DataLoader(
            self.ds,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=self._drop_last(len(sampler)),
            num_workers=self.workers,
            generator=g,
            persistent_workers=False,
        )
        for x, y in loader:
            yield x.contiguous(memory_format=torch.channels_last), y


def make_loader(data: DataSet, split: str, batch_size: int, train: bool, indices=None, seed: int = 0, workers: int = 0, drop_last: bool | None = None, shard: tuple[int, int] = (0, 1)):
    """The loader for ``data``'s ``split`` (in-memory or folder); see :class:`TensorLoader`."""
    if data.in_memory:
        return TensorLoader(data, split, batch_size, train, indices, seed, drop_last, shard)
    return FolderLoader(data, split, batch_size, train, indices, seed, workers, drop_last, shard)
