"""FBNet-style multi-path block: the baseline the meta-kernel is measured against.

Each (kernel, expansion) candidate is a whole inverted residual block with its
own expand, depthwise and project convs; the block's output is the mix
``sum_ij g_k[i] g_e[j] block_ij(x)`` (over the tied pairs only, each at its
kernel's weight, for ``_tied``; and the skip choice as in
:class:`~ednas.nn.blocks.SearchableIR`).  Every candidate runs every step, so
the cost grows with the number of candidates: what eq. (9)'s single
convolution avoids.  Its choices come from
:class:`~ednas.nn.searchable.SearchableBlock`, as SearchableIR's do, so search,
latency and derive work on both.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ednas.arch.spec import Layer
from ednas.nn.blocks import InvertedResidual, _copy_bn, _copy_convbn, channel_masks, width_masks
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
        self.pairs = list(b.pair_options)  # tied pairs, or every kernel with every expansion
        self.paths = nn.ModuleList(InvertedResidual(layer.cin, b.out, k, e, layer.stride) for k, e in self.pairs)
        self._add_choices()
        # a searched input width: per expansion, the channels of a path's widest expand kept by each input width
        self.masked_mid = len(self.in_widths) > 1
        if self.masked_mid:
            for e in self.expansions:
                self.register_buffer(f"imasks_e{e}", channel_masks((e,), self.in_widths), persistent=False)
        if len(self.widths) > 1:
            self.register_buffer("omasks", width_masks(self.widths), persistent=False)

    def dw_kernels(self) -> list[nn.Parameter]:
        """Every path's depthwise weight."""
        return [path.dw.convs[0].weight for path in self.paths]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.mix_weights(like=x)
        joint = self.joint_weights(g)
        y = None
        for (k, e), path in zip(self.pairs, self.paths):
            w = joint[self.kernels.index(k), self.expansions.index(e)]
            out = self._branch(path, x, e, g)  # the residual is added once below, not once per path
            y = w * out if y is None else y + w * out
        if len(self.widths) > 1:
            y = y * (g["width"] @ self.omasks).view(1, -1, 1, 1)
        if self.proj is not None:  # a projection skip
            return self.mix_projection(x, y, g)
        if not self.residual:
            return y
        if self.skip_choice is not None:
            y = g["skip"][0] * y
        return x + y

    def _branch(self, path: InvertedResidual, x: torch.Tensor, e: int, g: dict) -> torch.Tensor:
        """One path without its residual; with a searched input width its depthwise output masked as SearchableIR masks it."""
        h = path.expand(x) if path.expand is not None else x
        h = path.dw(h)
        if self.masked_mid:
            h = h * (g["width_in"] @ getattr(self, f"imasks_e{e}")).view(1, -1, 1, 1)
        return path.project(h)

    @torch.no_grad()
    def to_fixed(self, kernel: int, expansion: int, branches: bool = False, cin: int | None = None, cout: int | None = None) -> InvertedResidual:
        """The (kernel, expansion) path's weights as a fixed block at widths ``cin`` -> ``cout`` (default: the largest).

        The expand keeps its first ``cin * expansion`` outputs of the first
        ``cin`` inputs, the depthwise those channels, the project its first
        ``cout`` outputs of them (what the masks kept during the search).
        With ``branches`` the extra depthwise branches are fresh (the path has
        none).
        """
        src = self.paths[self.pairs.index((kernel, expansion))]
        cin = self.cin if cin is None else int(cin)
        cout = self.cout if cout is None else int(cout)
        if not branches and (cin, cout) == (self.cin, self.cout):
            return copy.deepcopy(src)
        blk = InvertedResidual(cin, cout, kernel, expansion, self.stride, branches=branches)
        n = cin * expansion
        if blk.expand is not None:
            _copy_convbn(blk.expand, src.expand, out_slice=slice(0, n), in_slice=slice(0, cin))
        blk.dw.convs[0].weight.copy_(src.dw.convs[0].weight[:n])
        _copy_bn(blk.dw.bns[0], src.dw.bns[0], slice(0, n))
        _copy_convbn(blk.project, src.project, out_slice=slice(0, cout), in_slice=slice(0, n))
        return blk
