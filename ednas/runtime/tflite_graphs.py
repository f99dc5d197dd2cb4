"""``host-litert``: latency tables timed in LiteRT (the ai-edge-litert interpreter, XNNPACK), as embedded Arm CPUs run them.

The method is ``host-ort``'s (:mod:`ednas.runtime.board`): each operator is
timed in its sandwich ``P_in -> op -> P_out`` beside the context pairs
``P -> P`` (``LAT = S - B_in / 2 - B_out / 2``, the residual add as a
marginal cost), in interleaved rounds, in units of the table's reference
network; the very same :func:`ednas.runtime.board.measure_op` computes
every entry.  Only the models differ: here each model of
:func:`ednas.runtime.board.plan` is the same graph written as a PyTorch
module (:func:`model_module`; ``P`` a 1 x 1 depthwise convolution, a
channel-wise scale on rank-2 tensors) and converted by litert-torch, many
models as the signatures of one file (:func:`ednas.runtime.litert.signature_runners`),
channels last as ``ednas export --format tflite`` writes them.  Whole
networks (the reference, the fit and validation networks) are ednas's own
fused networks, converted the same way.

Fixed point (``--dtype i8``): the same float modules, each quantized full
integer as ``ednas export --format tflite --quant int8`` quantizes a network
(PT2E, int8 weights per output channel or per tensor, int8 activations,
input and output; calibrated on random inputs in [-1, 1]), so every model
runs XNNPACK's integer kernels; the context operator before an operator that
reads a ReLU output ends in a ReLU, as in the kit's QDQ graphs.  LiteRT has
no 16-bit or power-of-two mode.  Needs the litert extra.

The models: :func:`model_module` writes each model of :func:`ednas.runtime.board.plan`
(the operator sandwiches and their context pairs) as a module (``P`` a 1 x 1
depthwise convolution, a channel-wise scale on rank-2 tensors);
:func:`network_module` a network given as its chain of operator keys (a
table's reference network), as :func:`ednas.runtime.board.build_network`
builds it.  Weights are random, seeded by each model's id.  LiteRT
(:class:`ednas.runtime.litert.LitertRuntime`) converts them with
litert-torch; a future runtime that reads another format from PyTorch can
use them too.
"""

from __future__ import annotations

import zlib

import torch
import torch.nn as nn

from ednas.errors import ConfigError
from ednas.runtime import board

__all__ = ["DTYPES", "model_module", "network_module"]

# the operator types followed by a ReLU (as the kit's graphs)
_RELU = {"stem-dw", "stem-pw", "expand", "dw", "head", "conv"}


def _init(m: nn.Module, gen: torch.Generator) -> nn.Module:
    """Weights scaled so activations stay O(1) (no denormals), as the kit's graphs are."""
    with torch.no_grad():
        for p in m.modules():
            if isinstance(p, nn.Conv2d):
                fan_in = p.in_channels // p.groups * p.kernel_size[0] * p.kernel_size[1]
                p.weight.copy_((torch.rand(p.weight.shape, generator=gen) * 2 - 1) * (1.0 / fan_in) ** 0.5)
                p.bias.copy_((torch.rand(p.bias.shape, generator=gen) * 2 - 1) * 0.1)
            elif isinstance(p, nn.Linear):
                p.weight.copy_((torch.rand(p.weight.shape, generator=gen) * 2 - 1) * (1.0 / p.in_features) ** 0.5)
                p.bias.zero_()
    return m


class _Scale(nn.Module):
    """The context operator on a rank-2 tensor: a channel-wise scale."""

    def __init__(self, c: int, gen: torch.Generator):
        super().__init__()
        self.s = nn.Parameter(torch.rand(1, c, generator=gen) + 0.5, requires_grad=False)

    def forward(self, x):
        return x * self.s


def _p(c: int, gen: torch.Generator, rank4: bool = True, relu: bool = False) -> nn.Module:
    p = _init(nn.Conv2d(c, c, 1, groups=c), gen) if rank4 else _Scale(c, gen)
    return nn.Sequential(p, nn.ReLU()) if relu else p


#: LiteRT's fixed-point dtypes (full-integer int8)
DTYPES = ("f32", "i8")


def _check_dtype(dtype: str, what: str) -> None:
    if dtype not in DTYPES:
        raise ConfigError(f"host-litert measures float32 and int8 operators only; {what} is {dtype}")


def _op(op: dict, gen: torch.Generator) -> nn.Module:
    t = op["type"]
    if t == "pool":
        return nn.AdaptiveAvgPool2d(1)
    if t == "fc":
        return _init(nn.Linear(op["cin"], op["cout"]), gen)
    conv = _init(nn.Conv2d(op["cin"], op["cout"], op["kernel"], op["stride"], op["kernel"] // 2, groups=op["groups"]), gen)
    return nn.Sequential(conv, nn.ReLU()) if t in _RELU else conv


class _Chain(nn.Module):
    def __init__(self, *mods):
        super().__init__()
        self.mods = nn.ModuleList(mods)

    def forward(self, x):
        for m in self.mods:
            x = m(x)
        return x


class _AddSandwich(nn.Module):
    """``P3(P2(P1(x)) + P1(x))``: the residual add after a conv, as :func:`ednas.runtime.board.build` writes ``addsw``."""

    def __init__(self, c: int, gen: torch.Generator):
        super().__init__()
        self.p1, self.p2, self.p3 = _p(c, gen), _p(c, gen), _p(c, gen)

    def forward(self, x):
        a = self.p1(x)
        return self.p3(self.p2(a) + a)


def model_module(model_id: str) -> tuple[nn.Module, list[int]]:
    """``(module, NCHW input shape)`` of a float model of :func:`ednas.runtime.board.plan` (``sw:``, ``pair:``, ``chain3:``,
    ``pair2:``, ``addsw:``)."""
    kind, _, arg = model_id.partition(":")
    gen = torch.Generator().manual_seed(zlib.crc32(model_id.encode()))
    if kind in ("pair", "chain3", "pair2"):
        arg, _, dtype = arg.partition(":")
        _check_dtype(dtype or "f32", f"model {model_id}")
        if kind == "pair2":
            c = int(arg)
            return _Chain(_p(c, gen, False), _p(c, gen, False)), [1, c]
        c, h, w = (int(v) for v in arg.split("x"))
        return _Chain(*[_p(c, gen) for _ in range(2 if kind == "pair" else 3)]), [1, c, h, w]
    op = board.parse_key(arg)
    _check_dtype(op["dtype"], arg)
    if kind == "addsw":
        return _AddSandwich(op["cin"], gen), [1, op["cin"], op["h"], op["w"]]
    if kind == "sw":
        rank4 = op["type"] != "fc"
        shape = [1, op["cin"], op["h"], op["w"]] if rank4 else [1, op["cin"]]
        relu_in = op["dtype"] != "f32" and op["type"] in board.graphs.RELU_INPUT
        return _Chain(_p(op["cin"], gen, rank4, relu_in), _op(op, gen), _p(op["cout"], gen, rank4)), shape
    raise ConfigError(f"unknown model id {model_id!r}")


class _Net(nn.Module):
    """A network from its operator keys, as :func:`ednas.runtime.board.build_network` builds it."""

    def __init__(self, keys: list[str], gen: torch.Generator):
        super().__init__()
        self.ops = [board.parse_key(k) for k in keys]
        self.mods = nn.ModuleList(nn.Identity() if o["type"] == "add" else _op(o, gen) for o in self.ops)

    def forward(self, x):
        block_in, prev = x, None
        for o, m in zip(self.ops, self.mods):
            if o["type"] == "expand" or (o["type"] == "dw" and prev != "expand"):
                block_in = x
            if o["type"] == "fc" and prev == "pool":
                x = torch.flatten(x, 1)
            x = x + block_in if o["type"] == "add" else m(x)
            prev = o["type"]
        return x


def network_module(keys: list[str]) -> tuple[nn.Module, list[int]]:
    """``(module, NCHW input shape)`` of a network given as its chain of float operator keys (the reference network)."""
    first = board.parse_key(keys[0])
    return _Net(list(keys), torch.Generator().manual_seed(len(keys))), [1, first["cin"], first["h"], first["w"]]
