"""LiteRT (.tflite): export fp32 and full-integer int8, parity with PyTorch, accuracy, ``ednas eval``, and the refusals.

Needs the litert extra (``pip install -e ".[litert]"``); without it these
tests skip, except the one that checks what a user without it is told.
CI installs the extra in a second step and runs this file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ednas import build_model, fuse
from ednas.cli import main
from ednas.runtime import interface as litert_interface
from ednas.runtime import litert
from tests.conftest import randomize_bn

needs_litert = pytest.mark.skipif(not litert.available(), reason="the litert extra is not installed (pip install -e '.[litert]')")

FAST = ["--latency-rounds", "2", "--latency-runs", "5"]


@pytest.fixture(scope="module")
def trained(tiny_digits_model):
    return tiny_digits_model


@needs_litert
@pytest.mark.parametrize("arch", [
    "stem_k11_m2_c8_s2 | ir_k1_e2_c8 | ir_k3_e3_c16_s2_acb | ir_k5_e2_c16_r2_acb | ir_k7_e6_c24_s2_acb | ir_k9_e2_c24_r2_acb | head_c32",
    "conv_k3_c16_s1 | ir_k5_e6_c24_s2 | proj_c32_s2 | head_c0",
])
def test_fp32_tflite_matches_the_trained_pytorch_network(arch, tmp_path):
    """The fused network converted by litert-torch, run by the LiteRT interpreter, within 1e-4 of the unfused PyTorch network."""
    from ednas import parse_arch

    torch.manual_seed(0)
    spec = parse_arch(arch)
    spec = spec if spec.is_fixed else spec.largest()
    model = randomize_bn(build_model(spec, 10), seed=1).eval()
    info = litert.export_tflite(fuse(model), tmp_path / "m.tflite", 32)
    m = litert.TFLiteModel(info["file"])
    assert info["input_layout"] == m.layout == "NHWC" and m.dtype == "float32" and m.image_shape == (3, 32, 32)
    x = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(m.run(x) - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))


@needs_litert
def test_export_onnx_and_tflite_checks_both_and_int8_tflite_keeps_accuracy(trained, tmp_path):
    out = tmp_path / "exp"
    assert main(["export", "--model", str(trained), "--out", str(out), "--format", "onnx,tflite"] + FAST) == 0
    r = json.loads((out / "export.json").read_text())
    t = r["tflite"]
    assert r["formats"] == ["onnx", "tflite"] and (out / "model.onnx").is_file() and (out / "model_int8.onnx").is_file()
    assert (out / "model.tflite").is_file() and (out / "model_int8.tflite").is_file() and t["file_int8"].endswith("model_int8.tflite")
    assert t["diff_ok"] and t["max_abs_diff"] <= 1e-4 * max(1.0, t["max_abs_logit"])
    assert t["input_dtype_int8"] == "int8" and t["per_channel"] is True  # full integer: the file's input is int8
    assert abs(t["top1_fp32"] - r["top1_fp32"]) <= 0.6  # the same fp32 network in two runtimes: at most 2 of 359 images differ
    assert t["drop"] <= 1.0, t  # full-integer int8, per-channel weights, on a trained model
    assert t["drop"] == pytest.approx(t["top1_fp32"] - t["top1_int8"]) and t["n_eval"] == r["n_eval"] == 359
    assert t["latency_ms_fp32"] > 0 and t["latency_ms_int8"] > 0 and t["versions"]["litert-torch"]


@needs_litert
def test_export_tflite_alone_writes_no_onnx_and_eval_reads_the_int8_file(trained, tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["export", "--model", str(trained), "--out", str(out), "--format", "tflite"] + FAST) == 0
    r = json.loads((out / "export.json").read_text())
    assert r["formats"] == ["tflite"] and r["onnx"] is None and not list(out.glob("*.onnx"))
    assert r["top1_fp32"] == r["tflite"]["top1_fp32"] and r["top1_quant"] == r["tflite"]["top1_int8"]  # the record's scores are LiteRT's
    js = tmp_path / "eval.json"
    assert main(["eval", "--model", str(out / "model_int8.tflite"), "--json", str(js)]) == 0  # the data from export.json
    e = json.loads(js.read_text())
    assert e["data"] == "digits" and e["n"] == 359 and e["top1"] == pytest.approx(r["tflite"]["top1_int8"])


@needs_litert
def test_a_file_that_is_not_tflite_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer" * 10)
    assert main(["eval", "--model", str(bad), "--data", "digits"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ednas: error: ") and "\n" not in err and "bad.tflite" in err and "cannot be loaded" in err


@pytest.mark.parametrize("flags, what", [
    (["--quant", "int16"], "--quant int16"),
    (["--pow2"], "--pow2"),
    (["--format", "tflite,coreml"], "--format must be onnx, tflite or onnx,tflite"),
])
def test_what_litert_cannot_write_is_refused_in_one_line_before_any_work(flags, what, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(litert, "available", lambda: True)  # the refusal is about the settings, with or without the extra
    out = tmp_path / "exp"
    fmt = [] if "--format" in flags else ["--format", "tflite"]
    assert main(["export", "--model", str(tmp_path / "missing.pt"), "--out", str(out)] + fmt + flags) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ednas: error: ") and "\n" not in err and what in err, err
    assert not out.exists()


def test_without_the_extra_format_tflite_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(litert, "available", lambda: False)
    assert main(["export", "--model", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o"), "--format", "tflite"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "litert extra" in err and "pip install" in err, err


# -- host-litert: latency tables timed in LiteRT ---------------------------------------------------

LITERT_SPACE = "stem_k11_m1_c8_s1 | ir_k3.7_e2.4_c16 | ir_k3.5_e2_c16_s2 | head_c32"
LUT_FAST = ["--repeats", "5", "--rounds", "1", "--warmup", "1", "--fit-archs", "2", "--no-progress"]


@pytest.mark.parametrize("model_id", [
    "sw:dw_i16x16x32_o32_k7_s1_g32_e2_f32", "sw:expand_i16x16x16_o32_k1_s1_g1_e2_f32", "sw:stem-dw_i32x32x3_o3_k11_s1_g3_e1_f32",
    "sw:dw_i16x16x32_o32_k3_s2_g32_e2_f32", "sw:pool_i4x4x64_o64_k4_s1_g1_e1_f32", "sw:fc_i1x1x64_o10_k1_s1_g1_e1_f32",
    "pair:32x16x16", "chain3:16x8x8", "pair2:64", "addsw:add_i8x8x16_o16_k1_s1_g1_e1_f32",
    "sw:dw_i16x16x32_o32_k5_s2_g32_e2_i8", "sw:project_i8x8x32_o16_k1_s1_g1_e2_i8", "pair:32x16x16:i8", "pair2:64:i8",
    "addsw:add_i8x8x16_o16_k1_s1_g1_e1_i8",
])
def test_the_litert_models_have_the_kits_shapes(model_id):
    """Each model host-litert converts is the kit's ONNX graph of the same id in PyTorch: same input and output shapes."""
    import onnx

    from ednas.runtime import board
    from ednas.runtime.tflite_graphs import model_module

    module, shape = model_module(model_id)
    data, onnx_shape = board.build(model_id)
    assert list(shape) == list(onnx_shape)
    with torch.no_grad():
        out = module.eval()(torch.zeros(shape))
    want = [d.dim_value for d in onnx.load_from_string(data).graph.output[0].type.tensor_type.shape.dim]
    assert list(out.shape) == want, (model_id, list(out.shape), want)


def test_the_litert_network_of_the_reference_keys_has_the_kits_output():
    from ednas import parse_arch
    from ednas.latency.measure import reference_spec
    from ednas.runtime.tflite_graphs import network_module

    keys = reference_spec(parse_arch(LITERT_SPACE), 32, 10)["ops"]
    module, shape = network_module(keys)
    with torch.no_grad():
        assert list(module.eval()(torch.zeros(shape)).shape) == [1, 10]


@needs_litert
def test_host_litert_table_is_timed_in_litert_resumes_and_validates(tmp_path, monkeypatch):
    from ednas import parse_arch
    from ednas.latency.ops import space_ops
    from ednas.latency.table import load_table
    from ednas.latency.validate import validate_table
    from ednas.runtime import board

    out = tmp_path / "lut.json"
    assert main(["lut", "build", "--target", "host-litert", "--space", LITERT_SPACE, "--input", "32", "--out", str(out)] + LUT_FAST) == 0
    t = load_table(out)
    keys = {op.key for op in space_ops(parse_arch(LITERT_SPACE), 32, 10)}
    assert set(t.entries) == keys and t.target == "host-litert" and t.meta["measurement"]["runtime"] == "litert"
    assert t.meta["measurement"]["method"] == "sandwich" and t.meta["reference"]["ms"] > 0 and all("rel" in e for e in t.entries.values())
    # an interrupted build: the rerun measures only the missing operators
    raw = json.loads(out.read_text())
    gone = sorted(raw["entries"])[:2]
    for k in gone:
        del raw["entries"][k]
    raw.pop("checksum", None)
    out.write_text(json.dumps(raw))
    calls = []
    real = board.measure_ops
    monkeypatch.setattr(board, "measure_ops", lambda keys, *a, **k: calls.extend(keys) or real(keys, *a, **k))

    def no_onnx(*a, **k):
        raise AssertionError("a host-litert operator was timed with an ONNX graph")

    monkeypatch.setattr(board.timing, "build", no_onnx)  # every model the rerun times must be a LiteRT one
    assert main(["lut", "build", "--target", "host-litert", "--space", LITERT_SPACE, "--input", "32", "--out", str(out)] + LUT_FAST) == 0
    assert sorted(calls) == gone
    v = validate_table(load_table(out), n=3, repeats=5, rounds=2)
    assert v["n"] == 3 and v["measured_with"].startswith("litert") and v["reference"]["used"]


def test_what_litert_cannot_run_int16_and_power_of_two_is_refused_in_one_line_before_any_work(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path / "r"), "--target", "host-litert", "--quant", "int16"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "none or int8" in err and "int16" in err, err
    assert main(["search", "--out", str(tmp_path / "s"), "--target", "host-litert", "--latency-dtype", "i16"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "f32 and i8" in err, err
    assert main(["lut", "build", "--target", "host-litert", "--dtype", "i8", "--pow2", "--space", LITERT_SPACE, "--input", "32",
                 "--out", str(tmp_path / "l.json")] + LUT_FAST) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "powers of two" in err, err
    assert not (tmp_path / "r").exists() and not (tmp_path / "s").exists() and not (tmp_path / "l.json").exists()


@needs_litert
def test_int8_host_litert_table_quantizes_every_model_it_times_and_validates_in_int8(tmp_path, monkeypatch):
    from ednas import parse_arch
    from ednas.latency.ops import space_ops
    from ednas.latency.table import load_table
    from ednas.latency.validate import validate_table

    quantized, converted = [], []
    real_pt2e, real_convert = litert._pt2e, litert.convert_signatures
    monkeypatch.setattr(litert, "_pt2e", lambda *a, **k: quantized.append(1) or real_pt2e(*a, **k))

    def counting(models, *a, **k):  # every conversion: operators' models, the reference, the fit and validation networks
        converted.append((len(models), k["quant"] if "quant" in k else (a[2] if len(a) > 2 else None)))
        return real_convert(models, *a, **k)

    monkeypatch.setattr(litert, "convert_signatures", counting)
    litert_interface._reference_file.cache_clear()  # the reference network converted by this build, not an earlier test's
    out = tmp_path / "lut.json"
    assert main(["lut", "build", "--target", "host-litert", "--dtype", "i8", "--space", LITERT_SPACE, "--input", "32", "--out", str(out)]
                + LUT_FAST) == 0
    t = load_table(out)
    keys = {op.key for op in space_ops(parse_arch(LITERT_SPACE), 32, 10, "i8")}
    assert set(t.entries) == keys and all(k.endswith("_i8") for k in t.entries) and t.dtype == "i8"
    assert t.meta["quant"]["bits"] == 8 and t.meta["quant"]["per_channel"] and t.meta["measurement"]["runtime"] == "litert"
    assert all(k.endswith("_i8") for k in t.meta["reference"]["ops"]) and t.meta["reference"]["ms"] > 0
    # every model converted (operators' sandwiches and pairs, the reference, the fit networks) went through PT2E
    assert converted and all(q is not None and q["bits"] == 8 for _, q in converted)
    assert len(quantized) == sum(n for n, _ in converted)
    v = validate_table(load_table(out), n=3, repeats=5, rounds=2)
    assert v["n"] == 3 and v["dtype"] == "i8" and v["measured_with"].startswith("litert") and v["reference"]["used"]


def _litert_run(tmp_path, quant: str) -> Path:
    """A small ``ednas run --target host-litert --quant QUANT`` (its output folder)."""
    out = tmp_path / "run"
    argv = ["run", "--out", str(out), "--data", "synthetic:classes=4,n=128,size=32", "--target", "host-litert", "--quant", quant,
            "--space", LITERT_SPACE, "--search-epochs", "1", "--warmup-epochs", "0", "--train-epochs", "1", "--batch-size", "16",
            "--baselines", "none", "--lut-check", "2", "--latency.cache", str(tmp_path / "cache"), "--timing.rounds", "2",
            "--timing.repeats", "5", "--no-progress"]
    assert main(argv) == 0
    return out


@needs_litert
def test_ednas_run_on_host_litert_checks_the_budget_with_the_deployed_tflite_timed_in_litert(tmp_path):
    out = _litert_run(tmp_path, "none")
    s = json.loads((out / "summary.json").read_text())
    d = s["deployed"]
    assert s["latency_measured_on"] == d["where"] and d["where"].startswith("LiteRT on this host")
    assert d["file"].endswith("model.tflite") and d["precision"] == "f32" and d["reference"]["used"]
    assert s["latency_ms_measured"] == d["scaled_ms"] and s["latency_ms_measured"] > 0
    check = next(c for c in s["verdict"]["checks"] if c["check"] == "measured")
    assert check["measured_ms"] == s["latency_ms_measured"]
    assert s["lut_check"]["check_n"] == 2  # the table was checked in LiteRT too
    from ednas.latency.table import load_table

    lut = load_table(out / "lut" / "lut.json")
    assert lut.target == "host-litert" and lut.meta["measurement"]["runtime"] == "litert"
    assert json.loads((out / "export" / "export.json").read_text())["tflite"]["diff_ok"]


@needs_litert
def test_an_int8_run_on_host_litert_searches_with_an_int8_litert_table_and_checks_the_int8_tflite(tmp_path):
    out = _litert_run(tmp_path, "int8")
    s = json.loads((out / "summary.json").read_text())
    d = s["deployed"]
    assert d["where"].startswith("LiteRT on this host") and d["precision"] == "i8" and d["reference"]["used"]
    assert d["file"].endswith("model_int8.tflite") and s["latency_ms_measured"] == d["scaled_ms"] > 0
    from ednas.latency.table import load_table

    lut = load_table(out / "lut" / "lut.json")
    assert lut.target == "host-litert" and lut.dtype == "i8" and lut.meta["measurement"]["runtime"] == "litert"
    tfl = json.loads((out / "export" / "export.json").read_text())["tflite"]
    assert tfl["file_int8"] == d["file"] and tfl["top1_int8"] is not None


# -- the board kit for LiteRT ------------------------------------------------------------------------

# run the kit as a board without ONNX Runtime would: no onnx, onnxruntime, ednas or torch importable
_BOARD_ONLY = ("import sys; [sys.modules.__setitem__(m, None) for m in ('onnx', 'onnxruntime', 'ednas', 'torch')]; "
               "sys.argv = [sys.argv[1]] + sys.argv[2:]; import runpy; runpy.run_path(sys.argv[0], run_name='__main__')")


@needs_litert
@pytest.mark.parametrize("dtype", ["f32", "i8"])
def test_the_litert_kit_measures_on_a_board_without_onnx_runtime_and_the_host_builds_its_table(dtype, tmp_path):
    import subprocess
    import sys

    from ednas import parse_arch
    from ednas.latency.build import build_table
    from ednas.latency.ops import space_ops
    from ednas.latency.table import load_table
    from ednas.latency.validate import validate_table

    kit = tmp_path / "kit"
    assert main(["lut", "script", "--runtime", "litert", "--dtype", dtype, "--space", LITERT_SPACE, "--input", "32", "--out", str(kit),
                 "--fit-archs", "2", "--validate-archs", "3"]) == 0
    spec = json.loads((kit / "ops.json").read_text())
    index = json.loads((kit / "litert_models.json").read_text())
    assert spec["runtime"] == "litert" and all((kit / f["file"]).is_file() for f in index["files"])
    names = {n for f in index["files"] for n in f["signatures"].values()}
    assert {"reference", "fit-0", "fit-1", "validate-0", "validate-2"} <= names and f"sw:{spec['ops'][0]}" in names
    board_json = tmp_path / "board.json"
    run = [sys.executable, "-I", "-c", _BOARD_ONLY, str(kit / "measure_ops.py"), "--out", str(board_json), "--repeats", "5", "--rounds", "1",
           "--warmup", "1"]
    r = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    raw = json.loads(board_json.read_text())
    assert raw["measurement"]["runtime"] == "litert" and "ai-edge-litert" in raw["tools"] and "onnxruntime" not in raw["tools"]
    assert set(raw["entries"]) == {op.key for op in space_ops(parse_arch(LITERT_SPACE), 32, 10, dtype)} and len(raw["networks"]) == 5
    t = build_table(f"file:{board_json}", parse_arch(LITERT_SPACE), 32, 10, out=tmp_path / "lut.json")
    assert t.dtype == dtype and len(t.meta["constant"]["residuals_ms"]) == 2
    v = validate_table(load_table(tmp_path / "lut.json"))
    assert v["n"] == 3 and v["dtype"] == dtype


@pytest.fixture(scope="module")
def litert_server(tmp_path_factory):
    """The server of a float32 LiteRT kit of LITERT_SPACE (``measure_ops.py serve`` in the kit: LiteRT, found from the kit)."""
    if not litert.available():
        pytest.skip("the litert extra is not installed (pip install -e '.[litert]')")
    from tests.test_remote import ServerProcess

    kit = tmp_path_factory.mktemp("litert-kit")
    assert main(["lut", "script", "--runtime", "litert", "--space", LITERT_SPACE, "--input", "32", "--out", str(kit), "--fit-archs", "0",
                 "--validate-archs", "0"]) == 0
    yield from ServerProcess.running(kit, tmp_path_factory)


@pytest.fixture
def litert_token(litert_server, monkeypatch):
    litert_server.use_token(monkeypatch)


@needs_litert
def test_a_litert_kits_server_measures_a_table_fits_and_validates_it_on_the_device_and_refuses_what_it_cannot_time(
        litert_server, litert_token, tmp_path, capsys):
    from ednas import parse_arch
    from ednas.latency.ops import space_ops
    from ednas.latency.table import load_table
    from ednas.runtime import board, remote

    srv = litert_server
    info = srv.client().info()
    assert info["runtime"] == "litert" and info["kit"]["dtype"] == "f32" and "ai-edge-litert" in info["tools"]
    out = tmp_path / "lut.json"
    assert main(["lut", "build", "--target", srv.target, "--space", LITERT_SPACE, "--input", "32", "--out", str(out)] + LUT_FAST) == 0
    t = load_table(out)
    assert t.meta["measurement"]["runtime"] == "litert" and t.meta["device"]["target"] == srv.target
    assert set(t.entries) == {op.key for op in space_ops(parse_arch(LITERT_SPACE), 32, 10)} and all("rel" in e for e in t.entries.values())
    assert len(t.meta["constant"]["residuals_ms"]) == 2  # the fit networks, converted here, timed on the device
    js = tmp_path / "v.json"
    assert main(["lut", "validate", "--lut", str(out), "--target", srv.target, "--archs", "3", "--repeats", "5", "--rounds", "2",
                 "--json", str(js), "--no-progress"]) == 0
    v = json.loads(js.read_text())
    assert v["n"] == 3 and v["reference"]["used"]
    # what this server cannot time: an ONNX model, an operator of another space, another precision
    onnx_model, shape = board.build("pair:8x32x32")
    with pytest.raises(remote.RemoteError, match="times LiteRT models"):
        srv.client().time_networks({"m": (onnx_model, shape)})
    with pytest.raises(remote.RemoteError, match="not in this LiteRT kit"):
        srv.client().measure_ops(["dw_i32x32x64_o64_k9_s1_g64_e4_f32"])
    capsys.readouterr()
    assert main(["lut", "build", "--target", srv.target, "--dtype", "i8", "--space", LITERT_SPACE, "--input", "32",
                 "--out", str(tmp_path / "l8.json")] + LUT_FAST) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "LiteRT kit of f32" in err, err
    assert srv.client().health()["ok"]  # still serving


@needs_litert
def test_ednas_run_on_a_litert_device_checks_the_budget_with_the_deployed_tflite_timed_there(litert_server, litert_token, tmp_path):
    out = tmp_path / "run"
    argv = ["run", "--out", str(out), "--data", "synthetic:classes=10,n=160,size=32", "--target", litert_server.target, "--quant", "none",
            "--space", LITERT_SPACE, "--search-epochs", "1", "--warmup-epochs", "0", "--train-epochs", "1", "--batch-size", "16",
            "--baselines", "none", "--lut-check", "2", "--latency.cache", str(tmp_path / "cache"), "--timing.rounds", "2",
            "--timing.repeats", "5", "--no-progress"]
    assert main(argv) == 0
    s = json.loads((out / "summary.json").read_text())
    d = s["deployed"]
    assert d["where"] == f"the device {litert_server.target}" and d["file"].endswith("model.tflite") and d["reference"]["used"]
    assert s["latency_ms_measured"] == d["scaled_ms"] > 0 and s["lut_check"]["check_n"] == 2
