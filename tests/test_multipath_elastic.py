"""The multi-path (FBNet-style) supernet on the elastic space: searched widths as masks on each path, exact at the argmax."""

import pytest
import torch
import torch.nn.functional as F

from ednas.arch.spec import parse_arch
from ednas.latency.model import LatencyModel
from ednas.latency.ops import space_ops
from ednas.latency.table import LatencyTable
from ednas.nn import build_model, build_supernet, fuse_supernet, inherit_weights
from tests.conftest import randomize_bn

# depth, width (coupled between stages and within a stage), expansion and kernel choices (tests/test_elastic.py's space)
ELASTIC = "stem_k11_m1_c8_s1 | ir_k3.5_e1_c8 | ir_k3.5_e2.4_c8.16_s2_r3_d1.2.3 | ir_k3.5_e2.4_c16.24_s2_r2_d1.2 | head_c32"


def _pin(net, want: dict, rest: int = 0) -> None:
    """Every choice one-hot (``want[name]``'s candidate, else candidate ``rest``) and pinned."""
    with torch.no_grad():
        for name, c in net.named_choices():
            i = c.candidates.index(want[name]) if name in want else rest % len(c.candidates)
            c.alpha.copy_(F.one_hot(torch.tensor(i), len(c.candidates)).float())
            c.fixed = c.argmax()


def test_fbnet_supernet_builds_on_the_elastic_space_with_the_same_choices_as_the_metakernel_one():
    sp = parse_arch(ELASTIC)
    fb, mk = build_supernet(sp, 10, kind="fbnet"), build_supernet(sp, 10)
    assert [n for n, _ in fb.named_choices()] == [n for n, _ in mk.named_choices()]
    assert [b.candidates() for b in fb.searchable_blocks()] == [b.candidates() for b in mk.searchable_blocks()]


@pytest.mark.parametrize("seed", range(4))
def test_fused_derived_fbnet_network_equals_the_supernets_forward_at_the_argmax(seed):
    torch.manual_seed(seed)
    sp = parse_arch(ELASTIC)
    net = randomize_bn(build_supernet(sp, 10, kind="fbnet"), seed)
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


def test_narrowed_widths_and_dropped_repeats_inherit_the_fbnet_paths_exactly():
    torch.manual_seed(0)
    sp = parse_arch(ELASTIC)
    net = randomize_bn(build_supernet(sp, 10, kind="fbnet"))
    # narrow widths and dropped repeats, and paths other than the first (kernel 5, expansion 4)
    _pin(net, {"L1.width": 8, "L1.depth": 2, "L4.width": 16, "L4.depth": 1}, rest=1)
    picks = net.picks()
    assert [p["skip"] for p in picks] == [False, False, False, True, False, True]
    assert [p.get("width") for p in picks] == [None, 8, 8, 8, 16, 16]
    model = inherit_weights(build_model(net.derive(), 10), net, picks).eval()
    assert model.arch.format() == "stem_k11_m1_c8_s1 | ir_k5_e1_c8 | ir_k5_e4_c8_s2 ir_k5_e4_c8 | ir_k5_e4_c16_s2 | head_c32"
    net.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(net(x), model(x), atol=1e-5)
    # the full-width default is the path itself
    blk = net.blocks[1]
    assert torch.equal(blk.to_fixed(5, 4).project.conv.weight, blk.paths[blk.pairs.index((5, 4))].project.conv.weight)


def test_fbnet_width_masks_follow_the_soft_input_width():
    """A soft input width: each path's depthwise output is weighted channel by channel by P(cin >= channel / e)."""
    torch.manual_seed(0)
    sp = parse_arch(ELASTIC)
    net = build_supernet(sp, 10, kind="fbnet").eval()
    blk = net.blocks[4]  # stage 3's first repeat: input width 8 or 16 (stage 2's choice), expansions 2 and 4
    assert blk.in_widths == (8, 16) and blk.widths == (16, 24)
    w_in = torch.tensor([0.25, 0.75])
    net.blocks[1].width_choice.g = w_in
    g = blk.mix_weights()
    m = g["width_in"] @ blk.imasks_e2
    assert m.shape == (32,) and torch.allclose(m[:16], torch.ones(16)) and torch.allclose(m[16:], torch.full((16,), 0.75))


def test_expected_latency_of_the_fbnet_supernet_equals_the_metakernel_supernets_for_the_same_alphas():
    sp = parse_arch(ELASTIC)
    entries = {op.key: 0.001 + op.macs * 1e-6 for op in space_ops(sp, 32, 10)}
    lm = LatencyModel(sp, 32, 10, LatencyTable(target="synthetic", input_size=32, entries=entries, constant_ms=0.1))
    torch.manual_seed(0)
    fb, mk = build_supernet(sp, 10, kind="fbnet"), build_supernet(sp, 10)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for (nf, cf), (nm, cm) in zip(fb.named_choices(), mk.named_choices()):
            assert nf == nm
            a = torch.randn(len(cf.candidates), generator=g)
            cf.alpha.copy_(a)
            cm.alpha.copy_(a)
    e_fb, e_mk = lm.expected(fb), lm.expected(mk)
    assert float(e_fb.detach()) == pytest.approx(float(e_mk.detach()), rel=1e-6)
    e_fb.backward()
    assert all(c.alpha.grad is not None and torch.isfinite(c.alpha.grad).all() for c in fb.choices())
