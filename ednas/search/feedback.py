"""The feedback block (eq. 3-5): merge the kernels of parallel paths, weighted by their losses.

P paths of the supernet train on different mini-batches with different Gumbel
noise.  After every step each path's loss L_p gives (eq. 4)

    beta_p = tanh(1 / L_p) / sum_q tanh(1 / L_q)

so a path with a smaller loss weighs more, and every path's tensors are
replaced by ``sum_p beta_p W_p`` (eq. 3): all paths hold the same result.  The
final kernels ``sum_p Gamma_p W_p`` with ``Gamma_p = beta_p / sum beta`` (eq. 5)
are what the last merge leaves, since the betas already sum to one.

Guards: ``tanh(1/L)`` tends to 1 as L -> 0, so L is clamped at 1e-12 instead of
dividing by zero; a path whose loss is NaN, infinite or negative is left out
of the merge (beta = 0, and its tensors are overwritten by the others' merge);
if no path is usable the merge is skipped.

What is merged (``merge``):

``kernels``        the searchable depthwise kernels (the meta-kernels), as the
                   paper says;
``kernels+alpha``  those and the architecture logits, so the paths keep one
                   architecture;
``all``            every weight, BN statistic and alpha: the paths become
                   identical after each step and the block is a loss-weighted
                   data-parallel step.

Optimizer state is merged with the tensors it belongs to (SGD momentum, Adam
moments, with the same betas): otherwise each path's momentum would pull it
away from the merged point at the very next step, undoing the merge.  State of
tensors that are not merged stays per path.

The same object merges paths held in this process (a list of modules) or, under
``torchrun``, one path per rank: there each rank scales its tensors by its own
beta and one SUM all-reduce gives every rank the merge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ednas.errors import ConfigError
from ednas.nn.searchable import named_arch_parameters, named_dw_kernels

__all__ = ["MERGE_KINDS", "FeedbackBlock", "betas", "merged_names"]

MERGE_KINDS = ("kernels", "kernels+alpha", "all")


def betas(losses: Sequence[float]) -> torch.Tensor | None:
    """Eq. (4) with its guards; ``None`` when no path has a usable loss."""
    t = []
    for loss in losses:
        loss = float(loss)
        if not math.isfinite(loss) or loss < 0:
            t.append(0.0)
        else:
            t.append(math.tanh(1.0 / max(loss, 1e-12)))
    total = sum(t)
    if total <= 0:
        return None
    return torch.tensor([v / total for v in t], dtype=torch.float64)


def merged_names(model: nn.Module, merge: str) -> list[str]:
    """Names (in ``model.state_dict()``) of the tensors a merge of kind ``merge`` touches.

    ``kernels`` are the depthwise kernels every searchable block declares
    (:meth:`~ednas.nn.searchable.SearchableBlock.dw_kernels`), ``alpha`` the
    logits of every architecture choice; both are found by identity, so any
    block that implements the interface is merged.
    """
    if merge not in MERGE_KINDS:
        raise ConfigError(f"unknown merge '{merge}'; expected one of {', '.join(MERGE_KINDS)}")
    if merge == "all":
        return [k for k, v in model.state_dict().items() if v.is_floating_point()]
    names = [n for n, _ in named_dw_kernels(model)]
    if merge == "kernels+alpha":
        names += [n for n, _ in named_arch_parameters(model)]
    return names


class FeedbackBlock:
    """Merges the selected tensors (and their optimizer state) of the paths.

    Args:
        paths: the path modules held by this process (all P, or this rank's one).
        merge: one of :data:`MERGE_KINDS`.
        optimizers: per local path, the optimizers whose state follows the merge.
        group: a torch.distributed process group when each rank holds one path.
    """

    def __init__(self, paths: list[nn.Module], merge: str = "all", optimizers: list[list[torch.optim.Optimizer]] | None = None, group=None):
        self.paths, self.merge, self.group = paths, merge, group
        self.optimizers = optimizers or [[] for _ in paths]
        self.names = merged_names(paths[0], merge)
        self.distributed = group is not None
        if self.distributed and len(paths) != 1:
            raise ValueError("with a process group each rank holds exactly one path")

    def _tensors(self, path_index: int) -> list[torch.Tensor]:
        sd = self.paths[path_index].state_dict(keep_vars=True)
        return [sd[n].data if isinstance(sd[n], nn.Parameter) else sd[n] for n in self.names]

    def _opt_states(self, path_index: int) -> list[list[torch.Tensor]]:
        """Per merged tensor, the optimizer state tensors that belong to it (same order in every path)."""
        params = dict(self.paths[path_index].named_parameters())
        out = []
        for n in self.names:
            p = params.get(n)
            states = []
            if p is not None:
                for opt in self.optimizers[path_index]:
                    st = opt.state.get(p, {})
                    states += [st[k] for k in sorted(st) if torch.is_tensor(st[k]) and st[k].shape == p.shape]
            out.append(states)
        return out

    @torch.no_grad()
    def __call__(self, losses: Sequence[float]) -> torch.Tensor | None:
        """Merge after a step; ``losses`` are this process's paths' losses. Returns the betas used."""
        if self.distributed:
            return self._merge_dist(losses)
        b = betas(losses)
        if b is None or len(self.paths) == 1:
            return b
        tensors = [self._tensors(p) for p in range(len(self.paths))]
        states = [self._opt_states(p) for p in range(len(self.paths))]
        for i in range(len(self.names)):
            _merge_list([t[i] for t in tensors], b)
            # optimizer state that exists in every path (a path may not have stepped yet)
            counts = {len(s[i]) for s in states}
            if len(counts) == 1:
                for j in range(counts.pop()):
                    _merge_list([s[i][j] for s in states], b)
        return b

    def _merge_dist(self, losses: Sequence[float]) -> torch.Tensor | None:
        import torch.distributed as dist

        world, rank = dist.get_world_size(self.group), dist.get_rank(self.group)
        all_losses = torch.zeros(world, dtype=torch.float64)
        all_losses[rank] = float(losses[0])
        dist.all_reduce(all_losses, group=self.group)
        b = betas(all_losses.tolist())
        if b is None:
            return None
        tensors = self._tensors(0)
        states = self._opt_states(0)
        flat = [t for t in tensors] + [s for st in states for s in st]
        w = float(b[rank])
        # one all-reduce over the flattened, beta-scaled tensors (the "weighted all-reduce"),
        # in float64 as the single-process merge; a left-out path adds exact zeros (0 * NaN is NaN)
        buf = torch.cat([t.reshape(-1).to(torch.float64) for t in flat])
        if w == 0.0:
            buf.zero_()
        else:
            buf.mul_(w)
        dist.all_reduce(buf, group=self.group)
        off = 0
        for t in flat:
            n = t.numel()
            t.copy_(buf[off : off + n].view_as(t).to(t.dtype))
            off += n
        return b


def _merge_list(ts: list[torch.Tensor], b: torch.Tensor) -> None:
    used = [(t, float(w)) for t, w in zip(ts, b) if float(w) > 0]
    acc = torch.zeros_like(ts[0], dtype=torch.float64)
    for t, w in used:
        acc += w * t.to(torch.float64)
    merged = acc.to(ts[0].dtype)
    for t in ts:
        t.copy_(merged)
