"""Architecture spec: the grammar the search writes and the builder reads.

An architecture (or a search space) is one line of text, stages separated by
``|`` and the blocks of a stage by spaces::

    stem_k11_m1_c16_s1 | ir_k3.5.7_e1_c16 | ir_k3.5.7_e6_c24_s2_r2 | head_c256

Block strings are an op name followed by ``_``-separated options, each a
letter (or word) and a value:

``stem_k<K>_m<M>_c<C>_s<S>``
    The depth-aware stem: a depthwise K x K convolution on the image (K odd,
    11..17), channel multiplier M (3*M channels), stride S, BN, ReLU, then a
    pointwise convolution to C channels, BN, ReLU.  Must be the first stage.
``conv_k<K>_c<C>_s<S>``
    A plain convolution stem (the MobileNet / FBNet / ProxylessNAS first
    layer): a dense K x K convolution on the image (K odd, 1..7, default 3)
    to C channels with stride S (default 2), BN, ReLU.  In place of
    ``stem_...``, the first stage.
``ir_k<K>[.<K>...]_e<E>[.<E>...]_c<C>[.<C>...][_s<S>][_r<R>][_d<D>.<D>...][_tied][_skip][_acb]``
    A MobileNetV2 inverted residual block: 1x1 expand to E times the input
    width (none when E = 1), depthwise K x K with stride S (default 1), 1x1
    project to C, BN after each conv, ReLU after the first two, residual when
    stride is 1 and widths match.  ``r`` repeats the block R times (stride only
    on the first).  Several values (``k3.5.7``, ``e3.6``) make the block
    searchable among them; ``c16.24.32`` searches the stage's output width
    (one choice for all its repeats; the supernet masks channels of the
    widest), ``d1.2.3`` its depth (keep the first d of its R repeats, Once-for-All's
    elastic depth; R defaults to the largest d); ``skip`` lets the search drop
    the block where it can be an identity (stride 1, same width), and on a
    single block (R = 1) that changes the stride or the width lets it replace
    the block by a projection (``proj``, FBNet's skip); ``tied``
    pairs the i-th kernel with the i-th expansion (``ir_k3.5_e3.6_tied``:
    the candidates are k3 e3 and k5 e6, FBNet's and Single Path One-Shot's
    operator lists, not the product; kernels distinct, as many expansions
    as kernels); ``acb`` trains the depthwise conv with ACNet-style parallel
    branches that fuse away for deployment.
``proj_c<C>[_s<S>]``
    A projection: a 1x1 convolution to C channels with stride S (default 1)
    and BN, no ReLU, no residual: what a projection ``skip`` leaves in a
    derived network (written by the search, e.g. ``proj_c24_s2``).  Fixed
    networks only: in a search space write the block as ``ir_..._skip``.
``head_c<C>[_d<P>]``
    1x1 conv to C channels (none when C = 0), BN, ReLU, global average pool,
    dropout P percent, linear classifier.  Must be the last stage.

A *fixed* architecture has one kernel and one expansion per block and no
``skip``; a *space* has choices.  ``format()`` writes the canonical text, and
``parse(format(a)) == a`` for every valid spec.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ednas.errors import ArchError, EdnasError

__all__ = [
    "StemSpec",
    "ConvStemSpec",
    "load_space",
    "BlockSpec",
    "HeadSpec",
    "ArchSpec",
    "Layer",
    "parse_arch",
    "format_arch",
    "load_arch",
    "PRESETS",
    "preset",
    "KERNEL_CHOICES",
    "STEM_KERNELS",
    "CONV_STEM_KERNELS",
]

KERNEL_CHOICES = (1, 3, 5, 7, 9)
STEM_KERNELS = (11, 13, 15, 17)
CONV_STEM_KERNELS = (1, 3, 5, 7)
MAX_EXPANSION = 8


@dataclass(frozen=True)
class StemSpec:
    """Depth-aware stem: depthwise ``kernel`` x ``kernel`` on the image."""

    kernel: int = 11
    mult: int = 1
    out: int = 16
    stride: int = 2

    def format(self) -> str:
        return f"stem_k{self.kernel}_m{self.mult}_c{self.out}_s{self.stride}"


@dataclass(frozen=True)
class ConvStemSpec:
    """Plain convolution stem: a dense ``kernel`` x ``kernel`` conv on the image to ``out`` channels, BN, ReLU."""

    kernel: int = 3
    out: int = 32
    stride: int = 2

    def format(self) -> str:
        return f"conv_k{self.kernel}_c{self.out}_s{self.stride}"


@dataclass(frozen=True)
class BlockSpec:
    """An inverted residual block (or a stage of ``repeats`` of them)."""

    kernels: tuple[int, ...]
    expansions: tuple[int, ...]
    out: int
    stride: int = 1
    repeats: int = 1
    skip: bool = False
    branches: bool = False
    #: searched output widths of the stage (``c16.24.32``; ``out`` is the largest); empty when the width is fixed
    widths: tuple[int, ...] = ()
    #: searched depths of the stage (``d1.2.3``: keep its first d repeats; ``repeats`` is the largest); empty when fixed
    depths: tuple[int, ...] = ()
    #: ``_tied``: the (kernel, expansion) candidates, sorted by kernel (``kernels`` and ``expansions`` are their sorted
    #: distinct values); empty when the candidates are the product of ``kernels`` and ``expansions``
    pairs: tuple[tuple[int, int], ...] = ()
    #: ``ir`` (an inverted residual block) or ``proj`` (a projection: 1x1 conv + BN of ``stride`` to ``out``; then
    #: ``kernels`` and ``expansions`` are ``(1,)``)
    op: str = "ir"

    @property
    def pair_options(self) -> tuple[tuple[int, int], ...]:
        """The (kernel, expansion) candidates: the tied pairs, or every kernel with every expansion."""
        return self.pairs or tuple((k, e) for k in self.kernels for e in self.expansions)

    @property
    def width_options(self) -> tuple[int, ...]:
        """The stage's output widths to choose from (one when fixed)."""
        return self.widths or (self.out,)

    def format(self) -> str:
        if self.op == "proj":
            return f"proj_c{self.out}" + (f"_s{self.stride}" if self.stride != 1 else "")
        es = tuple(e for _, e in self.pairs) if self.pairs else self.expansions
        s = "ir_k" + ".".join(map(str, self.kernels)) + "_e" + ".".join(map(str, es))
        s += "_c" + ".".join(map(str, self.width_options))
        if self.stride != 1:
            s += f"_s{self.stride}"
        if self.repeats != 1:
            s += f"_r{self.repeats}"
        if self.depths:
            s += "_d" + ".".join(map(str, self.depths))
        if self.pairs:
            s += "_tied"
        if self.skip:
            s += "_skip"
        if self.branches:
            s += "_acb"
        return s

    @property
    def searchable(self) -> bool:
        return len(self.kernels) > 1 or len(self.expansions) > 1 or self.skip or len(self.widths) > 1 or len(self.depths) > 1


@dataclass(frozen=True)
class HeadSpec:
    """1x1 head conv (``out`` = 0: none), pool, dropout, classifier."""

    out: int = 1280
    dropout: float = 0.0

    def format(self) -> str:
        s = f"head_c{self.out}"
        if self.dropout:
            s += f"_d{round(self.dropout * 100)}"
        return s


@dataclass(frozen=True)
class Layer:
    """One block of an expanded spec, with its position and input width.

    ``index`` counts the blocks of the whole network from 0; ``stage`` and
    ``block`` point back into the spec for messages; ``can_skip`` says whether
    the search may turn this block into an identity (its own ``skip`` flag, or
    a repeat beyond the stage's smallest searched depth) or, where
    ``skip_proj``, into a projection (a ``skip`` on a single block that
    changes the stride or the width: 1x1 conv + BN of its stride).

    With searched widths ``cin`` and ``spec.out`` are the largest candidates;
    ``in_widths`` and ``widths`` are the candidates of the block's input and
    output, and ``tied`` says that its input width is the same choice as its
    output width (every repeat after the first of a width-searched stage).
    ``group`` is the index of the :class:`BlockSpec` (the stage's block) the
    layer is a repeat of, counted over the whole network.
    """

    index: int
    stage: int
    block: int
    repeat: int
    cin: int
    spec: BlockSpec
    stride: int
    can_skip: bool
    in_widths: tuple[int, ...] = ()
    tied: bool = False
    group: int = 0
    skip_proj: bool = False

    @property
    def widths(self) -> tuple[int, ...]:
        return self.spec.width_options

    @property
    def in_width_options(self) -> tuple[int, ...]:
        return self.in_widths or (self.cin,)

    @property
    def residual(self) -> bool:
        """Whether the block adds its input (the same at every width pair the space allows: the parser refuses an ambiguous one)."""
        return self.spec.op == "ir" and self.stride == 1 and (self.tied or self.cin == self.spec.out)


@dataclass(frozen=True)
class ArchSpec:
    """A whole network or search space: stem, stages of blocks, head."""

    stem: StemSpec | ConvStemSpec
    stages: tuple[tuple[BlockSpec, ...], ...]
    head: HeadSpec = field(default_factory=HeadSpec)

    # -- text form -----------------------------------------------------
    def format(self) -> str:
        parts = [self.stem.format()]
        parts += [" ".join(b.format() for b in stage) for stage in self.stages]
        parts.append(self.head.format())
        return " | ".join(parts)

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.format()

    # -- structure -------------------------------------------------------
    def layers(self) -> Iterator[Layer]:
        """Every block with repeats expanded, in network order."""
        cin, cins = self.stem.out, (self.stem.out,)
        index = group = 0
        for si, stage in enumerate(self.stages):
            for bi, b in enumerate(stage):
                for r in range(b.repeats):
                    stride = b.stride if r == 0 else 1
                    identity = stride == 1 and cin == b.out
                    # a skip on a single block that cannot be an identity: a projection (a block of several repeats
                    # keeps the skip for the repeats that can be identities)
                    proj = b.skip and b.repeats == 1 and not identity
                    can_skip = (b.skip and identity) or proj or (bool(b.depths) and r >= min(b.depths))
                    yield Layer(index, si + 1, bi, r, cin, b, stride, can_skip, cins, r > 0 and len(b.widths) > 1, group, proj)
                    cin, cins = b.out, b.width_options
                    index += 1
                group += 1

    @property
    def last_width(self) -> int:
        return self.stages[-1][-1].out if self.stages else self.stem.out

    @property
    def is_fixed(self) -> bool:
        return not any(b.searchable for stage in self.stages for b in stage)

    def expanded(self) -> "ArchSpec":
        """The same spec with every repeat written out as its own block."""
        if any(b.depths or b.widths for stage in self.stages for b in stage):
            raise ArchError("arch: a space with searched depths or widths cannot be written block by block (its repeats share one choice)")
        stages: list[list[BlockSpec]] = [[] for _ in self.stages]
        for l in self.layers():
            stages[l.stage - 1].append(dataclasses.replace(l.spec, repeats=1, stride=l.stride, skip=l.can_skip))
        return dataclasses.replace(self, stages=tuple(tuple(s) for s in stages))

    def _pick(self, pick, depth=max) -> "ArchSpec":
        def ke(b: BlockSpec) -> tuple[int, int]:
            # tied pairs: the pair of the largest (smallest) expansion, then kernel
            return pick(b.pairs, key=lambda p: (p[1], p[0])) if b.pairs else (pick(b.kernels), pick(b.expansions))

        stages = tuple(
            tuple(
                dataclasses.replace(b, kernels=(ke(b)[0],), expansions=(ke(b)[1],), pairs=(), skip=False,
                                    out=pick(b.width_options), widths=(), repeats=depth(b.depths) if b.depths else b.repeats, depths=())
                for b in stage
            )
            for stage in self.stages
        )
        return dataclasses.replace(self, stages=stages)

    def largest(self) -> "ArchSpec":
        """The fixed network of the largest candidates (widest, deepest; no block skipped; of tied pairs the largest expansion's)."""
        return self._pick(max)

    def smallest_kernels(self) -> "ArchSpec":
        """The fixed network of the smallest kernels, expansions and widths at full depth (no block skipped)."""
        return self._pick(min)

    def smallest(self) -> "ArchSpec":
        """The fixed network of the smallest candidates and the smallest searched depths (``skip`` flags aside)."""
        return self._pick(min, min)

    def fixed(self) -> "ArchSpec":
        """This spec if it is fixed, else its largest network."""
        return self if self.is_fixed else self.largest()

    def with_picks(self, picks: list[dict], branches: bool | None = None) -> "ArchSpec":
        """The fixed network that takes ``picks[i]`` (kernel, expansion, skip, and ``width`` where searched) at layer i.

        Every layer becomes its own block (repeats written out); skipped layers
        are dropped (a projection skip becomes a ``proj`` block of the layer's
        stride and picked width), and a stage left empty disappears.
        ``branches`` sets the ACNet option of every block (``None`` keeps the
        spec's).  A pick without ``width`` takes the layer's largest.  A
        ``proj`` block of a fixed spec stays as it is.
        """
        layers = list(self.layers())
        if len(picks) != len(layers):
            raise ArchError(f"arch: {len(picks)} picks for {len(layers)} layers")
        stages: list[list[BlockSpec]] = [[] for _ in self.stages]
        for layer, pick in zip(layers, picks):
            b = layer.spec
            if b.op == "proj":
                stages[layer.stage - 1].append(b)
                continue
            if pick.get("skip"):
                if not layer.can_skip:
                    raise ArchError(f"arch stage {layer.stage} block {layer.block}: layer {layer.index} cannot be skipped")
                if layer.skip_proj:
                    w = int(pick.get("width", b.out))
                    if w not in b.width_options:
                        raise ArchError(f"arch stage {layer.stage} block {layer.block}: pick c{w} is not among c{b.width_options}")
                    stages[layer.stage - 1].append(BlockSpec(kernels=(1,), expansions=(1,), out=w, stride=layer.stride, op="proj"))
                continue
            k, e, w = int(pick["kernel"]), int(pick["expansion"]), int(pick.get("width", b.out))
            if (k, e) not in b.pair_options or w not in b.width_options:
                among = " ".join(f"k{pk}_e{pe}" for pk, pe in b.pairs) if b.pairs else f"k{b.kernels} e{b.expansions}"
                raise ArchError(f"arch stage {layer.stage} block {layer.block}: pick k{k} e{e} c{w} is not among {among} c{b.width_options}")
            stages[layer.stage - 1].append(
                BlockSpec(
                    kernels=(k,),
                    expansions=(e,),
                    out=w,
                    stride=layer.stride,
                    branches=b.branches if branches is None else branches,
                )
            )
        kept = tuple(tuple(s) for s in stages if s)
        if not kept:
            raise ArchError("arch: every block was skipped; a network needs at least one block")
        return dataclasses.replace(self, stages=kept)

    def to_dict(self) -> dict:
        return {"arch": self.format()}


# ---------------------------------------------------------------------------
# parsing

_OPT = re.compile(r"^([a-z]+?)([0-9][0-9.]*)?$")


def _err(where: str, text: str, msg: str) -> EdnasError:
    return ArchError(f"arch {where} ('{text}'): {msg}")


def _ints(where: str, text: str, key: str, value: str | None, repeats: bool = False) -> tuple[int, ...]:
    if value is None or value == "":
        raise _err(where, text, f"field '{key}' needs a value, e.g. '{key}3'")
    try:
        vals = tuple(int(v) for v in value.split("."))
    except ValueError as err:
        raise _err(where, text, f"field '{key}' = '{value}' is not an integer (or integers joined by '.')") from err
    if len(set(vals)) != len(vals) and not repeats:
        raise _err(where, text, f"field '{key}' = '{value}' repeats a value")
    return vals


def _options(where: str, text: str, allowed: dict[str, str]) -> tuple[str, dict[str, str | None]]:
    tokens = text.split("_")
    op, opts = tokens[0], {}
    for tok in tokens[1:]:
        m = _OPT.match(tok)
        if tok in allowed and allowed[tok] == "flag":
            key, value = tok, None
        elif m and m.group(1) in allowed and allowed[m.group(1)] != "flag":
            key, value = m.group(1), m.group(2)
        else:
            valid = ", ".join(f"{k}" + ("" if v == "flag" else "<n>") for k, v in allowed.items())
            raise _err(where, text, f"unknown field '{tok}'; valid fields of '{op}': {valid}")
        if key in opts:
            raise _err(where, text, f"field '{key}' given twice")
        opts[key] = value
    return op, opts


def _one(where, text, key, opts, default=None) -> int:
    if key not in opts:
        if default is None:
            raise _err(where, text, f"field '{key}' is missing")
        return default
    vals = _ints(where, text, key, opts[key])
    if len(vals) != 1:
        raise _err(where, text, f"field '{key}' takes one value, got {opts[key]}")
    return vals[0]


def _parse_stem(text: str) -> StemSpec | ConvStemSpec:
    where = "stage 0 block 0"
    op = text.split("_")[0]
    if op == "conv":
        return _parse_conv_stem(where, text)
    if op != "stem":
        raise _err(where, text, f"the first stage must be the stem ('stem_k11_m1_c16_s2' or 'conv_k3_c32_s2'), got op '{op}'")
    op, opts = _options(where, text, {"k": "int", "m": "int", "c": "int", "s": "int"})
    k = _one(where, text, "k", opts, 11)
    if k not in STEM_KERNELS:
        raise _err(where, text, f"field 'k' = {k}: the stem kernel must be odd in 11..17")
    m = _one(where, text, "m", opts, 1)
    if not 1 <= m <= 16:
        raise _err(where, text, f"field 'm' = {m}: the channel multiplier must be in 1..16")
    c = _one(where, text, "c", opts)
    if c < 1:
        raise _err(where, text, f"field 'c' = {c}: widths must be positive")
    s = _one(where, text, "s", opts, 2)
    if s not in (1, 2):
        raise _err(where, text, f"field 's' = {s}: stride must be 1 or 2")
    return StemSpec(kernel=k, mult=m, out=c, stride=s)


def _parse_conv_stem(where: str, text: str) -> ConvStemSpec:
    op, opts = _options(where, text, {"k": "int", "c": "int", "s": "int"})
    k = _one(where, text, "k", opts, 3)
    if k not in CONV_STEM_KERNELS:
        raise _err(where, text, f"field 'k' = {k}: the conv stem's kernel must be one of {', '.join(map(str, CONV_STEM_KERNELS))}")
    c = _one(where, text, "c", opts)
    if c < 1:
        raise _err(where, text, f"field 'c' = {c}: widths must be positive")
    s = _one(where, text, "s", opts, 2)
    if s not in (1, 2):
        raise _err(where, text, f"field 's' = {s}: stride must be 1 or 2")
    return ConvStemSpec(kernel=k, out=c, stride=s)


def _parse_proj(where: str, text: str) -> BlockSpec:
    op, opts = _options(where, text, {"c": "int", "s": "int"})
    c = _one(where, text, "c", opts)
    if c < 1:
        raise _err(where, text, f"field 'c' = {c}: widths must be positive")
    s = _one(where, text, "s", opts, 1)
    if s not in (1, 2):
        raise _err(where, text, f"field 's' = {s}: stride must be 1 or 2")
    return BlockSpec(kernels=(1,), expansions=(1,), out=c, stride=s, op="proj")


def _parse_block(where: str, text: str) -> BlockSpec:
    if text.split("_")[0] == "proj":
        return _parse_proj(where, text)
    if text.split("_")[0] != "ir":
        raise _err(where, text, f"unknown op '{text.split('_')[0]}'; blocks between stem and head must be 'ir_...' (or 'proj_...')")
    op, opts = _options(
        where, text, {"k": "int", "e": "int", "c": "int", "s": "int", "r": "int", "d": "int", "tied": "flag", "skip": "flag", "acb": "flag"}
    )
    tied = "tied" in opts
    if "k" not in opts:
        raise _err(where, text, "field 'k' is missing")
    kernels = _ints(where, text, "k", opts["k"], repeats=tied)
    if len(set(kernels)) != len(kernels):  # only with tied (else _ints refused it)
        raise _err(where, text, f"field 'k' = '{opts['k']}' repeats a value: tied kernels must be distinct (each kernel carries "
                                "one expansion; to search several expansions of one kernel, leave the block untied)")
    for k in kernels:
        if k not in KERNEL_CHOICES:
            raise _err(where, text, f"field 'k' = {k}: depthwise kernels must be one of {', '.join(map(str, KERNEL_CHOICES))}")
    # tied: the i-th expansion goes with the i-th kernel, so two kernels may share one
    expansions = _ints(where, text, "e", opts["e"], repeats=tied) if "e" in opts else (6,)
    for e in expansions:
        if not 1 <= e <= MAX_EXPANSION:
            raise _err(where, text, f"field 'e' = {e}: expansion must be in 1..{MAX_EXPANSION}")
    pairs: tuple[tuple[int, int], ...] = ()
    if tied:
        if len(kernels) != len(expansions):
            raise _err(where, text, f"field 'tied': pairs the i-th kernel with the i-th expansion, but 'k' has {len(kernels)} values "
                                    f"({opts['k']}) and 'e' has {len(expansions)} ({opts.get('e', '6')}); give as many of each")
        if len(kernels) < 2:
            raise _err(where, text, "field 'tied': needs two or more kernel/expansion pairs (one pair is a fixed block: drop '_tied')")
        pairs = tuple(sorted(zip(kernels, expansions)))
        expansions = tuple(set(expansions))
    if len(expansions) > 1 and 1 in expansions:
        # e1 has no expand conv at all, so it cannot be a channel mask of a wider one
        raise _err(where, text, f"field 'e' = {opts['e']}: 1 cannot be searched against other expansions")
    if "c" not in opts:
        raise _err(where, text, "field 'c' is missing")
    widths = tuple(sorted(_ints(where, text, "c", opts["c"])))
    if min(widths) < 1:
        raise _err(where, text, f"field 'c' = {opts['c']}: widths must be positive")
    s = _one(where, text, "s", opts, 1)
    if s not in (1, 2):
        raise _err(where, text, f"field 's' = {s}: stride must be 1 or 2")
    depths = tuple(sorted(_ints(where, text, "d", opts["d"]))) if "d" in opts else ()
    r = _one(where, text, "r", opts, max(depths) if depths else 1)
    if not 1 <= r <= 16:
        raise _err(where, text, f"field 'r' = {r}: repeats must be in 1..16")
    if depths:
        if len(depths) < 2:
            raise _err(where, text, f"field 'd' = {opts['d']}: a searched depth needs at least two values (a fixed depth is 'r')")
        if min(depths) < 1 or max(depths) != r:
            raise _err(where, text, f"field 'd' = {opts['d']}: depths must be in 1..r and the largest must equal r = {r}")
        if "skip" in opts:
            raise _err(where, text, "fields 'd' and 'skip' exclude each other (a searched depth already drops the stage's last repeats)")
    return BlockSpec(
        kernels=tuple(sorted(kernels)),
        expansions=tuple(sorted(expansions)),
        out=max(widths),
        stride=s,
        repeats=r,
        skip="skip" in opts,
        branches="acb" in opts,
        widths=widths if len(widths) > 1 else (),
        depths=depths,
        pairs=pairs,
    )


def _parse_head(where: str, text: str) -> HeadSpec:
    if text.split("_")[0] != "head":
        raise _err(where, text, f"the last stage must be the head ('head_c1280'), got op '{text.split('_')[0]}'")
    op, opts = _options(where, text, {"c": "int", "d": "int"})
    c = _one(where, text, "c", opts, 1280)
    if c < 0:
        raise _err(where, text, f"field 'c' = {c}: width must be >= 0")
    d = _one(where, text, "d", opts, 0)
    if not 0 <= d < 100:
        raise _err(where, text, f"field 'd' = {d}: dropout percent must be in 0..99")
    return HeadSpec(out=c, dropout=d / 100.0)


def parse_arch(text: str) -> ArchSpec:
    """Parse the text form (see the module docstring) into an :class:`ArchSpec`.

    Raises:
        EdnasError: naming the stage, the block and the field that is wrong.
    """
    if not isinstance(text, str) or not text.strip():
        raise ArchError("arch: empty architecture string; expected e.g. 'stem_k11_m1_c16_s2 | ir_k3_e6_c24_s2 | head_c256'")
    stages_txt = [s.split() for s in text.strip().split("|")]
    if any(not s for s in stages_txt):
        raise ArchError(f"arch '{text}': an empty stage (two '|' in a row, or one at an end)")
    if len(stages_txt) < 3:
        raise ArchError(f"arch '{text}': needs a stem stage, at least one block stage and a head stage, separated by '|'")
    if len(stages_txt[0]) != 1:
        raise ArchError(f"arch stage 0: the stem stage holds exactly one 'stem_...' or 'conv_...' block, got {len(stages_txt[0])}")
    if len(stages_txt[-1]) != 1:
        raise ArchError(f"arch stage {len(stages_txt) - 1}: the head stage holds exactly one 'head_...' block")
    stem = _parse_stem(stages_txt[0][0])
    stages = []
    for si, stage in enumerate(stages_txt[1:-1], start=1):
        stages.append(tuple(_parse_block(f"stage {si} block {bi}", t) for bi, t in enumerate(stage)))
    head = _parse_head(f"stage {len(stages_txt) - 1} block 0", stages_txt[-1][0])
    spec = ArchSpec(stem=stem, stages=tuple(stages), head=head)
    _validate_proj(spec)
    _validate_residuals(spec)
    return spec


def _validate_residuals(spec: ArchSpec) -> None:
    """A block adds its input at every width pair the space allows, or at none: the supernet cannot mix the two."""
    for layer in spec.layers():
        if layer.tied or layer.stride != 1 or layer.spec.op != "ir":
            continue
        pairs = {ci == co for ci in layer.in_width_options for co in layer.widths}
        if len(pairs) > 1:
            b = layer.spec
            raise _err(
                f"stage {layer.stage} block {layer.block}", b.format(),
                f"field 'c': at stride 1 its input widths {layer.in_width_options} and output widths {layer.widths} "
                "are equal for some pairs and not others (a residual sometimes); give the block stride 2 or widths that never meet its input's",
            )


def _validate_proj(spec: ArchSpec) -> None:
    """``proj`` blocks are what a projection skip leaves in a derived network: fixed networks only."""
    if spec.is_fixed:
        return
    for si, stage in enumerate(spec.stages, start=1):
        for bi, b in enumerate(stage):
            if b.op == "proj":
                raise _err(f"stage {si} block {bi}", b.format(),
                           "a 'proj' block belongs to a fixed (derived) network, not to a search space; "
                           "in a space write the block as 'ir_..._skip' (its skip is the projection)")


def format_arch(spec: ArchSpec) -> str:
    """The canonical text form of ``spec``."""
    return spec.format()


# ---------------------------------------------------------------------------
# presets: a search space each; ``.largest()`` is the fixed network trained by
# ``ednas train --arch PRESET``.

PRESETS: dict[str, tuple[str, int]] = {
    # 32x32 inputs (digits, CIFAR): the elastic space.  The 11x11 stem at
    # stride 1, then three stride-2 stages (32 -> 16 -> 8 -> 4) whose depth
    # (1-3 repeats), width (two per stage), expansion ({2, 4, 6}) and
    # kernels ({3, 5, 7}) are all searched, each a mask on one set of weights.
    # On host-ort its largest network is about 6x its smallest (fp32;
    # docs/arch-spec.md), so a budget has room to choose; kernels alone moved
    # latency by +-10 % (``cifar-kernels``).
    "cifar": (
        "stem_k11_m1_c16_s1 | ir_k3.5.7_e1_c16 | ir_k3.5.7_e2.4.6_c16.32_s2_r3_d1.2.3 | ir_k3.5.7_e2.4.6_c32.56_s2_r3_d1.2.3"
        " | ir_k3.5.7_e2.4.6_c64.112_s2_r3_d1.2.3 | head_c256",
        32,
    ),
    # the former ``cifar`` preset, the paper's reading: kernels {3, 5, 7}
    # searched in every block of a fixed small MobileNetV2-like skeleton
    # (widths 16-24-40-80, expansion 4, head 256; 170 k parameters in its
    # largest form).  Its networks span only +-10 % in latency on a CPU.
    "cifar-kernels": (
        "stem_k11_m1_c16_s1 | ir_k3.5.7_e1_c16 | ir_k3.5.7_e4_c24_s2_r2 | ir_k3.5.7_e4_c40_s2_r2"
        " | ir_k3.5.7_e4_c80_s2_r2 | head_c256",
        32,
    ),
    # 224x224 inputs at the paper's scale: MobileNetV2's skeleton (depths,
    # strides) at width 1.5 with the depth-aware stem in place of the 3x3
    # stride-2 conv, kernels {3, 5, 7} and expansions {3, 6} searched in every
    # block, and the depth of every stage of several repeats (Once-for-All's
    # {2, 3, 4}; the second stage {1, 2}).  Chosen by profiling (benchmarks/imagenet_space.py,
    # docs/arch-spec.md): its smallest network (4.9 M parameters, 387 M MACs)
    # and its largest (7.3 M, 824 M) bracket the paper's 5.9 M and 535 M, which
    # lie near the middle of both ranges.
    "imagenet": (
        "stem_k11_m4_c48_s2 | ir_k3.5.7_e1_c24 | ir_k3.5.7_e3.6_c40_s2_r2_d1.2 | ir_k3.5.7_e3.6_c48_s2_r3_d2.3"
        " | ir_k3.5.7_e3.6_c96_s2_r4_d2.3.4 | ir_k3.5.7_e3.6_c144_r3_d2.3 | ir_k3.5.7_e3.6_c240_s2_r3_d2.3 | ir_k3.5.7_e3.6_c480"
        " | head_c1920_d20",
        224,
    ),
    # the former ``imagenet`` preset: MobileNetV2-1.0's skeleton, expansion 6
    # everywhere, kernels searched (313-405 M MACs, 3.5-3.8 M parameters):
    # a smaller 224x224 space, and the one the earlier benchmarks measured.
    "imagenet-mbv2": (
        "stem_k11_m4_c32_s2 | ir_k3.5.7_e1_c16 | ir_k3.5.7_e6_c24_s2_r2 | ir_k3.5.7_e6_c32_s2_r3"
        " | ir_k3.5.7_e6_c64_s2_r4 | ir_k3.5.7_e6_c96_r3 | ir_k3.5.7_e6_c160_s2_r3 | ir_k3.5.7_e6_c320"
        " | head_c1280_d20",
        224,
    ),
}


def preset(name: str) -> ArchSpec:
    """The search space of a named preset."""
    if name not in PRESETS:
        raise ArchError(f"unknown arch preset '{name}'; presets: {', '.join(PRESETS)}")
    return parse_arch(PRESETS[name][0])


def load_arch(value: str) -> tuple[ArchSpec, int | None]:
    """Resolve ``PRESET``, an arch string, or an arch file (YAML/JSON with key ``arch``).

    Returns the spec and the input size it names (``None`` if it names none).
    """
    value = str(value).strip()
    if value in PRESETS:
        text, size = PRESETS[value]
        return parse_arch(text), size
    path = Path(value)
    looks_like_file = value.endswith((".yaml", ".yml", ".json")) or ("/" in value and "|" not in value)
    if looks_like_file:
        if not path.is_file():
            raise ArchError(f"arch file '{value}' does not exist (expected a preset {', '.join(PRESETS)}, an arch string or a YAML/JSON file)")
        try:
            text = path.read_text()
            if value.endswith(".json"):
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as e:  # noqa: BLE001 - any parse error is the user's file
            raise ArchError(f"arch file '{value}': cannot be read as {'JSON' if value.endswith('.json') else 'YAML'}: {e}") from e
        if not isinstance(data, dict) or "arch" not in data:
            raise ArchError(f"arch file '{value}': expected a mapping with key 'arch' (the arch string)")
        size = data.get("input_size")
        try:
            spec = parse_arch(data["arch"])
        except EdnasError as e:
            raise ArchError(f"arch file '{value}': {e}") from e
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise ArchError(f"arch file '{value}': 'input_size' must be a positive integer, got {size!r}")
        return spec, size or None
    return parse_arch(value), None


def load_space(value: str | None, input_size: int) -> ArchSpec:
    """The search space ``value`` names (default: ``cifar`` for inputs up to 64 px, else ``imagenet``).

    Raises:
        ArchError: a malformed spec or file, or a space without any choice.
    """
    ref = value or ("cifar" if input_size <= 64 else "imagenet")
    space, _ = load_arch(ref)
    if space.is_fixed:
        raise ArchError(f"space '{ref}' has no choices to search (e.g. 'k3.5.7', 'e3.6', 'skip')")
    return space
