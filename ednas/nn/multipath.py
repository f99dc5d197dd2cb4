"""FBNet-style multi-path block: the baseline the meta-kernel is measured against.

Each (kernel, expansion) candidate is a whole inverted residual block with its
own expand, depthwise and project convs; the block's output is the mix
``sum_ij g_k[i] g_e[j] block_ij(x)`` (and the skip choice as in
:class:`~ednas.nn.blocks.SearchableIR`).  Every candidate runs every step, so
the cost grows with the number of candidates: what eq. (9)'s single
convolution avoids.  Its choices come from
:class:`~ednas.nn.searchable.SearchableBlock`, as SearchableIR's do, so search,
latency and derive work on both.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

from ednas.arch.spec import Layer
from ednas.nn.blocks import InvertedResidual
from ednas.nn.searchable import SearchableBlock

__all__ = ["FBNetBlock"]


class FBNetBlock(SearchableBlock):
    """One whole inverted residual block per (kernel, expansion) candidate, outputs mixed.

    Args:
        layer: the block's place in the spec (input width, stride, candidates).
    """

    def __init__(self, layer: Layer):
        super().__init__(layer)
        b = layer.spec
        self.pairs = list(itertools.product(b.kernels, b.expansions))
        self.paths = nn.ModuleList(InvertedResidual(layer.cin, b.out, k, e, layer.stride) for k, e in self.pairs)
        self._add_choices()

    def dw_kernels(self) -> list[nn.Parameter]:
        """Every path's depthwise weight."""
        return [path.dw.convs[0].weight for path in self.paths]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.mix_weights(like=x)
        gk, ge = g["kernel"], g["expansion"]
        y = None
        for (k, e), path in zip(self.pairs, self.paths):
            w = gk[self.kernels.index(k)] * ge[self.expansions.index(e)]
            out = path.branch(x)  # the residual is added once below, not once per path
            y = w * out if y is None else y + w * out
        if not self.residual:
            return y
        if self.skip_choice is not None:
            y = g["skip"][0] * y
        return x + y

    @torch.no_grad()
    def to_fixed(self, kernel: int, expansion: int, branches: bool = False, cin: int | None = None, cout: int | None = None) -> InvertedResidual:
        """A copy of the (kernel, expansion) path (with fresh extra branches if ``branches``)."""
        src = self.paths[self.pairs.index((kernel, expansion))]
        if not branches:
            return copy.deepcopy(src)
        blk = InvertedResidual(self.cin, self.cout, kernel, expansion, self.stride, branches=True)
        own = {k: v for k, v in src.state_dict().items()}
        blk.load_state_dict(own, strict=False)
        return blk
