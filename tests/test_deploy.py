"""Deploy: fused ONNX vs PyTorch, quantization (int8, power-of-two, 16 bit), ``ednas export`` and its errors."""

import json
import re

import numpy as np
import onnx
import pytest
import torch

from ednas import build_model, fuse, parse_arch
from ednas.checkpoint import with_checksum
from ednas.cli import main
from ednas.deploy.pow2 import is_pow2, pow2_scale, quant_scales
from ednas.runtime import export_onnx, ort_session
from tests.conftest import TINY_NET, random_arch, randomize_bn

# every depthwise kernel (1/3/5/7/9), stems 11 and 13, ACNet branches on every kernel that has them
HANDMADE = [
    "stem_k11_m2_c8_s2 | ir_k1_e2_c8 | ir_k3_e3_c16_s2_acb | ir_k5_e2_c16_r2_acb | ir_k7_e6_c24_s2_acb | ir_k9_e2_c24_r2_acb | head_c32",
    "stem_k11_m1_c8_s1 | ir_k9_e1_c16_s2_acb | ir_k3_e3_c16_r2 | head_c0",
]
ARCHS = HANDMADE + [random_arch(seed, fixed=True) for seed in range(8)]
TINY = TINY_NET
FAST = ["--latency-rounds", "2", "--latency-runs", "5"]


def test_arch_set_covers_the_space():
    specs = [parse_arch(a) for a in ARCHS]
    kernels = {l.spec.kernels[0] for s in specs for l in s.layers()}
    assert kernels == {1, 3, 5, 7, 9}
    assert 11 in {s.stem.kernel for s in specs} and len({s.stem.kernel for s in specs}) >= 3
    assert any(l.spec.branches for s in specs for l in s.layers())


@pytest.mark.parametrize("arch", ARCHS)
def test_fused_onnx_matches_pytorch(arch, tmp_path):
    """Trained form (BN, branches) in PyTorch vs fused form in ONNX Runtime: max |diff| <= 1e-4."""
    torch.manual_seed(0)
    model = randomize_bn(build_model(arch, 10), seed=1).eval()
    path = export_onnx(fuse(model), tmp_path / "m.onnx", 32)
    proto = onnx.load(str(path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert {n.op_type for n in proto.graph.node} <= {"Conv", "Relu", "Add", "GlobalAveragePool", "Flatten", "Gemm"}
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        ref = model(x).numpy()
    sess = ort_session(path)
    got = np.concatenate([sess.run(None, {"input": x[i : i + 1].numpy()})[0] for i in range(4)])
    assert np.abs(got - ref).max() <= 1e-4, (arch, np.abs(got - ref).max())


def test_dynamic_batch(tmp_path):
    torch.manual_seed(0)
    model = randomize_bn(build_model(ARCHS[0], 7)).eval()
    path = export_onnx(fuse(model), tmp_path / "m.onnx", 32, dynamic_batch=True)
    x = torch.randn(3, 3, 32, 32)
    got = ort_session(path).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(got - model(x).numpy()).max() <= 1e-4


def test_pow2_scale():
    assert pow2_scale(1.0, 8, True) == 2.0**-6  # 127 * 2^-7 < 1 <= 127 * 2^-6
    assert pow2_scale(127 * 2.0**-7, 8, True) == 2.0**-7  # exactly representable: no rounding up
    assert pow2_scale(1.0, 8, False) == 2.0**-7  # unsigned: 255 * 2^-8 < 1 <= 255 * 2^-7
    assert pow2_scale(1.0, 16, True) == 2.0**-14
    assert is_pow2([pow2_scale(v, b, s) for v in (1e-6, 0.3, 7.0, 1e4, 0.0) for b in (8, 16) for s in (True, False)])
    assert not is_pow2([0.5, 0.3]) and not is_pow2([-0.5]) and not is_pow2([0.0])


# -- a quickly trained tiny model ---------------------------------------------


@pytest.fixture(scope="module")
def trained(tiny_digits_model):
    return tiny_digits_model


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp")
    assert main(["export", "--model", str(trained), "--out", str(out)] + FAST) == 0
    return out


def _record(out):
    return json.loads((out / "export.json").read_text())


def test_export_int8_keeps_accuracy(exported):
    r = _record(exported)
    for key in ("max_abs_diff", "top1_fp32", "top1_quant", "drop", "latency_ms_fp32", "latency_ms_quant", "threads",
                "data", "calib_images", "quant_settings", "onnx", "onnx_quant"):
        assert key in r, key
    assert r["max_abs_diff"] <= 1e-4 and r["check"]["diff_ok"]
    assert r["top1_fp32"] > 80
    assert r["drop"] <= 2.0, r  # int8 per-channel on a trained model keeps accuracy
    assert r["drop"] == pytest.approx(r["top1_fp32"] - r["top1_quant"])
    assert r["threads"] == 1 and r["latency_ms_fp32"] > 0 and r["latency_ms_quant"] > 0
    assert r["data"] == "digits" and r["calib_images"] == 256 and r["n_eval"] == 359
    assert r["quant_settings"]["per_channel"] and r["quant_settings"]["format"] == "QDQ"
    q = onnx.load(str(exported / "model_int8.onnx"))
    onnx.checker.check_model(q)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in q.graph.node}
    meta = {p.key: p.value for p in q.metadata_props}
    assert meta["ednas.arch"] == parse_arch(TINY).format() and json.loads(meta["ednas.mean"]) == r["mean"]
    assert (exported / "config.yaml").is_file()


def test_eval_onnx_matches_export_json(exported, tmp_path):
    r = _record(exported)
    for name, key in (("model.onnx", "top1_fp32"), ("model_int8.onnx", "top1_quant")):
        out = tmp_path / f"{name}.json"
        assert main(["eval", "--model", str(exported / name), "--json", str(out)]) == 0  # no --data: export.json has it
        assert json.loads(out.read_text())["top1"] == pytest.approx(r[key], abs=1e-9), name


def test_pow2_every_scale_is_a_power_of_two(trained, tmp_path):
    assert main(["export", "--model", str(trained), "--out", str(tmp_path), "--pow2"] + FAST) == 0
    r = _record(tmp_path)
    path = tmp_path / "model_int8_pow2.onnx"
    scales = quant_scales(path)
    assert len(scales) > 10
    for name, s in scales.items():
        assert s.size == 1, f"{name}: per-tensor expected, got {s.size} scales"  # TDA4VM: one scale per tensor
        assert is_pow2(s), f"{name}: scale {s} is not a power of two"
    inits = {t.name: t for t in onnx.load(str(path)).graph.initializer}
    zps = [n.input[2] for n in onnx.load(str(path)).graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2]
    assert all(not np.any(onnx.numpy_helper.to_array(inits[z])) for z in zps)  # symmetric: zero points are 0
    assert r["quant_settings"]["all_scales_pow2"] and not r["quant_settings"]["per_channel"]
    assert r["drop"] <= 3.0, r  # sane; BENCHMARKS.md quotes the drop on bigger models


def test_int16_and_mixed_precision(trained, exported, tmp_path):
    from ednas.data import load_data
    from ednas.deploy import CalibrationReader, QuantSettings, calibration_images, onnx_scores, quantize_onnx, top1

    data = load_data("digits")
    images = calibration_images(data, 64)
    fp32 = exported / "model.onnx"
    base = top1(*onnx_scores(fp32, data))
    for settings in (QuantSettings(bits=16), QuantSettings(mixed=True), QuantSettings(bits=8, pow2=True, mixed=True)):
        path = tmp_path / f"{settings.name}.onnx"
        info = quantize_onnx(fp32, path, CalibrationReader(images), settings)
        assert {"int16", "uint16"} & set(info["element_types"]), settings
        assert abs(top1(*onnx_scores(path, data)) - base) <= 3.0, settings
        if settings.mixed:
            assert info["mixed_16bit_layers"] == ["/stem/dw/dw.0/Conv", "/head/fc/Gemm"]
            assert "int8" in info["element_types"]  # the rest stays 8 bit
        if settings.pow2:
            assert info["all_scales_pow2"]


def test_calib_data_option(trained, tmp_path):
    args = ["export", "--model", str(trained), "--out", str(tmp_path), "--calib-data", "digits", "--calib-images", "32", "--eval-images", "64"]
    assert main(args + FAST) == 0
    r = _record(tmp_path)
    assert r["calib_images"] == 32 and r["calib_data"] == "digits" and r["n_eval"] == 64


# -- errors: one line naming the file, exit status 2 ----------------------------


def _fails(args, capsys, *needles):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)
    return err


def test_error_missing_model(tmp_path, capsys):
    missing = tmp_path / "nope" / "model.pt"
    _fails(["export", "--model", str(missing), "--out", str(tmp_path / "o")], capsys, str(missing), "does not exist")


def test_error_corrupt_model(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"this is not a torch file" * 10)
    _fails(["export", "--model", str(bad), "--out", str(tmp_path / "o")], capsys, str(bad), "corrupt")


def test_error_arch_does_not_match_weights(trained, tmp_path, capsys):
    meta = torch.load(trained, weights_only=True)
    meta["arch"] = parse_arch("stem_k11_m1_c8_s2 | ir_k7_e2_c16_s2 | head_c32").format()
    bad = tmp_path / "model.pt"
    torch.save(with_checksum(meta), bad)  # consistent on disk: only the arch is wrong
    _fails(["export", "--model", str(bad), "--out", str(tmp_path / "o")], capsys, str(bad), "does not match its weights")


def test_error_calibration_data_of_wrong_shape(trained, tmp_path, capsys):
    err = _fails(["export", "--model", str(trained), "--out", str(tmp_path / "o"), "--calib-data", "synthetic:classes=10,size=16"],
                 capsys, "calibration data", "synthetic:classes=10,size=16")
    assert re.search(r"3x16x16.*3x32x32", err), err
    assert not (tmp_path / "o" / "model.onnx").exists()  # checked before any work


def test_error_bad_options(trained, tmp_path, capsys):
    _fails(["export", "--model", str(trained), "--out", str(tmp_path), "--quant", "int4"], capsys, "--quant", "int4")
    _fails(["export", "--model", str(trained), "--out", str(tmp_path), "--quant", "none", "--pow2"], capsys, "--pow2")


def test_quant_none(trained, tmp_path):
    assert main(["export", "--model", str(trained), "--out", str(tmp_path), "--quant", "none", "--dynamic-batch"] + FAST) == 0
    r = _record(tmp_path)
    assert r["top1_quant"] is None and r["latency_ms_quant"] is None and r["dynamic_batch"]
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == ["model.onnx"]


def test_imagenet_preset_224_fused_onnx(tmp_path):
    """The 224 x 224 preset (largest candidates) exports and matches at ImageNet size."""
    from ednas import preset

    torch.manual_seed(0)
    model = randomize_bn(build_model(preset("imagenet").largest(), 1000)).eval()
    path = export_onnx(fuse(model), tmp_path / "m.onnx", 224)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ref = model(x).numpy()
    got = ort_session(path).run(None, {"input": x.numpy()})[0]
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))
