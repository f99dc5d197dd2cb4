"""Spaces from the literature: a plain conv stem, tied kernel/expansion pairs, projection skips (issue 21, item 2)."""

import random

import numpy as np
import pytest
import torch

from ednas.arch.spec import ConvStemSpec, parse_arch
from ednas.errors import ArchError
from ednas.latency.model import LatencyModel
from ednas.latency.ops import arch_ops, space_ops
from ednas.latency.table import LatencyTable
from ednas.nn import ConvStem, build_model, build_supernet, count_macs, fuse, fuse_supernet, inherit_weights
from ednas.runtime import onnx_bytes, ort_session
from tests.conftest import randomize_bn
from tests.search_helpers import all_assignments

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


_all_assignments = all_assignments


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


# -- projection skips -----------------------------------------------------------------------------

# a conv stem, tied pairs with a projection skip, an identity skip, and a projection skip on a searched width
LIT = "conv_k3_c8_s2 | ir_k3.5_e3.6_c16_s2_tied_skip | ir_k3.5_e2.4_c16_skip | ir_k3_e2_c24.32_s2_skip | head_c32"


def test_skip_on_a_block_that_changes_shape_is_a_projection_and_derives_a_proj_block():
    sp = parse_arch(LIT)
    layers = list(sp.layers())
    assert [(l.can_skip, l.skip_proj) for l in layers] == [(True, True), (True, False), (True, True)]
    # a block of several repeats keeps its skip for the repeats that can be identities (its first stays)
    r2 = list(parse_arch("stem_k11_c8_s1 | ir_k3_e2_c16_s2_r2_skip | head_c8").layers())
    assert [(l.can_skip, l.skip_proj) for l in r2] == [(False, False), (True, False)]
    picks = [{"kernel": 5, "expansion": 6, "skip": True}, {"kernel": 3, "expansion": 2, "skip": True},
             {"kernel": 3, "expansion": 2, "skip": True, "width": 24}]
    d = sp.with_picks(picks)
    assert d.format() == "conv_k3_c8_s2 | proj_c16_s2 | proj_c24_s2 | head_c32"  # the identity is dropped, the projections stay
    assert d.is_fixed and parse_arch(d.format()) == d
    assert [(l.cin, l.spec.out, l.stride, l.residual) for l in d.layers()] == [(8, 16, 2, False), (16, 24, 2, False)]
    assert parse_arch("conv_k3_c8 | proj_c8 | head_c8").stages[0][0].stride == 1  # stride 1 by default, and not a residual
    assert not next(parse_arch("conv_k3_c8 | proj_c8 | head_c8").layers()).residual
    # the training recipe's with_picks (ACNet branches) passes a proj block through
    assert d.with_picks([{"kernel": 1, "expansion": 1}] * 2, branches=True) == d


@pytest.mark.parametrize("text, fragment", [
    ("conv_k3_c8 | ir_k3.5_e2_c16_s2_skip proj_c16 | head_c8", "stage 1 block 1 ('proj_c16'): a 'proj' block belongs to a fixed (derived) network"),
    ("conv_k3_c8 | proj_c16_k3 | head_c8", "('proj_c16_k3'): unknown field 'k3'; valid fields of 'proj': c<n>, s<n>"),
    ("conv_k3_c8 | proj_s2 | head_c8", "('proj_s2'): field 'c' is missing"),
    ("conv_k3_c8 | proj_c16_s3 | head_c8", "field 's' = 3"),
])
def test_bad_projection_blocks_are_one_clear_error(text, fragment):
    with pytest.raises(ArchError) as e:
        parse_arch(text)
    assert fragment in str(e.value)


@pytest.mark.parametrize("kind", ["metakernel", "darts", "fbnet"])
def test_a_projection_skip_mixes_the_block_with_a_1x1_projection(kind):
    torch.manual_seed(0)
    sp = parse_arch("conv_k3_c8_s1 | ir_k3_e2_c16_s2_skip | head_c8")
    net = randomize_bn(build_supernet(sp, 4, kind=kind)).eval()
    blk = net.searchable_blocks()[0]
    assert blk.proj is not None and blk.proj.conv.kernel_size == (1, 1) and blk.proj.conv.stride == (2, 2) and blk.proj.act is None
    x = torch.randn(2, 8, 16, 16)
    blk.skip_choice.g = torch.tensor([1.0, 0.0])
    y_block = blk(x)
    blk.skip_choice.g = torch.tensor([0.3, 0.7])
    assert torch.allclose(blk(x), 0.3 * y_block + 0.7 * blk.proj(x), atol=1e-6)


@pytest.mark.parametrize("kind", ["metakernel", "darts", "fbnet"])
def test_expected_latency_with_tied_pairs_and_projection_skips_equals_the_enumeration(kind):
    sp = parse_arch(LIT)
    lm, _ = _expected_equals_enumeration(sp, kind)
    # the skip candidate of a projection skip costs its proj operator, of an identity nothing
    table = lm.layer_table(0)
    proj = [op for op in space_ops(sp, 32, 10) if op.type == "proj" and op.stride == 2 and op.cin == 8]
    assert len(proj) == 1 and float(table[0, 0, 1, 0, 0]) == pytest.approx(lm.table.ms(proj[0]))
    assert float(lm.layer_table(1)[..., 1, :, :].abs().sum()) == 0.0


def test_extremes_weigh_a_projection_against_the_block():
    sp = parse_arch(LIT)
    net = build_supernet(sp, 10)
    for dear_proj in (False, True):
        entries = {op.key: (5.0 if dear_proj and op.type == "proj" else 0.001 + op.macs * 1e-6) for op in space_ops(sp, 32, 10)}
        lm = LatencyModel(sp, 32, 10, LatencyTable(target="synthetic", input_size=32, entries=entries))
        vals = [lm.predict(net.picks()) for _ in _all_assignments(net)]
        assert lm.min_ms == pytest.approx(min(vals)) and lm.max_ms == pytest.approx(max(vals))
        assert lm.predict(lm.extreme_picks(True)) == pytest.approx(min(vals))
        # a cheap projection is in the cheapest network, a dear one in the dearest
        assert lm.extreme_picks(cheapest=not dear_proj)[0]["skip"] and not lm.extreme_picks(cheapest=dear_proj)[0]["skip"]


def test_the_budget_fit_can_bring_back_a_block_whose_projection_is_dearer():
    from ednas.search.derive import fit_budget, layer_probs

    sp = parse_arch(LIT)
    layers = list(sp.layers())
    entries = {op.key: (5.0 if op.type == "proj" else 0.001 + op.macs * 1e-6) for op in space_ops(sp, 32, 10)}
    lm = LatencyModel(sp, 32, 10, LatencyTable(target="synthetic", input_size=32, entries=entries))
    picks = [{"kernel": 3, "expansion": 3, "skip": True}, {"kernel": 3, "expansion": 2, "skip": False},
             {"kernel": 3, "expansion": 2, "skip": False, "width": 24}]
    budget = lm.predict(picks) - 1.0
    fitted, changes = fit_budget(picks, layers, layer_probs(build_supernet(sp, 10)), lm, budget, "repair")
    assert lm.predict(fitted) <= budget
    assert not fitted[0]["skip"] and any(c["layer"] == 0 and c["kind"] == "skip" and c["to"] is False for c in changes)
    assert (fitted[0]["kernel"], fitted[0]["expansion"]) in layers[0].spec.pairs


def test_projection_ops_are_priced_by_the_analytic_profiles_and_timed_by_the_board_graphs():
    from ednas.latency.targets import analytic_table, load_profile, op_class
    from ednas.runtime import board

    sp = parse_arch(LIT)
    proj = [op for op in space_ops(sp, 32, 10) if op.type == "proj"]
    assert proj and all(op.key.startswith("proj_") and not op.relu and op_class(op) == "pointwise" for op in proj)
    prof = load_profile("tda4vm")
    table = analytic_table(prof, space_ops(sp, 32, 10, prof.dtype), 32, 10)
    assert all(table.ms(op) > 0 for op in space_ops(sp, 32, 10, prof.dtype) if op.type == "proj")
    # the sandwich graph of a proj key: the operator between two channel-wise scales, f32 and i8
    for key in (proj[0].key, proj[0].key.replace("_f32", "_i8")):
        model_id = board.plan(key)[0][0]
        data, shape = board.build(model_id)
        sess = ort_session(data)
        out = sess.run(None, {sess.get_inputs()[0].name: np.zeros(shape, np.float32)})[0]
        assert out.shape == (1, proj[0].cout, proj[0].ho, proj[0].wo)


@pytest.mark.parametrize("seed", range(4))
def test_derived_fused_network_equals_the_supernet_at_the_argmax_and_exports(seed):
    """A space with a conv stem, tied choices and projection skips: derive, inherit, fuse, export."""
    torch.manual_seed(seed)
    sp = parse_arch(LIT)
    net = randomize_bn(build_supernet(sp, 10), seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, c in net.named_choices():
            c.alpha.copy_(torch.randn(len(c.candidates), generator=g))
            if seed % 2 == 0 and name.endswith("skip"):  # half the seeds: every projection taken
                c.alpha.copy_(torch.tensor([0.0, 1.0]))
    for c in net.choices():
        c.fixed = c.argmax()
    net.eval()
    arch = net.derive()
    assert parse_arch(arch.format()) == arch
    if seed % 2 == 0:
        assert "proj_c16_s2" in arch.format()
    x = torch.randn(3, 3, 32, 32)
    fused = fuse_supernet(net).eval()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert torch.allclose(net(x), fused(x), atol=1e-5)
    model = inherit_weights(build_model(arch, 10), net).eval()
    assert torch.allclose(net(x), model(x), atol=1e-5)
    _onnx_matches_torch(fused, seed=seed)
    # MACs of the fused network: what its operators in the latency table count
    total, _ = count_macs(fused, 32)
    assert total == sum(op.macs for op in arch_ops(arch, 32, 10) if op.is_conv or op.type == "fc")


def test_the_fbnet_like_space_of_the_docs_parses_and_prices():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "arch-spec.md").read_text()
    block = doc.split("### Spaces from the literature", 1)[1].split("```", 2)[1]
    sp = parse_arch(" ".join(block.split()))
    layers = list(sp.layers())
    assert len(layers) == 22 and sum(l.skip_proj for l in layers) == 6 and all(l.can_skip for l in layers)
    assert isinstance(sp.stem, ConvStemSpec) and sp.head.out == 1984
    assert {op.type for op in space_ops(sp, 224, 1000)} >= {"conv", "proj", "expand", "dw", "project", "add"}


def test_a_derived_network_with_a_conv_stem_and_projections_saves_loads_and_reads_its_image_channels(tmp_path):
    from ednas.deploy.export import _in_channels
    from ednas.nn.files import load_model, save_model

    torch.manual_seed(0)
    model = randomize_bn(build_model("conv_k3_c8_s2 | proj_c16_s2 ir_k3_e2_c16 | proj_c24_s2 | head_c32", 10)).eval()
    save_model(tmp_path / "m.pt", model, input_size=32)
    loaded, meta = load_model(tmp_path / "m.pt")
    x = torch.randn(2, 3, 32, 32)
    assert meta["arch"] == model.arch.format() and torch.equal(loaded.eval()(x), model(x))
    assert _in_channels(loaded) == 3 and _in_channels(fuse(loaded)) == 3
    assert _in_channels(build_model("stem_k11_m2_c8_s2 | ir_k3_e2_c8 | head_c8", 4)) == 3
