"""Conv + BN (+ ReLU) and the BN folding of eq. (2).

A convolution followed by an eval-mode BatchNorm is one affine map per output
channel, so it folds into the convolution: ``W' = W * gamma / sigma`` and
``b' = beta + (b - mu) * gamma / sigma`` with ``sigma = sqrt(var + eps)``.
Every module with a BN after a conv has a ``fuse()`` that returns its deploy
form; :func:`ednas.nn.fuse.fuse` walks a network and applies them.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ednas.nn.dwconv import DepthwiseConv2d

__all__ = ["ConvBNAct", "Projection", "fold_bn", "conv_act"]


def fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BN into the preceding conv's weight and bias (eq. 2)."""
    std = torch.sqrt(bn.running_var + bn.eps)
    scale = bn.weight / std if bn.affine else 1.0 / std
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    b = torch.zeros_like(bn.running_mean) if bias is None else bias
    w = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    return w, shift + (b - bn.running_mean) * scale


def conv_act(conv: nn.Conv2d, act: nn.Module | None) -> nn.Module:
    """A deploy-form conv (with bias) and its activation, as one module."""
    return nn.Sequential(conv, act) if act is not None else nn.Sequential(conv)


def _act(relu: bool) -> nn.Module | None:
    return nn.ReLU(inplace=False) if relu else None


class ConvBNAct(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, relu: bool = True):
        super().__init__()
        if groups == cin == cout and groups > 1:  # depthwise: the faster CPU weight gradient (ednas.nn.dwconv)
            self.conv = DepthwiseConv2d(cin, kernel, stride, kernel // 2)
        else:
            self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = _act(relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return self.act(x) if self.act is not None else x

    @torch.no_grad()
    def fuse(self) -> nn.Module:
        c = self.conv
        conv = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, groups=c.groups, bias=True)
        w, b = fold_bn(c.weight, c.bias, self.bn)
        conv.weight.copy_(w)
        conv.bias.copy_(b)
        return conv_act(conv, self.act)


class Projection(ConvBNAct):
    """1x1 conv + BN of a stride, no ReLU: FBNet's skip where the block changes the stride or the width.

    The block a projection skip leaves in a derived network (``proj_c24_s2``)
    and the supernet's skip path of such a block; :meth:`ConvBNAct.fuse`
    folds its BN.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(cin, cout, 1, stride, relu=False)
        self.cin, self.cout, self.stride = cin, cout, stride
