"""Meta-kernel convolution: the searchable depthwise layer (eq. 1 and 9).

One depthwise weight ``W`` of the largest candidate size K_max holds every
candidate: candidate i (kernel k_i) is the centred crop ``mask_i * W``.  The
relaxed operation of eq. (9), ``sum_i g_i * conv(x, mask_i * W)``, is by the
additivity of convolution (eq. 1) the single convolution
``conv(x, (sum_i g_i * mask_i) * W)``.  So one layer runs ONE convolution
whatever the number of candidates, and a search step costs about one training
step of the network of the largest candidates (the point of the method).

``g`` is a vector of candidate weights: Gumbel-softmax probabilities (soft),
a straight-through one-hot (hard), or ``softmax(alpha)``.  Padding is
``K_max // 2`` for every candidate, which keeps each crop centred at any
stride (odd kernels), so candidate outputs align pixel for pixel.

The masks are a 3-D buffer (n, K, K): a 5-D one would make
``model.to(memory_format=torch.channels_last)`` fail.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from ednas.nn.dwconv import depthwise_conv2d

__all__ = ["MetaKernelConv", "centred_masks"]


def centred_masks(kernels: Sequence[int], kmax: int | None = None) -> torch.Tensor:
    """Masks (n, K, K) with ones on the centred k_i x k_i square of each candidate."""
    kmax = kmax or max(kernels)
    masks = torch.zeros(len(kernels), kmax, kmax)
    for i, k in enumerate(kernels):
        o = (kmax - k) // 2
        masks[i, o : o + k, o : o + k] = 1.0
    return masks


class MetaKernelConv(nn.Module):
    """Depthwise conv whose kernel size is chosen among centred crops of one weight.

    Args:
        channels: input = output channels (depthwise, groups = channels).
        kernels: candidate kernel sizes, odd (default 3, 5, 7).
        stride: 1 or 2.
    """

    def __init__(self, channels: int, kernels: Sequence[int] = (3, 5, 7), stride: int = 1):
        super().__init__()
        self.kernels = tuple(sorted(int(k) for k in kernels))
        if any(k % 2 == 0 or k < 1 for k in self.kernels):
            raise ValueError(f"candidate kernels must be odd and positive, got {self.kernels}")
        self.channels, self.stride = channels, stride
        self.kmax = max(self.kernels)
        self.weight = nn.Parameter(torch.empty(channels, 1, self.kmax, self.kmax))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.register_buffer("masks", centred_masks(self.kernels, self.kmax), persistent=False)

    def mixed_weight(self, g: torch.Tensor) -> torch.Tensor:
        """``sum_i g_i * (mask_i * W)``, computed as ``(sum_i g_i mask_i) * W``."""
        m = (g.to(self.masks.dtype) @ self.masks.flatten(1)).view(1, 1, self.kmax, self.kmax)
        return self.weight * m

    def candidate_weight(self, index: int) -> torch.Tensor:
        """The cropped k_i x k_i weight of candidate ``index``."""
        k = self.kernels[index]
        o = (self.kmax - k) // 2
        return self.weight[:, :, o : o + k, o : o + k]

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return depthwise_conv2d(x, self.mixed_weight(g), None, self.stride, self.kmax // 2)

    @torch.no_grad()
    def to_conv(self, index: int) -> nn.Conv2d:
        """A plain depthwise conv of candidate ``index``'s size with the cropped weight."""
        k = self.kernels[index]
        conv = nn.Conv2d(self.channels, self.channels, k, self.stride, k // 2, groups=self.channels, bias=False)
        conv.weight.copy_(self.candidate_weight(index))
        return conv

    def extra_repr(self) -> str:
        return f"{self.channels}, kernels={self.kernels}, stride={self.stride}"
