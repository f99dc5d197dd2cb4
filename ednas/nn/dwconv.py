"""A faster weight gradient for large depthwise convolutions on the CPU.

On the CPU, PyTorch's depthwise convolution runs on oneDNN, whose forward
pass and input gradient are fast for every kernel size but whose *weight*
gradient is fast only for 3x3 kernels: for 7x7 it takes 5-28x the forward
pass (``benchmarks/dw_grad.py`` on a Zen 4, 2 threads: a 64 x 192 x 16 x 16
batch, 3.3 ms forward, 21.9 ms weight gradient).  Every meta-kernel is 7x7
(the largest candidate), so the search spent about 40 % of a supernet step
there.

The weight gradient of a depthwise convolution is itself a depthwise
convolution, over the batch::

    dW[c, i, j] = sum_{n,h,w} xpad[n, c, s*h + i, s*w + j] * dY[n, c, h, w]

which is the forward correlation of the padded input ``x[n, c]`` (as one
image of N*C channels) with the output gradient ``dY[n, c]`` as its kernel
(dilated by the stride), summed over n.  oneDNN's forward depthwise runs
that 1.1-3.1x faster than its own weight gradient on the supernet's 7x7
layers, 8x on the stem's 11x11 (``benchmarks/dw_grad.py``).
:func:`depthwise_conv2d` uses it where it pays: float32/float64 on the CPU
with autograd recording, dilation 1, kernels of 5 and more at stride 1 and
of 7 and more at stride 2 (:data:`MIN_KERNEL`: oneDNN's weight gradient is
the faster one below those); everywhere else (GPU,
autocast, tracing for ONNX export, no grad) it is ``F.conv2d`` itself.
The forward pass and the input gradient are oneDNN's, unchanged; the
weight gradient is the same sum in another order (equal to float rounding).

:class:`DepthwiseConv2d` is an ``nn.Conv2d`` that calls it; ednas builds
every depthwise convolution of its networks with it (stems, fixed blocks and
their branches), and :class:`~ednas.nn.metakernel.MetaKernelConv` calls
:func:`depthwise_conv2d` with its mixed kernel.  ``EDNAS_DW_GRAD=onednn`` (or
:func:`onednn_weight_grad`) turns it off, for a comparison.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["DepthwiseConv2d", "depthwise_conv2d", "depthwise_weight_grad", "onednn_weight_grad", "uses_rewrite"]

#: the smallest kernel side for which the rewrite is used, at stride 1 and at a larger stride (``benchmarks/dw_grad.py``:
#: oneDNN's 3x3 weight gradient is 4-16x faster than the rewrite, and at stride 2 its 5x5 is faster on 16x16 and larger maps)
MIN_KERNEL = {1: 5, 2: 7}

_enabled = os.environ.get("EDNAS_DW_GRAD", "").lower() not in ("onednn", "native", "off", "0")


@contextlib.contextmanager
def onednn_weight_grad() -> Iterator[None]:
    """Within the block every depthwise convolution uses PyTorch's own (oneDNN) backward."""
    global _enabled
    old, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = old


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def depthwise_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                          padding: tuple[int, int]) -> torch.Tensor:
    """``dW`` (C, 1, kh, kw) of a depthwise conv, as one forward depthwise conv over the batch (module docstring)."""
    n, c, h, w = x.shape
    ho, wo = grad_out.shape[-2:]
    out = F.conv2d(x.reshape(1, n * c, h, w), grad_out.reshape(n * c, 1, ho, wo), None, 1, padding, stride, n * c)
    return out.view(n, c, out.shape[-2], out.shape[-1])[:, :, : kernel[0], : kernel[1]].sum(0).unsqueeze(1)


class _DepthwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        return F.conv2d(x, weight, bias, stride, padding, 1, x.shape[1])

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(grad_out, x, weight, None, list(ctx.stride), list(ctx.padding), [1, 1], False,
                                                     [0, 0], x.shape[1], [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            gw = depthwise_weight_grad(x, grad_out, tuple(weight.shape[-2:]), ctx.stride, ctx.padding)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad_out.sum((0, 2, 3))
        return gx, gw, gb, None, None


def uses_rewrite(x: torch.Tensor, weight: torch.Tensor, stride=1, dilation=1) -> bool:
    """Whether :func:`depthwise_conv2d` takes the rewritten weight gradient for these operands (module docstring)."""
    if not _enabled or torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return False
    return (x.device.type == "cpu" and x.dim() == 4 and torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
            and x.dtype in (torch.float32, torch.float64) and weight.dtype == x.dtype and weight.shape[1] == 1
            and weight.shape[0] == x.shape[1] and _pair(dilation) == (1, 1) and not torch.is_autocast_enabled("cpu")
            and max(weight.shape[-2:]) >= MIN_KERNEL[min(max(_pair(stride)), 2)])


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1, padding=0) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding, groups=C)`` (a depthwise conv), with the faster CPU weight gradient where it pays."""
    stride, padding = _pair(stride), _pair(padding)
    if uses_rewrite(x, weight, stride):
        return _DepthwiseConv.apply(x, weight, bias, stride, padding)
    return F.conv2d(x, weight, bias, stride, padding, 1, x.shape[1])


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(c, c, k, stride, padding, groups=c)`` whose training step uses :func:`depthwise_conv2d`.

    The same parameters, state dict and export as ``nn.Conv2d`` (under
    tracing, and in eval without grad, it is ``nn.Conv2d``'s forward).
    """

    def __init__(self, channels: int, kernel_size, stride=1, padding=0, bias: bool = False):
        super().__init__(channels, channels, kernel_size, stride, padding, groups=channels, bias=bias)

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.padding_mode == "zeros" and isinstance(self.padding, tuple) and uses_rewrite(input, weight, self.stride, self.dilation):
            return _DepthwiseConv.apply(input, weight, bias, _pair(self.stride), _pair(self.padding))
        return super()._conv_forward(input, weight, bias)
