"""torch.distributed under ``torchrun``: the world, the search's P x D layout, and averaging inside a group.

``torchrun`` (one node or many; SLURM or Kubernetes may launch it) starts the
processes and describes them in the environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ...); :func:`init_from_env` joins the process group it
describes (gloo on the CPU; NCCL for CUDA tensors, gloo for CPU ones on a GPU
run).  Outside torchrun (no ``WORLD_SIZE`` > 1) everything runs in one
process and this module is not used.

Training (``ednas train``) is data-parallel over the whole world
(DistributedDataParallel).  The search lays the world out as P feedback
paths times D data-parallel ranks per path (:meth:`DistInfo.layout`,
``D = world / P``): rank ``r`` holds path ``r // D``; inside a path the D
ranks average their gradients (and BN statistics) every step, as DDP does,
over the path's group; across paths the feedback merge (eq. 3) is one
weighted all-reduce over the ranks with the same data-parallel index, so
every slice of the world does the same merge and all ranks of a path stay
identical.  P = 1 is a plain data-parallel search; D = 1 is one path per
process.

Rank 0 writes every output and checkpoint; a checkpoint holds every path's
state, so it resumes on any number of processes (see docs/distributed.md).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from ednas.errors import ConfigError, EdnasError

__all__ = ["DistInfo", "PathLayout", "average_", "init_from_env", "is_main"]

log = logging.getLogger(__name__)


def average_(tensors: list[torch.Tensor], group=None, size: int = 1) -> None:
    """Replace each tensor by its mean over the ``size`` ranks of ``group``: one all-reduce per dtype.

    Every rank must pass tensors of the same shapes in the same order (the
    gradients of the same network, its BN statistics, a loss).
    """
    if size <= 1 or not tensors:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for ts in by_dtype.values():
        flat = torch.cat([t.reshape(-1) for t in ts])
        dist.all_reduce(flat, group=group)
        flat.div_(size)
        off = 0
        for t in ts:
            n = t.numel()
            t.copy_(flat[off : off + n].view_as(t))
            off += n


@dataclass
class PathLayout:
    """Where this rank sits among P paths x D data-parallel ranks (rank = path * D + dp_rank)."""

    paths: int
    dp: int
    path: int
    dp_rank: int
    #: the D ranks of this path (gradient averaging); None when D = 1
    dp_group: object = None
    #: the P ranks of this data-parallel index, one per path (the feedback merge); None when P = 1
    path_group: object = None

    def average_(self, tensors: list[torch.Tensor]) -> None:
        """Mean over this path's D ranks, in place (no-op when D = 1)."""
        average_(tensors, self.dp_group, self.dp)


@dataclass
class DistInfo:
    """This process in the world torchrun started."""

    rank: int
    world: int
    group: object = None
    owned: bool = False  # this module initialised the process group (and tears it down)
    local_rank: int = 0
    _layouts: dict = field(default_factory=dict, repr=False)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def restarts(self) -> int:
        """How often torchrun has restarted the worker group (``--max-restarts``); > 0 means resume."""
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))

    def barrier(self) -> None:
        dist.barrier()

    def all_mean(self, value: float) -> float:
        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t) / self.world

    def all_max(self, value: float) -> float:
        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t)

    def broadcast_object(self, obj=None, src: int = 0):
        """``obj`` of rank ``src`` on every rank (pickled; move tensors to the CPU first)."""
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def on_main(self, fn):
        """``fn()`` run on rank 0, its result on every rank; an :class:`EdnasError` it raises is raised on every rank."""
        res = err = None
        if self.rank == 0:
            try:
                res = fn()
            except EdnasError as e:
                err = e
        res, err = self.broadcast_object((res, err))
        if err is not None:
            raise err
        return res

    def all_gather_objects(self, obj, group=None) -> list:
        """Every member's ``obj`` of ``group`` (default: the world), in group-rank order."""
        n = dist.get_world_size(group)
        out = [None] * n
        dist.all_gather_object(out, obj, group=group)
        return out

    def average_(self, tensors: list[torch.Tensor]) -> None:
        """Mean over the whole world, in place."""
        average_(tensors, None, self.world)

    def layout(self, paths: int) -> PathLayout:
        """The search's P x D layout (its process groups are made once, by every rank in the same order).

        Raises:
            ConfigError: the world is not a multiple of ``paths``.
        """
        if paths < 1 or self.world % paths:
            raise ConfigError(f"--paths {paths} under torchrun with {self.world} processes: the number of processes must be "
                              f"a multiple of the paths (P paths x D data-parallel processes each; e.g. torchrun --nproc_per_node={paths})")
        if paths not in self._layouts:
            D = self.world // paths
            path, d = divmod(self.rank, D)
            dp_group = path_group = None
            if D > 1:
                for p in range(paths):  # every rank makes every group, in the same order
                    g = dist.group.WORLD if D == self.world else dist.new_group([p * D + i for i in range(D)])
                    if p == path:
                        dp_group = g
            if paths > 1:
                for i in range(D):
                    g = dist.group.WORLD if paths == self.world else dist.new_group([p * D + i for p in range(paths)])
                    if i == d:
                        path_group = g
            self._layouts[paths] = PathLayout(paths, D, path, d, dp_group, path_group)
        return self._layouts[paths]

    def quiet_others(self) -> None:
        """Only rank 0 logs below warnings (one log, not one per process)."""
        if self.rank != 0:
            logging.getLogger("ednas").setLevel(logging.WARNING)

    def close(self, wait: bool = True) -> None:
        """Leave the group this module joined; ``wait``: first meet the other ranks at a barrier.

        A rank that tears gloo down while a peer still talks to it can abort
        the peer ("Connection closed by peer", SIGABRT at exit); after a
        failure the peers may never arrive, so then it leaves at once.
        """
        if self.owned and dist.is_initialized():
            if wait:
                dist.barrier()
            dist.destroy_process_group()

    def __enter__(self) -> DistInfo:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(wait=exc_type is None)


def init_from_env(device: torch.device | None = None) -> DistInfo | None:
    """Join the process group torchrun describes, or ``None`` for a single process.

    ``device``: where this process computes; with CUDA the group runs NCCL for
    CUDA tensors and gloo for CPU ones.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    cuda = device is not None and torch.device(device).type == "cuda"
    owned = False
    if not dist.is_initialized():
        store, rank, size = next(dist.rendezvous("env://"))
        # a group torchrun restarted (--max-restarts) finds the addresses its dead predecessors published
        # in the agent's store, and would wait on them forever: each attempt keys under its own prefix
        attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        dist.init_process_group(backend="cpu:gloo,cuda:nccl" if cuda else "gloo", store=dist.PrefixStore(f"ednas/attempt_{attempt}", store),
                                rank=rank, world_size=size)
        owned = True
    info = DistInfo(rank=dist.get_rank(), world=dist.get_world_size(), group=dist.group.WORLD, owned=owned,
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    log.debug("rank %d of %d (local rank %d), backend %s", info.rank, info.world, info.local_rank, dist.get_backend())
    return info


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0
