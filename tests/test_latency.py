"""The latency model (eq. 11): keys, tables, targets, E[LAT], the board round trip."""

import dataclasses
import json
import random
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from ednas import build_model, build_supernet, parse_arch, preset
from ednas.errors import EdnasError
from ednas.latency import (
    FORMAT_VERSION,
    LatencyModel,
    LatencyTable,
    Op,
    arch_ops,
    build_table,
    load_profile,
    load_table,
    measure_latency,
    sample_picks,
    space_ops,
    unsupported_layers,
    validate_table,
)
from ednas.latency.script import write_script
from ednas.latency.table import table_checksum
from ednas.latency.targets import calibrated, reference_ops
from ednas.latency.validate import spearman
from ednas.runtime import board
from tests.conftest import TINY_SPACE

# a space with a 9x9 candidate, which TIDL (tda4vm) does not accelerate
SPACE_K9 = "stem_k11_m1_c8_s2 | ir_k3.5.9_e2_c8 | ir_k3.7.9_e3.6_c16_s2_r2_skip | head_c32"
# small enough to measure in a test
MICRO_SPACE = "stem_k11_m1_c8_s1 | ir_k3.5.7_e2_c8 | ir_k3.5_e2_c16_s2 | head_c16"


def synthetic_table(space, size=32, num_classes=10, **kw) -> LatencyTable:
    """Known entries: 1 us per operator plus 1 ns per MAC."""
    entries = {op.key: 0.001 + op.macs * 1e-6 for op in space_ops(space, size, num_classes)}
    return LatencyTable(target="synthetic", input_size=size, entries=entries, **kw)


def random_picks(space, rng):
    return [
        {"kernel": rng.choice(l.spec.kernels), "expansion": rng.choice(l.spec.expansions), "skip": l.can_skip and rng.random() < 0.5}
        for l in space.layers()
    ]


# -- keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("space,size", [("cifar", 32), ("imagenet", 224), (TINY_SPACE, 32), (SPACE_K9, 64)])
def test_key_round_trip(space, size):
    sp = preset(space) if space in ("cifar", "imagenet") else parse_arch(space)
    ops = space_ops(sp, size, 10) + reference_ops("mobilenet_v1") + space_ops(sp, size, 10, dtype="i8")
    keys = [op.key for op in ops]
    assert len(set(keys)) == len(set(ops))  # distinct operators, distinct keys
    for op in ops:
        assert Op.from_key(op.key) == op
        fields = board.parse_key(op.key)  # the standalone script parses the same scheme
        assert {k: fields[k] for k in ("type", "h", "w", "cin", "cout", "kernel", "stride", "groups", "expansion", "dtype")} == op.to_dict()
        assert (fields["ho"], fields["wo"]) == (op.ho, op.wo)


def test_bad_keys_are_clear_errors():
    with pytest.raises(EdnasError, match="key scheme v1"):
        Op.from_key("dw-16x16x96-k5")
    with pytest.raises(EdnasError, match="operator type 'conv3d'"):
        Op.from_key("conv3d_i16x16x96_o96_k5_s2_g96_e4_f32")


def test_space_ops_cover_every_network_of_the_space():
    sp = parse_arch(TINY_SPACE)
    keys = {op.key for op in space_ops(sp, 32, 10)}
    rng = random.Random(0)
    for _ in range(20):
        arch = sp.with_picks(random_picks(sp, rng))
        assert {op.key for op in arch_ops(arch, 32, 10)} <= keys
    macs_mnv1 = sum(op.macs for op in reference_ops("mobilenet_v1"))
    assert abs(macs_mnv1 / 1e6 - 569) < 1


# -- the model -------------------------------------------------------------------------


def test_table_from_a_dict_and_predict_sums_operators():
    sp = parse_arch(TINY_SPACE)
    table = synthetic_table(sp, constant_ms=0.5)
    lm = LatencyModel(sp, 32, 10, table)
    rng = random.Random(1)
    for _ in range(10):
        picks = random_picks(sp, rng)
        arch = sp.with_picks(picks)
        by_ops = sum(table.ms(op) for op in arch_ops(arch, 32, 10)) + 0.5
        assert lm.predict(picks) == pytest.approx(by_ops, rel=1e-9)
        assert lm.predict(arch) == pytest.approx(by_ops, rel=1e-9)
    assert lm.min_ms == pytest.approx(lm.predict(lm.extreme_picks(True)))
    assert lm.max_ms == pytest.approx(lm.predict(lm.extreme_picks(False)))
    assert lm.min_ms < lm.max_ms
    t = lm.layer_ms(1)
    assert t.shape == (3, 2, 2) and torch.all(t[..., 1] == 0) and torch.all(t[..., 0] > 0)


def _set_one_hot(net, picks):
    for blk, p in zip(net.blocks, picks):
        for c, v in ((blk.kernel_choice, p["kernel"]), (blk.expansion_choice, p["expansion"]), (blk.skip_choice, "skip" if p["skip"] else "block")):
            if c is not None:
                c.g = F.one_hot(torch.tensor(c.candidates.index(v)), len(c.candidates)).float()


def test_expected_with_one_hot_g_equals_predict():
    sp = parse_arch(TINY_SPACE)
    lm = LatencyModel(sp, 32, 10, synthetic_table(sp, constant_ms=0.25))
    net = build_supernet(sp, 10)
    rng = random.Random(2)
    for _ in range(10):
        picks = random_picks(sp, rng)
        _set_one_hot(net, picks)
        e = lm.expected(net)
        assert e.dim() == 0
        assert float(e) == pytest.approx(lm.predict(picks), rel=1e-6)


def test_expected_latency_takes_the_supernets_dtype():
    sp = parse_arch(TINY_SPACE)
    lm = LatencyModel(sp, 32, 10, synthetic_table(sp, constant_ms=0.25))
    net = build_supernet(sp, 10)
    e32 = lm.expected(net)
    e64 = lm.expected(net.double())
    assert e32.dtype == torch.float32 and e64.dtype == torch.float64
    assert float(e64) == pytest.approx(float(e32), rel=1e-6)
    assert float(e64) > 0.25  # the constant plus every layer's expected cost


def test_expected_gradient_equals_finite_difference():
    torch.manual_seed(0)
    sp = parse_arch(TINY_SPACE)
    lm = LatencyModel(sp, 32, 10, synthetic_table(sp))
    net = build_supernet(sp, 10).double()
    for c in net.choices():
        with torch.no_grad():
            c.alpha.normal_()
    e = lm.expected(net)
    e.backward()
    eps = 1e-6
    for a in net.arch_parameters():
        assert a.grad is not None and a.grad.abs().sum() > 0
        for j in range(a.numel()):
            with torch.no_grad():
                a[j] += eps
                up = float(lm.expected(net))
                a[j] -= 2 * eps
                down = float(lm.expected(net))
                a[j] += eps
            assert float(a.grad[j]) == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-9)


def test_expected_follows_gumbel_samples_and_checks_the_supernet():
    sp = parse_arch(TINY_SPACE)
    lm = LatencyModel(sp, 32, 10, synthetic_table(sp))
    net = build_supernet(sp, 10)
    for c in net.choices():
        c.g = F.gumbel_softmax(c.alpha, tau=1.0)
    e = lm.expected(net)
    assert lm.min_ms <= float(e.detach()) <= lm.max_ms
    other = build_supernet(parse_arch(TINY_SPACE.replace("ir_k3.5_e2", "ir_k3.5.7_e2")), 10)
    with pytest.raises(EdnasError, match="candidates"):
        LatencyModel(sp, 32, 10, synthetic_table(sp)).expected(other)


# -- errors ------------------------------------------------------------------------------


def test_missing_key_names_the_operator_and_the_fix():
    sp = parse_arch(TINY_SPACE)
    table = synthetic_table(sp)
    victim = next(op for op in space_ops(sp, 32, 10) if op.type == "dw" and op.kernel == 7)
    del table.entries[victim.key]
    with pytest.raises(EdnasError) as e:
        LatencyModel(sp, 32, 10, table)
    msg = str(e.value)
    assert victim.key in msg and "ednas lut build" in msg and "layer" in msg


def test_other_format_version_and_other_input_size_are_clear_errors(tmp_path):
    sp = parse_arch(TINY_SPACE)
    path = tmp_path / "lut.json"
    synthetic_table(sp).save(path)
    assert len(load_table(path, input_size=32)) == len(space_ops(sp, 32, 10))
    d = json.loads(path.read_text())
    d["format_version"] = FORMAT_VERSION + 1
    d["checksum"] = table_checksum(d)  # as a later version would write it
    bad = tmp_path / "v2.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(EdnasError, match=r"format_version 2.*rebuild"):
        load_table(bad)
    with pytest.raises(EdnasError, match=r"built for input size 32, not 64.*ednas lut build"):
        load_table(path, input_size=64)
    with pytest.raises(EdnasError, match="input size 32, not 64"):
        LatencyModel(sp, 64, 10, load_table(path))
    with pytest.raises(EdnasError, match="does not exist"):
        load_table(tmp_path / "nope.json")


# -- targets ---------------------------------------------------------------------------------


def _table3_ms(prof, reference: str) -> float:
    return sum(prof.op_ms(op)[0] for op in reference_ops(reference, 224, 1000, prof.dtype))


def test_tda2x_is_fitted_to_one_table3_row_and_predicts_nasnet_a_within_35_percent():
    # Table III: MobileNetV1 569 M MACs 75 ms, NASNet-A 564 M 183 ms.  The shipped profile
    # fits its one number (scale) to MobileNetV1 only; NASNet-A is a prediction, and its error
    # is the one BENCHMARKS.md reports (-30 %): this fails if the profile gets worse on it.
    prof = load_profile("tda2x")
    assert prof.calibration["reference"] == "mobilenet_v1" and prof.sources and prof.policy == "fallback"
    err = _table3_ms(prof, "nasnet_a_mobile") / 183.0 - 1.0
    assert abs(err) < 0.35, err


def test_tda2x_fitted_to_nasnet_a_predicts_mobilenet_v1_within_50_percent():
    # the other way round: hold MobileNetV1 out (BENCHMARKS.md: +43 %)
    prof = calibrated(load_profile("tda2x"), "nasnet_a_mobile", 183.0)
    err = _table3_ms(prof, "mobilenet_v1") / 75.0 - 1.0
    assert abs(err) < 0.50, err


def test_calibration_changes_one_number_and_keeps_every_ratio():
    shipped = load_profile("tda2x")
    other = calibrated(shipped, "nasnet_a_mobile", 183.0)
    assert other.scale != shipped.scale and shipped.calibration["reference"] == "mobilenet_v1"  # the shipped one is untouched
    ops = reference_ops("mobilenet_v1", dtype=shipped.dtype) + space_ops(preset("cifar"), 32, 10, shipped.dtype)
    ratios = {round(other.op_ms(op)[0] / shipped.op_ms(op)[0], 9) for op in ops}
    assert ratios == {round(other.scale / shipped.scale, 9)}


def test_reference_networks_have_their_published_macs():
    for name, published in (("mobilenet_v1", 569), ("nasnet_a_mobile", 564)):
        macs = sum(op.macs for op in reference_ops(name) if op.is_conv or op.type == "fc") / 1e6
        assert abs(macs / published - 1) < 0.01, (name, macs)


def test_tda2x_profile_prices_no_imagenet_network_at_the_papers_38_ms():
    # The paper's 38 ms for 535 M MACs is an estimate from MACs (14.1 GMAC/s, 68 % of the DSP's
    # peak); the profile, fitted to MobileNetV1's measured 7.6 GMAC/s, charges even the space's
    # smallest network (387 M MACs) more than that.
    sp = preset("imagenet")
    lm = LatencyModel(sp, 224, 1000, build_table("tda2x", sp, 224, 1000))
    assert lm.min_ms > 38.0


def test_masked_candidate_is_never_chosen():
    sp = parse_arch(SPACE_K9)
    table = build_table("tda4vm", sp, 64, 10)
    assert table.policy == "mask"
    lm = LatencyModel(sp, 64, 10, table)
    for i, layer in enumerate(lm.layers):
        assert lm.allowed(i) == [k != 9 for k in layer.spec.kernels]
    # the 9x9 candidates are the most expensive ones, yet neither extreme picks them
    for cheapest in (True, False):
        assert all(p["skip"] or p["kernel"] != 9 for p in lm.extreme_picks(cheapest))
    picks = [{"kernel": 9, "expansion": l.spec.expansions[0], "skip": False} for l in sp.layers()]
    with pytest.raises(EdnasError, match="masked"):
        lm.predict(picks)
    assert lm.predict(picks, allow_masked=True) > lm.max_ms
    # the fixed 11x11 stem cannot be masked: it is charged and flagged
    flagged = unsupported_layers(sp.largest(), "tda4vm", 64, 10)
    assert [f["layer"] for f in flagged] == ["stem", "layer 0 (stage 1 block 0)", "layer 1 (stage 2 block 0)", "layer 2 (stage 2 block 0)"]
    assert unsupported_layers(sp.smallest_kernels(), "tda4vm", 64, 10)[0]["layer"] == "stem"


def test_fallback_policy_charges_the_host_core_cost():
    from ednas.latency.ops import block_ops

    sp = parse_arch(SPACE_K9)
    prof = load_profile("tda4vm")
    table = build_table("tda4vm", sp, 64, 10, policy="fallback")
    lm = LatencyModel(sp, 64, 10, table)
    assert lm.policy == "fallback" and all(all(lm.allowed(i)) for i in range(len(lm)))
    layer = lm.layers[0]
    assert layer.spec.kernels[2] == 9
    ops = block_ops(layer, 32, 9, 2, "i8")
    dw9 = next(op for op in ops if op.type == "dw")
    dw7 = dataclasses.replace(dw9, kernel=7)
    assert not table.supported(dw9) and prof.support(dw7)[0]
    assert table.ms(dw9) == pytest.approx(prof.fallback_ms(dw9), rel=1e-4)
    assert table.ms(dw9) > 10 * prof.op_ms(dw7)[0]  # the host core plus the round trip costs far more
    assert float(lm.layer_ms(0)[2, 0, 0]) == pytest.approx(sum(table.ms(op) for op in ops), rel=1e-5)
    # so the cheapest network still avoids it, though nothing is masked
    assert all(p["skip"] or p["kernel"] != 9 for p in lm.extreme_picks(True))


def test_every_shipped_profile_loads_and_prices_the_presets():
    from ednas.latency import profile_names

    assert {"tda2x", "tda4vm", "roofline"} <= set(profile_names())
    for name in profile_names():
        t = build_table(name, preset("cifar"), 32, 10)
        assert all(e["ms"] > 0 for e in t.entries.values())
    with pytest.raises(EdnasError, match="not found"):
        load_profile("tda3x")


# -- measurement ---------------------------------------------------------------------------


def test_host_ort_build_is_cached_and_resumable(tmp_path, monkeypatch):
    sp = parse_arch(MICRO_SPACE)
    out = tmp_path / "lut.json"
    kw = dict(out=out, repeats=3, rounds=1, warmup=1, fit_archs=0)
    t1 = build_table("host-ort", sp, 16, 4, **kw)
    assert len(t1) == len(space_ops(sp, 16, 4)) and all(e["ms"] >= 0 for e in t1.entries.values())
    d = json.loads(out.read_text())
    gone = sorted(d["entries"])[:2]
    for k in gone:  # as if interrupted before these two
        del d["entries"][k]
    d["checksum"] = table_checksum(d)  # each atomic write of the build carries its checksum
    out.write_text(json.dumps(d))
    calls = []
    real = board.measure_ops
    monkeypatch.setattr(board, "measure_ops", lambda keys, *a, **k: calls.extend(keys) or real(keys, *a, **k))
    t2 = build_table("host-ort", sp, 16, 4, **kw)
    assert sorted(calls) == gone and len(t2) == len(t1)
    assert d["measurement"]["threads"] == 1 and d["tools"]["onnxruntime"]
    with pytest.raises(EdnasError, match="other settings"):
        build_table("host-ort", sp, 16, 4, out=out, threads=2, repeats=3, rounds=1, fit_archs=0)


@pytest.mark.parametrize("change", [{"rounds": 2}, {"repeats": 4}, {"warmup": 2}, {"min_time_s": 0.002}, {"ops_per_reference": 2}])
def test_a_table_file_resumes_only_with_the_timing_its_entries_were_measured_with(tmp_path, change):
    sp = parse_arch(MICRO_SPACE)
    out = tmp_path / "lut.json"
    kw = dict(out=out, repeats=3, rounds=1, warmup=1, fit_archs=0, min_time_s=0.001, ops_per_reference=4)
    build_table("host-ort", sp, 16, 4, **kw)
    d = json.loads(out.read_text())
    del d["entries"][sorted(d["entries"])[0]]  # interrupted before this one
    d["checksum"] = table_checksum(d)
    out.write_text(json.dumps(d))
    with pytest.raises(EdnasError, match="other settings"):  # its missing entry would be timed another way than the rest
        build_table("host-ort", sp, 16, 4, **{**kw, **change})
    assert len(build_table("host-ort", sp, 16, 4, **kw)) == len(d["entries"]) + 1  # the same settings resume


def test_a_table_file_from_before_operators_were_grouped_resumes_only_one_operator_a_group(tmp_path):
    sp = parse_arch(MICRO_SPACE)
    out = tmp_path / "lut.json"
    kw = dict(out=out, repeats=3, rounds=1, warmup=1, fit_archs=0, min_time_s=0.001)
    build_table("host-ort", sp, 16, 4, ops_per_reference=1, **kw)
    d = json.loads(out.read_text())
    del d["measurement"]["ops_per_reference"]  # as written before the setting was recorded: one operator between reference timings
    del d["entries"][sorted(d["entries"])[0]]
    d["checksum"] = table_checksum(d)
    out.write_text(json.dumps(d))
    with pytest.raises(EdnasError, match="other settings"):
        build_table("host-ort", sp, 16, 4, **kw)  # the default groups four
    assert len(build_table("host-ort", sp, 16, 4, ops_per_reference=1, **kw)) == len(d["entries"]) + 1


def test_every_timed_batch_of_a_host_table_lasts_its_min_time_and_the_cache_keys_on_it(tmp_path, monkeypatch):
    """The operators' shortest timed batch (TABLE_MIN_TIME_S, 10 ms by default) reaches the timing loop and is recorded;
    a cached table measured with another is measured again, as a change of rounds is."""
    import ednas.latency.build as lut_build

    sp = parse_arch(MICRO_SPACE)
    seen = []
    real = board.time_runs

    def time_runs(run, warmup, repeats, min_time_s=0.0, stat="median"):
        seen.append(min_time_s)
        return real(run, warmup, repeats, min_time_s, stat)

    monkeypatch.setattr(board.timing, "time_runs", time_runs)
    t = build_table("host-ort", sp, 16, 4, out=tmp_path / "a.json", repeats=3, rounds=1, warmup=1, fit_archs=0, min_time_s=0.004)
    assert seen and set(seen) == {0.004}  # every batch: the operators' models and the reference network between the rounds
    assert t.meta["measurement"]["min_time_s"] == 0.004
    seen.clear()
    t = build_table("host-ort", sp, 16, 4, out=tmp_path / "b.json", repeats=3, rounds=1, warmup=1, fit_archs=0)
    assert set(seen) == {lut_build.TABLE_MIN_TIME_S} == {0.01} and t.meta["measurement"]["min_time_s"] == 0.01

    cache = str(tmp_path / "cache")
    folder, settings = lut_build._cache_dir("host-ort", sp, 16, 4, cache)
    assert settings["measurement"]["min_time_s"] == 0.01
    monkeypatch.setattr(lut_build, "TABLE_MIN_TIME_S", 0.02)
    folder2, settings2 = lut_build._cache_dir("host-ort", sp, 16, 4, cache)
    assert folder2 == folder and settings2 != settings  # the same folder, other settings: the stage measures it again
    assert "min_time_s" not in lut_build._cache_dir("host-torch", sp, 16, 4, cache)[1]["measurement"]  # eager timing has its own loop


def test_measure_latency_times_the_fused_network(monkeypatch):
    """What is timed is the deploy form (BN and branches folded, as deployed), computing the network's function."""
    import numpy as np
    import onnx

    import ednas.latency.measure as measure
    from ednas.runtime import ort_session
    from tests.conftest import randomize_bn

    timed = {}
    real = measure.time_onnx
    monkeypatch.setattr(measure, "time_onnx", lambda models, timing, **kw: timed.update(models) or real(models, timing, **kw))
    net = randomize_bn(build_model(parse_arch(MICRO_SPACE.replace("ir_k3.5_e2_c16_s2", "ir_k3.5_e2_c16_s2_acb")).largest(), 4)).eval()
    ms = measure_latency(net, 16, threads=1, repeats=5, rounds=1)
    assert 0 < ms < 100
    (data,) = timed.values()
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert ops <= {"Conv", "Relu", "Add", "GlobalAveragePool", "Flatten", "Gemm"}, ops  # no BN, no branch sums
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert np.abs(ort_session(data).run(None, {"input": x.numpy()})[0] - net(x).numpy()).max() <= 1e-4


def test_board_script_round_trip(tmp_path):
    sp = parse_arch(MICRO_SPACE)
    kit = write_script(tmp_path / "kit", sp, 16, 4, fit_archs=2, validate_archs=3)
    script = tmp_path / "kit" / "measure_ops.py"
    for f in [script, *sorted((tmp_path / "kit" / "ednas_board").glob("*.py"))]:
        src = f.read_text()
        assert "import ednas" not in src and "from ednas " not in src and "from ednas." not in src and "import torch" not in src, f.name
    # the script runs where ednas and torch are not importable (-I: isolated, cwd elsewhere; both blocked)
    launch = ("import runpy, sys; sys.modules['ednas'] = None; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
              "runpy.run_path(sys.argv[0], run_name='__main__')")
    run = [sys.executable, "-I", "-c", launch, str(script), "--ops", kit["ops_file"], "--out", str(tmp_path / "board.json"), "--repeats", "3",
           "--rounds", "1", "--warmup", "1"]
    r = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ""})
    assert r.returncode == 0, r.stderr[-2000:]
    board_table = load_table(tmp_path / "board.json", input_size=16)
    assert set(board_table.entries) == {op.key for op in space_ops(sp, 16, 4)}
    t = build_table(f"file:{tmp_path / 'board.json'}", sp, 16, 4, out=tmp_path / "lut.json")
    assert t.target.startswith("file:") and len(t.meta["constant"]["residuals_ms"]) == 2
    lm = LatencyModel(sp, 16, 4, load_table(tmp_path / "lut.json"))
    assert lm.predict(sp.largest()) > 0
    res = validate_table(load_table(tmp_path / "lut.json"))
    assert res["n"] == 3 and "board" in res["measured_with"]
    # a space the board did not measure: the error says how to extend it
    bigger = parse_arch(MICRO_SPACE.replace("ir_k3.5_e2_c16", "ir_k3.5.7_e2_c16"))
    with pytest.raises(EdnasError, match="lut script"):
        build_table(f"file:{tmp_path / 'board.json'}", bigger, 16, 4)


def test_sampling_is_seeded_distinct_and_spans_the_space():
    sp = preset("cifar")
    a, b = sample_picks(sp, 30, 0), sample_picks(sp, 30, 0)
    assert a == b and len({json.dumps(p) for p in a}) == 30
    fit = sample_picks(sp, 5, 1234)
    val = sample_picks(sp, 30, 0, exclude=fit)
    assert not {json.dumps(p) for p in fit} & {json.dumps(p) for p in val}
    lm = LatencyModel(sp, 32, 10, synthetic_table(sp))
    ms = sorted(lm.predict(p) for p in a)
    span = (ms[-1] - ms[0]) / (lm.max_ms - lm.min_ms)
    assert span > 0.7
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_cli_lut_commands(tmp_path, capsys):
    from ednas.cli import main

    out = tmp_path / "tda2x.json"
    assert main(["lut", "build", "--target", "tda2x", "--space", "cifar", "--out", str(out), "--no-progress"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["entries"] == len(load_table(out)) and res["min_ms"] < res["max_ms"]
    assert main(["lut", "validate", "--lut", str(out), "--no-progress"]) == 2
    assert "cannot be measured on this machine" in capsys.readouterr().err
    assert main(["lut", "script", "--out", str(tmp_path / "kit"), "--space", "cifar", "--validate-archs", "2"]) == 0
    assert (tmp_path / "kit" / "ops.json").is_file()
    assert main(["lut", "build", "--target", "file:" + str(tmp_path / "none.json"), "--out", str(out)]) == 2


# its networks take from about 0.15 to 0.8 ms at 32x32 (f32, one x86 core): latencies severalfold apart
WIDE_SPACE = "stem_k11_m1_c8_s1 | ir_k3.7_e2.6_c16_d1.3 | ir_k3.7_e2.6_c32_s2_d1.3 | head_c64"


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["f32", "i8"])
def test_host_ort_table_prices_each_network_within_2x_and_orders_networks_1_5x_apart_as_measured(tmp_path, dtype):
    """A table built and checked at the command line's settings (the defaults of 'ednas lut build' and 'ednas lut
    validate': end-to-end timings interleaved over rounds, scaled by the table's reference network; int8 networks
    quantized as 'ednas export' quantizes them) prices each network at its own latency, not a multiple of it, and
    ranks networks as the clock does where their predictions are 1.5x apart.

    Both hold by wide margins on a busy machine (errors of a few per cent); how close the table comes (MAPE and
    Spearman over 30 networks of the presets) is a measurement, made by benchmarks/lut_validation.py (BENCHMARKS.md).
    """
    from ednas.cli import main

    lut, val = tmp_path / "lut.json", tmp_path / "validation.json"
    assert main(["lut", "build", "--target", "host-ort", "--space", WIDE_SPACE, "--input-size", "32", "--dtype", dtype,
                 "--out", str(lut), "--no-progress"]) == 0
    assert main(["lut", "validate", "--lut", str(lut), "--archs", "6", "--json", str(val), "--no-progress"]) == 0
    res = json.loads(val.read_text())
    assert res["n"] == 6 and res["dtype"] == dtype and res["reference"]["used"]
    pairs = [(p["predicted_ms"], p["measured_scaled_ms"]) for p in res["pairs"]]
    assert all(0.5 < pred / meas < 2 for pred, meas in pairs), pairs
    apart = [(a, b) for a in pairs for b in pairs if b[0] >= 1.5 * a[0]]
    assert len(apart) >= 3, pairs  # the sample spans the space
    assert all(b[1] > a[1] for a, b in apart), pairs
