"""Sub-networks scored with their own BN statistics (ednas.nn.bn)."""

import torch

from ednas.data import load_data, make_loader
from ednas.nn import bn_calibration_loader, build_model, build_supernet, inherit_weights, recalibrated_bn, recompute_bn_stats
from ednas.search.gumbel import sample_choices
from ednas.train.metrics import evaluate
from tests.conftest import TINY_SPACE


def _bn_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running_" in k or "num_batches_tracked" in k}


def _trained_supernet(data, steps=15, seed=0):
    """A supernet trained a little under soft Gumbel mixtures: its BN statistics are the mixture's."""
    torch.manual_seed(seed)
    net = build_supernet(TINY_SPACE, data.num_classes)
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    loader = make_loader(data, "train", 32, True, seed=seed)
    it = iter(loader)
    for _ in range(steps):
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        net.train()
        with torch.no_grad():
            sample_choices(net.choices(), 1.0, False, gen)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # an argmax that is not the largest network: skip the second stage's repeat, narrow its expansion
    with torch.no_grad():
        for name, c in net.named_choices():
            c.alpha.zero_()
            c.alpha[0] = 1.0 if not name.endswith("skip") else 0.0
            if name.endswith("skip"):
                c.alpha[1] = 1.0
    for c in net.choices():
        c.g = None
    return net


def test_argmax_network_with_recomputed_bn_equals_the_fixed_network_built_from_its_weights():
    data = load_data("digits")
    net = _trained_supernet(data)
    picks = net.picks()
    assert any(p["skip"] for p in picks) and any(p["expansion"] != max(net.layers[i].spec.expansions) for i, p in enumerate(picks))
    val = make_loader(data, "val", 256, False)
    before = _bn_state(net)

    for c in net.choices():
        c.fixed = c.argmax()
    mixture = evaluate(net, val)  # the mixture's statistics
    with recalibrated_bn(net, bn_calibration_loader(data, 300, seed=3)):
        own = evaluate(net, val)
    for c in net.choices():
        c.fixed = None

    # the supernet's own running statistics are untouched
    after = _bn_state(net)
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k

    fixed = inherit_weights(build_model(net.derive(), data.num_classes), net, picks)
    n = recompute_bn_stats(fixed, bn_calibration_loader(data, 300, seed=3))
    assert n == 300
    ref = evaluate(fixed, val)
    assert abs(own["top1"] - ref["top1"]) <= 1e-6
    assert abs(own["loss"] - ref["loss"]) <= 1e-5
    # and the mixture's statistics do score a different function (what the recalibration is for)
    assert abs(mixture["loss"] - own["loss"]) > 1e-3


def test_recalibrated_bn_restores_modes_and_momentum_and_recomputes_the_average():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(3, momentum=0.3)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), bn, torch.nn.Dropout(0.5))
    model.train()
    batches = [torch.randn(8, 2, 4, 4) + i for i in range(3)]
    with recalibrated_bn(model, batches):
        assert not model.training and not bn.training
        means = [model[0](b).mean(dim=(0, 2, 3)) for b in batches]
        assert torch.allclose(bn.running_mean, torch.stack(means).mean(0), atol=1e-5)  # the plain average over the batches
        assert int(bn.num_batches_tracked) == 3
    assert model.training and bn.training and model[2].training
    assert bn.momentum == 0.3
    assert torch.equal(bn.running_mean, torch.zeros(3)) and int(bn.num_batches_tracked) == 0


def test_bn_calibration_loader_is_a_fixed_seeded_subset():
    data = load_data("digits")
    a = [y for _, y in bn_calibration_loader(data, 100, seed=1)]
    b = [y for _, y in bn_calibration_loader(data, 100, seed=1)]
    c = [y for _, y in bn_calibration_loader(data, 100, seed=2)]
    assert sum(len(y) for y in a) == 100
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not all(torch.equal(u, v) for u, v in zip(a, c))
    subset = list(range(10, 40))
    got = torch.cat([y for _, y in bn_calibration_loader(data, 100, seed=1, indices=subset)])
    assert torch.equal(got, torch.as_tensor(data.labels("train"))[subset].to(got.dtype))  # fewer than n: the whole subset, in order
