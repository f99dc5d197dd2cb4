"""The paper's equations, pinned: Gumbel-softmax (eq. 14-15), the loss forms (eq. 12-13), the merge (eq. 3-5), folding (eq. 1-2), the meta-kernel (eq. 9).

The other test files prove equivalences (a fused network equals its trained
form, E[LAT] with one-hot g equals the table sum, ...); these pin the formulas
themselves, where an equivalence alone would let a wrong constant through.
Written against the mutants ``benchmarks/mutation.py`` found surviving.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from ednas.errors import ConfigError
from ednas.nn import ConvBNAct, MetaKernelConv, RepDWConvBN, default_branches
from ednas.nn.fuse import deploy_model, fuse
from ednas.nn.layers import conv_act, fold_bn
from ednas.nn.metakernel import centred_masks
from ednas.nn.repconv import pad_to
from ednas.search.feedback import FeedbackBlock, betas, merged_names
from ednas.search.gumbel import clear_choices, gumbel_softmax, sample_choices, tau_at
from ednas.search.loss import LatencyLoss
from tests.conftest import TINY_SPACE, randomize_bn

# -- Gumbel-softmax (eq. 14-15) --------------------------------------------------------------------


def test_gumbel_argmax_is_distributed_as_softmax_alpha():
    """Eq. 14-15: the argmax of the relaxed sample is a draw of the categorical softmax(alpha), at any temperature."""
    alpha = torch.tensor([1.0, 0.0, -1.0, 0.5])
    g = torch.Generator().manual_seed(0)
    n = 40000
    for tau in (0.5, 2.0):
        y = gumbel_softmax(alpha.expand(n, 4), tau, False, g)
        freq = torch.bincount(y.argmax(-1), minlength=4).double() / n
        assert torch.allclose(freq, torch.softmax(alpha.double(), 0), atol=0.01), (tau, freq)


def test_gumbel_sample_is_a_tempered_softmax_of_alpha_plus_noise():
    alpha = torch.tensor([0.3, -0.2, 1.1])
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    y = gumbel_softmax(alpha, 0.7, False, g1)
    u = torch.rand(alpha.shape, generator=g2).clamp_(1e-10, 1.0 - 1e-7)
    assert torch.allclose(y, torch.softmax((alpha - torch.log(-torch.log(u))) / 0.7, -1), atol=1e-6)
    assert torch.all(y > 0) and float(y.sum()) == pytest.approx(1.0, abs=1e-6)
    # a lower temperature gives samples nearer one-hot
    g = torch.Generator().manual_seed(1)
    hot = [float(gumbel_softmax(alpha.expand(2000, 3), t, False, g).max(-1).values.mean()) for t in (5.0, 1.0, 0.1)]
    assert hot[0] < hot[1] < hot[2] and hot[2] > 0.95


def test_gumbel_hard_is_one_hot_forward_with_the_soft_gradient():
    alpha = torch.tensor([0.2, 0.9, -0.4], requires_grad=True)
    w = torch.tensor([1.0, 2.0, 3.0])
    soft = gumbel_softmax(alpha, 0.5, False, torch.Generator().manual_seed(3))
    hard = gumbel_softmax(alpha, 0.5, True, torch.Generator().manual_seed(3))
    assert hard.tolist() == F.one_hot(soft.argmax(), 3).float().tolist()
    (ga,) = torch.autograd.grad((hard * w).sum(), alpha)
    (gs,) = torch.autograd.grad((soft * w).sum(), alpha)
    assert torch.allclose(ga, gs, atol=1e-6) and ga.abs().sum() > 0


def test_gumbel_gives_minus_inf_logits_no_weight():
    alpha = torch.tensor([0.0, -math.inf, 0.0])
    y = gumbel_softmax(alpha.expand(500, 3), 1.0, False, torch.Generator().manual_seed(0))
    assert torch.all(y[:, 1] == 0) and torch.allclose(y.sum(-1), torch.ones(500))
    h = gumbel_softmax(alpha.expand(500, 3), 1.0, True, torch.Generator().manual_seed(0))
    assert torch.all(h[:, 1] == 0)


def test_sample_and_clear_choices_and_the_temperature_schedule():
    from ednas import build_supernet

    net = build_supernet(TINY_SPACE, 4)
    sample_choices(net.choices(), 1.0, False, torch.Generator().manual_seed(0))
    assert all(c.g is not None and c.g.shape == c.alpha.shape for c in net.choices())
    a = [c.g.clone() for c in net.choices()]
    sample_choices(net.choices(), 1.0, False, torch.Generator().manual_seed(0))
    assert all(torch.equal(x, c.g) for x, c in zip(a, net.choices()))  # the generator decides the noise
    clear_choices(net.choices())
    assert all(c.g is None for c in net.choices())
    assert [round(tau_at(e, 3, 4.0, 1.0), 6) for e in range(4)] == [4.0, 2.0, 1.0, 1.0]  # 4 * (1/4)^(e/2), held at the end


# -- the loss (eq. 12-13) and dual ascent ------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.0, 0.3, 2.0])
def test_every_loss_form_is_its_formula(lam):
    ce, B = torch.tensor(1.7), 2.5
    for lat in (1.0, 2.5, 4.0):
        L = torch.tensor(lat)
        assert float(LatencyLoss("eq13", lam, B)(ce, L)) == pytest.approx(1.7 + lam * lat / B)
        assert float(LatencyLoss("eq13", lam)(ce, L)) == pytest.approx(1.7 + lam * lat)  # no budget: LAT in ms
        assert float(LatencyLoss("budget", lam, B)(ce, L)) == pytest.approx(1.7 + lam * max(0.0, lat / B - 1))
        assert float(LatencyLoss("auto", lam, B)(ce, L)) == pytest.approx(1.7 + lam * (lat / B - 1))
        assert float(LatencyLoss("fbnet", lam, B, fbnet_a=0.3, fbnet_b=0.5)(ce, L)) == pytest.approx(1.7 * 0.3 * math.log(lat + math.e) ** 0.5)


def test_dual_ascent_moves_lambda_by_the_constraint_and_only_for_auto():
    auto = LatencyLoss("auto", 1.0, 2.0, eta=0.25)
    assert auto.update(3.0) == pytest.approx(1.0 + 0.25 * 0.5)
    assert auto.update(2.0) == pytest.approx(1.125)  # at the budget: unchanged
    assert auto.update(0.0) == pytest.approx(0.875)  # below it: falls
    assert auto.update(0.0) == pytest.approx(0.625) and LatencyLoss("auto", 0.1, 2.0, eta=1.0).update(0.0) == 0.0  # not below 0
    for kind in ("eq13", "budget", "fbnet"):
        assert LatencyLoss(kind, 0.7, 2.0).update(100.0) == 0.7
    other = LatencyLoss("auto", 0.0, 2.0)
    other.load_state_dict(auto.state_dict())
    assert (other.lam, other.lam_low, other.err, other.err_low) == (auto.lam, auto.lam_low, auto.err, auto.err_low)  # the state, not the settings
    assert auto.state_dict() == {"kind": "auto", "lam": auto.lam, "budget_ms": 2.0, "eta": 0.25, "lam_low": 0.0, "low": 0.0,
                                 "err": -1.0, "err_low": 0.0}


def test_band_dual_ascent_moves_both_multipliers_by_their_edges_in_units_of_the_span():
    """auto with a band [low B, B]: lam rises above (1 - m) B, lam_low below (low + m) B, errors in spans; net = hi - lo."""
    B, S, m, eta, kp, low = 2.0, 4.0, 0.025, 0.5, 0.3, 0.9
    f = LatencyLoss("auto", 0.0, B, eta=eta, low=low, span_ms=S, margin=m, kp=kp)
    lam = lam_low = 0.0
    for lat in (3.0, 2.5, 1.0, 1.2, 1.9):
        err, err_low = (lat - (1 - m) * B) / S, ((low + m) * B - lat) / S
        lam, lam_low = max(0.0, lam + eta * err), max(0.0, lam_low + eta * err_low)
        assert f.update(lat) == pytest.approx(lam) and f.lam_low == pytest.approx(lam_low)
        net = max(0.0, lam + kp * err) - max(0.0, lam_low + kp * err_low)
        assert f.net_lam == pytest.approx(net)
        ce, L = torch.tensor(0.8), torch.tensor(1.5)
        assert float(f(ce, L)) == pytest.approx(0.8 + net * (1.5 - B) / S)


def test_loss_errors_name_the_problem():
    with pytest.raises(ConfigError, match="unknown loss 'l2'; expected one of auto, eq13, budget, fbnet"):
        LatencyLoss("l2", 0.0, 1.0)
    for kind in ("auto", "budget"):
        with pytest.raises(ConfigError, match=f"loss '{kind}' needs a latency budget"):
            LatencyLoss(kind, 0.0, None)
    assert LatencyLoss("eq13").scale == 1.0 and LatencyLoss("fbnet").scale == 1.0


# -- the feedback merge (eq. 3-5) ------------------------------------------------------------------------


def test_betas_are_eq4_and_a_zero_loss_does_not_divide_by_zero():
    L = [0.25, 1.0, 4.0]
    t = [math.tanh(1 / l) for l in L]
    assert betas(L).tolist() == pytest.approx([v / sum(t) for v in t])
    assert betas([0.0, 0.0]).tolist() == [0.5, 0.5]
    assert betas([1e-300, 2.0]).tolist() == pytest.approx([1 / (1 + math.tanh(0.5)), math.tanh(0.5) / (1 + math.tanh(0.5))])


def test_merge_of_one_path_or_no_usable_loss_leaves_the_tensors():
    from ednas import build_supernet

    torch.manual_seed(0)
    a = build_supernet(TINY_SPACE, 4)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    assert FeedbackBlock([a], "all")([0.5]).tolist() == [1.0]
    b = build_supernet(TINY_SPACE, 4)
    assert FeedbackBlock([a, b], "all")([float("nan"), -1.0]) is None
    assert all(torch.equal(before[k], v) for k, v in a.state_dict().items())
    with pytest.raises(ConfigError, match="unknown merge 'weights'"):
        merged_names(a, "weights")
    with pytest.raises(ValueError, match="exactly one path"):
        FeedbackBlock([a, b], "all", group=object())


def test_merge_keeps_dtypes_and_merges_in_double_precision():
    from ednas import build_supernet

    torch.manual_seed(0)
    paths = [build_supernet(TINY_SPACE, 4) for _ in range(2)]
    name = next(n for n in merged_names(paths[0], "kernels"))
    sd = [dict(p.named_parameters())[name] for p in paths]
    with torch.no_grad():
        sd[0].fill_(1.0)
        sd[1].fill_(1.0 + 2**-20)  # differences below float32 rounding of a float32 weighted sum
    b = FeedbackBlock(paths, "kernels")([1.0, 3.0])
    expect = (float(b[0]) * 1.0 + float(b[1]) * (1.0 + 2**-20))
    assert sd[0].dtype == torch.float32 and torch.allclose(sd[0].double(), torch.full_like(sd[0], expect, dtype=torch.float64), atol=1e-12)
    assert torch.equal(sd[0], sd[1])


# -- folding (eq. 1-2) and the meta-kernel (eq. 9) -------------------------------------------------------------


def test_fold_bn_is_eq2_with_and_without_affine_and_bias():
    torch.manual_seed(0)
    w, b = torch.randn(4, 2, 3, 3), torch.randn(4)
    bn = randomize_bn(torch.nn.BatchNorm2d(4)).eval()
    sigma = torch.sqrt(bn.running_var + bn.eps)
    fw, fb = fold_bn(w, b, bn)
    assert torch.allclose(fw, w * (bn.weight / sigma).view(4, 1, 1, 1)) and torch.allclose(fb, bn.bias + (b - bn.running_mean) * bn.weight / sigma)
    fw, fb = fold_bn(w, None, bn)
    assert torch.allclose(fb, bn.bias - bn.running_mean * bn.weight / sigma)
    plain = torch.nn.BatchNorm2d(4, affine=False).eval()
    plain.running_mean.copy_(torch.randn(4))
    plain.running_var.copy_(torch.rand(4) + 0.5)
    fw, fb = fold_bn(w, b, plain)
    s = torch.sqrt(plain.running_var + plain.eps)
    assert torch.allclose(fw, w / s.view(4, 1, 1, 1)) and torch.allclose(fb, (b - plain.running_mean) / s)
    x = torch.randn(2, 2, 7, 7)
    assert torch.allclose(F.conv2d(x, fw, fb, padding=1), plain(F.conv2d(x, w, b, padding=1)), atol=1e-5)


def test_fused_modules_keep_geometry_and_activation():
    torch.manual_seed(0)
    m = randomize_bn(ConvBNAct(4, 8, 3, 2, groups=2, relu=False)).eval()
    f = m.fuse()
    conv = f[0]
    assert (conv.kernel_size, conv.stride, conv.padding, conv.groups) == ((3, 3), (2, 2), (1, 1), 2) and len(f) == 1
    assert len(conv_act(conv, torch.nn.ReLU())) == 2 and len(conv_act(conv, None)) == 1
    r = randomize_bn(RepDWConvBN(6, 5, 2, relu=False)).eval()
    fr = r.fuse()
    assert len(fr) == 1 and (fr[0].kernel_size, fr[0].stride, fr[0].padding, fr[0].groups) == ((5, 5), (2, 2), (2, 2), 6)
    x = torch.randn(2, 6, 11, 11)
    assert torch.allclose(fr(x), r(x), atol=1e-5) and (r(x) < 0).any()  # no ReLU: negative outputs kept
    w, b = r.fused_kernel()
    assert torch.allclose(F.conv2d(x, w, b, 2, 2, groups=6), r(x), atol=1e-5)


def test_branch_shapes_padding_and_their_errors():
    assert default_branches(1) == ((1, 1),) and default_branches(3) == ((3, 3), (3, 1), (1, 3), (1, 1))
    assert default_branches(7) == ((7, 7), (7, 1), (1, 7), (5, 5))
    w = torch.arange(6.0).view(1, 1, 3, 2)
    p = pad_to(torch.ones(1, 1, 1, 3), 5)
    assert p.shape == (1, 1, 5, 5) and p[0, 0, 2, 1:4].tolist() == [1, 1, 1] and float(p.sum()) == 3
    assert pad_to(w[..., :1], 3).shape == (1, 1, 3, 3)
    for bad in (((3, 2),), ((7, 7),), ((2, 2),)):
        with pytest.raises(ValueError, match="must be odd and fit in 5x5"):
            RepDWConvBN(4, 5, 1, shapes=bad)


def test_deploy_model_fuses_only_what_needs_it():
    torch.manual_seed(0)
    m = torch.nn.Sequential(randomize_bn(ConvBNAct(3, 4, 3))).eval()
    d = deploy_model(m)
    assert d is not m and not any(isinstance(x, torch.nn.BatchNorm2d) for x in d.modules())
    assert deploy_model(d) is d  # already in deploy form: returned as it is
    f = fuse(m)
    assert not f.training and f is not m and any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())  # the original is untouched


def test_centred_masks_and_the_mixed_weight_of_eq9():
    m = centred_masks((1, 3, 5))
    assert m.shape == (3, 5, 5) and m.sum((1, 2)).tolist() == [1, 9, 25]
    assert m[0, 2, 2] == 1 and m[1, 1:4, 1:4].eq(1).all() and m[1].sum() == 9 and m[1, 0].sum() == 0
    assert centred_masks((3,), 7)[0, 2:5, 2:5].eq(1).all() and centred_masks((3,), 7).sum() == 9
    torch.manual_seed(0)
    mk = MetaKernelConv(4, (7, 3, 5), stride=2)
    assert mk.kernels == (3, 5, 7) and mk.kmax == 7 and mk.weight.shape == (4, 1, 7, 7) and "kernels=(3, 5, 7), stride=2" in repr(mk)
    g = torch.tensor([0.2, 0.3, 0.5])
    want = sum(g[i] * F.pad(mk.candidate_weight(i), [(7 - k) // 2] * 4) for i, k in enumerate(mk.kernels))
    assert torch.allclose(mk.mixed_weight(g), want, atol=1e-7)
    conv = mk.to_conv(1)
    assert (conv.kernel_size, conv.stride, conv.padding, conv.groups) == ((5, 5), (2, 2), (2, 2), 4) and conv.bias is None
    x = torch.randn(1, 4, 9, 9)
    assert mk(x, g).shape == (1, 4, 5, 5)
    for bad in ((2, 3), (0, 3), (-1,)):
        with pytest.raises(ValueError, match="odd and positive"):
            MetaKernelConv(4, bad)


def test_the_band_state_of_the_latency_loss_round_trips_through_a_checkpoint():
    # a resumed search must continue the dual ascent where it stopped: both multipliers and both errors
    kw = dict(kind="auto", lam=0.0, budget_ms=2.0, eta=0.5, low=0.9, kp=0.5, span_ms=0.5)
    a = LatencyLoss(**kw)
    for lat in (2.6, 1.5):  # over the budget, then under the band's lower edge
        a.update(lat)
    assert a.lam > 0 and a.lam_low > 0 and a.err < 0 and a.err_low > 0
    b = LatencyLoss(**kw)
    b.load_state_dict(a.state_dict())
    assert (b.lam, b.lam_low, b.err, b.err_low, b.net_lam) == (a.lam, a.lam_low, a.err, a.err_low, a.net_lam)
    ce, lat = torch.tensor(1.0), torch.tensor(1.7)
    assert float(b(ce, lat)) == float(a(ce, lat))
    assert b.update(1.9) == a.update(1.9) and b.lam_low == a.lam_low
    # a checkpoint written before the band existed holds lambda alone: the band starts at rest
    c = LatencyLoss(**kw)
    c.load_state_dict({"lam": 0.3})
    assert (c.lam, c.lam_low, c.err, c.err_low) == (0.3, 0.0, 0.0, 0.0)
