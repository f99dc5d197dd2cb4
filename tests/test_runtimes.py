"""Every runtime implements the one runtime interface (ednas.runtime.interface): the same checks against each installed runtime.

A runtime that is not installed (an optional extra) is skipped with the reason; CI's second step installs the litert and
openvino extras and runs this module again.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ednas import build_model, fuse, parse_arch
from ednas.cli import main
from ednas.errors import ConfigError
from ednas.latency.ops import arch_ops
from ednas.runtime import Timing, board
from ednas.runtime.interface import RUNTIMES, TARGETS, get_runtime, image_inputs, runtime_of_target
from tests.conftest import randomize_bn

ARCH = "stem_k11_m1_c8_s1 | ir_k3_e2_c16 | ir_k5_e2_c16_s2 | head_c32"
SMALL_SPACE = "stem_k11_m1_c8_s1 | ir_k3.7_e2.4_c16 | ir_k3.5_e2_c16_s2 | head_c32"
LUT_FAST = ["--repeats", "5", "--rounds", "1", "--warmup", "1", "--fit-archs", "2", "--no-progress"]
TIMING = Timing(threads=1, warmup=1, repeats=5, rounds=2, min_time_s=0.0)


def _runtime(name):
    rt = get_runtime(name)
    if not rt.available():
        pytest.skip(f"{name} is not installed: {rt.extra}")
    return rt


RUNTIME_PARAMS = list(RUNTIMES)


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return fuse(randomize_bn(build_model(parse_arch(ARCH), 10), seed=1).eval()).eval()


def test_every_host_target_names_a_registered_runtime_that_says_what_it_reads():
    assert set(TARGETS.values()) == set(RUNTIMES)
    for target, name in TARGETS.items():
        rt = get_runtime(name)
        assert runtime_of_target(target) is rt and rt.target == target and rt.name == name
        assert rt.format in ("onnx", "tflite") and "f32" in rt.dtypes and rt.title
    assert runtime_of_target("host-torch") is None and runtime_of_target("tda2x") is None
    with pytest.raises(ConfigError, match="unknown"):
        get_runtime("tensorrt")


@pytest.mark.parametrize("name", RUNTIME_PARAMS)
def test_a_runtime_runs_a_written_file_as_pytorch_does(name, network):
    """files() writes the fused network in the runtime's format; load() + run() give PyTorch's logits; score() its argmax."""
    rt = _runtime(name)
    files = rt.files(image_inputs({"net": network}, 32))
    x = np.random.default_rng(0).uniform(-1, 1, (5, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = network(torch.from_numpy(x)).numpy()
    got = rt.run(rt.load(files["net"]), x)
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-3 * max(1.0, float(np.abs(ref).max()))
    y = ref.argmax(1)
    scores, labels = rt.score(files["net"], [(x[:3], y[:3]), (x[3:], y[3:])])
    assert (scores.argmax(1) == y).all() and (labels == y).all()


@pytest.mark.parametrize("name", RUNTIME_PARAMS)
def test_a_runtime_times_files_beside_its_reference_network_and_scales_to_the_tables_speed(name, network):
    rt = _runtime(name)
    keys = [op.key for op in arch_ops(parse_arch(ARCH), 32, 10)]
    ref = rt.reference(keys, 2.0)
    assert ref.format == rt.format and ref.ms == 2.0
    files = rt.files(image_inputs({"net": network}, 32))
    r = rt.time_files(files, TIMING, reference=ref)
    net, q = r["net"], r[board.REFERENCE]
    assert net["ms"] > 0 and TIMING.rounds <= len(net["rounds_ms"]) <= 3 * TIMING.rounds and q["table_ms"] == 2.0
    assert net["scaled_ms"] == pytest.approx(net["rel"] * 2.0, rel=1e-4) and q["ratio"] == pytest.approx(q["ms"] / 2.0, rel=1e-3)


@pytest.mark.parametrize("name", RUNTIME_PARAMS)
def test_a_runtime_measures_operators_with_its_own_runners_in_units_of_the_reference(name, monkeypatch):
    """measure_ops() times every sandwich model with this runtime's runners (op_runners), one measure_op per operator."""
    rt = _runtime(name)
    big, small = "conv_i32x32x16_o64_k1_s1_g1_e1_f32", "conv_i4x4x16_o64_k1_s1_g1_e1_f32"
    made = []
    real = type(rt).op_runners
    monkeypatch.setattr(type(rt), "op_runners", lambda self, ids, *a, **k: made.extend(ids) or real(self, ids, *a, **k))
    ref = rt.reference([big], 1.0)
    seen = []
    out = rt.measure_ops([big, small], 1, 1, 10, 2, on_entry=lambda k, e: seen.append(k), reference=ref)
    assert seen == [big, small] and set(made) == {mid for k in (big, small) for mid, _ in board.plan(k)}
    for e in out.values():
        assert e["ms"] >= 0 and "rel" in e and e["ref_ms"] > 0
    # 64x the work: the table orders them as the runtime runs them
    assert out[big]["rel"] > out[small]["rel"]


def test_openvino_table_is_built_with_openvino_resumes_and_validates(tmp_path, monkeypatch):
    rt = _runtime("openvino")
    from ednas.latency.ops import space_ops
    from ednas.latency.table import load_table
    from ednas.latency.validate import validate_table

    out = tmp_path / "lut.json"
    assert main(["lut", "build", "--target", "host-openvino", "--space", SMALL_SPACE, "--input", "32", "--out", str(out)] + LUT_FAST) == 0
    t = load_table(out)
    assert set(t.entries) == {op.key for op in space_ops(parse_arch(SMALL_SPACE), 32, 10)}
    m = t.meta["measurement"]
    assert t.target == "host-openvino" and m["runtime"] == "openvino" and m["method"] == "sandwich" and m["openvino"]["openvino"]
    assert t.meta["reference"]["ms"] > 0 and all("rel" in e for e in t.entries.values())
    raw = json.loads(out.read_text())
    gone = sorted(raw["entries"])[:2]
    for k in gone:
        del raw["entries"][k]
    raw.pop("checksum", None)
    out.write_text(json.dumps(raw))
    calls, sessions = [], []
    real = board.measure_ops
    monkeypatch.setattr(board, "measure_ops", lambda keys, *a, **k: calls.extend(keys) or real(keys, *a, **k))
    monkeypatch.setattr(board.timing, "session", lambda *a, **k: sessions.append(1) or pytest.fail("an ONNX Runtime session was opened"))
    assert main(["lut", "build", "--target", "host-openvino", "--space", SMALL_SPACE, "--input", "32", "--out", str(out)] + LUT_FAST) == 0
    assert sorted(calls) == gone and not sessions
    v = validate_table(load_table(out), n=3, repeats=5, rounds=2)
    assert v["n"] == 3 and v["measured_with"].startswith("openvino") and v["reference"]["used"] and not sessions
    assert rt.name == "openvino"


def test_openvino_int8_table_times_qdq_graphs_and_refuses_int16(tmp_path, capsys):
    _runtime("openvino")
    from ednas.latency.table import load_table

    out = tmp_path / "lut8.json"
    assert main(["lut", "build", "--target", "host-openvino", "--dtype", "i8", "--space", SMALL_SPACE, "--input", "32", "--out", str(out)]
                + LUT_FAST) == 0
    t = load_table(out)
    assert t.dtype == "i8" and t.meta["quant"]["bits"] == 8 and all(k.endswith("_i8") for k in t.entries)
    capsys.readouterr()
    assert main(["lut", "build", "--target", "host-openvino", "--dtype", "i16", "--space", SMALL_SPACE, "--input", "32",
                 "--out", str(tmp_path / "l16.json")] + LUT_FAST) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "OpenVINO" in err and "i16" in err and not (tmp_path / "l16.json").exists()


def test_eval_of_an_onnx_in_openvino_equals_its_onnx_runtime_top1_and_export_records_openvino(tiny_digits_model, tmp_path):
    _runtime("openvino")
    out = tmp_path / "exp"
    assert main(["export", "--model", str(tiny_digits_model), "--out", str(out), "--latency-rounds", "2", "--latency-runs", "5"]) == 0
    r = json.loads((out / "export.json").read_text())
    ov = r["openvino"]
    assert ov["n_eval"] == r["n_eval"] == 359 and ov["top1_fp32"] == pytest.approx(r["top1_fp32"]) and ov["agreement_fp32"] == 100.0
    assert ov["max_abs_diff_fp32"] <= 1e-3 * max(1.0, r["check"]["max_abs_logit"])
    assert ov["agreement_quant"] >= 98.0 and ov["latency_ms_fp32"] > 0 and ov["latency_ms_quant"] > 0 and ov["versions"]["openvino"]
    for f in ("model.onnx", "model_int8.onnx"):
        a, b = tmp_path / f"ort_{f}.json", tmp_path / f"ov_{f}.json"
        assert main(["eval", "--model", str(out / f), "--json", str(a)]) == 0
        assert main(["eval", "--model", str(out / f), "--json", str(b), "--runtime", "openvino"]) == 0
        ort, ovr = json.loads(a.read_text()), json.loads(b.read_text())
        assert ovr["runtime"] == "openvino" and ort["runtime"] == "onnxruntime" and ovr["n"] == ort["n"] == 359
        if f == "model.onnx":
            assert ovr["top1"] == pytest.approx(ort["top1"])
        else:  # int8 kernels differ between runtimes: the same file may flip an image or two
            assert abs(ovr["top1"] - ort["top1"]) <= 0.6


def test_eval_runtime_openvino_is_refused_for_a_file_it_cannot_read_in_one_line(tiny_digits_model, tmp_path, capsys):
    assert main(["eval", "--model", str(tiny_digits_model), "--runtime", "openvino"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--runtime" in err and ".onnx" in err
    assert main(["eval", "--model", str(tiny_digits_model), "--runtime", "tensorrt"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "tensorrt" in err and "openvino" in err


_BOARD_ONLY = ("import sys; [sys.modules.__setitem__(m, None) for m in ('onnxruntime', 'ednas', 'torch')]; "
               "sys.argv = [sys.argv[1]] + sys.argv[2:]; import runpy; runpy.run_path(sys.argv[0], run_name='__main__')")


@pytest.mark.parametrize("dtype", ["f32", "i8"])
def test_the_openvino_kit_measures_on_a_board_without_onnx_runtime_and_the_host_builds_its_table(dtype, tmp_path):
    import subprocess
    import sys

    _runtime("openvino")
    from ednas.latency.build import build_table
    from ednas.latency.ops import space_ops
    from ednas.latency.table import load_table
    from ednas.latency.validate import validate_table

    kit = tmp_path / "kit"
    assert main(["lut", "script", "--runtime", "openvino", "--dtype", dtype, "--space", SMALL_SPACE, "--input", "32", "--out", str(kit),
                 "--fit-archs", "2", "--validate-archs", "3"]) == 0
    assert json.loads((kit / "ops.json").read_text())["runtime"] == "openvino" and "openvino" in (kit / "README.txt").read_text()
    board_json = tmp_path / "board.json"
    run = [sys.executable, "-I", "-c", _BOARD_ONLY, str(kit / "measure_ops.py"), "--out", str(board_json), "--repeats", "5", "--rounds", "1",
           "--warmup", "1"]
    r = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    raw = json.loads(board_json.read_text())
    assert raw["measurement"]["runtime"] == "openvino" and "openvino" in raw["tools"] and "onnxruntime" not in raw["tools"]
    assert set(raw["entries"]) == {op.key for op in space_ops(parse_arch(SMALL_SPACE), 32, 10, dtype)} and len(raw["networks"]) == 5
    t = build_table(f"file:{board_json}", parse_arch(SMALL_SPACE), 32, 10, out=tmp_path / "lut.json")
    assert t.dtype == dtype and len(t.meta["constant"]["residuals_ms"]) == 2
    v = validate_table(load_table(tmp_path / "lut.json"))
    assert v["n"] == 3 and v["dtype"] == dtype


@pytest.fixture(scope="module")
def openvino_server(tmp_path_factory):
    """The server of an OpenVINO kit of SMALL_SPACE (``measure_ops.py serve`` in the kit: OpenVINO, from the kit's ops.json)."""
    if not get_runtime("openvino").available():
        pytest.skip(f"openvino is not installed: {get_runtime('openvino').extra}")
    from tests.test_remote import ServerProcess

    kit = tmp_path_factory.mktemp("openvino-kit")
    assert main(["lut", "script", "--runtime", "openvino", "--space", SMALL_SPACE, "--input", "32", "--out", str(kit), "--fit-archs", "0",
                 "--validate-archs", "0"]) == 0
    yield from ServerProcess.running(kit, tmp_path_factory)


def test_an_openvino_server_measures_a_table_and_validates_it_on_the_device_and_refuses_int16(openvino_server, monkeypatch, tmp_path, capsys):
    from ednas.latency.table import load_table
    from ednas.runtime import remote

    srv = openvino_server
    srv.use_token(monkeypatch)
    info = srv.client().info()
    assert info["runtime"] == "openvino" and "openvino" in info["tools"] and info["session"]["device"] == "CPU"
    out = tmp_path / "lut.json"
    assert main(["lut", "build", "--target", srv.target, "--space", SMALL_SPACE, "--input", "32", "--out", str(out)] + LUT_FAST) == 0
    t = load_table(out)
    assert t.meta["measurement"]["runtime"] == "openvino" and t.meta["device"]["target"] == srv.target
    assert all("rel" in e for e in t.entries.values()) and len(t.meta["constant"]["residuals_ms"]) == 2
    js = tmp_path / "v.json"
    assert main(["lut", "validate", "--lut", str(out), "--target", srv.target, "--archs", "3", "--repeats", "5", "--rounds", "2",
                 "--json", str(js), "--no-progress"]) == 0
    v = json.loads(js.read_text())
    assert v["n"] == 3 and v["reference"]["used"] and "openvino" in v["measured_with"]
    with pytest.raises(remote.RemoteError, match="OpenVINO"):  # bytes OpenVINO cannot read: a 400 naming it
        srv.client().time_networks({"m": (b"not a model", [1, 3, 32, 32])})
    capsys.readouterr()
    assert main(["lut", "build", "--target", srv.target, "--dtype", "i16", "--space", SMALL_SPACE, "--input", "32",
                 "--out", str(tmp_path / "l16.json")] + LUT_FAST) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "OpenVINO" in err and "i16" in err, err
    assert srv.client().health()["ok"]  # still serving


def test_an_int8_run_on_host_openvino_searches_with_an_openvino_table_and_checks_the_int8_onnx_in_openvino(tmp_path, capsys):
    """The one setting (--target host-openvino) decides the table's runtime, the deployed file's check and the report's wording."""
    _runtime("openvino")
    from ednas.latency.table import load_table

    out = tmp_path / "run"
    argv = ["run", "--out", str(out), "--data", "synthetic:classes=4,n=128,size=32", "--target", "host-openvino", "--quant", "int8",
            "--space", SMALL_SPACE, "--search-epochs", "1", "--warmup-epochs", "0", "--train-epochs", "1", "--batch-size", "16",
            "--baselines", "none", "--lut-check", "2", "--latency.cache", str(tmp_path / "cache"), "--timing.rounds", "2",
            "--timing.repeats", "5", "--no-progress"]
    assert main(argv) == 0
    s = json.loads((out / "summary.json").read_text())
    d = s["deployed"]
    assert d["where"].startswith("OpenVINO on this host") and s["latency_measured_on"] == d["where"]
    assert d["file"].endswith("model_int8.onnx") and d["precision"] == "i8" and d["reference"]["used"]
    assert s["latency_ms_measured"] == d["scaled_ms"] > 0 and s["lut_check"]["check_n"] == 2
    lut = load_table(out / "lut" / "lut.json")
    assert lut.target == "host-openvino" and lut.dtype == "i8" and lut.meta["measurement"]["runtime"] == "openvino"
    assert "OpenVINO" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(["run", "--out", str(tmp_path / "r16"), "--target", "host-openvino", "--quant", "int16"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "int16" in err and "none or int8" in err and not (tmp_path / "r16").exists()
