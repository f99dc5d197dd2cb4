"""The supernet-module interface (ednas.nn.searchable): what search, latency and derive read of a block.

Every supernet kind reports its space, picks and depthwise kernels through
:class:`SearchableBlock`; the feedback merge, derive and E[LAT] read nothing
else, which a block class they have never seen (a test double) proves.
"""

import copy
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ednas import build_model, build_supernet, inherit_weights, parse_arch
from ednas.latency import LatencyModel, LatencyTable, space_ops
from ednas.nn import InvertedResidual, SearchableBlock
from ednas.search import FeedbackBlock, layer_probs
from ednas.search.feedback import merged_names
from tests.conftest import TINY_SPACE
from tests.search_helpers import diverged_paths

KINDS = ["metakernel", "darts", "fbnet"]


def _random_picks(layers, rnd):
    return [
        {"kernel": rnd.choice(l.spec.kernels), "expansion": rnd.choice(l.spec.expansions), "skip": l.can_skip and rnd.random() < 0.5}
        for l in layers
    ]


def _favour(net, picks):
    """Set every alpha so that the argmax is ``picks`` (and the probabilities are not uniform)."""
    with torch.no_grad():
        for blk, p in zip(net.searchable_blocks(), picks):
            want = {"kernel": p["kernel"], "expansion": p["expansion"], "skip": "skip" if p["skip"] else "block"}
            for kind, c in blk.named_choices():
                c.alpha.copy_(torch.linspace(0.0, 0.5, len(c.candidates)))
                c.alpha[c.candidates.index(want[kind])] = 2.0


def _space_candidates(layer):
    return {"kernel": tuple(layer.spec.kernels), "expansion": tuple(layer.spec.expansions),
            "skip": ("block", "skip") if layer.can_skip else ("block",)}


# -- what each kind reports --------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_interface_reports_the_space_and_the_argmax_of_every_kind(kind):
    torch.manual_seed(0)
    net = build_supernet(TINY_SPACE, 4, kind=kind)
    blocks = net.searchable_blocks()
    assert len(blocks) == len(net.layers) and all(isinstance(b, SearchableBlock) for b in blocks)
    picks = _random_picks(net.layers, random.Random(3))
    _favour(net, picks)
    named = dict(net.named_choices())
    for layer, blk, p in zip(net.layers, blocks, picks):
        space = _space_candidates(layer)
        assert blk.candidates() == space
        # a choice for exactly the kinds with more than one candidate, holding the space's candidates
        assert [k for k, _ in blk.named_choices()] == [k for k in ("kernel", "expansion", "skip") if len(space[k]) > 1]
        for k, c in blk.named_choices():
            assert c.kind == k and tuple(c.candidates) == space[k] and blk.choice(k) is c
            assert named[f"L{layer.index}.{k}"] is c
        assert blk.picked() == p
        probs = blk.probs()
        assert set(probs) == {k for k, _ in blk.named_choices()}
        for k, c in blk.named_choices():
            ref = F.softmax(c.alpha.detach(), dim=-1)
            assert list(probs[k]) == list(c.candidates)
            assert torch.allclose(torch.tensor(list(probs[k].values())), ref)
        g = blk.mix_weights()
        for k in ("kernel", "expansion", "skip"):
            c = blk.choice(k)
            if c is not None:
                assert torch.equal(g[k], c.weights())
            else:
                assert g[k].tolist() == ([1.0, 0.0] if k == "skip" else [1.0])
    assert net.picks() == picks == [b.picked() for b in blocks]
    assert net.derive() == net.space.with_picks(picks)
    assert layer_probs(net) == [{k: {str(c): v for c, v in d.items()} for k, d in b.probs().items()} for b in blocks]


def _own_dw_kernels(blk, kind):
    """The depthwise weights of a block, read from its concrete structure (what the interface must return)."""
    if kind == "metakernel":
        return [blk.dw.weight]
    if kind == "darts":
        return [conv.weight for conv in blk.dw]
    return [path.dw.convs[0].weight for path in blk.paths]


@pytest.mark.parametrize("kind", KINDS)
def test_dw_kernels_are_exactly_the_depthwise_parameters_of_each_kind(kind):
    net = build_supernet(TINY_SPACE, 4, kind=kind)
    params = dict(net.named_parameters())
    named = list(net.named_dw_kernels())
    expect = [p for blk in net.searchable_blocks() for p in _own_dw_kernels(blk, kind)]
    assert [id(p) for _, p in named] == [id(p) for p in expect]
    for name, p in named:
        assert params[name] is p and name in net.state_dict()
    for blk in net.searchable_blocks():
        assert [id(p) for p in blk.dw_kernels()] == [id(p) for p in _own_dw_kernels(blk, kind)]
    # independently: every depthwise weight (C, 1, k, k) inside the blocks, and nothing else
    dw = {id(p) for blk in net.searchable_blocks() for p in blk.parameters() if p.dim() == 4 and p.shape[1] == 1}
    assert {id(p) for _, p in named} == dw
    if kind != "metakernel":
        assert len(named) > len(net.layers)  # one per candidate / per path, not one per block
    alphas = [p for _, p in net.named_arch_parameters()]
    assert [id(p) for p in alphas] == [id(p) for p in net.arch_parameters()]


# -- the feedback merge reads only the interface -----------------------------------------------


def _paths(make, n=3):
    return diverged_paths(make, n)


def _check_merge(paths, opts, merge, expect_names):
    before = [copy.deepcopy(p.state_dict()) for p in paths]
    fb = FeedbackBlock(paths, merge, opts)
    assert sorted(fb.names) == sorted(expect_names) and expect_names
    b = fb([0.4, 1.3, 0.9])
    sds = [p.state_dict() for p in paths]
    for name in fb.names:
        want = sum(float(b[i]) * before[i][name].double() for i in range(len(paths))).to(before[0][name].dtype)
        for sd in sds:
            assert torch.allclose(sd[name], want, atol=1e-6), name
        assert not torch.equal(before[0][name], before[1][name])  # they did differ
    others = [n for n in sds[0] if n not in set(fb.names) and sds[0][n].is_floating_point()]
    assert others
    for n in others:  # untouched, so whatever differed per path still does
        for sd, bf in zip(sds, before):
            assert torch.equal(sd[n], bf[n]), n
    assert any(not torch.equal(sds[0][n], sds[1][n]) for n in others)
    # the momentum of a merged kernel is merged with it
    name = expect_names[0]
    bufs = [o[0].state[dict(p.named_parameters())[name]]["momentum_buffer"] for p, o in zip(paths, opts)]
    assert all(torch.equal(bufs[0], x) for x in bufs[1:])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("merge", ["kernels", "kernels+alpha"])
def test_feedback_merges_exactly_the_dw_kernels_and_leaves_the_rest_per_path(kind, merge):
    paths, opts = _paths(lambda: build_supernet(TINY_SPACE, 4, kind=kind))
    names = [n for blk_name, blk in paths[0].named_searchable_blocks() for n in
             (f"{blk_name}.{m}" for m, p in blk.named_parameters() if any(p is q for q in _own_dw_kernels(blk, kind)))]
    if merge == "kernels+alpha":
        names += [n for n, _ in paths[0].named_arch_parameters()]
    _check_merge(paths, opts, merge, names)


# -- a block class the search has never seen -----------------------------------------------


class PlainDW(SearchableBlock):
    """A test double: implements only the interface (forward, dw_kernels, to_fixed).

    Its depthwise kernel is a bare parameter named ``bank``, so nothing that
    looks for ``dw.weight`` or a known block class would find it.
    """

    def __init__(self, layer):
        super().__init__(layer)
        self.mid = layer.cin * max(self.expansions)
        self.inp = nn.Conv2d(self.cin, self.mid, 1, bias=False)
        self.bank = nn.Parameter(0.1 * torch.randn(self.mid, 1, max(self.kernels), max(self.kernels)))
        self.out = nn.Conv2d(self.mid, self.cout, 1, bias=False)
        self._add_choices()

    def dw_kernels(self):
        return [self.bank]

    def forward(self, x):
        g = self.mix_weights(like=x)
        k = max(self.kernels)
        h = F.conv2d(self.inp(x), self.bank, stride=self.stride, padding=k // 2, groups=self.mid)
        y = self.out(F.relu(h)) * (g["kernel"].sum() * g["expansion"].sum())
        if not self.residual:
            return y
        return x + g["skip"][0] * y

    @torch.no_grad()
    def to_fixed(self, kernel, expansion, branches=False):
        blk = InvertedResidual(self.cin, self.cout, kernel, expansion, self.stride, branches)
        n, off = self.cin * expansion, (max(self.kernels) - kernel) // 2
        blk.dw.convs[0].weight.copy_(self.bank[:n, :, off : off + kernel, off : off + kernel])
        return blk


def _plain_supernet():
    net = build_supernet(TINY_SPACE, 4)
    net.blocks = nn.Sequential(*(PlainDW(l) for l in net.layers))
    return net


def test_a_new_block_class_is_merged_through_the_interface():
    paths, opts = _paths(_plain_supernet)
    names = [n for n, _ in paths[0].named_parameters() if n.endswith(".bank")]
    assert len(names) == len(paths[0].layers)
    assert merged_names(paths[0], "kernels") == names
    _check_merge(paths, opts, "kernels", names)


def test_a_new_block_class_is_derived_priced_and_inherited_through_the_interface():
    torch.manual_seed(0)
    net = _plain_supernet()
    space = parse_arch(TINY_SPACE)
    picks = _random_picks(net.layers, random.Random(5))
    _favour(net, picks)
    assert net.picks() == picks
    assert net.derive() == space.with_picks(picks)
    probs = layer_probs(net)
    for d, blk, p in zip(probs, net.searchable_blocks(), picks):
        assert set(d) == {k for k, _ in blk.named_choices()}
        want = {"kernel": str(p["kernel"]), "expansion": str(p["expansion"]), "skip": "skip" if p["skip"] else "block"}
        for k, c in blk.named_choices():
            ref = F.softmax(c.alpha.detach(), dim=-1).tolist()
            assert list(d[k]) == [str(v) for v in c.candidates]
            assert list(d[k].values()) == pytest.approx(ref)
            assert max(d[k], key=d[k].get) == want[k]
    # E[LAT] prices it through mix_weights: one-hot g gives the fixed network's latency
    table = LatencyTable(target="synthetic", input_size=32,
                         entries={op.key: 0.001 + op.macs * 1e-6 for op in space_ops(space, 32, 4)})
    lm = LatencyModel(space, 32, 4, table)
    for c in net.choices():
        c.fixed = c.argmax()
    assert float(lm.expected(net)) == pytest.approx(lm.predict(picks), rel=1e-6)
    for c in net.choices():
        c.fixed = None
    # inheritance goes through to_fixed
    model = inherit_weights(build_model(net.derive(), 4), net)
    kept = [(b, p) for b, p in zip(net.searchable_blocks(), picks) if not p["skip"]]
    for dst, (src, p) in zip(model.blocks, kept):
        k, n = p["kernel"], src.cin * p["expansion"]
        off = (max(src.kernels) - k) // 2
        assert torch.equal(dst.dw.convs[0].weight, src.bank[:n, :, off : off + k, off : off + k])


def test_a_block_must_declare_its_kernels_as_its_own_parameters():
    layer = next(iter(parse_arch(TINY_SPACE).layers()))

    class NoKernels(SearchableBlock):
        def forward(self, x):
            return x

        def to_fixed(self, kernel, expansion, branches=False):
            return nn.Identity()

    with pytest.raises(TypeError):
        NoKernels(layer)

    class Foreign(PlainDW):
        def dw_kernels(self):
            return [nn.Parameter(torch.zeros(1))]

    with pytest.raises(TypeError, match="not one of its parameters"):
        Foreign(layer).named_dw_kernels()
