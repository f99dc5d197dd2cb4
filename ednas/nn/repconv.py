"""Parallel depthwise branches folded into one kernel (eq. 1-2, ACNet-style).

By the additivity of convolution (eq. 1), convolutions of the same input with
centred kernels of compatible sizes (k x k, a smaller k' x k', k x 1, 1 x k)
and the same stride sum to one convolution with the sum of the kernels, each
zero-padded to k x k about its centre.  With a BN after each branch (eq. 2)
each branch first folds its BN, and the biases add up.  So a network trained
with these extra branches costs nothing more at inference.

Odd kernels with padding ``k // 2`` centre every output on the same input
pixel for any stride, which is what makes the sizes compatible.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ednas.nn.dwconv import DepthwiseConv2d
from ednas.nn.layers import conv_act, fold_bn

__all__ = ["RepDWConvBN", "default_branches", "pad_to"]


def default_branches(k: int) -> tuple[tuple[int, int], ...]:
    """k x k, k x 1, 1 x k and the next smaller square, for k >= 3."""
    if k < 3:
        return ((k, k),)
    return ((k, k), (k, 1), (1, k), (k - 2, k - 2))


def pad_to(w: torch.Tensor, k: int) -> torch.Tensor:
    """Zero-pad a (..., kh, kw) kernel about its centre to (..., k, k)."""
    kh, kw = w.shape[-2:]
    ph, pw = (k - kh) // 2, (k - kw) // 2
    return F.pad(w, (pw, pw, ph, ph))


class RepDWConvBN(nn.Module):
    """Depthwise conv as a sum of centred branches, each with its own BN, then ReLU.

    Args:
        channels: input = output channels (depthwise).
        kernel: the deployed kernel size k (odd).
        stride: 1 or 2.
        shapes: branch kernel shapes (kh, kw), each odd and <= k; the default
            is :func:`default_branches`.  ``((k, k),)`` is a plain conv + BN.
        relu: apply ReLU after the sum.
    """

    def __init__(self, channels: int, kernel: int, stride: int = 1, shapes=None, relu: bool = True):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.shapes = tuple(tuple(s) for s in (shapes or default_branches(kernel)))
        for kh, kw in self.shapes:
            if kh % 2 == 0 or kw % 2 == 0 or kh > kernel or kw > kernel:
                raise ValueError(f"branch shape {kh}x{kw} must be odd and fit in {kernel}x{kernel}")
        self.convs = nn.ModuleList(
            DepthwiseConv2d(channels, (kh, kw), stride, (kh // 2, kw // 2)) for kh, kw in self.shapes
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(channels) for _ in self.shapes)
        self.act = nn.ReLU() if relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = None
        for conv, bn in zip(self.convs, self.bns):
            z = bn(conv(x))
            y = z if y is None else y + z
        return self.act(y) if self.act is not None else y

    @torch.no_grad()
    def zero_extra_branches(self) -> "RepDWConvBN":
        """Make every branch but the first (the k x k one) add exactly nothing, in training and in eval mode.

        Each extra branch's BN gets scale and shift 0, so its output is 0
        whatever its conv computes.  Weight inheritance uses it: the main
        branch carries the supernet's kernel, and the network computes what
        the supernet computed.  The branches still learn: a BN scale of 0
        still receives a gradient (the zero-initialised last BN of a
        residual block trains the same way), and the convs follow once it
        moves.
        """
        for bn in self.bns[1:]:
            bn.weight.zero_()
            bn.bias.zero_()
        return self

    @torch.no_grad()
    def fused_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single k x k kernel and bias equal to the sum of the branches."""
        weight, bias = 0.0, 0.0
        for conv, bn in zip(self.convs, self.bns):
            w, b = fold_bn(conv.weight, None, bn)
            weight = weight + pad_to(w, self.kernel)
            bias = bias + b
        return weight, bias

    @torch.no_grad()
    def fuse(self) -> nn.Module:
        c = self.convs[0].in_channels
        conv = nn.Conv2d(c, c, self.kernel, self.stride, self.kernel // 2, groups=c, bias=True)
        w, b = self.fused_kernel()
        conv.weight.copy_(w)
        conv.bias.copy_(b)
        return conv_act(conv, self.act)
