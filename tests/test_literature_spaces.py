"""Spaces from the literature: a plain conv stem, tied kernel/expansion pairs, projection skips (issue 21, item 2)."""

import itertools
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ednas.arch.spec import ConvStemSpec, parse_arch
from ednas.errors import ArchError
from ednas.latency.model import LatencyModel
from ednas.latency.ops import arch_ops, space_ops
from ednas.latency.table import LatencyTable
from ednas.nn import ConvStem, build_model, build_supernet, count_macs, fuse, fuse_supernet, inherit_weights
from ednas.runtime import onnx_bytes, ort_session
from tests.conftest import randomize_bn

CONV_STEM = "conv_k3_c16_s2 | ir_k3_e1_c16 | ir_k5_e6_c24_s2 ir_k3_e6_c24 | head_c64"


def _table(space, size=32, num_classes=10, **kw):
    entries = {op.key: 0.001 + op.macs * 1e-6 for op in space_ops(space, size, num_classes)}
    return LatencyTable(target="synthetic", input_size=size, entries=entries, **kw)


def _onnx_matches_torch(model, size=32, seed=0):
    """The fused model exported to ONNX computes what torch computes (batch 1)."""
    model = model.eval()
    sess = ort_session(onnx_bytes(model, size))
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


# -- the conv stem ------------------------------------------------------------------------------


def test_conv_stem_round_trips_with_defaults_and_builds_fuses_and_exports():
    a = parse_arch(CONV_STEM)
    assert a.stem == ConvStemSpec(kernel=3, out=16, stride=2)
    assert parse_arch(a.format()) == a and a.format() == CONV_STEM
    assert parse_arch("conv_c16 | ir_k3_e1_c16 | head_c8").stem == ConvStemSpec(3, 16, 2)  # k3, stride 2 by default
    torch.manual_seed(0)
    model = randomize_bn(build_model(a, 10)).eval()
    assert isinstance(model.stem, ConvStem)
    fused = fuse(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model(x), fused(x), atol=1e-5)
    _onnx_matches_torch(fused)
    # MACs: the stem is a dense 3x3 conv from 3 to 16 channels at stride 2 (16 x 16 outputs)
    _, rows = count_macs(fused, 32)
    assert rows[0].macs == 16 * 16 * 16 * 3 * 3 * 3 and rows[0].kernel == (3, 3)


def test_conv_stem_is_priced_as_one_dense_conv_and_by_the_analytic_profiles():
    from ednas.latency.targets import analytic_table, load_profile, op_class

    a = parse_arch(CONV_STEM)
    ops = arch_ops(a, 32, 10)
    assert ops[0].key == "conv_i32x32x3_o16_k3_s2_g1_e1_f32" and ops[0].relu
    assert ops[0].macs == count_macs(fuse(build_model(a, 10)), 32)[1][0].macs
    assert op_class(ops[0]) == "conv"
    prof = load_profile("tda4vm")
    table = analytic_table(prof, space_ops(a, 32, 10, prof.dtype), 32, 10)
    assert table.ms(space_ops(a, 32, 10, prof.dtype)[0]) > 0


def test_conv_stem_supernet_inherits_its_stem_and_fuses_to_the_pinned_forward():
    torch.manual_seed(0)
    sp = parse_arch("conv_k5_c16_s1 | ir_k3.5_e3.6_c24_s2 | head_c32")
    net = randomize_bn(build_supernet(sp, 10))
    assert isinstance(net.stem, ConvStem)
    for c in net.choices():
        c.fixed = c.argmax()
    net.eval()
    model = inherit_weights(build_model(net.derive(), 10), net).eval()
    assert torch.equal(model.stem.conv.conv.weight, net.stem.conv.conv.weight)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(net(x), fuse_supernet(net)(x), atol=1e-5)


@pytest.mark.parametrize("text, fragment", [
    ("conv_k4_c16 | ir_k3_e6_c8 | head_c8", "stage 0 block 0 ('conv_k4_c16'): field 'k' = 4: the conv stem's kernel must be one of 1, 3, 5, 7"),
    ("conv_k9_c16 | ir_k3_e6_c8 | head_c8", "field 'k' = 9"),
    ("conv_k3_c16_s3 | ir_k3_e6_c8 | head_c8", "field 's' = 3"),
    ("conv_k3_s2 | ir_k3_e6_c8 | head_c8", "field 'c' is missing"),
    ("conv_k3_m2_c16 | ir_k3_e6_c8 | head_c8", "unknown field 'm2'"),
])
def test_bad_conv_stems_are_one_clear_error_naming_the_field(text, fragment):
    with pytest.raises(ArchError) as e:
        parse_arch(text)
    assert fragment in str(e.value)


# -- tied kernel / expansion pairs ----------------------------------------------------------------

TIED = "conv_k3_c8_s1 | ir_k3.5_e3.6_c16_s2_tied | ir_k3.5.7_e2.4.2_c16_tied | head_c32"


def _all_assignments(net):
    """Every joint assignment of the supernet's choices, pinned one-hot, with its probability under the original softmax(alpha)."""
    choices = net.choices()
    saved = [c.alpha.detach().clone() for c in choices]
    try:
        for idx in itertools.product(*(range(len(c.candidates)) for c in choices)):
            p = 1.0
            with torch.no_grad():
                for c, a, i in zip(choices, saved, idx):
                    p *= float(F.softmax(a, -1)[i])
                    c.alpha.copy_(F.one_hot(torch.tensor(i), len(c.candidates)).float())
            yield idx, p
    finally:
        with torch.no_grad():
            for c, a in zip(choices, saved):
                c.alpha.copy_(a)


def _expected_equals_enumeration(sp, kind="metakernel", n_networks=None, seed=0):
    lm = LatencyModel(sp, 32, 10, _table(sp, constant_ms=0.25))
    torch.manual_seed(seed)
    net = build_supernet(sp, 10, kind=kind)
    with torch.no_grad():
        for c in net.choices():
            c.alpha.copy_(torch.randn(len(c.candidates)))
    e_lat = lm.expected(net)
    assert e_lat.requires_grad
    exact, n, seen = 0.0, 0, set()
    for _, p in _all_assignments(net):
        n += 1
        picks = net.picks()
        arch = sp.with_picks(picks)
        seen.add(arch.format())
        by_ops = sum(lm.table.ms(op) for op in arch_ops(arch, 32, 10)) + 0.25
        assert lm.predict(picks) == pytest.approx(by_ops, rel=1e-9)  # the table's sum over the fixed network's own operators
        assert lm.predict(arch) == pytest.approx(by_ops, rel=1e-9)
        exact += p * by_ops
    if n_networks is not None:
        assert n == n_networks and len(seen) == n_networks
    assert float(e_lat.detach()) == pytest.approx(exact, rel=1e-5)
    return lm, net


def test_tied_grammar_pairs_by_position_and_round_trips():
    a = parse_arch("stem_k11_c8_s1 | ir_k5.3_e6.3_c16_s2_tied | ir_k3.5.7_e6.3.6_c16_tied_acb | head_c32")
    b0, b1 = a.stages[0][0], a.stages[1][0]
    assert b0.pairs == ((3, 3), (5, 6)) and b0.kernels == (3, 5) and b0.expansions == (3, 6)
    assert b1.pairs == ((3, 6), (5, 3), (7, 6)) and b1.expansions == (3, 6)  # two kernels may share an expansion
    assert a.format() == "stem_k11_m1_c8_s1 | ir_k3.5_e3.6_c16_s2_tied | ir_k3.5.7_e6.3.6_c16_tied_acb | head_c32"
    assert parse_arch(a.format()) == a
    # the extremes take whole pairs (the largest expansion's, then kernel), never a product the space does not hold
    assert a.largest().format() == "stem_k11_m1_c8_s1 | ir_k5_e6_c16_s2 | ir_k7_e6_c16_acb | head_c32"
    assert a.smallest().format() == "stem_k11_m1_c8_s1 | ir_k3_e3_c16_s2 | ir_k5_e3_c16_acb | head_c32"
    for fixed in (a.largest(), a.smallest(), a.smallest_kernels(), a.expanded()):
        assert parse_arch(fixed.format()) == fixed
    with pytest.raises(ArchError, match="pick k3 e6 c16 is not among k3_e3 k5_e6"):
        a.with_picks([{"kernel": 3, "expansion": 6, "skip": False}, {"kernel": 3, "expansion": 6, "skip": False}])


@pytest.mark.parametrize("text, fragment", [
    ("stem_k11_c8 | ir_k3.5_e3_c16_tied | head_c8", "('ir_k3.5_e3_c16_tied'): field 'tied': pairs the i-th kernel with the i-th expansion, "
                                                     "but 'k' has 2 values (3.5) and 'e' has 1 (3)"),
    ("stem_k11_c8 | ir_k3.5_e3.6.4_c16_tied | head_c8", "field 'tied'"),
    ("stem_k11_c8 | ir_k3.5_c16_tied | head_c8", "'e' has 1 (6)"),  # the default expansion is one value
    ("stem_k11_c8 | ir_k3_e3_c16_tied | head_c8", "field 'tied': needs two or more"),
    ("stem_k11_c8 | ir_k3.3_e3.6_c16_tied | head_c8", "field 'k' = '3.3' repeats a value: tied kernels must be distinct"),
    ("stem_k11_c8 | ir_k3.5_e1.6_c16_tied | head_c8", "field 'e' = 1.6"),
])
def test_bad_tied_lists_are_one_clear_error_naming_the_field(text, fragment):
    with pytest.raises(ArchError) as e:
        parse_arch(text)
    assert fragment in str(e.value)


def test_a_tied_block_has_one_choice_whose_weights_drive_kernel_and_expansion():
    torch.manual_seed(0)
    net = build_supernet(parse_arch(TIED), 10)
    blk = net.searchable_blocks()[0]
    assert [n for n, _ in net.named_choices()] == ["L0.kernel", "L1.kernel"]  # no expansion choice
    assert blk.candidates()["kernel"] == (3, 5) and blk.candidates()["expansion"] == (3, 6)
    blk.kernel_choice.g = torch.tensor([0.3, 0.7])
    g = blk.mix_weights()
    assert torch.equal(g["expansion"], torch.tensor([0.3, 0.7]))  # the same vector
    assert torch.equal(blk.joint_weights(g), torch.tensor([[0.3, 0.0], [0.0, 0.7]]))  # not the product g_k g_e
    blk.kernel_choice.g = None
    with torch.no_grad():
        blk.kernel_choice.alpha.copy_(torch.tensor([0.0, 1.0]))
    assert blk.picked() == {"kernel": 5, "expansion": 6, "skip": False}
    # the second block: kernels 3, 5, 7 with expansions 2, 4, 2 (3 and 7 share one): the expansion weight is their sum
    b2 = net.searchable_blocks()[1]
    b2.kernel_choice.g = torch.tensor([0.2, 0.5, 0.3])
    assert torch.allclose(b2.mix_weights()["expansion"], torch.tensor([0.5, 0.5]))


@pytest.mark.parametrize("kind", ["metakernel", "darts", "fbnet"])
def test_expected_latency_with_tied_pairs_equals_the_enumeration(kind):
    _expected_equals_enumeration(parse_arch(TIED), kind, n_networks=6)


def test_tied_pairs_stay_tied_in_random_search_validation_draws_and_the_budget_fit():
    from ednas.latency.validate import sample_picks
    from ednas.search.derive import fit_budget, layer_probs
    from ednas.search.random import _draw

    sp = parse_arch(TIED)
    layers = list(sp.layers())
    lm = LatencyModel(sp, 32, 10, _table(sp))
    rng = random.Random(0)
    draws = [_draw(sp, lm, rng) for _ in range(50)] + sample_picks(sp, 6, 0)
    for picks in draws:
        assert all((p["kernel"], p["expansion"]) in l.spec.pairs for l, p in zip(layers, picks))
    assert len({repr(p) for p in draws}) == 6  # every network of the space, and only those
    net = build_supernet(sp, 10)
    big = lm.extreme_picks(False)
    budget = lm.min_ms + 0.01 * (lm.max_ms - lm.min_ms)
    picks, changes = fit_budget(big, layers, layer_probs(net), lm, budget, "repair")
    assert lm.predict(picks) <= budget and changes
    assert all((p["kernel"], p["expansion"]) in l.spec.pairs for l, p in zip(layers, picks))
    assert all(c["kind"] == "kernel" and "expansion" in c["with"] for c in changes)  # a move changes the pair
