"""Inverted residual blocks: the fixed one and the searchable one.

:class:`InvertedResidual` is MobileNetV2's block (1x1 expand, depthwise k x k,
1x1 project, BN after each, ReLU after the first two, residual when shapes
allow), optionally with ACNet-style depthwise branches that fuse away.

:class:`SearchableIR` is the same block in the supernet: its depthwise is a
:class:`~ednas.nn.metakernel.MetaKernelConv` (one conv for all kernel
candidates, eq. 9), its expansion a channel mask over the widest expand (as
Single-Path NAS), and where it can be an identity a ``skip`` choice mixes the
residual branch out (depth search, as FBNet), and where it changes the
stride or the width the ``skip`` choice mixes in a 1x1 projection instead
(FBNet's skip; :meth:`~ednas.nn.searchable.SearchableBlock.mix_projection`).  ``dw="darts"`` swaps the meta
kernel for one depthwise conv per candidate whose outputs are mixed: the
DARTS-style multi-path baseline on the same space.  Its choices, argmax,
probabilities and ``fuse()`` come from
:class:`~ednas.nn.searchable.SearchableBlock`; it adds the forward, the
depthwise kernels the feedback block merges and :meth:`SearchableIR.to_fixed`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ednas.arch.spec import Layer
from ednas.nn.dwconv import DepthwiseConv2d
from ednas.nn.layers import ConvBNAct
from ednas.nn.metakernel import MetaKernelConv
from ednas.nn.repconv import RepDWConvBN
from ednas.nn.searchable import SearchableBlock

__all__ = ["InvertedResidual", "SearchableIR", "channel_masks", "width_masks"]


class InvertedResidual(nn.Module):
    """MobileNetV2 block with a fixed kernel and expansion.

    Args:
        branches: train the depthwise with ACNet-style branches (fused by
            :func:`ednas.fuse` into one k x k conv for deployment).
    """

    def __init__(self, cin: int, cout: int, kernel: int, expansion: int, stride: int, branches: bool = False):
        super().__init__()
        mid = cin * expansion
        self.cin, self.cout, self.kernel, self.expansion, self.stride = cin, cout, kernel, expansion, stride
        self.expand = ConvBNAct(cin, mid, 1) if expansion != 1 else None
        self.dw = RepDWConvBN(mid, kernel, stride, shapes=None if branches else ((kernel, kernel),))
        self.project = ConvBNAct(mid, cout, 1, relu=False)
        self.residual = stride == 1 and cin == cout

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The block without its residual connection."""
        h = self.expand(x) if self.expand is not None else x
        return self.project(self.dw(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch(x)
        return x + y if self.residual else y


def channel_masks(expansions: tuple[int, ...], cin: int | tuple[int, ...]) -> torch.Tensor:
    """Masks keeping the first cin * e channels of the widest expand, one row per (cin, e): ``(n_cin * n_e, max(cin) * max(e))``.

    ``cin`` is one input width or the candidates of a searched input width
    (rows in the order of ``itertools.product(cins, expansions)``).
    """
    cins = (cin,) if isinstance(cin, int) else tuple(cin)
    mid = max(cins) * max(expansions)
    m = torch.zeros(len(cins) * len(expansions), mid)
    for r, (c, e) in enumerate((c, e) for c in cins for e in expansions):
        m[r, : c * e] = 1.0
    return m


def width_masks(widths: tuple[int, ...]) -> torch.Tensor:
    """(n, max(widths)) masks keeping the first w channels, one row per width."""
    m = torch.zeros(len(widths), max(widths))
    for i, w in enumerate(widths):
        m[i, :w] = 1.0
    return m


class SearchableIR(SearchableBlock):
    """Inverted residual block of the supernet, with kernel/expansion/skip choices.

    Args:
        layer: the block's place in the spec (input width, stride, candidates).
        dw: ``"metakernel"`` (one conv, eq. 9) or ``"darts"`` (one conv per
            candidate, outputs mixed: the multi-path baseline).
    """

    def __init__(self, layer: Layer, dw: str = "metakernel"):
        super().__init__(layer)
        b = layer.spec
        self.dw_kind = dw
        mid = layer.cin * max(b.expansions)
        self.expand = ConvBNAct(layer.cin, mid, 1) if max(b.expansions) != 1 else None
        if dw == "metakernel":
            self.dw = MetaKernelConv(mid, b.kernels, layer.stride)
        elif dw == "darts":
            self.dw = nn.ModuleList(
                DepthwiseConv2d(mid, k, layer.stride, k // 2) for k in b.kernels
            )
        else:
            raise ValueError(f"unknown depthwise kind '{dw}' (metakernel, darts)")
        self.dw_bn = nn.BatchNorm2d(mid)
        self.project = ConvBNAct(mid, b.out, 1, relu=False)
        self._add_choices()
        # channels of the expand kept by (input width, expansion), and of the output by width: masks of the widest convs
        self.masked_mid = len(self.expansions) > 1 or len(self.in_widths) > 1
        if self.masked_mid:
            self.register_buffer("emasks", channel_masks(b.expansions, self.in_widths), persistent=False)
        if len(self.widths) > 1:
            self.register_buffer("omasks", width_masks(self.widths), persistent=False)

    def dw_kernels(self) -> list[nn.Parameter]:
        """The meta-kernel (one weight), or with ``dw="darts"`` every candidate's own depthwise weight."""
        if self.dw_kind == "metakernel":
            return [self.dw.weight]
        return [conv.weight for conv in self.dw]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x) if self.expand is not None else x
        g = self.mix_weights(like=h)
        if self.dw_kind == "metakernel":
            h = self.dw(h, g["kernel"])
        else:
            h = sum(g["kernel"][i] * conv(h) for i, conv in enumerate(self.dw))
        h = F.relu(self.dw_bn(h))
        if self.masked_mid:  # the joint weight of (input width, expansion) on the first cin * e channels
            m = torch.outer(g["width_in"], g["expansion"]).reshape(-1) @ self.emasks
            h = h * m.view(1, -1, 1, 1)
        y = self.project(h)
        if len(self.widths) > 1:
            y = y * (g["width"] @ self.omasks).view(1, -1, 1, 1)
        if self.proj is not None:  # a projection skip: g_block * block(x) + g_skip * proj(x)
            return self.mix_projection(x, y, g)
        if not self.residual:
            return y
        if self.skip_choice is not None:
            y = g["skip"][0] * y
        return x + y

    # -- derive / inherit ----------------------------------------------------
    @torch.no_grad()
    def to_fixed(self, kernel: int, expansion: int, branches: bool = False, cin: int | None = None, cout: int | None = None) -> InvertedResidual:
        """A fixed block carrying this block's weights for (kernel, expansion) at widths ``cin`` -> ``cout``.

        The depthwise gets the centred crop of the meta-kernel (or the DARTS
        candidate's own conv), expansion e keeps the first cin * e channels
        that the channel mask kept during the search, and a searched width w
        the first w output channels (default: the largest widths).
        """
        cin = self.cin if cin is None else int(cin)
        cout = self.cout if cout is None else int(cout)
        blk = InvertedResidual(cin, cout, kernel, expansion, self.stride, branches)
        n = cin * expansion
        if blk.expand is not None:
            _copy_convbn(blk.expand, self.expand, out_slice=slice(0, n), in_slice=slice(0, cin))
        ki = self.kernels.index(kernel)
        w = self.dw.candidate_weight(ki) if self.dw_kind == "metakernel" else self.dw[ki].weight
        main = blk.dw.convs[0]
        main.weight.copy_(w[:n])
        _copy_bn(blk.dw.bns[0], self.dw_bn, slice(0, n))
        blk.project.conv.weight.copy_(self.project.conv.weight[:cout, :n])
        _copy_bn(blk.project.bn, self.project.bn, slice(0, cout))
        return blk


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, sl: slice) -> None:
    dst.weight.copy_(src.weight[sl])
    dst.bias.copy_(src.bias[sl])
    dst.running_mean.copy_(src.running_mean[sl])
    dst.running_var.copy_(src.running_var[sl])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


def _copy_convbn(dst: ConvBNAct, src: ConvBNAct, out_slice: slice, in_slice: slice = slice(None)) -> None:
    dst.conv.weight.copy_(src.conv.weight[out_slice, in_slice])
    _copy_bn(dst.bn, src.bn, out_slice)
