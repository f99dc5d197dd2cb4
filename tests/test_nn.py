"""Equivalences of the search space (eq. 1, 2, 9): meta-kernel, fusion, derive, inherit."""

import itertools
import random

import pytest
import torch
import torch.nn.functional as F

from ednas import build_model, build_supernet, fuse, fuse_supernet, inherit_weights, parse_arch
from ednas.nn import ConvBNAct, MetaKernelConv, RepDWConvBN, default_branches
from tests.conftest import TINY_SPACE, random_arch, randomize_bn

TOL = 1e-5


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernels", [(3, 5, 7), (1, 3, 5, 7, 9), (3, 5)])
def test_metakernel_one_hot_equals_plain_conv(kernels, stride):
    torch.manual_seed(0)
    mk = MetaKernelConv(6, kernels, stride)
    x = torch.randn(2, 6, 13, 13)
    for i, k in enumerate(kernels):
        g = F.one_hot(torch.tensor(i), len(kernels)).float()
        ref = F.conv2d(x, mk.candidate_weight(i), None, stride, k // 2, groups=6)
        assert mk(x, g).shape == ref.shape
        assert torch.allclose(mk(x, g), ref, atol=TOL)
        assert torch.allclose(mk.to_conv(i)(x), ref, atol=TOL)
        assert mk.to_conv(i).kernel_size == (k, k)  # a plain conv of the chosen size, not a padded K_max


@pytest.mark.parametrize("stride", [1, 2])
def test_metakernel_soft_g_is_weighted_sum_of_candidates(stride):
    torch.manual_seed(1)
    mk = MetaKernelConv(4, (3, 5, 7), stride)
    x = torch.randn(3, 4, 16, 16)
    g = torch.softmax(torch.randn(3), 0)
    ref = sum(g[i] * F.conv2d(x, mk.candidate_weight(i), None, stride, k // 2, groups=4) for i, k in enumerate(mk.kernels))
    assert torch.allclose(mk(x, g), ref, atol=TOL)


@pytest.mark.parametrize("hard", [False, True])
def test_gradients_reach_alpha_and_weights(hard):
    torch.manual_seed(0)
    net = build_supernet(TINY_SPACE, 5)
    for c in net.choices():
        c.g = F.gumbel_softmax(c.alpha, tau=1.0, hard=hard)  # soft, or straight-through one-hot
        if hard and c.kind == "skip":
            c.g = c.g - c.g.detach() + torch.tensor([1.0, 0.0])  # a skipped block passes no gradient to its own choices
    net(torch.randn(4, 3, 32, 32)).pow(2).sum().backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in net.arch_parameters())
    mk = [m for m in net.modules() if isinstance(m, MetaKernelConv)]
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in mk)
    assert {id(p) for p in net.arch_parameters()}.isdisjoint({id(p) for p in net.weight_parameters()})
    assert len(net.arch_parameters()) + len(net.weight_parameters()) == len(list(net.parameters()))


@pytest.mark.parametrize("groups", [1, 4])
def test_bn_folding(groups):
    torch.manual_seed(0)
    m = randomize_bn(ConvBNAct(8, 8, 3, 2, groups=groups)).eval()
    x = torch.randn(2, 8, 9, 9)
    assert torch.allclose(fuse(m)(x), m(x), atol=TOL)


@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("stride", [1, 2])
def test_every_branch_combination_fuses_exactly(k, stride):
    shapes = default_branches(k)
    x = torch.randn(2, 6, 15, 15)
    for n in range(1, len(shapes) + 1):
        for combo in itertools.combinations(shapes, n):
            combo = ((k, k),) + tuple(c for c in combo if c != (k, k))
            torch.manual_seed(0)
            m = randomize_bn(RepDWConvBN(6, k, stride, shapes=combo)).eval()
            f = fuse(m)
            conv = f[0]
            assert conv.kernel_size == (k, k) and conv.bias is not None
            assert torch.allclose(f(x), m(x), atol=TOL), combo


@pytest.mark.parametrize("seed", range(8))
def test_random_derived_networks_fuse_exactly(seed):
    torch.manual_seed(seed)
    arch = random_arch(seed, fixed=True)
    model = randomize_bn(build_model(arch, 7), seed).eval()
    x = torch.randn(2, 3, 32, 32)
    fused = fuse(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert torch.allclose(fused(x), model(x), atol=TOL, rtol=1e-5), arch


def _pin(net, picks):
    for blk, p in zip(net.blocks, picks):
        if blk.kernel_choice is not None:
            blk.kernel_choice.fixed = blk.kernels.index(p["kernel"])
        if blk.expansion_choice is not None:
            blk.expansion_choice.fixed = blk.expansions.index(p["expansion"])
        if blk.skip_choice is not None:
            blk.skip_choice.fixed = int(p["skip"])


def _favour(net, picks):
    with torch.no_grad():
        for blk, p in zip(net.blocks, picks):
            for c, v in ((blk.kernel_choice, p["kernel"]), (blk.expansion_choice, p["expansion"])):
                if c is not None:
                    c.alpha.zero_()
                    c.alpha[c.candidates.index(v)] = 1.0
            if blk.skip_choice is not None:
                blk.skip_choice.alpha.copy_(torch.tensor([0.0, 1.0]) if p["skip"] else torch.tensor([1.0, 0.0]))


def _random_picks(net, rnd):
    return [
        {"kernel": rnd.choice(l.spec.kernels), "expansion": rnd.choice(l.spec.expansions), "skip": l.can_skip and rnd.random() < 0.5}
        for l in net.layers
    ]


@pytest.mark.parametrize("kind", ["metakernel", "darts", "fbnet"])
@pytest.mark.parametrize("seed", range(3))
def test_derive_returns_favoured_candidates(kind, seed):
    torch.manual_seed(seed)
    net = build_supernet(TINY_SPACE, 5, kind=kind)
    picks = _random_picks(net, random.Random(seed))
    _favour(net, picks)
    assert net.picks() == picks
    assert net.derive() == net.space.with_picks(picks)


@pytest.mark.parametrize("kind", ["metakernel", "darts", "fbnet"])
@pytest.mark.parametrize("seed", range(3))
def test_inherited_network_equals_supernet_with_pinned_choices(kind, seed):
    """Inheritance (centre crops, expansion channels) reproduces the supernet exactly."""
    torch.manual_seed(seed)
    net = randomize_bn(build_supernet(TINY_SPACE, 5, kind=kind), seed).eval()
    picks = _random_picks(net, random.Random(seed + 10))
    _pin(net, picks)
    model = inherit_weights(build_model(net.space.with_picks(picks), 5), net, picks).eval()
    x = torch.randn(2, 3, 32, 32)
    ref = net(x)
    assert torch.allclose(model(x), ref, atol=TOL)
    _favour(net, picks)
    for c in net.choices():
        c.fixed = None
    assert torch.allclose(fuse_supernet(net)(x), ref, atol=TOL)  # derive + inherit + fuse
    assert torch.allclose(fuse(net)(x), ref, atol=TOL)  # the walker on the supernet itself


@pytest.mark.parametrize("seed", range(2))
def test_inherit_with_branches_keeps_function(seed):
    """A network with extra depthwise branches, inherited from the pinned supernet, computes what the supernet computes."""
    torch.manual_seed(seed)
    net = randomize_bn(build_supernet(TINY_SPACE, 5), seed).eval()
    picks = [dict(p, skip=False) for p in _random_picks(net, random.Random(seed + 20))]
    _pin(net, picks)
    model = build_model(net.space.with_picks(picks, branches=True), 5)
    assert all(len(b.dw.convs) > 1 for b in model.blocks if b.kernel >= 3)  # the branches are there
    inherit_weights(model, net, picks).eval()
    x = torch.randn(2, 3, 32, 32)
    ref = net(x)
    assert torch.allclose(model(x), ref, atol=TOL)
    assert torch.allclose(fuse(model)(x), ref, atol=TOL)
    # in training mode (batch statistics) too, the branches add exactly nothing: equal to the same network without them
    plain = inherit_weights(build_model(net.space.with_picks(picks, branches=False), 5), net, picks)
    model.train(), plain.train()
    out = model(x)
    assert torch.allclose(out, plain(x), atol=TOL)
    # and they still learn: every extra branch's BN scale gets a gradient
    out.pow(2).sum().backward()
    extra = [bn for b in model.blocks for bn in b.dw.bns[1:]]
    assert extra and all(bn.weight.grad.abs().sum() > 0 for bn in extra)


def test_supernet_runs_in_channels_last():
    net = build_supernet("imagenet", 10).to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    assert net(x).shape == (1, 10)


@pytest.mark.parametrize("name, size", [("cifar", 32), ("imagenet", 224)])
def test_presets_build_and_run(name, size):
    from ednas.arch.spec import PRESETS

    assert PRESETS[name][1] == size
    model = build_model(parse_arch(PRESETS[name][0]).largest(), 10).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 10)
    net = build_supernet(name, 10).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, size, size)).shape == (1, 10)


@pytest.mark.parametrize("relu", [True, False])
def test_conv_bn_act_is_a_pointwise_conv_then_bn_then_relu_by_default(relu):
    torch.manual_seed(0)
    m = randomize_bn(ConvBNAct(4, 6, relu=relu)).eval()
    assert m.conv.kernel_size == (1, 1) and m.conv.bias is None  # pointwise by default, the bias is BN's
    x = torch.randn(2, 4, 5, 5)
    y = F.batch_norm(F.conv2d(x, m.conv.weight), m.bn.running_mean, m.bn.running_var, m.bn.weight, m.bn.bias, False, 0.0, m.bn.eps)
    out = m(x)
    assert torch.allclose(out, F.relu(y) if relu else y, atol=1e-6)
    assert bool((out < 0).any()) != relu  # the ReLU is there exactly when asked for
    assert torch.allclose(fuse(m)(x), out, atol=1e-5)
