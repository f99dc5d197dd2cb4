"""Batches: order, sharding, augmentation, normalisation, on the device that computes.

Both loaders cut an epoch the same way: a permutation drawn from ``(seed,
epoch)`` (training) or the split's order (evaluation), cut into batches of
``batch_size``; with ``shard=(r, W)`` a loader hands out only batches ``r, r +
W, r + 2W, ...``.  So W processes (or paths) of batch B see, in one step, the
batch of ``W * B`` images one process would see, cut in W parts.  ``rounds``
is the number of steps every shard can take (the search and the data-parallel
training take that many, so no process waits at a collective for one that has
run out).

Augmentation is a function of ``(seed, epoch, image)``, never of the order in
which batches are drawn: in-memory sets draw every image's pad-crop offset
and flip for the whole epoch at once, folder and VOC sets seed each image's
transform from ``(seed, epoch, image index)``.  So an epoch's images are the
same whether the run was interrupted before it or not (what makes
``--resume`` exact), whatever the number of processes the batches are dealt
to, and whatever the number of loader workers.

In-memory sets (:class:`TensorLoader`) gather the uint8 batch on the CPU,
move it to ``device`` (from pinned memory on CUDA) and crop, flip and
normalise it there, vectorised; batches come out in ``channels_last`` (far
faster for depthwise convolutions).  ``folder:`` and ``voc:`` sets
(:class:`FolderLoader`; torchvision's ``ImageFolder``, or VOC's image list)
decode in DataLoader worker processes (RandomResizedCrop, flip, ColorJitter;
Resize + CenterCrop for evaluation; VOC: see :mod:`ednas.data.voc`),
``workers`` of them (default: this process's share of the cores, one left to
the training loop), kept alive across epochs, into pinned memory on CUDA.
Multi-label targets are batched as N x C rows.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ednas.data.datasets import DataSet, folder_dataset
from ednas.device import auto_workers
from ednas.seeds import derive

__all__ = ["TensorLoader", "FolderLoader", "make_loader", "normalize"]


def normalize(x_uint8: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 N x 3 x H x W -> normalised float, channels_last, on ``x_uint8``'s device."""
    x = x_uint8.float().div_(255.0)
    m = torch.as_tensor(mean, dtype=x.dtype).to(x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype).to(x.device).view(1, -1, 1, 1)
    return ((x - m) / s).contiguous(memory_format=torch.channels_last)


def _to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device``; through pinned memory and without waiting on CUDA."""
    if device.type == "cpu":
        return t
    if device.type == "cuda":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


class _Batches:
    """An epoch's order cut into batches, dealt out to shards (shared by both loaders)."""

    def __init__(self, n: int, batch_size: int, train: bool, seed: int, drop_last: bool | None, shard: tuple[int, int]):
        self.n, self.batch_size, self.train, self.seed = n, batch_size, train, seed
        self.drop_last = train if drop_last is None else drop_last
        self.shard = shard
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> int:
        """Batches of the whole epoch (every shard together)."""
        if self.drop_last and self.n >= self.batch_size:
            return self.n // self.batch_size
        return (self.n + self.batch_size - 1) // self.batch_size

    def __len__(self) -> int:
        p, world = self.shard
        return len(range(p, self._batches(), world))

    @property
    def rounds(self) -> int:
        """Batches every shard has: the steps the W processes of a data-parallel run can take together."""
        return self._batches() // self.shard[1]

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(derive(int(self.seed), "epoch", self.epoch))

    def _order(self, g: torch.Generator) -> torch.Tensor:
        return torch.randperm(self.n, generator=g) if self.train else torch.arange(self.n)

    def _slices(self) -> Iterator[slice]:
        p, world = self.shard
        for b in range(p, self._batches(), world):
            yield slice(b * self.batch_size, min((b + 1) * self.batch_size, self.n))


class TensorLoader(_Batches):
    """Batches of an in-memory split, augmented on ``device``.

    Args:
        data: the data set.
        split: ``train``, ``val`` or ``test``.
        batch_size: images per batch.
        train: shuffle and augment (else fixed order, no augmentation).
        indices: a subset of the split (e.g. the weight or architecture split).
        seed: base of the per-epoch generator.
        drop_last: drop a last incomplete batch (training).
        shard: ``(r, W)``: hand out only batches ``r, r + W, ...`` of the
            epoch's order (the order is the same for every r), so W parallel
            paths or ranks see disjoint batches and together the whole split.
        device: where batches are augmented and handed out (default: the CPU).
    """

    def __init__(self, data: DataSet, split: str, batch_size: int, train: bool, indices=None, seed: int = 0, drop_last: bool | None = None,
                 shard: tuple[int, int] = (0, 1), device=None):
        data.need(split)
        x, y = data.splits[split]
        self.rows = None if indices is None else torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        self.x, self.y = x, y
        super().__init__(len(y) if self.rows is None else len(self.rows), batch_size, train, seed, drop_last, shard)
        self.data = data
        self.pad = 4 if data.input_size <= 64 else data.input_size // 8
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._stats = None  # mean and std on the device, made once

    @property
    def num_images(self) -> int:
        return self.n

    def _normalize(self, xb: torch.Tensor) -> torch.Tensor:
        if self._stats is None:
            self._stats = tuple(torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1).to(self.device) for v in (self.data.mean, self.data.std))
        m, s = self._stats
        return ((xb.float().div_(255.0) - m) / s).contiguous(memory_format=torch.channels_last)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = self._generator()
        order = self._order(g)
        if self.rows is not None:
            order = self.rows[order]
        offs = flips = None
        if self.train:
            # every image's crop and flip of this epoch, by its position in the epoch's order
            offs = _to(torch.randint(0, 2 * self.pad + 1, (self.n, 2), generator=g), self.device)
            if "flip" in self.data.augment:
                flips = _to(torch.rand(self.n, generator=g) < 0.5, self.device)
        for sl in self._slices():
            idx = order[sl]
            xb, yb = _to(self.x[idx], self.device), _to(self.y[idx], self.device)
            if self.train:
                xb = _pad_crop_flip(xb, self.pad, offs[sl], flips[sl] if flips is not None else None)
            yield self._normalize(xb), yb


def _pad_crop_flip(xb: torch.Tensor, pad: int, offs: torch.Tensor, flip: torch.Tensor | None) -> torch.Tensor:
    """Per image a crop of the zero-padded image at ``offs`` (row, column), mirrored where ``flip``: one gather."""
    n, c, h, w = xb.shape
    padded = F.pad(xb, (pad, pad, pad, pad))
    dev = xb.device
    rows = offs[:, :1] + torch.arange(h, device=dev)  # n x h
    cols = offs[:, 1:] + torch.arange(w, device=dev)  # n x w
    if flip is not None:
        cols = torch.where(flip[:, None], cols.flip(-1), cols)
    return padded[torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


class _SeededItems(torch.utils.data.Dataset):
    """Items keyed ``(index, seed)``: the transform's random draws are seeded per image, in any worker."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key):
        i, seed = key
        if seed is None:
            return self.ds[i]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.ds[i]


class _BatchSampler(_Batches):
    def __init__(self, n, batch_size, train, seed, drop_last, shard, rows):
        super().__init__(n, batch_size, train, seed, drop_last, shard)
        self.rows = rows

    def __iter__(self):
        order = self._order(self._generator()).tolist()
        for sl in self._slices():
            idx = [self.rows[i] for i in order[sl]] if self.rows is not None else order[sl]
            yield [(i, derive(int(self.seed), "augment", self.epoch, i) if self.train else None) for i in idx]


class FolderLoader:
    """DataLoader over an image folder; batches dealt out like :class:`TensorLoader`'s, each image's augmentation seeded.

    ``workers``: DataLoader worker processes (``None``: :func:`ednas.device.auto_workers`),
    persistent across epochs.
    """

    def __init__(self, data: DataSet, split: str, batch_size: int, train: bool, indices=None, seed: int = 0, workers: int | None = None,
                 drop_last: bool | None = None, shard: tuple[int, int] = (0, 1), device=None):
        self.ds = folder_dataset(data, split, train)
        rows = None if indices is None else [int(i) for i in indices]
        self.sampler = _BatchSampler(len(self.ds) if rows is None else len(rows), batch_size, train, seed, drop_last, shard, rows)
        self.workers = auto_workers() if workers is None else workers
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._loader = None

    # the batching is the sampler's
    shard = property(lambda self: self.sampler.shard)
    batch_size = property(lambda self: self.sampler.batch_size)
    train = property(lambda self: self.sampler.train)
    rounds = property(lambda self: self.sampler.rounds)
    num_images = property(lambda self: self.sampler.n)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        if self._loader is None:
            self._loader = torch.utils.data.DataLoader(
                _SeededItems(self.ds),
                batch_sampler=self.sampler,
                num_workers=self.workers,
                pin_memory=self.device.type == "cuda",
                persistent_workers=self.workers > 0,
                prefetch_factor=4 if self.workers > 0 else None,
            )
        for x, y in self._loader:
            x = x.to(self.device, non_blocking=True) if self.device.type != "cpu" else x
            yield x.contiguous(memory_format=torch.channels_last), y.to(self.device, non_blocking=True)


def make_loader(data: DataSet, split: str, batch_size: int, train: bool, indices=None, seed: int = 0, workers: int | None = 0,
                drop_last: bool | None = None, shard: tuple[int, int] = (0, 1), device=None):
    """The loader for ``data``'s ``split`` (in-memory or folder); see :class:`TensorLoader` and :class:`FolderLoader`."""
    if data.in_memory:
        return TensorLoader(data, split, batch_size, train, indices, seed, drop_last, shard, device)
    return FolderLoader(data, split, batch_size, train, indices, seed, workers, drop_last, shard, device)
