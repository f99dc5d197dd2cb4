"""The depth-aware stem and the classifier head.

Stem (paper Sec. III-A1): a depthwise ("depth-aware") K_s x K_s convolution on
the image (K_s = 11 by default, 11..17 allowed) with channel multiplier m, so
each colour plane gets m large filters of its own at little cost, then BN,
ReLU and a pointwise convolution that mixes them to the first stage's width.

:class:`ConvStem` is the plain alternative of the literature's spaces
(MobileNetV2, FBNet, ProxylessNAS): one dense K x K convolution on the image,
BN, ReLU (``conv_k3_c32_s2``).  :func:`build_stem` makes either from its spec.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ednas.arch.spec import ConvStemSpec, HeadSpec, StemSpec
from ednas.nn.layers import ConvBNAct

__all__ = ["ConvStem", "DepthAwareStem", "Head", "build_stem"]


class DepthAwareStem(nn.Module):
    def __init__(self, spec: StemSpec, in_channels: int = 3):
        super().__init__()
        mid = in_channels * spec.mult
        self.dw = ConvBNAct(in_channels, mid, spec.kernel, spec.stride, groups=in_channels)
        self.pw = ConvBNAct(mid, spec.out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class ConvStem(nn.Module):
    """Dense K x K conv on the image, BN, ReLU (folded by :func:`ednas.fuse` like every ConvBNAct)."""

    def __init__(self, spec: ConvStemSpec, in_channels: int = 3):
        super().__init__()
        self.conv = ConvBNAct(in_channels, spec.out, spec.kernel, spec.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def build_stem(spec: StemSpec | ConvStemSpec, in_channels: int = 3) -> nn.Module:
    """The stem module of a spec's first stage: :class:`DepthAwareStem` or :class:`ConvStem`."""
    if isinstance(spec, ConvStemSpec):
        return ConvStem(spec, in_channels)
    return DepthAwareStem(spec, in_channels)


class Head(nn.Module):
    """1x1 conv (optional), global average pool, dropout, linear classifier."""

    def __init__(self, cin: int, spec: HeadSpec, num_classes: int):
        super().__init__()
        self.conv = ConvBNAct(cin, spec.out, 1) if spec.out > 0 else None
        width = spec.out if spec.out > 0 else cin
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(spec.dropout) if spec.dropout > 0 else nn.Identity()
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x)
        x = self.pool(x).flatten(1)
        return self.fc(self.dropout(x))
