"""torch.distributed helpers: one process per feedback path under ``torchrun``.

``torchrun --nproc_per_node=P -m ednas.cli search ... --paths P`` starts P
processes; each holds one path of the feedback block, draws its own batches
(the epoch's batches dealt out by rank) and its own Gumbel noise, and the
merge of eq. (3) is one weighted all-reduce.  Gloo on CPU, NCCL on GPU.
Outside torchrun (no ``WORLD_SIZE`` > 1 in the environment) everything runs
in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["DistInfo", "init_from_env", "is_main"]


@dataclass
class DistInfo:
    rank: int
    world: int
    group: object = None
    owned: bool = False  # this module initialised the process group (and tears it down)

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def all_mean(self, value: float) -> float:
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t) / self.world

    def close(self) -> None:
        import torch.distributed as dist

        if self.owned and dist.is_initialized():
            dist.destroy_process_group()


def init_from_env() -> DistInfo | None:
    """Join the process group torchrun describes, or ``None`` for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    import torch
    import torch.distributed as dist

    owned = False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        owned = True
    return DistInfo(rank=dist.get_rank(), world=dist.get_world_size(), group=dist.group.WORLD, owned=owned)


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0
