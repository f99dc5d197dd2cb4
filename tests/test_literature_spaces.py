"""Spaces from the literature: a plain conv stem, tied kernel/expansion pairs, projection skips (issue 21, item 2)."""

import numpy as np
import pytest
import torch

from ednas.arch.spec import ConvStemSpec, parse_arch
from ednas.errors import ArchError
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
