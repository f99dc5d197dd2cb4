"""ednas.nn.dwconv: the rewritten CPU weight gradient of large depthwise convolutions.

The claims: its gradients are autograd's of ``F.conv2d`` (any shape, stride,
padding, bias, memory layout), every large depthwise conv of ednas's networks
trains through it while the 3x3 ones keep oneDNN's, and nothing outside a CPU
training step sees it (export, no grad, the off switch).
"""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ednas import build_model, build_supernet, preset
from ednas.arch.spec import parse_arch
from ednas.nn import MetaKernelConv
from ednas.nn.dwconv import MIN_KERNEL, DepthwiseConv2d, depthwise_conv2d, depthwise_weight_grad, onednn_weight_grad, uses_rewrite

REWRITTEN = "_DepthwiseConvBackward"


def _grads(f, x, w, b):
    x, w = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    b = None if b is None else b.detach().clone().requires_grad_()
    y = f(x, w, b)
    gy = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)  # a fixed, non-uniform upstream gradient
    y.backward(gy)
    return y, x.grad, w.grad, None if b is None else b.grad, y.grad_fn


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 5), h=st.integers(1, 12), w=st.integers(1, 12),
       kh=st.sampled_from([1, 3, 5, 7, 9, 11]), kw=st.sampled_from([1, 3, 5, 7, 11]), stride=st.sampled_from([1, 2, 3]),
       centred=st.booleans(), bias=st.booleans(), channels_last=st.booleans(), seed=st.integers(0, 2**16))
def test_gradients_equal_autograds_of_f_conv2d_for_any_shape_stride_padding_and_layout(n, c, h, w, kh, kw, stride, centred, bias,
                                                                                       channels_last, seed):
    pad = (kh // 2, kw // 2) if centred else (0, 0)
    if h + 2 * pad[0] < kh or w + 2 * pad[1] < kw:
        return  # no output
    if max(kh, kw) < MIN_KERNEL[min(stride, 2)]:
        kh = kw = 7 if stride > 1 else 5
        pad = (kh // 2, kw // 2)
        h, w = max(h, kh), max(w, kw)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    wt = torch.randn(c, 1, kh, kw, generator=gen, dtype=torch.float64)
    b = torch.randn(c, generator=gen, dtype=torch.float64) if bias else None
    ours = _grads(lambda x, w, b: depthwise_conv2d(x, w, b, stride, pad), x, wt, b)
    ref = _grads(lambda x, w, b: F.conv2d(x, w, b, stride, pad, 1, c), x, wt, b)
    assert type(ours[4]).__name__ == REWRITTEN  # the rewrite ran, not a fallback
    for a, r in zip(ours[:4], ref[:4]):
        if r is None:
            assert a is None
        else:
            torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)


def test_the_weight_gradient_passes_gradcheck_at_stride_two_with_a_non_square_kernel():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 7, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: depthwise_conv2d(x, w, b, 2, (3, 2)), (x, w, b))


def test_the_weight_gradient_alone_matches_onednns_in_float32_on_a_supernet_sized_layer():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 48, 16, 16, generator=gen).contiguous(memory_format=torch.channels_last)
    w = torch.randn(48, 1, 7, 7, generator=gen)
    g = torch.randn(8, 48, 16, 16, generator=gen).contiguous(memory_format=torch.channels_last)
    ref = torch.ops.aten.convolution_backward(g, x, w, None, [1, 1], [3, 3], [1, 1], False, [0, 0], 48, [False, True, False])[1]
    ours = depthwise_weight_grad(x, g, (7, 7), (1, 1), (3, 3))
    assert ours.shape == ref.shape == (48, 1, 7, 7)
    assert float((ours - ref).abs().max() / ref.abs().max()) < 1e-5


def _backward_kinds(net: torch.nn.Module, x: torch.Tensor) -> list[tuple[int, int, str]]:
    """(kernel, stride, grad_fn class) of every depthwise conv's output in one training forward of ``net``."""
    kinds = []

    def hook(mod, inp, out):
        k = mod.kmax if isinstance(mod, MetaKernelConv) else mod.kernel_size[0]
        s = mod.stride if isinstance(mod.stride, int) else mod.stride[0]
        kinds.append((k, s, type(out.grad_fn).__name__))

    hooks = [m.register_forward_hook(hook) for m in net.modules()
             if isinstance(m, MetaKernelConv) or (isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels == m.out_channels > 1)]
    net.train()(x)
    for h in hooks:
        h.remove()
    return kinds


MIXED = "stem_k11_m1_c16_s1 | ir_k5_e1_c16 | ir_k5_e4_c24_s2 ir_k3_e4_c24 ir_k5_e4_c24 | ir_k7_e4_c32_s2 | head_c64"


@pytest.mark.parametrize("which", ["supernet", "largest", "uniform", "mixed"])
def test_every_large_depthwise_conv_of_ednas_networks_trains_through_the_rewrite_and_3x3_ones_through_onednn(which):
    from ednas.arch.scale import uniform_arch

    space = preset("cifar")
    net = {"supernet": lambda: build_supernet(space, 10), "largest": lambda: build_model(space.largest(), 10),
           "uniform": lambda: build_model(uniform_arch(space), 10), "mixed": lambda: build_model(parse_arch(MIXED), 10)}[which]()
    kinds = _backward_kinds(net, torch.randn(2, 3, 32, 32))
    assert len(kinds) >= (6 if which == "mixed" else 11)  # the stem and every block's depthwise
    for k, s, fn in kinds:  # the measured rule, written out (not read from MIN_KERNEL): 5x5 at stride 1, 7x7 and up at any
        want = REWRITTEN if k >= 7 or (k == 5 and s == 1) else "ConvolutionBackward0"
        assert fn == want, (k, s, fn)
    if which == "mixed":  # every case of the rule was met: 5x5 at strides 1 and 2, 3x3, 7x7 at stride 2, the stem's 11x11
        assert {(5, 1), (5, 2), (3, 1), (7, 2), (11, 1)} <= {(k, s) for k, s, _ in kinds}
    assert any(fn == REWRITTEN for _, _, fn in kinds)  # the stem's 11x11 at least


def test_the_off_switch_and_evaluation_use_pytorchs_own_convolution():
    net = build_model(preset("cifar").largest(), 10)
    x = torch.randn(2, 3, 32, 32)
    with onednn_weight_grad():
        assert {fn for _, _, fn in _backward_kinds(net, x)} == {"ConvolutionBackward0"}
    assert REWRITTEN in {fn for _, _, fn in _backward_kinds(net, x)}  # and back on after the block
    with torch.no_grad():
        conv = DepthwiseConv2d(4, 7, 1, 3)
        assert not uses_rewrite(torch.randn(1, 4, 8, 8), conv.weight)


def test_a_network_with_rewritten_convs_exports_to_plain_onnx_convs_while_its_weights_require_grad():
    onnx = pytest.importorskip("onnx")
    net = build_model(preset("cifar").largest(), 10).eval()
    assert all(p.requires_grad for p in net.parameters())
    buf = io.BytesIO()
    torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), buf, dynamo=False, opset_version=17)
    ops = {n.op_type for n in onnx.load_from_string(buf.getvalue()).graph.node}
    assert "Conv" in ops and not any("Python" in op or "DepthwiseConv" in op for op in ops), ops


def test_a_depthwise_conv2d_holds_the_state_dict_of_the_nn_conv2d_it_replaces():
    plain = torch.nn.Conv2d(6, 6, 5, 2, 2, groups=6, bias=True)
    ours = DepthwiseConv2d(6, 5, 2, 2, bias=True)
    ours.load_state_dict(plain.state_dict())
    x = torch.randn(1, 6, 9, 9)
    torch.testing.assert_close(ours(x), plain(x))


def test_a_torchscript_trace_of_a_network_whose_weights_require_grad_records_aten_convolutions_not_a_python_op():
    net = build_model(preset("cifar").largest(), 10)  # fvcore counts MACs from such a trace: a Python op would go uncounted
    traced = torch.jit.trace(net, torch.randn(1, 3, 32, 32), check_trace=False)
    kinds = {n.kind() for n in traced.inlined_graph.nodes()}
    assert "aten::_convolution" in kinds and "prim::PythonOp" not in kinds
