"""Networks from a spec: the fixed network and the supernet.

``build_model(arch, num_classes)`` builds a fixed network (one kernel and
expansion per block).  ``build_supernet(space, num_classes)`` builds the
search space: every block a :class:`~ednas.nn.blocks.SearchableIR` whose
depthwise is a meta-kernel (or, for the baselines, ``kind="darts"`` /
``kind="fbnet"`` multi-path blocks on the identical space), each a
:class:`~ednas.nn.searchable.SearchableBlock`, the interface the search reads
(``searchable_blocks()``, ``named_dw_kernels()``).  The supernet
keeps architecture logits apart from weights (``arch_parameters()``,
``weight_parameters()``) and ``derive()`` returns the spec of the argmax
network, which ``build_model`` reads.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ednas.arch.spec import ArchSpec, Layer, load_arch
from ednas.errors import ArchError, ConfigError
from ednas.nn.blocks import InvertedResidual, SearchableIR
from ednas.nn.choice import Choice
from ednas.nn.layers import Projection
from ednas.nn.multipath import FBNetBlock
from ednas.nn.searchable import (
    SearchableBlock,
    named_arch_parameters,
    named_dw_kernels,
    named_searchable_blocks,
)
from ednas.nn.stem import Head, build_stem

__all__ = ["SUPERNET_KINDS", "Net", "Supernet", "build_model", "build_supernet", "inherit_weights"]

SUPERNET_KINDS = ("metakernel", "darts", "fbnet")


def _as_spec(arch) -> ArchSpec:
    if isinstance(arch, ArchSpec):
        return arch
    return load_arch(arch)[0]


class Net(nn.Module):
    """A fixed network: stem (depth-aware or a plain conv), inverted residual blocks (or projections), head."""

    def __init__(self, arch: ArchSpec, num_classes: int, in_channels: int = 3):
        super().__init__()
        if not arch.is_fixed:
            raise ArchError(
                f"arch '{arch.format()}' has searchable choices; build a fixed network from "
                "one kernel and one expansion per block (e.g. the search's arch.yaml, or arch.largest())"
            )
        self.arch, self.num_classes = arch, num_classes
        self.stem = build_stem(arch.stem, in_channels)
        self.blocks = nn.Sequential(
            *(
                Projection(l.cin, l.spec.out, l.stride) if l.spec.op == "proj"
                else InvertedResidual(l.cin, l.spec.out, l.spec.kernels[0], l.spec.expansions[0], l.stride, l.spec.branches)
                for l in arch.layers()
            )
        )
        self.head = Head(arch.last_width, arch.head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class Supernet(nn.Module):
    """The search space as one network with architecture logits per layer.

    Args:
        space: the spec with choices (``k3.5.7``, ``e3.6``, ``skip``).
        num_classes: classifier outputs.
        kind: ``metakernel`` (default, one conv per layer), ``darts``
            (depthwise candidates duplicated) or ``fbnet`` (whole blocks
            duplicated).
    """

    def __init__(self, space: ArchSpec, num_classes: int, kind: str = "metakernel", in_channels: int = 3):
        super().__init__()
        if kind not in SUPERNET_KINDS:
            raise ConfigError(f"unknown supernet kind '{kind}'; expected one of {', '.join(SUPERNET_KINDS)}")
        self.space, self.num_classes, self.kind = space, num_classes, kind
        self.layers: list[Layer] = list(space.layers())
        proj = next((l for l in self.layers if l.spec.op == "proj"), None)
        if proj is not None:
            raise ArchError(f"arch stage {proj.stage} block {proj.block} ('{proj.spec.format()}'): a supernet has no fixed 'proj' blocks; "
                            "write the block as 'ir_..._skip' (its skip is the projection)")
        self.stem = build_stem(space.stem, in_channels)
        self.blocks = nn.Sequential(
            *(FBNetBlock(l) if kind == "fbnet" else SearchableIR(l, dw=kind) for l in self.layers)
        )
        self._link()
        self.head = Head(space.last_width, space.head, num_classes)

    def _link(self) -> None:
        """Point every block at its stage's width and depth choices and at the width choice its input comes from."""
        prev_width = width = depth = None
        for blk in self.blocks:
            if blk.layer.repeat == 0:
                prev_width = width
                width, depth = blk.width_choice, blk.depth_choice
            blk.link(width, width if blk.layer.tied else prev_width, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        acc = w = None
        for blk in self.blocks:
            x = blk(x)
            depth = blk.linked("depth") if isinstance(blk, SearchableBlock) else None  # a block fused in place is its argmax
            if depth is None:
                continue
            # a stage of searched depth: its output is the mixture of its exits after d repeats, d in its depths
            j = blk.layer.repeat
            if j == 0:
                acc, w = None, depth.weights()
            if j + 1 in blk.depths:
                t = w[blk.depths.index(j + 1)] * x
                acc = t if acc is None else acc + t
            if j + 1 == blk.depths[-1]:
                x = acc
        return self.head(x)

    # -- the searchable blocks (the interface of ednas.nn.searchable) ------
    def searchable_blocks(self) -> list[SearchableBlock]:
        """One :class:`~ednas.nn.searchable.SearchableBlock` per layer of the space, in order."""
        return [blk for _, blk in named_searchable_blocks(self)]

    def named_searchable_blocks(self) -> Iterator[tuple[str, SearchableBlock]]:
        """``(module name, block)`` per layer."""
        return named_searchable_blocks(self)

    def named_dw_kernels(self) -> Iterator[tuple[str, nn.Parameter]]:
        """``(state-dict name, parameter)`` of every block's depthwise kernels (what ``--merge kernels`` merges)."""
        return named_dw_kernels(self)

    def named_arch_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """``(state-dict name, alpha)`` of every architecture choice."""
        return named_arch_parameters(self)

    # -- parameters ------------------------------------------------------
    def named_choices(self) -> Iterator[tuple[str, Choice]]:
        """Every architecture choice, named ``L<layer>.<kind>``."""
        for layer, blk in zip(self.layers, self.searchable_blocks()):
            for kind, c in blk.named_choices():
                yield f"L{layer.index}.{kind}", c

    def choices(self) -> list[Choice]:
        return [c for _, c in self.named_choices()]

    def arch_parameters(self) -> list[nn.Parameter]:
        """One alpha vector per architecture choice of a layer."""
        return [c.alpha for c in self.choices()]

    def weight_parameters(self) -> list[nn.Parameter]:
        ids = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    def named_weight_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        ids = {id(p) for p in self.arch_parameters()}
        return ((n, p) for n, p in self.named_parameters() if id(p) not in ids)

    # -- derive ----------------------------------------------------------
    def picks(self) -> list[dict]:
        """The argmax candidate of every layer: ``{kernel, expansion, skip, width}``."""
        return [blk.picked() for blk in self.searchable_blocks()]

    def derive(self, branches: bool | None = None) -> ArchSpec:
        """The fixed spec of ``argmax alpha`` per layer (skipped layers dropped)."""
        return self.space.with_picks(self.picks(), branches=branches)


def build_model(arch, num_classes: int, in_channels: int = 3) -> Net:
    """A fixed network from an :class:`ArchSpec`, an arch string, a preset or an arch file."""
    return Net(_as_spec(arch), num_classes, in_channels)


def build_supernet(space, num_classes: int, kind: str = "metakernel", in_channels: int = 3) -> Supernet:
    """The supernet of a search space (spec, string, preset or file)."""
    return Supernet(_as_spec(space), num_classes, kind, in_channels)


@torch.no_grad()
def inherit_weights(model: Net, supernet: Supernet, picks: list[dict] | None = None) -> Net:
    """Start a derived network from the supernet's weights.

    Stem and head are copied; each kept block takes the centred crop of its
    meta-kernel and the channels of its expansion (see
    :meth:`~ednas.nn.searchable.SearchableBlock.to_fixed`).  When the model
    trains with extra depthwise branches (``_acb``), which the supernet does
    not have, they start adding exactly nothing
    (:meth:`~ednas.nn.repconv.RepDWConvBN.zero_extra_branches`): the
    inherited network computes what the pinned supernet computed, with or
    without branches.  A projection skip's block takes the supernet's
    projection (:meth:`~ednas.nn.searchable.SearchableBlock.proj_fixed`).
    ``picks`` defaults to the argmax picks (the ones ``derive()`` used).
    Returns ``model``, changed in place.
    """
    picks = picks if picks is not None else supernet.picks()
    model.stem.load_state_dict(supernet.stem.state_dict())
    # every layer's input width: the previous layer's picked width (a dropped repeat passes its input through)
    cins, cin = [], supernet.space.stem.out
    for l, p in zip(supernet.layers, picks):
        cins.append(cin)
        cin = int(p.get("width", l.spec.out))
    _copy_head(model.head, supernet.head, cin)
    kept = [(blk, p, ci) for blk, p, ci in zip(supernet.searchable_blocks(), picks, cins) if not p["skip"] or blk.layer.skip_proj]
    if len(kept) != len(model.blocks):
        raise ArchError(f"inherit: the model has {len(model.blocks)} blocks, the picks keep {len(kept)}")
    for dst, (src, p, ci) in zip(model.blocks, kept):
        co = int(p.get("width", src.cout))
        if p["skip"]:  # a projection skip
            if not isinstance(dst, Projection) or (dst.cin, dst.cout, dst.stride) != (ci, co, src.stride):
                raise ArchError(f"inherit: block {type(dst).__name__} does not match the projection c{ci}->{co} s{src.stride} of pick {p}")
            dst.load_state_dict(src.proj_fixed(ci, co).state_dict())
            continue
        if isinstance(dst, Projection):
            raise ArchError(f"inherit: a projection block where pick {p} keeps the inverted residual block")
        if (dst.kernel, dst.expansion, dst.cin, dst.cout) != (p["kernel"], p["expansion"], ci, co):
            raise ArchError(f"inherit: block k{dst.kernel} e{dst.expansion} c{dst.cin}->{dst.cout} does not match pick {p} from c{ci}")
        branches = len(dst.dw.convs) > 1
        widths = {} if (ci, co) == (src.cin, src.cout) else {"cin": ci, "cout": co}  # a block class without searched widths needs no more
        fixed = src.to_fixed(p["kernel"], p["expansion"], branches=branches, **widths)
        dst.load_state_dict(fixed.state_dict())
        if branches:  # the supernet has no such branches: they start adding nothing, so the function is kept
            dst.dw.zero_extra_branches()
    return model


def _copy_head(dst: Head, src: Head, cin: int) -> None:
    """The supernet's head on the first ``cin`` channels of its (widest) input."""
    state = dict(src.state_dict())
    first = "conv.conv.weight" if src.conv is not None else "fc.weight"
    state[first] = state[first][:, :cin]
    dst.load_state_dict(state)
