"""Operator descriptors and their table keys: the terms of eq. 11.

Eq. 11 writes a network's latency as a sum over its operators,
``LAT(a) = sum_l LAT(b_l)``; the lookup table maps each operator to
milliseconds.  An operator is described by an :class:`Op` (a frozen
dataclass) and stored under a string key.

Key scheme, version :data:`KEY_VERSION` (= 1)::

    <type>_i<H>x<W>x<Cin>_o<Cout>_k<K>_s<S>_g<G>_e<E>_<dtype>
    e.g.  dw_i16x16x96_o96_k5_s2_g96_e4_f32

==========  ====================================================  ===========
type        operator (deploy form: BN folded, ReLU fused)         activation
==========  ====================================================  ===========
stem-dw     stem depthwise K x K on the image, multiplier E        ReLU
stem-pw     stem pointwise 1 x 1, Cin = 3 * multiplier -> Cout     ReLU
expand      block 1 x 1 expand, Cout = Cin * E                     ReLU
dw          block depthwise K x K, stride S, G = Cin = Cout        ReLU
project     block 1 x 1 project (linear bottleneck)                none
add         residual add of the block input (fused into project)   none
head        head 1 x 1 conv                                        ReLU
pool        global average pool (K = 0: global)                    none
fc          classifier (H = W = 1)                                 none
conv        dense K x K conv: the conv stem, reference networks    ReLU
proj        projection skip: 1 x 1 conv Cin -> Cout, stride S      none
==========  ====================================================  ===========

``H x W`` is the operator's *input* size; the output size follows from the
stride (padding K // 2).  ``E`` is the block's expansion ratio for the
block operators (expand, dw, project), the channel multiplier for
``stem-dw`` and 1 elsewhere.  ``dtype`` is ``f32``, ``f16``, ``i16`` or
``i8``.  Fields that do not apply take the neutral values ``k1 s1 g1 e1``
(``k0`` for the global pool and the add).  The scheme is versioned: a table
records the version it was written with and a table of another version is
refused (:mod:`ednas.latency.table`).  Adding an operator type (``proj``)
leaves the key format, and so the version, unchanged: older tables simply
hold no such entries.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Iterator

from ednas.arch.spec import ArchSpec, ConvStemSpec, Layer
from ednas.errors import LatencyTableError

__all__ = [
    "KEY_VERSION",
    "OP_TYPES",
    "DTYPES",
    "DTYPE_ALIASES",
    "dtype_name",
    "Op",
    "out_size",
    "stem_ops",
    "block_ops",
    "skip_ops",
    "head_ops",
    "layer_inputs",
    "arch_ops",
    "arch_layer_ops",
    "space_ops",
    "width_pairs",
]

KEY_VERSION = 1
OP_TYPES = ("stem-dw", "stem-pw", "expand", "dw", "project", "add", "head", "pool", "fc", "conv", "proj")
DTYPES = ("f32", "f16", "i16", "i8")
#: the other names a dtype may be given by on the command line (``--dtype int8``)
DTYPE_ALIASES = {"fp32": "f32", "float32": "f32", "fp16": "f16", "float16": "f16", "int16": "i16", "int8": "i8"}
# bytes per element, for the memory term of the analytic targets
DTYPE_BYTES = {"f32": 4, "f16": 2, "i16": 2, "i8": 1}
# the operators followed by a ReLU in the deploy form (ORT fuses it into the conv)
RELU_TYPES = frozenset({"stem-dw", "stem-pw", "expand", "dw", "head", "conv"})

_KEY = re.compile(
    r"^(?P<type>[a-z0-9-]+)_i(?P<h>\d+)x(?P<w>\d+)x(?P<cin>\d+)_o(?P<cout>\d+)"
    r"_k(?P<kernel>\d+)_s(?P<stride>\d+)_g(?P<groups>\d+)_e(?P<expansion>\d+)_(?P<dtype>[a-z0-9]+)$"
)


def dtype_name(dtype: str | None) -> str | None:
    """The key-scheme name of a dtype given as ``i8`` or ``int8`` (``None`` stays ``None``; unknown names pass through to be refused)."""
    return None if dtype is None else DTYPE_ALIASES.get(str(dtype).lower(), dtype)


def out_size(size: int, stride: int) -> int:
    """Output side of a convolution with padding k // 2 (odd k) and ``stride``."""
    return (size - 1) // stride + 1


@dataclass(frozen=True, order=True)
class Op:
    """One operator of a deploy-form network (see the module docstring)."""

    type: str
    h: int
    w: int
    cin: int
    cout: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    expansion: int = 1
    dtype: str = "f32"

    def __post_init__(self):
        if self.type not in OP_TYPES:
            raise LatencyTableError(f"operator type '{self.type}' is unknown; expected one of {', '.join(OP_TYPES)}")
        if self.dtype not in DTYPES:
            raise LatencyTableError(f"operator dtype '{self.dtype}' is unknown; expected one of {', '.join(DTYPES)}")

    # -- key ---------------------------------------------------------------
    @property
    def key(self) -> str:
        """The table key (scheme version :data:`KEY_VERSION`)."""
        return (
            f"{self.type}_i{self.h}x{self.w}x{self.cin}_o{self.cout}"
            f"_k{self.kernel}_s{self.stride}_g{self.groups}_e{self.expansion}_{self.dtype}"
        )

    @classmethod
    def from_key(cls, key: str) -> "Op":
        """Parse a key written by :attr:`key`; raises EdnasError naming the key."""
        m = _KEY.match(key)
        if not m:
            raise LatencyTableError(
                f"operator key '{key}' does not follow key scheme v{KEY_VERSION} "
                "'<type>_i<H>x<W>x<Cin>_o<Cout>_k<K>_s<S>_g<G>_e<E>_<dtype>' (see docs/latency.md)"
            )
        d = m.groupdict()
        return cls(d.pop("type"), dtype=d.pop("dtype"), **{k: int(v) for k, v in d.items()})

    def to_dict(self) -> dict:
        return asdict(self)

    # -- shape and work ------------------------------------------------------
    @property
    def ho(self) -> int:
        return 1 if self.type == "pool" else out_size(self.h, self.stride)

    @property
    def wo(self) -> int:
        return 1 if self.type == "pool" else out_size(self.w, self.stride)

    @property
    def is_conv(self) -> bool:
        return self.type not in ("add", "pool", "fc")

    @property
    def depthwise(self) -> bool:
        return self.is_conv and self.groups == self.cin and self.groups > 1

    @property
    def relu(self) -> bool:
        return self.type in RELU_TYPES

    @property
    def macs(self) -> int:
        """Multiply-accumulates (adds and pool sums count one per element)."""
        if self.is_conv:
            return self.ho * self.wo * self.cout * (self.cin // self.groups) * self.kernel * self.kernel
        if self.type == "fc":
            return self.cin * self.cout
        return self.h * self.w * self.cin  # add, pool

    @property
    def params(self) -> int:
        if self.is_conv:
            return self.cout * (self.cin // self.groups) * self.kernel * self.kernel + self.cout
        if self.type == "fc":
            return self.cin * self.cout + self.cout
        return 0

    def elements(self) -> tuple[int, int]:
        """(input, output) tensor elements; an add reads two inputs."""
        n_in = self.h * self.w * self.cin * (2 if self.type == "add" else 1)
        return n_in, self.ho * self.wo * self.cout

    def describe(self) -> str:
        """Short human text for messages and reports."""
        if self.type in ("dw", "stem-dw"):
            return f"{self.type} {self.kernel}x{self.kernel} s{self.stride} on {self.h}x{self.w}x{self.cin}"
        return f"{self.type} {self.cin}->{self.cout} on {self.h}x{self.w}"


# ---------------------------------------------------------------------------
# the operators of a network


def stem_ops(space: ArchSpec, input_size: int, dtype: str = "f32", in_channels: int = 3) -> list[Op]:
    """The stem: depth-aware (depthwise K x K, multiplier m, then pointwise) or one dense K x K ``conv``."""
    s = space.stem
    if isinstance(s, ConvStemSpec):
        return [Op("conv", input_size, input_size, in_channels, s.out, s.kernel, s.stride, 1, 1, dtype)]
    mid = in_channels * s.mult
    h1 = out_size(input_size, s.stride)
    return [
        Op("stem-dw", input_size, input_size, in_channels, mid, s.kernel, s.stride, in_channels, s.mult, dtype),
        Op("stem-pw", h1, h1, mid, s.out, 1, 1, 1, 1, dtype),
    ]


def block_ops(layer: Layer, size: int, kernel: int, expansion: int, dtype: str = "f32", cin: int | None = None,
              cout: int | None = None) -> list[Op]:
    """The operators of one kept inverted residual block on a ``size`` x ``size`` input (at widths ``cin`` -> ``cout``,
    default the layer's largest)."""
    cin = layer.cin if cin is None else int(cin)
    cout = layer.spec.out if cout is None else int(cout)
    s = layer.stride
    if layer.spec.op == "proj":  # a projection block of a derived network
        return [Op("proj", size, size, cin, cout, 1, s, 1, 1, dtype)]
    mid = cin * expansion
    ops = []
    if expansion != 1:  # e = 1 has no expand conv (MobileNetV2's first block)
        ops.append(Op("expand", size, size, cin, mid, 1, 1, 1, expansion, dtype))
    ops.append(Op("dw", size, size, mid, mid, kernel, s, mid, expansion, dtype))
    so = out_size(size, s)
    ops.append(Op("project", so, so, mid, cout, 1, 1, 1, expansion, dtype))
    if layer.residual:
        ops.append(Op("add", so, so, cout, cout, 0, 1, 1, 1, dtype))
    return ops


def skip_ops(layer: Layer, size: int, dtype: str = "f32", cin: int | None = None, cout: int | None = None) -> list[Op]:
    """The operators of a skipped layer: none for an identity, the ``proj`` 1 x 1 conv for a projection skip (``layer.skip_proj``)."""
    if not layer.skip_proj:
        return []
    cin = layer.cin if cin is None else int(cin)
    cout = layer.spec.out if cout is None else int(cout)
    return [Op("proj", size, size, cin, cout, 1, layer.stride, 1, 1, dtype)]


def layer_inputs(space: ArchSpec, input_size: int) -> list[int]:
    """Input side of every layer of ``space.layers()``.

    Independent of the picks: only stride-1 identity blocks can be skipped.
    """
    size = out_size(input_size, space.stem.stride)
    sizes = []
    for layer in space.layers():
        sizes.append(size)
        size = out_size(size, layer.stride)
    return sizes


def _final_size(space: ArchSpec, input_size: int) -> int:
    size = out_size(input_size, space.stem.stride)
    for layer in space.layers():
        size = out_size(size, layer.stride)
    return size


def head_ops(space: ArchSpec, input_size: int, num_classes: int, dtype: str = "f32", cin: int | None = None) -> list[Op]:
    """Head 1 x 1 conv (if any), global average pool and classifier (on ``cin`` input channels, default the last width)."""
    size = _final_size(space, input_size)
    cin = space.last_width if cin is None else int(cin)
    ops = []
    if space.head.out > 0:
        ops.append(Op("head", size, size, cin, space.head.out, 1, 1, 1, 1, dtype))
        cin = space.head.out
    ops.append(Op("pool", size, size, cin, cin, 0, 1, 1, 1, dtype))
    ops.append(Op("fc", 1, 1, cin, num_classes, 1, 1, 1, 1, dtype))
    return ops


def arch_layer_ops(arch: ArchSpec, input_size: int, num_classes: int, dtype: str = "f32") -> list[tuple[str, list[Op]]]:
    """The operators of a fixed network grouped by layer: ``[(label, ops), ...]``.

    Labels are ``stem``, ``layer I (stage S block B)`` and ``head``, as in
    messages and reports.

    Raises:
        EdnasError: if ``arch`` still has choices.
    """
    if not arch.is_fixed:
        raise LatencyTableError(
            f"arch '{arch.format()}' has choices; latency is defined for a fixed network "
            "(use space.with_picks(...) or a derived arch)"
        )
    out = [("stem", stem_ops(arch, input_size, dtype))]
    for layer, size in zip(arch.layers(), layer_inputs(arch, input_size)):
        label = f"layer {layer.index} (stage {layer.stage} block {layer.block})"
        out.append((label, block_ops(layer, size, layer.spec.kernels[0], layer.spec.expansions[0], dtype)))
    out.append(("head", head_ops(arch, input_size, num_classes, dtype)))
    return out


def arch_ops(arch: ArchSpec, input_size: int, num_classes: int, dtype: str = "f32") -> list[Op]:
    """Every operator of a fixed network, in network order (eq. 11's terms).

    Raises:
        EdnasError: if ``arch`` still has choices.
    """
    return [op for _, ops in arch_layer_ops(arch, input_size, num_classes, dtype) for op in ops]


def width_pairs(layer: Layer) -> list[tuple[int, int]]:
    """The (input width, output width) pairs a layer can run at: every pair, or the diagonal when tied to its stage's width."""
    if layer.tied:
        return [(w, w) for w in layer.widths]
    return [(ci, co) for ci in layer.in_width_options for co in layer.widths]


def _candidates(space: ArchSpec, input_size: int, dtype: str) -> Iterator[Op]:
    yield from stem_ops(space, input_size, dtype)
    for layer, size in zip(space.layers(), layer_inputs(space, input_size)):
        for ci, co in width_pairs(layer):
            for k, e in layer.spec.pair_options:
                yield from block_ops(layer, size, k, e, dtype, cin=ci, cout=co)
            yield from skip_ops(layer, size, dtype, cin=ci, cout=co)


def space_ops(space: ArchSpec, input_size: int, num_classes: int, dtype: str = "f32") -> list[Op]:
    """Every distinct operator any network of ``space`` can contain, sorted."""
    layers = list(space.layers())
    lasts = layers[-1].widths if layers else (space.last_width,)
    ops = set(_candidates(space, input_size, dtype))
    for w in lasts:
        ops |= set(head_ops(space, input_size, num_classes, dtype, cin=w))
    return sorted(ops)
