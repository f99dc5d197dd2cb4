"""Our own MAC counter: forward hooks on every convolution and linear layer.

One multiply-add is one MAC, and only convolutions and linear layers are
counted: the convention of the published figures (MobileNetV2 300 M, MnasNet
315 M, ...), which leave out BN, activations, residual adds, pooling and SE
gates.  A ``Conv2d`` with ``groups`` G costs

    MACs = H_out * W_out * C_out * (C_in / G) * K_h * K_w

per image (so a depthwise conv costs ``H_out * W_out * C * K_h * K_w``), and a
``Linear`` layer ``in_features * out_features`` per output position.  Bias
additions are not multiply-adds and are not counted (fvcore does the same).

The counter runs one forward pass of a batch-1 zero image and records, per
hooked layer, what the profile's table shows: name, type, input and output
shape, kernel, stride, groups, parameters and MACs.  It counts what the
forward pass *executes*, so a layer called twice is counted twice and an
unused one not at all, and any module that subclasses ``nn.Conv2d`` /
``nn.Linear`` (timm's ``Conv2dSame``, a ``MixedConv2d``'s parts) is included.
Code that calls ``F.conv2d`` directly (the meta-kernel conv of a supernet) is
invisible to hooks: profile the fixed or fused network instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

__all__ = ["LayerCount", "count_macs", "conv_macs", "linear_macs", "trace"]


@dataclass
class LayerCount:
    """One executed convolution or linear layer (a row of the profile's table)."""

    name: str
    type: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    kernel: tuple[int, ...] | None
    stride: tuple[int, ...] | None
    groups: int
    params: int
    macs: int

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("input_shape", "output_shape", "kernel", "stride"):
            d[k] = list(d[k]) if d[k] is not None else None
        return d


def conv_macs(conv: nn.Conv2d, output: torch.Tensor) -> int:
    """MACs of one call of ``conv`` that produced ``output`` (batch included)."""
    kh, kw = conv.kernel_size
    # output.numel() = N * C_out * H_out * W_out; each output element is a dot
    # product over C_in / groups channels of a kh x kw window
    return int(output.numel()) * (conv.in_channels // conv.groups) * kh * kw


def linear_macs(linear: nn.Linear, output: torch.Tensor) -> int:
    """MACs of one call of ``linear`` (every output element is a dot product of length in_features)."""
    return int(output.numel()) * linear.in_features


def _params(m: nn.Module) -> int:
    return int(sum(p.numel() for p in m.parameters(recurse=False)))


@torch.no_grad()
def count_macs(model: nn.Module, input_size: int, in_channels: int = 3) -> tuple[int, list[LayerCount]]:
    """Count the MACs of one batch-1 forward pass of ``model`` on an ``input_size`` square image.

    Args:
        model: any ``nn.Module`` taking an N x C x H x W tensor.
        input_size: the image side.
        in_channels: image channels.

    Returns:
        ``(total MACs per image, per-layer records in execution order)``.
    """
    names = {m: n for n, m in model.named_modules()}
    rows: list[LayerCount] = []

    def hook(m: nn.Module, inputs, output) -> None:
        if not isinstance(output, torch.Tensor):
            return
        x = inputs[0] if inputs else None
        in_shape = tuple(x.shape[1:]) if isinstance(x, torch.Tensor) else ()
        if isinstance(m, nn.Conv2d):
            macs = conv_macs(m, output)
            kernel, stride, groups, kind = tuple(m.kernel_size), tuple(m.stride), int(m.groups), "Conv2d"
            if m.groups > 1 and m.groups == m.in_channels:
                kind = "Conv2d (depthwise)"
            elif m.groups > 1:
                kind = "Conv2d (grouped)"
        else:
            macs = linear_macs(m, output)
            kernel, stride, groups, kind = None, None, 1, "Linear"
        rows.append(LayerCount(names.get(m, type(m).__name__), kind, in_shape, tuple(output.shape[1:]), kernel, stride, groups, _params(m), macs))

    trace(model, input_size, (nn.Conv2d, nn.Linear), hook, in_channels)
    return int(sum(r.macs for r in rows)), rows


@torch.no_grad()
def trace(model: nn.Module, input_size: int, types: tuple, hook, in_channels: int = 3) -> None:
    """Run one eval-mode forward pass of a zero image with ``hook`` on every module of ``types``.

    The hooks are removed and the model's training mode restored afterwards,
    whatever happens.
    """
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, types)]
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros(1, in_channels, input_size, input_size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
