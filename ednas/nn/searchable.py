"""The supernet-module interface: what the search, the latency model and derive read from a block.

Every searchable block of a supernet derives from :class:`SearchableBlock`
(after nni's ``BaseSuperNetModule``).  The base owns the choice logic once: it
makes the ``kernel`` / ``expansion`` / ``skip`` :class:`~ednas.nn.choice.Choice`
of a :class:`~ednas.arch.spec.Layer` (a kind with a single candidate gets no
choice) and answers, per kind,

* :meth:`~SearchableBlock.named_choices` and :meth:`~SearchableBlock.candidates`
  (the block's search space, like nni's ``search_space_spec()``);
* :meth:`~SearchableBlock.picked` (the argmax, like ``export()``) and
  :meth:`~SearchableBlock.probs` (like ``export_probs()``);
* :meth:`~SearchableBlock.mix_weights`: the weights g with which the block
  mixes its candidates now, which E[LAT] (eq. 11) weighs the table with;
* :meth:`~SearchableBlock.fuse`: the argmax block, for :func:`ednas.fuse`.

A concrete block keeps only what differs between block kinds: its
``forward``, :meth:`~SearchableBlock.to_fixed` (the fixed block carrying its
weights for one kernel and expansion) and :meth:`~SearchableBlock.dw_kernels`
(the depthwise kernels that the feedback block merges under ``--merge
kernels``, eq. 3: the meta-kernel, or one weight per candidate or per path).
The search finds the tensors by identity (:func:`named_dw_kernels`), so it
builds no state-dict key strings and checks no concrete block class.

Tied pairs (``ir_k3.5_e3.6_tied``: candidates k3 e3 and k5 e6, not the
product) have ONE choice, the ``kernel`` choice (kernels are distinct in a
tied list), whose weights also drive the expansion: ``mix_weights()``'s
``expansion`` is the kernel weights summed onto each kernel's expansion
(the same vector when the expansions are distinct), the argmax's expansion
is its kernel's, and :meth:`SearchableBlock.joint_weights` (what E[LAT]
and the multi-path block weigh the (kernel, expansion) candidates with) is
``g_k[i]`` on the i-th pair and 0 elsewhere, not the product ``g_k g_e``.
A target's kernel mask (``choice("kernel").set_allowed``) masks the pairs.

A projection skip (``skip`` on a single block that changes the stride or the
width, FBNet's skip) holds a :class:`~ednas.nn.layers.Projection` (1x1 conv
+ BN of the block's stride, widest widths) in ``proj``; the block's output
is then ``g_block * block(x) + g_skip * proj(x)`` (:meth:`SearchableBlock.mix_projection`,
both masked to the chosen width), its argmax skip is the projection
(:meth:`SearchableBlock.proj_fixed`), and E[LAT] prices the skip candidate
at the projection's table entry.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator

import torch
from torch import nn

from ednas.arch.spec import Layer
from ednas.nn.choice import Choice
from ednas.nn.layers import Projection

__all__ = [
    "CHOICE_KINDS",
    "SearchableBlock",
    "named_arch_parameters",
    "named_dw_kernels",
    "named_searchable_blocks",
]

CHOICE_KINDS = ("kernel", "expansion", "skip", "width", "depth")
_SKIP = ("block", "skip")


class SearchableBlock(nn.Module, metaclass=abc.ABCMeta):
    """Base of every supernet block: its choices and what the search reads of it.

    A subclass calls ``super().__init__(layer)``, builds its own modules, then
    calls :meth:`_add_choices`.  The choices come last so that, under a fixed
    seed, the weights are drawn before the alphas, as they always were: the
    same seed gives the same supernet.

    Args:
        layer: the block's place in the spec (input width, stride, candidates).

    Attributes:
        kernel_choice, expansion_choice, skip_choice: the :class:`Choice` of
            each kind, or ``None`` where the space has a single candidate
            (``skip``: where the block cannot be an identity).
        width_choice, depth_choice: the stage's output-width and depth
            choices, owned (registered, named) by its first repeat only; the
            other repeats read them through :meth:`link` (``None`` where the
            stage's width or depth is fixed).

    Searched widths and depths couple blocks: a block's input width is the
    previous stage's width choice (or, for a stage's later repeats, its own
    stage's), and a repeat ``j`` of a stage with searched depths is kept with
    probability ``P(d > j)``.  :meth:`mix_weights` gives both: ``width_in``
    and ``width`` (the input and output width weights) and ``skip`` =
    ``[P(kept), P(dropped)]``, so E[LAT] is exact (eq. 11).
    """

    def __init__(self, layer: Layer):
        super().__init__()
        b = layer.spec
        self.layer = layer
        self.cin, self.cout, self.stride = layer.cin, b.out, layer.stride
        self.kernels, self.expansions = tuple(b.kernels), tuple(b.expansions)
        self.residual = layer.residual
        self.proj: Projection | None = None
        self.kernel_choice: Choice | None = None
        self.expansion_choice: Choice | None = None
        self.skip_choice: Choice | None = None
        self.width_choice: Choice | None = None
        self.depth_choice: Choice | None = None
        self.widths, self.in_widths = tuple(layer.widths), tuple(layer.in_width_options)
        self.depths = tuple(b.depths)
        # tied (kernel, expansion) pairs: the kernel choice picks the pair; (n_kernels, n_expansions) 0/1 incidence
        self.tied_pairs = tuple(b.pairs)
        if self.tied_pairs:
            inc = torch.zeros(len(self.kernels), len(self.expansions))
            for k, e in self.tied_pairs:
                inc[self.kernels.index(k), self.expansions.index(e)] = 1.0
            self.register_buffer("pair_incidence", inc, persistent=False)
        # choices of other blocks this one reads (not registered here: their owner holds them)
        self._links: dict[str, Choice | None] = {"width": None, "width_in": None, "depth": None}

    def _add_choices(self) -> None:
        """Create the choices of the layer (call once, after the block's own modules), and a projection skip's projection first."""
        if self.layer.skip_proj:
            self.proj = Projection(self.cin, self.cout, self.stride)
            if len(self.widths) > 1:
                m = torch.zeros(len(self.widths), max(self.widths))
                for i, w in enumerate(self.widths):
                    m[i, :w] = 1.0
                self.register_buffer("proj_omasks", m, persistent=False)
        if len(self.kernels) > 1:
            self.kernel_choice = Choice("kernel", self.kernels)
        if len(self.expansions) > 1 and not self.tied_pairs:  # tied: the kernel choice picks the expansion too
            self.expansion_choice = Choice("expansion", self.expansions)
        if self.layer.can_skip and not self.depths:
            self.skip_choice = Choice("skip", _SKIP)
        if self.layer.repeat == 0 and len(self.widths) > 1:
            self.width_choice = Choice("width", self.widths)
        if self.layer.repeat == 0 and self.depths:
            self.depth_choice = Choice("depth", self.depths)

    def link(self, width: Choice | None, width_in: Choice | None, depth: Choice | None) -> None:
        """Point this block at its stage's width and depth choices and at the choice its input width comes from."""
        self._links = {"width": width, "width_in": width_in, "depth": depth}

    def linked(self, kind: str) -> Choice | None:
        """The choice (own or another block's) behind ``width``, ``width_in`` or ``depth``."""
        return self._links[kind]

    def keep_weight(self, depth_w: torch.Tensor) -> torch.Tensor:
        """``P(d > j)`` for this repeat j, from the stage's depth weights."""
        keep = [i for i, d in enumerate(self.depths) if d > self.layer.repeat]
        return depth_w[keep].sum() if keep else depth_w.sum() * 0

    # -- what differs between block kinds ------------------------------------------
    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block mixing its candidates with :meth:`mix_weights`."""

    @abc.abstractmethod
    def dw_kernels(self) -> list[nn.Parameter]:
        """The depthwise kernels the feedback block merges (``--merge kernels``), each a parameter of this block."""

    @abc.abstractmethod
    def to_fixed(self, kernel: int, expansion: int, branches: bool = False, cin: int | None = None, cout: int | None = None) -> nn.Module:
        """A fixed block (an :class:`~ednas.nn.blocks.InvertedResidual`) carrying this block's weights for (kernel, expansion)
        at input width ``cin`` and output width ``cout`` (default: the largest)."""

    # -- the interface ---------------------------------------------------------------
    def choice(self, kind: str) -> Choice | None:
        """The choice of ``kind`` (one of :data:`CHOICE_KINDS`), ``None`` if the kind has one candidate."""
        if kind not in CHOICE_KINDS:
            raise KeyError(f"unknown choice kind '{kind}'; expected one of {', '.join(CHOICE_KINDS)}")
        return getattr(self, f"{kind}_choice")

    def named_choices(self) -> Iterator[tuple[str, Choice]]:
        """``(kind, choice)`` of every choice the block has, in the order kernel, expansion, skip."""
        for kind in CHOICE_KINDS:
            c = self.choice(kind)
            if c is not None:
                yield kind, c

    def choices(self) -> list[Choice]:
        return [c for _, c in self.named_choices()]

    def candidates(self) -> dict[str, tuple]:
        """Per kind, the candidates of the block (one candidate where it has no choice; skip: ``block``/``skip``).

        ``skip`` has two candidates wherever the block can be dropped (its own
        choice or a searched depth); ``width`` and ``width_in`` (the output and
        input width candidates) and ``depth`` (the stage's depths) appear only
        where they are searched.
        A tied block's ``expansion`` is its pairs' distinct expansions (chosen
        through the kernel choice).
        """
        single = {"kernel": self.kernels[:1], "expansion": self.expansions if self.tied_pairs else self.expansions[:1], "skip": _SKIP[:1]}
        out = {}
        for kind in ("kernel", "expansion", "skip"):
            c = self.choice(kind)
            out[kind] = tuple(c.candidates) if c is not None else single[kind]
        if self.depths and self.layer.can_skip:
            out["skip"] = _SKIP
        # only where searched: a fixed-width, fixed-depth block answers {kernel, expansion, skip} as it always did
        for kind, cands in (("width", self.widths), ("width_in", self.in_widths), ("depth", self.depths)):
            if len(cands) > 1:
                out[kind] = cands
        return out

    def picked(self) -> dict:
        """The argmax candidate of each kind: ``{kernel, expansion, skip}``, and ``width`` where searched (the derived block).

        A repeat of a stage with searched depths is skipped when its index is
        at least the stage's argmax depth; ``width`` is the stage's argmax width.
        """
        cands = self.candidates()
        p = {}
        for kind in ("kernel", "expansion", "skip"):
            c = self.choice(kind)
            p[kind] = cands[kind][c.argmax() if c is not None else 0]
        if self.tied_pairs:  # the expansion paired with the argmax kernel
            p["expansion"] = dict(self.tied_pairs)[p["kernel"]]
        p["skip"] = p["skip"] == "skip"
        depth = self.linked("depth")
        if depth is not None:
            p["skip"] = self.layer.repeat >= self.depths[depth.argmax()]
        w = self.linked("width")
        if w is not None:  # only where the width is searched: picks of fixed-width spaces stay {kernel, expansion, skip}
            p["width"] = self.widths[w.argmax()]
        return p

    def picked_in_width(self) -> int:
        """The argmax of the block's input width."""
        c = self.linked("width_in")
        return self.in_widths[c.argmax()] if c is not None else self.in_widths[0]

    def probs(self) -> dict[str, dict]:
        """Per choice, ``{candidate: probability}`` (softmax of the masked alpha)."""
        return {kind: {k: float(v) for k, v in zip(c.candidates, c.probs())} for kind, c in self.named_choices()}

    def mix_weights(self, like: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per kind, the weights g of its candidates now (``Choice.weights()``, differentiable in alpha).

        A kind without a choice has its one candidate at weight 1 (skip:
        ``[1, 0]``, the block kept), on the device and in the dtype of ``like``
        (default: float32 on the CPU).  A tied block's ``expansion`` is its
        kernel weights summed onto the paired expansions.
        """
        like = like if like is not None else torch.empty(0)
        out = {}
        for kind in ("kernel", "expansion", "skip"):
            c = self.choice(kind)
            if c is not None:
                out[kind] = c.weights()
            else:
                out[kind] = like.new_tensor([1.0, 0.0]) if kind == "skip" else like.new_ones(1)
        if self.tied_pairs:
            out["expansion"] = out["kernel"] @ self.pair_incidence.to(out["kernel"])
        depth = self.linked("depth")
        if depth is not None:
            keep = self.keep_weight(depth.weights())
            out["skip"] = torch.stack([keep, 1 - keep])
        for kind in ("width", "width_in"):
            c = self.linked(kind)
            out[kind] = c.weights() if c is not None else like.new_ones(1)
        return out

    def joint_weights(self, g: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(n_kernels, n_expansions)`` weights of the (kernel, expansion) candidates from :meth:`mix_weights`' ``g``.

        The product ``g_k g_e`` of two independent choices, or for tied pairs
        ``g_k[i]`` at the i-th pair and 0 elsewhere (one choice).
        """
        if self.tied_pairs:
            return g["kernel"][:, None] * self.pair_incidence.to(g["kernel"])
        return torch.outer(g["kernel"], g["expansion"])

    def mix_projection(self, x: torch.Tensor, y: torch.Tensor, g: dict[str, torch.Tensor]) -> torch.Tensor:
        """A projection skip's output: ``g_block * y + g_skip * proj(x)``, the projection masked to the chosen width as ``y`` is."""
        p = self.proj(x)
        if len(self.widths) > 1:
            p = p * (g["width"] @ self.proj_omasks).view(1, -1, 1, 1)
        return g["skip"][0] * y + g["skip"][1] * p

    @torch.no_grad()
    def proj_fixed(self, cin: int | None = None, cout: int | None = None) -> Projection:
        """The projection a projection skip leaves, with this block's weights at widths ``cin`` -> ``cout`` (default: the largest)."""
        cin = self.cin if cin is None else int(cin)
        cout = self.cout if cout is None else int(cout)
        out = Projection(cin, cout, self.stride)
        src = self.proj
        out.conv.weight.copy_(src.conv.weight[:cout, :cin])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(out.bn, name).copy_(getattr(src.bn, name)[:cout])
        out.bn.num_batches_tracked.copy_(src.bn.num_batches_tracked)
        return out

    def named_dw_kernels(self) -> list[tuple[str, nn.Parameter]]:
        """:meth:`dw_kernels` with their names relative to this block (as in its ``state_dict``)."""
        ids = {id(p) for p in self.dw_kernels()}
        named = [(n, p) for n, p in self.named_parameters() if id(p) in ids]
        if len(named) != len(ids):
            raise TypeError(f"{type(self).__name__}.dw_kernels() returned a tensor that is not one of its parameters")
        return named

    def fuse(self) -> nn.Module:
        """The argmax block (identity if skipped, the projection if a projection skip), for :func:`ednas.fuse`."""
        p = self.picked()
        if p["skip"] and self.proj is not None:
            return self.proj_fixed(self.picked_in_width(), p.get("width", self.cout)).eval()
        if p["skip"]:
            return nn.Identity()
        ci, co = self.picked_in_width(), p.get("width", self.cout)
        widths = {} if (ci, co) == (self.cin, self.cout) else {"cin": ci, "cout": co}  # a block class without searched widths needs no more
        return self.to_fixed(p["kernel"], p["expansion"], **widths).eval()


# -- the same, over a whole network ------------------------------------------------------
def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def named_searchable_blocks(model: nn.Module) -> Iterator[tuple[str, SearchableBlock]]:
    """``(name, block)`` of every :class:`SearchableBlock` in ``model``, in module order."""
    for name, m in model.named_modules():
        if isinstance(m, SearchableBlock):
            yield name, m


def named_dw_kernels(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """``(state-dict name, parameter)`` of every searchable block's :meth:`~SearchableBlock.dw_kernels`."""
    for bname, blk in named_searchable_blocks(model):
        for n, p in blk.named_dw_kernels():
            yield _join(bname, n), p


def named_arch_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """``(state-dict name, alpha)`` of every :class:`Choice` in ``model``, in parameter order."""
    ids = {id(m.alpha) for m in model.modules() if isinstance(m, Choice)}
    return ((n, p) for n, p in model.named_parameters() if id(p) in ids)
