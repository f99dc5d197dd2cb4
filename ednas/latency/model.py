"""Expected latency of the supernet, differentiable in alpha (eq. 11 under eq. 14-15).

Eq. 11 prices a fixed network as the sum of its operators' table entries.
During the search every layer l mixes its candidates with weights g (the
Gumbel-softmax sample or softmax(alpha) of its choices), so the latency
term of the loss (eq. 13) is the expectation

    E[LAT] = fixed + sum_l sum_{k,e,s} g_k[l] * g_e[l] * g_s[l] * LAT_l(k, e, s)

where ``LAT_l(k, e, keep)`` is the sum of the block's operators (expand,
depthwise k, project, residual add) for kernel k and expansion e,
``LAT_l(k, e, skip) = 0`` (a skipped block is an identity) or, for a
projection skip (a block that changes the stride or the width), the
``proj`` operator's entry (the 1 x 1 conv that replaces it), a layer without
a choice has the single candidate's g = 1, and ``fixed`` is the stem, the
head, the classifier and the table's fitted per-network constant.  It is
linear in every g, so its gradient reaches every alpha through
``choice.weights()``.  A block with tied (kernel, expansion) pairs
(``_tied``) has one choice over its pairs: the joint weight of (k_i, e_j) is
g_i when the pair is the i-th and 0 otherwise, not g_k[i] g_e[j]
(``SearchableBlock.joint_weights``), and only the pairs are looked up.

Every operator the space can need is looked up when the model is built, so a
table that lacks one fails *before* the search starts, naming the operator
and how to extend the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ednas.arch.spec import ArchSpec
from ednas.errors import ConfigError, LatencyTableError
from ednas.latency.ops import arch_layer_ops, block_ops, head_ops, layer_inputs, skip_ops, stem_ops, width_pairs
from ednas.latency.table import LatencyTable

__all__ = ["Budget", "LatencyModel"]


@dataclass(frozen=True)
class Budget:
    """A latency budget on one table: ``ms``, and where it sits between the space's extremes."""

    ms: float
    frac: float | None
    min_ms: float
    max_ms: float
    #: the width multiplier the space was scaled by to bring the budget inside its range (1: not scaled)
    width_mult: float = 1.0


class LatencyModel:
    """Latency of the networks of one search space, from one table.

    Args:
        space: the search space (an :class:`ArchSpec` with choices).
        input_size: network input side; must match the table's.
        num_classes: classifier outputs (the classifier's key holds it).
        table: the lookup table (its ``policy`` says whether unsupported
            candidates are masked or charged their fallback cost).

    Raises:
        EdnasError: the table is for another input size, lacks an operator
            the space needs (the first missing key is named), or masks every
            candidate of some layer.
    """

    def __init__(self, space: ArchSpec, input_size: int, num_classes: int, table: LatencyTable):
        if int(table.input_size) != int(input_size):
            raise LatencyTableError(
                f"latency table {table._where()} was built for input size {table.input_size}, not {input_size}; "
                "build a table for this input size with 'ednas lut build --input N'"
            )
        self.space, self.input_size, self.num_classes, self.table = space, int(input_size), int(num_classes), table
        self.policy: str = table.policy
        self.layers = list(space.layers())
        dtype = table.dtype
        sizes = layer_inputs(space, input_size)
        last = self.layers[-1] if self.layers else None
        stem = [("the stem", op) for op in stem_ops(space, input_size, dtype)]
        head_widths = last.widths if last is not None else (space.last_width,)
        heads = {w: [("the head", op) for op in head_ops(space, input_size, num_classes, dtype, cin=w)] for w in head_widths}
        needed = stem + [x for ops in heads.values() for x in ops]
        for layer, size in zip(self.layers, sizes):
            for ci, co in width_pairs(layer):
                for k, e in layer.spec.pair_options:
                    where = f"layer {layer.index} (stage {layer.stage} block {layer.block}, k{k} e{e} c{ci}->{co})"
                    needed += [(where, op) for op in block_ops(layer, size, k, e, dtype, cin=ci, cout=co)]
                where = f"layer {layer.index} (stage {layer.stage} block {layer.block}, projection skip c{ci}->{co})"
                needed += [(where, op) for op in skip_ops(layer, size, dtype, cin=ci, cout=co)]
        missing = table.missing(op for _, op in needed)
        if missing:
            where = next(w for w, op in needed if op == missing[0])
            raise table.missing_error(missing[0], needed_by=where, n_missing=len(missing))

        # the stem and the table's constant; the head, by the last layer's output width
        self.stem_ms = float(sum(table.ms(op) for _, op in stem) + table.constant_ms)
        self._head = np.array([sum(table.ms(op) for _, op in heads[w]) for w in head_widths])
        self._lat: list[np.ndarray] = []
        self._allowed: list[list[bool]] = []
        # per layer, the (n_kernels, n_expansions) 0/1 mask of its (kernel, expansion) candidates (all ones unless tied)
        self._pairs: list[np.ndarray] = []
        # per layer, the (n_input_widths, n_output_widths) ms of its skip: 0 (an identity) or its projection's
        self._skip: list[np.ndarray] = []
        for layer, size in zip(self.layers, sizes):
            b = layer.spec
            cand = np.zeros((len(b.kernels), len(b.expansions)))
            for k, e in b.pair_options:
                cand[b.kernels.index(k), b.expansions.index(e)] = 1.0
            self._pairs.append(cand)
            # (kernel, expansion, kept/skipped, input width, output width); a tied layer fills only its diagonal, tied pairs only theirs
            lat = np.zeros((len(b.kernels), len(b.expansions), 2, len(layer.in_width_options), len(layer.widths)))
            skip = np.zeros((len(layer.in_width_options), len(layer.widths)))
            for ci, co in width_pairs(layer):
                skip[layer.in_width_options.index(ci), layer.widths.index(co)] = sum(table.ms(op) for op in skip_ops(layer, size, dtype, ci, co))
            lat[:, :, 1] = skip  # the skip costs the same whatever kernel and expansion the block would have had
            self._skip.append(skip)
            allowed = []
            for ki, k in enumerate(b.kernels):
                ok = True
                for ci, co in width_pairs(layer):
                    ii, oi = layer.in_width_options.index(ci), layer.widths.index(co)
                    for ei, e in enumerate(b.expansions):
                        if not cand[ki, ei]:
                            continue
                        ops = block_ops(layer, size, k, e, dtype, cin=ci, cout=co)
                        lat[ki, ei, 0, ii, oi] = sum(table.ms(op) for op in ops)
                        ok = ok and all(table.supported(op) for op in ops)
                allowed.append(ok or self.policy == "fallback")
            if not any(allowed):
                raise LatencyTableError(
                    f"layer {layer.index} (stage {layer.stage} block {layer.block}): none of its kernels {b.kernels} is supported "
                    f"by target {table.target}, whose policy is 'mask'; remove them from the space or use policy 'fallback'"
                )
            self._lat.append(lat)
            self._allowed.append(allowed)
        self._tensors: dict = {}
        self._checked: set = set()

    @property
    def fixed_ms(self) -> float:
        """The stem, the head at the largest last width and the table's constant: what no choice but the last width moves."""
        return self.stem_ms + float(self._head[-1])

    # -- per layer -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.layers)

    def layer_ms(self, i: int) -> torch.Tensor:
        """``(n_kernels, n_expansions, 2)`` ms of layer i at its largest widths: ``[..., 0]`` kept, ``[..., 1]`` skipped (0, or a projection skip's ms)."""
        return torch.tensor(self._lat[i][..., -1, -1], dtype=torch.float32)

    def layer_table(self, i: int) -> torch.Tensor:
        """``(n_kernels, n_expansions, 2, n_input_widths, n_output_widths)`` ms of layer i (a tied layer: its diagonal)."""
        return torch.tensor(self._lat[i], dtype=torch.float32)

    def allowed(self, i: int) -> list[bool]:
        """Per kernel candidate of layer i: False when the target masks it."""
        return list(self._allowed[i])

    def _extreme(self, cheapest: bool) -> tuple[float, list[dict]]:
        """The cheapest (or dearest) allowed network: exact over the coupled widths (a pass over the layers, one state per width)."""
        better = (lambda a, b: a < b) if cheapest else (lambda a, b: a > b)
        states = {None: (self.stem_ms, [])}  # input width index (None: the stem's one width) -> (ms so far, picks)
        for i, layer in enumerate(self.layers):
            lat, b, new = self._lat[i], layer.spec, {}
            for wi, (ms, picks) in states.items():
                ii = 0 if wi is None or len(layer.in_width_options) == 1 else wi
                outs = [ii] if layer.tied else range(len(layer.widths))
                for oi in outs:
                    best = None
                    for ki, k in enumerate(b.kernels):
                        if not self._allowed[i][ki]:
                            continue
                        for ei, e in enumerate(b.expansions):
                            if not self._pairs[i][ki, ei]:
                                continue
                            v = float(lat[ki, ei, 0, ii, oi])
                            if best is None or better(v, best[0]):
                                best = (v, {"kernel": k, "expansion": e, "skip": False, **({"width": layer.widths[oi]} if len(layer.widths) > 1 else {})})
                    if layer.can_skip and better(float(self._skip[i][ii, oi]), best[0]):  # an identity (0) or a projection
                        best = (float(self._skip[i][ii, oi]), dict(best[1], skip=True))
                    key = oi if len(layer.widths) > 1 else None
                    cand = (ms + best[0], picks + [best[1]])
                    if key not in new or better(cand[0], new[key][0]):
                        new[key] = cand
            states = new
        ends = [(ms + float(self._head[0 if wi is None else wi]), picks) for wi, (ms, picks) in states.items()]
        out = ends[0]
        for e in ends[1:]:
            if better(e[0], out[0]):
                out = e
        return out

    @property
    def min_ms(self) -> float:
        """Predicted latency of the space's cheapest network (skips where allowed, smallest widths where they pay)."""
        return self._extreme(True)[0]

    @property
    def max_ms(self) -> float:
        """Predicted latency of the space's most expensive (allowed) network."""
        return self._extreme(False)[0]

    def budget(self, ms: float | None = None, frac: float | None = None) -> Budget:
        """The budget of ``ms`` milliseconds, or ``frac`` of the way from :attr:`min_ms` to :attr:`max_ms`.

        The one place a budget is resolved: give exactly one of the two; it
        must lie within what the space can reach on this table.

        Raises:
            ConfigError: both or neither given, or a budget outside
                ``[min_ms, max_ms]`` (the message gives the reachable range).
        """
        lo, hi = float(self.min_ms), float(self.max_ms)
        target = getattr(getattr(self, "table", None), "target", None)
        rng = f"[{lo:.4g}, {hi:.4g}] ms (smallest to largest network of the space" + (f" on target {target})" if target else ")")
        if (ms is None) == (frac is None):
            raise ConfigError("give a budget in ms (--budget-ms) or as a fraction of the space's range (--budget-frac), exactly one")
        if ms is not None:
            b = float(ms)
            if not lo <= b <= hi:
                raise ConfigError(f"--budget-ms {b:.4g} is outside the achievable range {rng}")
            return Budget(b, (b - lo) / (hi - lo) if hi > lo else None, lo, hi)
        f = float(frac)
        if not 0.0 <= f <= 1.0:
            raise ConfigError(f"--budget-frac {f} must be in [0, 1]; the achievable range is {rng}")
        return Budget(lo + f * (hi - lo), f, lo, hi)

    def extreme_picks(self, cheapest: bool = True) -> list[dict]:
        """The picks of the cheapest (or most expensive) allowed network."""
        return self._extreme(cheapest)[1]

    # -- E[LAT] --------------------------------------------------------------------
    def _tensor(self, i: int | str, device, dtype) -> torch.Tensor:
        """Layer i's table (or ``"fixed"``: the fixed part) as a tensor on ``device``, made once (no copy per step)."""
        key = (i, str(device), dtype)
        if key not in self._tensors:
            if isinstance(i, str):
                val = {"fixed": self.stem_ms, "head": self._head}.get(i) if not i.startswith("pairs") else self._pairs[int(i[5:])]
            else:
                val = self._lat[i]
            self._tensors[key] = torch.as_tensor(val, dtype=dtype, device=device)
        return self._tensors[key]

    def _check_block(self, i: int, blk) -> None:
        if i in self._checked:
            return
        layer = self.layers[i]
        space = {"kernel": tuple(layer.spec.kernels), "expansion": tuple(layer.spec.expansions)}
        cands = blk.candidates()
        for kind, want in space.items():
            # a choice holds exactly the space's candidates; no choice means a single one
            if tuple(cands[kind]) != want:
                raise LatencyTableError(
                    f"supernet layer {i}: its {kind} candidates {tuple(cands[kind])} "
                    f"do not match the latency model's space {want}"
                )
        if (len(cands["skip"]) > 1) != layer.can_skip:
            raise LatencyTableError(f"supernet layer {i}: its skip choice does not match the latency model's space")
        if tuple(cands.get("width", layer.widths)) != layer.widths or tuple(cands.get("width_in", layer.in_width_options)) != layer.in_width_options:
            raise LatencyTableError(f"supernet layer {i}: its width candidates do not match the latency model's space")
        self._checked.add(i)

    def expected(self, supernet) -> torch.Tensor:
        """E[LAT] in ms (a 0-dim tensor), differentiable w.r.t. every alpha (see module doc).

        Reads only the supernet-module interface (:mod:`ednas.nn.searchable`):
        ``supernet.searchable_blocks()`` and each block's ``candidates()`` and
        ``mix_weights()``.
        """
        blocks = list(supernet.searchable_blocks())
        if len(blocks) != len(self.layers):
            raise LatencyTableError(f"supernet has {len(blocks)} blocks, the latency model's space has {len(self.layers)} layers")
        ref = next((c.weights() for blk in blocks for c in blk.choices()), None)
        device = ref.device if ref is not None else torch.device("cpu")
        dtype = ref.dtype if ref is not None else torch.float32
        total = self._tensor("fixed", device, dtype)
        like = total.new_empty(0)
        g = {}
        for i, blk in enumerate(blocks):
            self._check_block(i, blk)
            g = blk.mix_weights(like=like)
            gk, ge, gs = (g[k].to(dtype) for k in ("kernel", "expansion", "skip"))
            gi, go = (g.get(k, like.new_ones(1)).to(dtype) for k in ("width_in", "width"))
            lat = self._tensor(i, device, dtype)
            # the joint (kernel, expansion) weight: the product of the two choices, or with tied pairs the kernel choice's
            # weight on each pair (0 off the pairs)
            if self.layers[i].spec.pairs:
                gke = gk[:, None] * self._tensor(f"pairs{i}", device, dtype)
            else:
                gke = torch.outer(gk, ge)
            # the joint candidate is weighted by the product of its choices' g's; a tied layer's input is its output's choice
            if self.layers[i].tied:
                total = total + torch.einsum("ke,s,o,keso->", gke, gs, go, torch.diagonal(lat, dim1=-2, dim2=-1))
            else:
                total = total + torch.einsum("ke,s,i,o,kesio->", gke, gs, gi, go, lat)
        head = self._tensor("head", device, dtype)
        go = g.get("width", like.new_ones(1)).to(dtype) if len(head) > 1 else head.new_ones(1)
        return total + go @ head

    # -- fixed networks ----------------------------------------------------------------
    def predict(self, arch_or_picks: ArchSpec | Sequence[dict], allow_masked: bool = False) -> float:
        """Predicted ms of one network (eq. 11).

        Args:
            arch_or_picks: a fixed :class:`ArchSpec` (e.g. ``space.with_picks(...)``)
                or one pick ``{"kernel", "expansion", "skip"}`` per layer.
            allow_masked: price a candidate the target masks at its fallback
                cost instead of refusing it.

        Raises:
            EdnasError: a pick outside the space, a masked candidate (unless
                ``allow_masked``), or an operator missing from the table.
        """
        if isinstance(arch_or_picks, ArchSpec):
            return self._predict_arch(arch_or_picks, allow_masked)
        picks = list(arch_or_picks)
        if len(picks) != len(self.layers):
            raise LatencyTableError(f"{len(picks)} picks for the {len(self.layers)} layers of the space")
        total = self.stem_ms
        cin = self.space.stem.out
        for i, (layer, p) in enumerate(zip(self.layers, picks)):
            w = int(p.get("width", layer.spec.out))
            if w not in layer.widths or (layer.tied and w != cin):
                raise LatencyTableError(f"pick {i}: width {w} is not among layer {i}'s widths {layer.widths}"
                                        + (f" or differs from its stage's width {cin}" if layer.tied else ""))
            ci = cin
            cin = w
            if p.get("skip"):
                if not layer.can_skip:
                    raise LatencyTableError(f"pick {i}: layer {i} (stage {layer.stage} block {layer.block}) cannot be skipped")
                total += float(self._skip[i][layer.in_width_options.index(ci), layer.widths.index(w)])  # 0, or its projection
                continue
            k, e = int(p["kernel"]), int(p["expansion"])
            b = layer.spec
            if (k, e) not in b.pair_options:
                among = " ".join(f"k{pk}_e{pe}" for pk, pe in b.pairs) if b.pairs else f"k{b.kernels} e{b.expansions}"
                raise LatencyTableError(f"pick {i}: k{k} e{e} is not among layer {i}'s candidates {among}")
            ki = b.kernels.index(k)
            if not allow_masked and not self._allowed[i][ki]:
                raise LatencyTableError(
                    f"pick {i}: kernel {k} of layer {i} is masked on target {self.table.target} "
                    "(unsupported by its accelerator; policy 'mask')"
                )
            total += float(self._lat[i][ki, b.expansions.index(e), 0, layer.in_width_options.index(ci), layer.widths.index(w)])
        last = self.layers[-1] if self.layers else None
        total += float(self._head[last.widths.index(cin)] if last is not None else self._head[0])
        return float(total)

    def _predict_arch(self, arch: ArchSpec, allow_masked: bool) -> float:
        t = self.table
        total = t.constant_ms
        for label, ops in arch_layer_ops(arch, self.input_size, self.num_classes, t.dtype):
            missing = t.missing(ops)
            if missing:
                raise t.missing_error(missing[0], needed_by=label, n_missing=len(missing))
            if label.startswith("layer") and self.policy == "mask" and not allow_masked:
                bad = [op for op in ops if not t.supported(op)]
                if bad:
                    raise LatencyTableError(f"{label}: {bad[0].describe()} is masked on target {t.target} (unsupported by its accelerator; policy 'mask')")
            total += sum(t.ms(op) for op in ops)
        return float(total)

    def breakdown(self, arch: ArchSpec) -> list[dict]:
        """Per-layer ms of a fixed network: ``[{"layer", "ms", "supported"}]`` (for reports)."""
        t = self.table
        return [
            {"layer": label, "ms": float(sum(t.ms(op) for op in ops)), "supported": all(t.supported(op) for op in ops)}
            for label, ops in arch_layer_ops(arch, self.input_size, self.num_classes, t.dtype)
        ]
