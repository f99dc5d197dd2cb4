"""Latency of what is deployed: fixed-point tables, the reference network, the run's verdict.

No test here asserts a duration of real code: the reference scaling is
checked on a fake clock whose machine changes speed, the fixed-point graphs
by the kernels ONNX Runtime makes of them and by the scales and zero points
they carry.  A real int8 table against int8 files quantized as exported is
a slow test in test_latency.py (within 2x, in order); its MAPE and Spearman
are measured by benchmarks/lut_validation.py.
"""

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from ednas import parse_arch, preset
from ednas.errors import ConfigError, EdnasError
from ednas.latency import LatencyTable, build_table, load_table, space_ops, validate_table
from ednas.latency import build as lut_build
from ednas.latency.config import LatencyConfig, table_precision
from ednas.latency.measure import deployed_bytes, reference_arch
from ednas.latency.ops import arch_ops
from ednas.latency.script import write_script
from ednas.latency.validate import random_deploy_model
from ednas.report import write_report
from ednas.report.verdict import MEASURED_TOLERANCE, confirm_timing, verdict
from ednas.runtime import board
from ednas.runtime.quantize import QuantSettings, quantize_bytes

MICRO_SPACE = "stem_k11_m1_c8_s1 | ir_k3.5.7_e2_c8 | ir_k3.5_e2_c16_s2 | head_c16"


class _Machine:
    """A fake perf_counter and a machine whose speed switches between states as fake time passes."""

    def __init__(self, schedule):
        self.now, self.schedule = 0.0, schedule  # schedule: [(until_s, factor), ...], the last factor holds after

    def __call__(self):
        return self.now

    def factor(self):
        for until, f in self.schedule:
            if self.now < until:
                return f
        return self.schedule[-1][1]

    def model(self, ms):
        """A runner that takes ``ms`` at speed factor 1."""

        def run():
            self.now += ms * self.factor() / 1e3

        return run


def _optimized_nodes(model: bytes, tmp_path) -> list[str]:
    """The op types of the graph ONNX Runtime runs (full optimisation), in order."""
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.log_severity_level = 1, 3
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]


def _optimized_ops(model: bytes, tmp_path) -> Counter:
    return Counter(_optimized_nodes(model, tmp_path))


# -- the reference network ---------------------------------------------------------------


def test_reference_scaling_cancels_the_machine_changing_speed_between_rounds(monkeypatch):
    # slow (1.6x) for most of the time, fast in between: raw medians come out slow
    m = _Machine([(0.05, 1.6), (0.09, 1.0), (1e9, 1.6)])
    monkeypatch.setattr(board.timing.time, "perf_counter", m)
    runners = {"a": m.model(2.0), "b": m.model(3.0), "c": m.model(5.0)}
    res = board.interleaved(runners, warmup=0, repeats=3, rounds=9, min_time_s=0.0, reference=m.model(4.0), ref_ms=4.0, ref_every=2)
    for name, true_ms in (("a", 2.0), ("b", 3.0), ("c", 5.0)):
        assert res[name]["ms"] == pytest.approx(1.6 * true_ms, rel=1e-6)  # the raw figure is the slow state's, and kept
        assert res[name]["scaled_ms"] == pytest.approx(true_ms, rel=0.01)  # at the speed the reference had at the build
        assert res[name]["rel"] == pytest.approx(true_ms / 4.0, rel=0.01)
    assert res[board.REFERENCE]["ratio"] == pytest.approx(1.6, rel=1e-6)
    assert res[board.REFERENCE]["table_ms"] == 4.0


def test_operators_measured_in_different_speed_states_come_out_in_one_speed(monkeypatch):
    m = _Machine([(1e9, 1.0)])
    monkeypatch.setattr(board.timing.time, "perf_counter", m)
    key_a, key_b = "dw_i8x8x16_o16_k3_s1_g16_e1_f32", "dw_i8x8x16_o16_k5_s1_g16_e1_f32"
    # sandwich 3 ms, the P-pair 2 ms: LAT = 3 - 2/2 - 2/2 = 1 ms; k5: 4 - 1 - 1 = 2 ms; the reference takes 10 ms
    cache = {"sw:" + key_a: m.model(3.0), "sw:" + key_b: m.model(4.0), "pair:16x8x8": m.model(2.0)}
    ref = m.model(10.0)
    m.schedule = [(1e9, 1.6)]  # A measured while the machine is slow
    a = board.measure_op(key_a, warmup=0, repeats=3, rounds=3, min_time_s=0.0, cache=cache, reference=ref)
    m.schedule = [(1e9, 1.0)]  # B while it is fast
    b = board.measure_op(key_b, warmup=0, repeats=3, rounds=3, min_time_s=0.0, cache=cache, reference=ref)
    assert a["raw_ms"] == pytest.approx(1.6) and b["raw_ms"] == pytest.approx(2.0)  # raw: A looks slower than it is
    assert a["rel"] == pytest.approx(0.1) and b["rel"] == pytest.approx(0.2)
    entries = {key_a: a, key_b: b}
    ref_ms = board.rescale(entries)
    assert ref_ms == pytest.approx(13.0)  # median of the reference's 16 and 10 ms
    assert entries[key_b]["ms"] / entries[key_a]["ms"] == pytest.approx(2.0)  # the true ratio, not 1.25
    assert entries[key_a]["raw_ms"] == pytest.approx(1.6)


_GROUP_KEYS = [f"dw_i8x8x16_o16_k{k}_s1_g16_e1_f32" for k in (3, 5, 7, 9)]


def _group_cache(m):
    # sandwiches of 3, 4, 5, 6 ms beside the P-pair's 2 ms: operators of 1, 2, 3 and 4 ms; the reference takes 10 ms
    return {**{"sw:" + k: m.model(3.0 + i) for i, k in enumerate(_GROUP_KEYS)}, "pair:16x8x8": m.model(2.0)}


def test_operators_of_a_group_share_the_reference_timings_around_each_round(monkeypatch):
    m = _Machine([(1e9, 1.0)])
    monkeypatch.setattr(board.timing.time, "perf_counter", m)
    cache = _group_cache(m)
    ref_run, ref_calls = m.model(10.0), []

    def ref():
        ref_calls.append(m.now)
        ref_run()

    def timings(group):
        ref_calls.clear()
        out = board.measure_ops(_GROUP_KEYS, warmup=0, repeats=3, rounds=3, max_rounds=3, min_time_s=0.0, cache=cache, reference=ref,
                                group=group)
        return out, len(ref_calls) // 10  # the reference is timed in batches of ref_repeats=10 runs

    singly, n1 = timings(1)
    paired, n2 = timings(2)
    grouped, n4 = timings(4)
    assert n1 == 1 + 4 * 3  # one before the first operator, one after each round; the boundary shared with the next operator
    assert n2 == 1 + 2 * 3
    assert n4 == 1 + 3  # before the group's first round and after each of its three
    for i, k in enumerate(_GROUP_KEYS):
        for res in (singly, paired, grouped):
            assert res[k]["rel"] == pytest.approx((i + 1) / 10.0) and res[k]["rounds"] == 3


def test_a_group_measured_while_the_machine_is_slow_comes_out_in_the_others_speed(monkeypatch):
    m = _Machine([(1e9, 1.6)])  # the first group of two operators while the machine is slow
    monkeypatch.setattr(board.timing.time, "perf_counter", m)
    seen = []

    def switch(key, entry):
        seen.append(key)
        if len(seen) == 2:
            m.schedule = [(1e9, 1.0)]  # the second group while it is fast

    entries = board.measure_ops(_GROUP_KEYS, warmup=0, repeats=3, rounds=3, min_time_s=0.0, cache=_group_cache(m), reference=m.model(10.0),
                                group=2, on_entry=switch)
    assert seen == _GROUP_KEYS  # every operator once, in order
    assert [entries[k]["raw_ms"] for k in _GROUP_KEYS[:2]] == pytest.approx([1.6, 3.2])  # raw: the first group looks slower
    board.rescale(entries)
    for i, k in enumerate(_GROUP_KEYS):
        assert entries[k]["rel"] == pytest.approx((i + 1) / 10.0)
        assert entries[k]["ms"] / entries[_GROUP_KEYS[0]]["ms"] == pytest.approx(i + 1.0)  # the true ratios in one speed


def test_a_table_built_moments_ago_is_checked_without_timing_its_fit_networks_again(tmp_path, monkeypatch):
    import ednas.latency.validate as validate
    from ednas.context import RunContext
    from ednas.data import DataConfig

    t = build_table("host-ort", parse_arch(MICRO_SPACE), 16, 4, out=tmp_path / "lut.json", repeats=3, rounds=1, warmup=1, fit_archs=2)
    timed, real = [], validate.time_networks
    monkeypatch.setattr(validate, "time_networks", lambda rt, archs, *a, **k: timed.append(sorted(archs)) or real(rt, archs, *a, **k))
    kw = dict(n=3, repeats=3, rounds=1, warmup=1)
    old = validate_table(t, **kw)
    assert [n for n in timed[-1] if n.startswith("fit-")] == ["fit-0", "fit-1"]  # by default: timed again, for the drift
    assert old["drift"] is not None and old["drift_timed"]
    new = validate_table(t, drift=False, **kw)
    assert not [n for n in timed[-1] if n.startswith("fit-")] and new["drift"] is None and not new["drift_timed"]
    assert [p["arch"] for p in new["pairs"]] == [p["arch"] for p in old["pairs"]]  # the same networks are checked
    # what ednas run asks: was the table created after the run started?
    ctx = RunContext(data=DataConfig(spec="synthetic:classes=4,n=64,size=16"))
    cached = load_table(tmp_path / "lut.json")
    cached.meta["created"] = "2026-01-02T03:04:05+00:00"  # a table from the cache, built by an earlier run
    ctx.use_table(cached)
    assert not ctx.table_is_new()
    ctx.use_table(build_table("host-ort", parse_arch(MICRO_SPACE), 16, 4, repeats=3, rounds=1, warmup=1, fit_archs=0))
    assert ctx.table_is_new()


def test_reference_network_is_a_fixed_network_of_the_space():
    sp = preset("cifar")
    ref = reference_arch(sp)
    assert ref.is_fixed
    for layer, picked in zip(sp.layers(), ref.layers()):
        assert picked.spec.kernels[0] == layer.spec.kernels[len(layer.spec.kernels) // 2]


# -- fixed point ---------------------------------------------------------------------------


@pytest.mark.parametrize("settings,dtype,options", [
    (QuantSettings(), "i8", {}),
    (QuantSettings(pow2=True), "i8", {"pow2": True}),
    (QuantSettings(per_channel=False), "i8", {"per_channel": False}),
    (QuantSettings(bits=16), "i16", {}),
])
def test_board_qdq_graphs_carry_the_scales_and_zero_points_quantize_static_chooses(settings, dtype, options):
    g = board.graphs._Graph(seed=3)
    x = g.scale("X", 16, relu=True)
    x = g.conv(x, 16, 16, 5, 1, 16, True)
    y = g.conv(x, 16, 24, 1, 1, 1, False)
    shape = [1, 16, 8, 8]
    float_model = g.bytes(shape, y, [1, 24, 8, 8])
    mine = g.bytes(shape, y, [1, 24, 8, 8], board.quant_scheme(dtype, **options))
    # ednas export's quantizer, calibrated on the very input the board feeds
    image = board.feed(board.session(float_model), shape)["X"]
    theirs = quantize_bytes(float_model, image, settings, input_name="X")
    ours = {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(mine).graph.initializer}
    ref = {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(theirs).graph.initializer}
    for tensor, name in (("X", "X_f"), ("relu1", "relu1"), ("relu2", "relu2"), ("conv3", "conv3")):
        assert ours[name + "_s"] == pytest.approx(ref[tensor + "_scale"], rel=1e-6), tensor
        assert ours[name + "_z"].dtype == ref[tensor + "_zero_point"].dtype, tensor
        assert ours[name + "_z"] == ref[tensor + "_zero_point"], tensor
    for w in ("relu2", "conv3"):
        assert ours[w + "_ws"] == pytest.approx(ref[w + "_w_scale"], rel=1e-6), w
        assert ours[w + "_wq"].dtype == ref[w + "_w_quantized"].dtype
        assert np.abs(ours[w + "_wq"].astype(int) - ref[w + "_w_quantized"].astype(int)).max() <= 1  # rounding of a scale's last bit


def test_board_int8_network_runs_the_kernels_of_an_exported_int8_file(tmp_path):
    arch = parse_arch(MICRO_SPACE).largest()
    model = random_deploy_model(arch, 4, seed=0)
    exported = deployed_bytes(model, 16, board.quant_scheme("i8"))  # the quantizer of ednas export
    built, _ = board.build_network([op.key for op in arch_ops(arch, 16, 4, "i8")])
    kernels = _optimized_ops(exported, tmp_path)
    assert kernels["QLinearConv"] == 9 and kernels["QLinearAdd"] == 1  # integer kernels, not float ones between QDQ pairs
    assert _optimized_ops(built, tmp_path) == kernels


def test_quantized_operator_sandwich_keeps_the_operator_between_integer_kernels(tmp_path):
    model, _ = board.build("sw:dw_i16x16x32_o32_k5_s2_g32_e2_i8")
    assert _optimized_nodes(model, tmp_path) == ["QuantizeLinear", "Transpose", "QLinearConv", "QLinearConv", "QLinearConv",
                                                                "Transpose", "DequantizeLinear"]
    add, _ = board.build("addsw:add_i8x8x24_o24_k0_s1_g1_e1_i8")
    assert _optimized_ops(add, tmp_path)["QLinearAdd"] == 1


def test_int8_build_refuses_host_torch_and_unknown_dtypes():
    sp = parse_arch(MICRO_SPACE)
    with pytest.raises(EdnasError, match="float32"):
        build_table("host-torch", sp, 16, 4, dtype="i8")
    with pytest.raises(EdnasError, match="f16"):
        build_table("host-ort", sp, 16, 4, dtype="f16")


def test_host_ort_int8_table_is_measured_in_int8_with_a_reference_and_resumes(tmp_path, monkeypatch):
    sp = parse_arch(MICRO_SPACE)
    out = tmp_path / "lut.json"
    kw = dict(out=out, dtype="i8", repeats=3, rounds=1, warmup=1, fit_archs=2)
    t = build_table("host-ort", sp, 16, 4, **kw)
    assert set(t.entries) == {op.key for op in space_ops(sp, 16, 4, "i8")}
    assert t.dtype == "i8" and t.meta["quant"] == board.quant_scheme("i8")
    ref = t.meta["reference"]
    assert ref["ms"] > 0 and ref["arch"] == reference_arch(sp).format()
    assert all(e["ms"] == pytest.approx(e["rel"] * ref["ms"], abs=2e-6) and "raw_ms" in e for e in t.entries.values())
    assert len(t.meta["constant"]["measured_scaled_ms"]) == 2  # the constant is fitted at the table's speed
    calls = []
    monkeypatch.setattr(board, "measure_ops", lambda keys, *a, **k: calls.extend(keys))
    assert len(build_table("host-ort", sp, 16, 4, **kw)) == len(t) and calls == []  # complete: nothing measured again
    with pytest.raises(EdnasError, match="other settings"):
        build_table("host-ort", sp, 16, 4, out=out, dtype="i8", quant={"pow2": True}, repeats=3, rounds=1, fit_archs=0)


def test_lut_cache_keeps_tables_of_each_precision_apart(tmp_path, monkeypatch):
    sp = parse_arch(MICRO_SPACE)
    built = []

    def fake_build(target, space, input_size, num_classes, out=None, dtype=None, quant=None, **kw):
        built.append((dtype, json.dumps(quant, sort_keys=True)))
        t = LatencyTable(target=target, input_size=input_size, dtype=dtype or "f32",
                         entries={op.key: 0.01 for op in space_ops(space, input_size, num_classes, dtype or "f32")})
        t.save(out)
        return t

    monkeypatch.setattr(lut_build, "build_table", fake_build)
    cache = str(tmp_path / "cache")
    a = lut_build.target_table("host-ort", sp, 16, 4, cache, dtype="f32")
    b = lut_build.target_table("host-ort", sp, 16, 4, cache, dtype="i8", quant={"pow2": False})
    c = lut_build.target_table("host-ort", sp, 16, 4, cache, dtype="i8", quant={"pow2": True})
    assert (a.dtype, b.dtype, c.dtype) == ("f32", "i8", "i8") and len(built) == 3
    lut_build.target_table("host-ort", sp, 16, 4, cache, dtype="i8", quant={"pow2": False})
    assert len(built) == 3  # cached
    assert lut_build.cached_table("host-ort", sp, 16, 4, cache, "i8", {"pow2": True}).dtype == "i8"
    assert len(list((tmp_path / "cache").iterdir())) == 3


def test_board_kit_measures_int8_with_numpy_and_onnxruntime_only(tmp_path):
    sp = parse_arch(MICRO_SPACE)
    kit = write_script(tmp_path / "kit", sp, 16, 4, fit_archs=2, validate_archs=3, dtype="i8")
    spec = json.loads((tmp_path / "kit" / "ops.json").read_text())
    assert spec["dtype"] == "i8" and spec["quant"] == board.quant_scheme("i8") and spec["reference"]["ops"][0].endswith("_i8")
    # the kit runs where ednas is not importable (-I: isolated, cwd elsewhere)
    run = [sys.executable, "-I", kit["script"], "--ops", kit["ops_file"], "--out", str(tmp_path / "board.json"), "--repeats", "3",
           "--rounds", "1", "--warmup", "1"]
    r = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ""})
    assert r.returncode == 0, r.stderr[-2000:]
    table = load_table(tmp_path / "board.json", input_size=16)
    assert table.dtype == "i8" and set(table.entries) == {op.key for op in space_ops(sp, 16, 4, "i8")}
    assert table.meta["reference"]["ms"] > 0
    assert all(v.get("scaled_ms") is not None for v in table.meta["networks"].values())
    t = build_table(f"file:{tmp_path / 'board.json'}", sp, 16, 4, out=tmp_path / "lut.json")
    assert t.dtype == "i8" and len(t.meta["constant"]["residuals_ms"]) == 2
    res = validate_table(load_table(tmp_path / "lut.json"))
    assert res["n"] == 3 and res["dtype"] == "i8" and res["reference"]["used"]
    with pytest.raises(EdnasError, match="holds i8 operators"):
        build_table(f"file:{tmp_path / 'board.json'}", sp, 16, 4, dtype="f32")


def test_the_kit_builds_and_runs_int8_models_with_neither_ednas_nor_torch(tmp_path):
    from ednas.latency.script import write_script

    write_script(tmp_path / "kit", parse_arch("stem_k11_m1_c8_s1 | ir_k3_e2_c16 | head_c32"), 16, 10, fit_archs=0, validate_archs=0)
    probe = ("import sys; sys.modules['ednas'] = None; sys.modules['torch'] = None; sys.path.insert(0, %r); "
             "from ednas_board import build, feed, session; m, s = build('sw:dw_i8x8x16_o16_k3_s1_g16_e1_i8'); "
             "sess = session(m); print(sess.run(None, feed(sess, s))[0].shape, "
             "sorted({x.split('.')[0] for x, v in sys.modules.items() if v is not None and x.split('.')[0] in ('ednas', 'torch', 'onnx', 'onnxruntime')}))"
             % str(tmp_path / "kit"))
    r = subprocess.run([sys.executable, "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "(1, 16, 8, 8) ['onnx', 'onnxruntime']"


# -- the run: which table, and the verdict ----------------------------------------------------


def test_run_prices_the_deployed_precision_on_host_targets():
    host = LatencyConfig(target="host-ort")
    assert table_precision(host, "int8") == ("i8", {"per_channel": True, "pow2": False, "weight_bits": None})
    assert table_precision(host, "int8", pow2=True)[1] == {"per_channel": False, "pow2": True, "weight_bits": None}
    assert table_precision(host, "int16") == ("i16", {"per_channel": True, "pow2": False, "weight_bits": None})
    assert table_precision(host, "none") == ("f32", None)
    assert table_precision(LatencyConfig(target="host-ort", dtype="f32"), "int8") == ("f32", None)  # --latency-dtype wins
    assert table_precision(LatencyConfig(target="tda4vm"), "int8") == (None, None)  # an analytic profile keeps its own
    assert table_precision(LatencyConfig(target="host-torch"), "int8") == ("f32", None)
    assert table_precision(LatencyConfig(target="host-ort", dtype="int8"), "int8")[0] == "i8"  # --latency-dtype int8 means i8


def test_run_refuses_a_table_precision_that_is_not_deployed(tmp_path, capsys):
    from ednas.cli import main

    argv = ["run", "--out", str(tmp_path), "--data", "synthetic:classes=4,n=64,size=32", "--latency-dtype", "i8", "--quant", "none",
            "--baselines", "none", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--latency-dtype i8" in err and "--quant" in err and not (tmp_path / "lut").exists()
    assert main(["run", "--out", str(tmp_path), "--latency-dtype", "i4"]) == 2
    assert "--latency-dtype must be one of" in capsys.readouterr().err


def test_verdict_says_what_failed_by_how_much_and_what_to_do():
    lut = {"check_n": 12, "check_mape": 38.0, "check_spearman": 0.66, "check_drift": 1.62, "check_reference_ratio": 1.6}
    v = verdict({"latency_ms_measured": 0.24, "budget_ms": 0.2, "latency_dtype": "i8", "latency_ms_predicted": 0.19}, lut)
    assert not v["ok"] and [f["check"] for f in v["failures"]] == ["lut", "measured"]
    lut_f, meas_f = v["failures"]
    assert "MAPE 38.0 %" in lut_f["what"] and "+28.0 points" in lut_f["by"] and "1.60x" in lut_f["why"] and "ednas lut build" in lut_f["advice"]
    assert "1.20 x budget" in meas_f["what"] and "+20.0 %" in meas_f["by"] and "--budget-ms" in meas_f["advice"]
    good = verdict({"latency_ms_measured": 0.2, "budget_ms": 0.2}, {"check_n": 12, "check_mape": 2.0, "check_spearman": 0.98})
    assert good["ok"] and good["failures"] == [] and [c["ok"] for c in good["checks"]] == [True, True]
    assert verdict({"latency_ms_measured": 0.2099, "budget_ms": 0.2}, {})["ok"]  # within 1.05 B
    assert not verdict({"latency_ms_measured": 0.2101, "budget_ms": 0.2}, {})["ok"]


def test_a_timing_within_the_line_is_kept_and_nothing_is_timed_again():
    def retime():
        raise AssertionError("timed again although the first timing was within the line")

    first = {"file": "m.onnx", "raw_ms": 0.3, "scaled_ms": 0.2099}
    assert confirm_timing(first, 0.2, retime) is first


def test_a_transient_slow_timing_is_outvoted_by_two_more_and_every_timing_is_kept():
    again = iter([{"raw_ms": 0.19, "scaled_ms": 0.185}, {"raw_ms": 0.2, "scaled_ms": 0.19}])
    first = {"file": "m.onnx", "raw_ms": 0.3, "scaled_ms": 0.22}  # 1.10 x the budget: over the line
    c = confirm_timing(first, 0.2, lambda: next(again))
    assert c["scaled_ms"] == 0.19 and c["timings_ms"] == [0.22, 0.185, 0.19]  # the median of the three
    assert c["confirmation"]["first_ms"] == 0.22 and c["confirmation"]["line_ms"] == pytest.approx(MEASURED_TOLERANCE * 0.2)
    assert verdict({"latency_ms_measured": c["scaled_ms"], "budget_ms": 0.2}, {})["ok"]


def test_a_file_that_is_really_over_its_budget_stays_over_after_the_confirmation():
    again = iter([{"raw_ms": 0.3, "scaled_ms": 0.23}, {"raw_ms": 0.2, "scaled_ms": 0.19}])  # one fast moment does not rescue it
    c = confirm_timing({"file": "m.onnx", "raw_ms": 0.3, "scaled_ms": 0.22}, 0.2, lambda: next(again))
    assert c["scaled_ms"] == 0.22 and not verdict({"latency_ms_measured": c["scaled_ms"], "budget_ms": 0.2}, {})["ok"]
    # without a reference network the raw timings are the figures
    again = iter([{"raw_ms": 0.25, "scaled_ms": None}, {"raw_ms": 0.26, "scaled_ms": None}])
    c = confirm_timing({"file": "m.onnx", "raw_ms": 0.3, "scaled_ms": None}, 0.2, lambda: next(again))
    assert c["raw_ms"] == 0.26 and c["timings_ms"] == [0.3, 0.25, 0.26]


def test_run_confirms_a_deployed_timing_over_the_line_where_it_timed_it(tmp_path, capsys, monkeypatch):
    """A host-ort run whose deployed file timed at 1.5 x its budget (a transient, faked) times it twice more beside the
    reference network, checks the median, says so in the report, and on a second run finds the confirmation complete."""
    import ednas.pipeline as pipeline
    from ednas.cli import main

    out = tmp_path / "o"
    budget = lambda: json.loads((out / "search" / "search.json").read_text())["budget_ms"]  # noqa: E731
    real_deployed = pipeline._deployed
    monkeypatch.setattr(pipeline, "_deployed", lambda cfg, exp, table: {**real_deployed(cfg, exp, table), "scaled_ms": 1.5 * budget()})
    calls = []

    def timed_again(models, timing=None, reference=None):
        calls.append((dict(models), reference))
        ms = (0.9, 0.95)[len(calls) - 1] * budget()
        return {"model": {"median_ms": ms, "scaled_ms": ms}, "reference": {"ratio": 1.0}}

    monkeypatch.setattr(pipeline, "compare_latency", timed_again)
    argv = ["run", "--out", str(out), "--data", "synthetic:classes=4,n=192,size=32", "--target", "host-ort",
            "--space", "stem_k11_m1_c8_s1 | ir_k3.5.7_e2_c16_s2 | ir_k3.5.7_e2_c16 | head_c32", "--search-epochs", "2",
            "--warmup-epochs", "1", "--train-epochs", "1", "--batch-size", "16", "--baselines", "none", "--lut-check", "0",
            "--no-progress", "--latency-dtype", "f32", "--quant", "none", "--lut-cache", str(tmp_path / "cache")]
    assert main(argv) == 0
    s = json.loads((out / "summary.json").read_text())
    b = s["budget_ms"]
    assert len(calls) == 2 and all(m == {"model": s["deployed"]["file"]} and ref is not None for m, ref in calls)
    assert s["deployed"]["timings_ms"] == pytest.approx([1.5 * b, 0.9 * b, 0.95 * b])
    assert s["latency_ms_measured"] == pytest.approx(0.95 * b) and s["within_budget_measured"] and s["verdict"]["ok"]
    assert (out / "confirm" / "stage.json").is_file() and not s["stages"]["confirm"]["skipped"]
    assert "so the file was timed 2 more times" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(argv) == 0
    assert "[confirm] complete, skipped" in capsys.readouterr().err and len(calls) == 2


def test_report_opens_with_a_warning_when_a_check_missed(tmp_path):
    lut = {"check_n": 12, "check_mape": 38.0, "check_spearman": 0.66}
    summary = {"data": "digits", "target": "host-ort", "budget_ms": 0.2, "latency_dtype": "i8", "latency_ms_measured": 0.21}
    summary["verdict"] = verdict(summary, lut)
    _, md = write_report(tmp_path, summary)
    text = md.read_text()
    first = text.split("\n## ")[1]
    assert first.startswith("Warning") and "MAPE 38.0 %" in first and "What to do" in first
    summary["verdict"] = verdict(summary, {"check_n": 12, "check_mape": 2.0, "check_spearman": 0.99})
    _, md = write_report(tmp_path, summary)
    assert "Warning" not in md.read_text() and md.read_text().split("\n## ")[1].startswith("Summary")


def test_report_shows_fp32_and_int8_beside_the_budget_it_is_for(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "export.json").write_text(json.dumps({
        "quant": "int8", "top1_fp32": 99.0, "top1_quant": 98.9, "latency_ms_fp32": 0.31, "latency_ms_quant": 0.6,
        "latency_ms_fp32_scaled": 0.18, "latency_ms_quant_scaled": 0.35, "reference": {"ratio": 1.72}}))
    summary = {"data": "digits", "target": "host-ort", "budget_ms": 0.36, "latency_dtype": "i8", "latency_ms_predicted": 0.34,
               "latency_ms_measured": 0.35, "verdict": {"ok": True, "failures": [], "checks": []}}
    _, md = write_report(tmp_path, summary)
    text = md.read_text()
    assert "deployed_latency.png" in text and (tmp_path / "report_files" / "deployed_latency.png").is_file()
    assert "the budget, which is for the i8 file" in text and "scaled by its reference network" in text


def test_config_refuses_unknown_latency_dtypes():
    names = lambda f: f"--latency.{f}"  # noqa: E731
    with pytest.raises(ConfigError, match="host-torch"):
        LatencyConfig(target="host-torch", dtype="i8").check(names)
    with pytest.raises(ConfigError, match="host-ort measures"):
        LatencyConfig(target="host-ort", dtype="f16").check(names)
    LatencyConfig(target="tda4vm", dtype="i8").check(names)


def test_run_times_the_derived_network_once_at_export_not_in_the_search_as_well(tmp_path, monkeypatch):
    """`ednas run` on a host target: the search does not time its derived network (the export stage times the deployed
    file, the same network trained); the report's search table shows that timing; `--search.measure` brings it back."""
    import ednas.search.algorithm as algorithm
    from ednas.cli import main
    from ednas.report.report import fmt

    calls = []
    real = algorithm.measure_latency
    monkeypatch.setattr(algorithm, "measure_latency", lambda *a, **k: calls.append(1) or real(*a, **k))
    argv = ["--data", "synthetic:classes=4,n=64,size=32", "--target", "host-ort",
            "--space", "stem_k11_m1_c8_s1 | ir_k3.5.7_e2_c16_s2 | ir_k3.5.7_e2_c16 | head_c32", "--search-epochs", "2",
            "--warmup-epochs", "1", "--train-epochs", "1", "--batch-size", "16", "--baselines", "none", "--lut-check", "0",
            "--no-progress", "--latency-dtype", "f32", "--quant", "none", "--lut-cache", str(tmp_path / "cache")]
    out = tmp_path / "o"
    assert main(["run", "--out", str(out), *argv]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert calls == [] and json.loads((out / "search" / "search.json").read_text())["measured_latency_ms"] is None
    assert s["latency_ms_measured"] > 0
    row = next(line for line in (out / "report.md").read_text().splitlines() if "derived network, measured (ms)" in line)
    assert f"{fmt(s['latency_ms_measured'])} (the deployed file, measured on this host)" in row
    out2 = tmp_path / "o2"
    assert main(["run", "--out", str(out2), *argv, "--search.measure"]) == 0
    assert calls == [1] and json.loads((out2 / "search" / "search.json").read_text())["measured_latency_ms"] > 0
