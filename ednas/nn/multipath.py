"""FBNet-style multi-path block: the baseline the meta-kernel is measured against.

Each (kernel, expansion) candidate is a whole inverted residual block with its
own expand, depthwise and project convs; the block's output is the mix
``sum_ij g_k[i] g_e[j] block_ij(x)`` (and the skip choice as in
:class:`~ednas.nn.blocks.SearchableIR`).  Every candidate runs every step, so
the cost grows with the number of candidates: what eq. (9)'s single
convolution avoids.  The choices are laid out exactly as in SearchableIR, so
search, latency and derive work on both.
"""

from __future__ import annotations

import copy
import itertools

import torch
import torch.nn as nn

from ednas.arch.spec import Layer
from ednas.nn.blocks import InvertedResidual
from ednas.nn.choice import Choice

__all__ = ["FBNetBlock"]


class FBNetBlock(nn.Module):
    def __init__(self, layer: Layer):
        super().__init__()
        b = layer.spec
        self.layer = layer
        self.cin, self.cout, self.stride = layer.cin, b.out, layer.stride
        self.kernels, self.expansions = b.kernels, b.expansions
        self.pairs = list(itertools.product(b.kernels, b.expansions))
        self.paths = nn.ModuleList(InvertedResidual(layer.cin, b.out, k, e, layer.stride) for k, e in self.pairs)
        self.residual = layer.residual
        self.kernel_choice = Choice("kernel", b.kernels) if len(b.kernels) > 1 else None
        self.expansion_choice = Choice("expansion", b.expansions) if len(b.expansions) > 1 else None
        self.skip_choice = Choice("skip", ("block", "skip")) if layer.can_skip else None

    def choices(self) -> list[Choice]:
        return [c for c in (self.kernel_choice, self.expansion_choice, self.skip_choice) if c is not None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gk = self.kernel_choice.weights() if self.kernel_choice else x.new_ones(1)
        ge = self.expansion_choice.weights() if self.expansion_choice else x.new_ones(1)
        y = None
        for (k, e), path in zip(self.pairs, self.paths):
            w = gk[self.kernels.index(k)] * ge[self.expansions.index(e)]
            out = path.branch(x)  # the residual is added once below, not once per path
            y = w * out if y is None else y + w * out
        if not self.residual:
            return y
        if self.skip_choice is not None:
            y = self.skip_choice.weights()[0] * y
        return x + y

    def picked(self) -> dict:
        return {
            "kernel": self.kernels[self.kernel_choice.argmax()] if self.kernel_choice else self.kernels[0],
            "expansion": self.expansions[self.expansion_choice.argmax()] if self.expansion_choice else self.expansions[0],
            "skip": bool(self.skip_choice and self.skip_choice.argmax() == 1),
        }

    def fuse(self) -> nn.Module:
        """The argmax block (identity if skipped), for :func:`ednas.fuse`."""
        p = self.picked()
        return nn.Identity() if p["skip"] else self.to_fixed(p["kernel"], p["expansion"]).eval()

    @torch.no_grad()
    def to_fixed(self, kernel: int, expansion: int, branches: bool = False) -> InvertedResidual:
        src = self.paths[self.pairs.index((kernel, expansion))]
        if not branches:
            return copy.deepcopy(src)
        blk = InvertedResidual(self.cin, self.cout, kernel, expansion, self.stride, branches=True)
        own = {k: v for k, v in src.state_dict().items()}
        blk.load_state_dict(own, strict=False)
        return blk
