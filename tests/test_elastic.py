"""The elastic space: searched depths (a stage keeps its first d repeats) and widths (masked channels), one set of weights."""

import random

import pytest
import torch
import torch.nn.functional as F

from ednas.arch.spec import parse_arch
from ednas.errors import EdnasError
from ednas.latency.model import LatencyModel
from ednas.latency.ops import arch_ops, space_ops
from ednas.latency.table import LatencyTable
from ednas.nn import build_model, build_supernet, fuse_supernet, inherit_weights
from tests.conftest import randomize_bn
from tests.search_helpers import all_assignments

# depth, width (coupled between stages and within a stage), expansion and kernel choices, and a searched last width (the head's input)
ELASTIC = ("stem_k11_m1_c8_s1 | ir_k3.5_e1_c8 | ir_k3.5_e2.4_c8.16_s2_r3_d1.2.3 | ir_k3.5_e2.4_c16.24_s2_r2_d1.2 | head_c32")
# small enough to enumerate (256 networks), with every kind of coupling
SMALL = "stem_k11_m1_c8_s1 | ir_k3_e1_c8 | ir_k3.5_e2.4_c8.16_s2_r2_d1.2 | ir_k3_e2_c16.24_s2_r2_d1.2 | head_c32"


def _table(space, size=32, num_classes=10, **kw):
    entries = {op.key: 0.001 + op.macs * 1e-6 for op in space_ops(space, size, num_classes)}
    return LatencyTable(target="synthetic", input_size=size, entries=entries, **kw)


def test_elastic_grammar_round_trips_and_canonicalises():
    a = parse_arch(ELASTIC)
    assert parse_arch(a.format()) == a
    b = parse_arch("stem_k11_c8_s1 | ir_k5.3_e4.2_c16.8_s2_d3.1.2 | head_c32")
    assert b.format() == "stem_k11_m1_c8_s1 | ir_k3.5_e2.4_c8.16_s2_r3_d1.2.3 | head_c32"  # r defaults to the largest depth
    for fixed in (a.largest(), a.smallest(), a.smallest_kernels()):
        assert fixed.is_fixed and parse_arch(fixed.format()) == fixed
    assert a.smallest().format() == "stem_k11_m1_c8_s1 | ir_k3_e1_c8 | ir_k3_e2_c8_s2 | ir_k3_e2_c16_s2 | head_c32"


@pytest.mark.parametrize("text, fragment", [
    ("stem_k11_c8_s1 | ir_k3_e2_c8_r3_d1.2 | head_c32", "largest must equal r"),
    ("stem_k11_c8_s1 | ir_k3_e2_c8_r2_d2 | head_c32", "at least two values"),
    ("stem_k11_c8_s1 | ir_k3_e2_c8_r2_d1.2_skip | head_c32", "exclude each other"),
    ("stem_k11_c8_s1 | ir_k3_e2_c8.16 | head_c32", "residual sometimes"),  # stride 1 from 8 channels to 8 or 16
])
def test_elastic_grammar_errors_name_the_field(text, fragment):
    with pytest.raises(EdnasError, match=fragment):
        parse_arch(text)


_all_assignments = all_assignments


def test_expected_latency_equals_the_enumerated_expectation_with_depth_width_and_expansion():
    sp = parse_arch(SMALL)
    lm = LatencyModel(sp, 32, 10, _table(sp, constant_ms=0.25))
    torch.manual_seed(0)
    net = build_supernet(sp, 10)
    with torch.no_grad():
        for c in net.choices():
            c.alpha.copy_(torch.randn(len(c.candidates)))
    e_lat = float(lm.expected(net).detach())
    exact, n = 0.0, 0
    for _, p in _all_assignments(net):
        n += 1
        picks = net.picks()
        arch = sp.with_picks(picks)
        by_ops = sum(lm.table.ms(op) for op in arch_ops(arch, 32, 10)) + 0.25
        assert lm.predict(picks) == pytest.approx(by_ops, rel=1e-9)  # the table's sum over the fixed network's own operators
        exact += p * by_ops
    assert n == 256
    assert e_lat == pytest.approx(exact, rel=1e-5)


def test_extremes_are_the_exact_cheapest_and_dearest_networks():
    sp = parse_arch(SMALL)
    lm = LatencyModel(sp, 32, 10, _table(sp))
    net = build_supernet(sp, 10)
    vals = [lm.predict(net.picks()) for _ in _all_assignments(net)]
    assert lm.min_ms == pytest.approx(min(vals)) and lm.max_ms == pytest.approx(max(vals))
    assert lm.predict(lm.extreme_picks(True)) == pytest.approx(min(vals))
    assert lm.predict(sp.smallest()) == pytest.approx(min(vals))
    assert lm.predict(sp.largest()) == pytest.approx(max(vals))


@pytest.mark.parametrize("seed", range(6))
def test_derived_fused_network_equals_the_supernets_masked_forward_at_the_argmax(seed):
    torch.manual_seed(seed)
    sp = parse_arch(ELASTIC)
    net = randomize_bn(build_supernet(sp, 10), seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for c in net.choices():
            c.alpha.copy_(torch.randn(len(c.candidates), generator=g))
    for c in net.choices():
        c.fixed = c.argmax()
    net.eval()
    x = torch.randn(3, 3, 32, 32)
    fused = fuse_supernet(net).eval()
    assert torch.allclose(net(x), fused(x), atol=1e-5)


def test_a_network_with_dropped_repeats_and_narrowed_widths_matches_the_supernet():
    torch.manual_seed(0)
    sp = parse_arch(ELASTIC)
    net = randomize_bn(build_supernet(sp, 10))
    want = {"L1.width": 8, "L1.depth": 2, "L4.width": 16, "L4.depth": 1}
    with torch.no_grad():
        for name, c in net.named_choices():
            c.alpha.copy_(F.one_hot(torch.tensor(c.candidates.index(want[name]) if name in want else 0), len(c.candidates)).float())
            c.fixed = c.argmax()
    picks = net.picks()
    assert [p["skip"] for p in picks] == [False, False, False, True, False, True]
    assert [p.get("width") for p in picks] == [None, 8, 8, 8, 16, 16]  # a pick carries a width only where it is searched
    model = inherit_weights(build_model(net.derive(), 10), net, picks).eval()
    assert model.arch.format() == "stem_k11_m1_c8_s1 | ir_k3_e1_c8 | ir_k3_e2_c8_s2 ir_k3_e2_c8 | ir_k3_e2_c16_s2 | head_c32"
    net.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(net(x), model(x), atol=1e-5)


def test_depth_exits_mix_the_stage_outputs_with_the_depth_weights():
    """A soft depth choice: the stage's output is sum_d w_d x_d over its exits (TF-NAS / NNI), and E[LAT] keeps repeat j with P(d > j)."""
    torch.manual_seed(0)
    sp = parse_arch("stem_k11_m1_c8_s1 | ir_k3_e2_c8_s2_r3_d1.2.3 | head_c0")
    net = build_supernet(sp, 4).eval()
    w = torch.tensor([0.2, 0.3, 0.5])
    depth = net.blocks[0].depth_choice
    depth.g = w
    x = torch.randn(2, 3, 16, 16)
    s = net.stem(x)
    x1 = net.blocks[0](s)
    x2 = net.blocks[1](x1)
    x3 = net.blocks[2](x2)
    assert torch.allclose(net(x), net.head(0.2 * x1 + 0.3 * x2 + 0.5 * x3), atol=1e-6)
    keep = [float(b.mix_weights()["skip"][0]) for b in net.blocks]
    assert keep == pytest.approx([1.0, 0.8, 0.5])


def test_random_picks_of_an_elastic_space_price_as_their_operators():
    sp = parse_arch(ELASTIC)
    lm = LatencyModel(sp, 32, 10, _table(sp))
    net = build_supernet(sp, 10)
    rng = random.Random(0)
    for _ in range(20):
        with torch.no_grad():
            for c in net.choices():
                c.alpha.copy_(F.one_hot(torch.tensor(rng.randrange(len(c.candidates))), len(c.candidates)).float())
        arch = sp.with_picks(net.picks())
        assert lm.predict(arch) == pytest.approx(lm.predict(net.picks()), rel=1e-9)
