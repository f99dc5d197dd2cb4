"""ednas.runtime: the one timing loop, the one session builder, the one ONNX scorer.

No test here asserts a duration of real code (the machine is shared): the
loop is checked with fake runners on a fake clock, the timers by spying on
the loop they must go through.
"""

import statistics
import subprocess
import sys

import numpy as np
import pytest
import torch

from ednas import build_model, fuse
from ednas.errors import ConfigError, ExportError
from ednas.runtime import Timing, board, export_onnx, onnx_bytes, ort_session, score_onnx, time_onnx, time_torch
from tests.conftest import randomize_bn

ARCH = "stem_k11_m1_c8_s2 | ir_k3_e2_c16_s2 | ir_k5_e2_c16 | head_c32"


class _Clock:
    """A perf_counter that moves only when a fake model runs."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _scripted(clock, durations_ms):
    """A runner whose successive calls take the given milliseconds on ``clock``."""
    it = iter(durations_ms)

    def run():
        clock.now += next(it) / 1e3

    return run


# -- the loop --------------------------------------------------------------------------


def test_interleaved_times_every_model_in_a_round_before_the_next_round():
    calls, seen = [], []

    def runner(name):
        return lambda: calls.append(name)

    res = board.interleaved({"a": runner("a"), "b": runner("b"), "c": runner("c")}, warmup=1, repeats=2, rounds=3, min_time_s=0.0,
                            progress=lambda name, r: seen.append((name, r)), max_rounds=3)
    # per round: a (1 warm-up + 2 timed), then b, then c; then the next round
    assert calls == [name for _ in range(3) for name in ("a", "b", "c") for _ in range(3)]
    assert seen == [(name, r) for r in range(3) for name in ("a", "b", "c")]
    assert all(res[n]["n"] == 6 and len(res[n]["rounds_ms"]) == 3 for n in "abc")


def test_interleaved_reports_the_median_of_the_round_medians(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(board.timing.time, "perf_counter", clock)
    # round medians 2, 5, 4 -> 4; the median of all nine runs would be 5, their mean 14.9
    a = _scripted(clock, [1, 2, 9, 5, 5, 5, 3, 4, 100])
    b = _scripted(clock, [7, 7, 7, 1, 1, 1, 2, 2, 2])
    res = board.interleaved({"a": a, "b": b}, warmup=0, repeats=3, rounds=3, min_time_s=0.0, max_rounds=3)
    assert res["a"]["rounds_ms"] == pytest.approx([2, 5, 4])
    assert res["a"]["ms"] == pytest.approx(4)
    assert res["a"]["min_ms"] == pytest.approx(1) and res["a"]["n"] == 9
    assert res["a"]["spread_ms"] == pytest.approx(statistics.pstdev([2, 5, 4]), abs=1e-6)
    assert res["b"]["rounds_ms"] == pytest.approx([7, 1, 2]) and res["b"]["ms"] == pytest.approx(2)


def test_interleaved_gives_a_model_whose_rounds_disagree_more_rounds_and_only_that_model(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(board.timing.time, "perf_counter", clock)
    # b: a slow spell over three of the first five rounds (median 16 ms), then steady at 10 ms
    a = _scripted(clock, [10] * 5)
    b = _scripted(clock, [16, 16, 16, 10, 10] + [10] * 10)
    res = board.interleaved({"a": a, "b": b}, warmup=0, repeats=1, rounds=5, min_time_s=0.0)
    assert res["a"]["rounds_ms"] == pytest.approx([10] * 5)  # settled: never timed again (its script has five calls)
    assert len(res["b"]["rounds_ms"]) == 15 and res["b"]["ms"] == pytest.approx(10)  # the spell no longer decides the median


def test_interleaved_adds_rounds_until_the_first_round_whose_figures_are_settled(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(board.timing.time, "perf_counter", clock)
    res = board.interleaved({"b": _scripted(clock, [12, 10, 10, 10, 10] + [10] * 10)}, warmup=0, repeats=1, rounds=5, min_time_s=0.0)
    v = res["b"]["rounds_ms"]
    se = [1.25 * statistics.pstdev(v[:k]) / k ** 0.5 for k in range(5, len(v) + 1)]  # the standard error of the median after k rounds
    assert 5 < len(v) < 15 and se[-1] <= 0.02 * statistics.median(v) < min(se[:-1])


def test_interleaved_stops_adding_rounds_at_max_rounds_and_max_rounds_equal_to_rounds_turns_it_off(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(board.timing.time, "perf_counter", clock)
    res = board.interleaved({"x": _scripted(clock, [10, 20] * 50)}, warmup=0, repeats=1, rounds=4, min_time_s=0.0)
    assert len(res["x"]["rounds_ms"]) == 12  # never settles: 3 x rounds by default
    res = board.interleaved({"x": _scripted(clock, [10, 20] * 50)}, warmup=0, repeats=1, rounds=4, min_time_s=0.0, max_rounds=7)
    assert len(res["x"]["rounds_ms"]) == 7
    res = board.interleaved({"x": _scripted(clock, [10, 20] * 50)}, warmup=0, repeats=1, rounds=4, min_time_s=0.0, max_rounds=4)
    assert len(res["x"]["rounds_ms"]) == 4
    res = board.interleaved({"x": _scripted(clock, [10, 20] * 50)}, warmup=0, repeats=1, rounds=4, min_time_s=0.0, rel_tol=0.5)
    assert len(res["x"]["rounds_ms"]) == 4  # a looser tolerance is met at once


def test_interleaved_judges_agreement_in_units_of_the_reference(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(board.timing.time, "perf_counter", clock)
    # the model's round figures swing 1.6x, and the reference swings with them: in reference units they agree
    a = _scripted(clock, [16, 10, 16, 10, 16] + [10] * 10)
    ref = _scripted(clock, [8, 8, 5, 5, 8, 8, 5, 5, 8, 8] + [5] * 40)
    res = board.interleaved({"a": a}, warmup=0, repeats=1, rounds=5, min_time_s=0.0, reference=ref, ref_ms=5.0)
    assert len(res["a"]["rounds_ms"]) == 5 and res["a"]["rel"] == pytest.approx(2.0)
    # the same swing with a steady reference is not settled
    a = _scripted(clock, [16, 10, 16, 10, 16] + [10] * 10)
    res = board.interleaved({"a": a}, warmup=0, repeats=1, rounds=5, min_time_s=0.0, reference=_scripted(clock, [5] * 50), ref_ms=5.0)
    assert len(res["a"]["rounds_ms"]) > 5 and res["a"]["ref_rounds_ms"] == pytest.approx([5] * len(res["a"]["rounds_ms"]))


def test_timing_refuses_max_rounds_below_rounds_and_a_tolerance_outside_0_1():
    Timing(rounds=5, max_rounds=5).check()
    with pytest.raises(ConfigError, match="timing.max_rounds must be none or an integer >= timing.rounds"):
        Timing(rounds=5, max_rounds=4).check()
    with pytest.raises(ConfigError, match="timing.rel_tol"):
        Timing(rel_tol=1.5).check()


def test_time_runs_keeps_running_until_min_time(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(board.timing.time, "perf_counter", clock)
    run = _scripted(clock, [10] * 100)
    ms, n, fastest = board.time_runs(run, warmup=2, repeats=3, min_time_s=0.095)
    assert n == 10 and ms == pytest.approx(10) and fastest == pytest.approx(10)  # 3 runs were not 95 ms yet


def _spy(monkeypatch):
    calls = []
    real = board.interleaved

    def spy(runners, warmup, repeats, rounds, min_time_s, progress=None, **kw):
        calls.append({"names": list(runners), "warmup": warmup, "repeats": repeats, "rounds": rounds, "min_time_s": min_time_s, **kw})
        return real(runners, warmup, repeats, rounds, min_time_s, progress, **kw)

    monkeypatch.setattr(board, "interleaved", spy)
    return calls


def _tiny_net():
    torch.manual_seed(0)
    return build_model(ARCH, 4).eval()


def test_every_end_to_end_timer_goes_through_the_one_loop(monkeypatch):
    from ednas.deploy.measure import compare_latency
    from ednas.latency import measure_latency
    from ednas.report.profile import measure_onnx_ms, measure_torch_ms

    calls = _spy(monkeypatch)
    timing = Timing(threads=1, warmup=1, repeats=2, rounds=2, min_time_s=0.0, max_rounds=3, rel_tol=0.05)
    net = _tiny_net()
    data = onnx_bytes(fuse(net), 32)
    got = {
        "time_onnx": time_onnx({"x": data, "y": data}, timing)["x"],
        "time_torch": time_torch({"x": fuse(net)}, 32, timing)["x"],
        "measure_latency": measure_latency(net, 32, timing=timing),
        "compare_latency": compare_latency({"fp32": data}, timing=timing)["fp32"],
        "measure_onnx_ms": measure_onnx_ms(fuse(net), 32, timing=timing),
        "measure_torch_ms": measure_torch_ms(fuse(net), 32, timing=timing),
    }
    assert len(calls) == len(got)
    assert calls[0]["names"] == ["x", "y"]
    for c in calls:
        assert (c["warmup"], c["repeats"], c["rounds"], c["min_time_s"], c["max_rounds"], c["rel_tol"]) == (1, 2, 2, 0.0, 3, 0.05)
    for name in ("time_onnx", "time_torch"):
        r = got[name]
        assert set(r) == {"ms", "spread_ms", "min_ms", "n", "rounds_ms"} and 2 <= len(r["rounds_ms"]) <= 3
        assert r["ms"] == pytest.approx(statistics.median(r["rounds_ms"]), abs=1e-6)
    c = got["compare_latency"]  # export.json's keys keep their names and meaning
    assert c["median_ms"] == pytest.approx(statistics.median(c["round_medians_ms"]), abs=1e-6)
    assert 0 < c["min_ms"] <= min(c["round_medians_ms"]) and 2 <= c["rounds"] <= 3 and (c["runs"], c["threads"]) == (2, 1)
    assert all(got[k] > 0 for k in ("measure_latency", "measure_onnx_ms", "measure_torch_ms"))


def test_host_torch_operators_are_timed_by_the_one_loop(monkeypatch):
    from ednas.latency.measure import measure_ops_torch
    from ednas.latency.ops import arch_ops

    calls = _spy(monkeypatch)
    ops = arch_ops(build_model(ARCH, 4).arch, 32, 4)[:3]
    out = measure_ops_torch(ops, threads=1, warmup=1, repeats=2, rounds=2)
    assert [c["names"] for c in calls] == [[op.key] for op in ops]
    assert all((c["repeats"], c["rounds"]) == (2, 2) for c in calls)
    assert set(out) == {op.key for op in ops} and all(e["n"] >= 4 for e in out.values())


def test_timing_check_names_the_bad_setting():
    Timing().check()
    with pytest.raises(ConfigError, match="timing.rounds"):
        time_onnx({}, Timing(rounds=0))
    with pytest.raises(ConfigError, match="--threads.*deliberate"):
        Timing(threads=0).check(lambda f: f"--{f}")
    with pytest.raises(ConfigError, match="min_time_s"):
        Timing(min_time_s=-1).check()


# -- sessions ---------------------------------------------------------------------------


def test_ort_session_has_the_deployment_options(tmp_path):
    path = export_onnx(fuse(_tiny_net()), tmp_path / "m.onnx", 32)
    opts = ort_session(path, threads=2).get_session_options()
    assert opts.intra_op_num_threads == 2 and opts.inter_op_num_threads == 1
    assert opts.graph_optimization_level.name == "ORT_ENABLE_ALL"
    assert ort_session(path.read_bytes(), optimization="basic").get_session_options().graph_optimization_level.name == "ORT_ENABLE_BASIC"
    with pytest.raises(ConfigError, match="'fast'"):
        ort_session(path, optimization="fast")


def test_ort_session_on_a_missing_or_corrupt_file_raises_export_error_naming_it(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ExportError, match="does not exist") as e:
        ort_session(missing)
    assert str(missing) in str(e.value)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an onnx model" * 10)
    with pytest.raises(ExportError, match="cannot be loaded") as e:
        ort_session(bad)
    assert str(bad) in str(e.value) and e.value.__cause__ is not None
    with pytest.raises(ExportError, match="in memory"):
        ort_session(b"garbage")


# -- scoring ----------------------------------------------------------------------------


def test_score_onnx_on_a_fixed_batch_model_equals_a_dynamic_batch_export(tmp_path):
    model = fuse(randomize_bn(build_model(ARCH, 7), seed=2))
    fixed = export_onnx(model, tmp_path / "fixed.onnx", 32)
    dynamic = export_onnx(model, tmp_path / "dynamic.onnx", 32, dynamic_batch=True)
    assert ort_session(fixed).get_inputs()[0].shape[0] == 1 and not isinstance(ort_session(dynamic).get_inputs()[0].shape[0], int)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(5, 3, 32, 32, generator=g), torch.arange(5)),
               (torch.randn(3, 3, 32, 32, generator=g).numpy(), np.arange(5, 8))]  # tensors or arrays
    s1, t1 = score_onnx(fixed, batches)
    s2, t2 = score_onnx(ort_session(dynamic), batches)
    assert s1.shape == (8, 7) and s1.dtype == np.float32
    assert np.abs(s1 - s2).max() <= 1e-5 and (t1 == np.arange(8)).all() and (t2 == t1).all()
    with torch.no_grad():
        ref = model(torch.cat([torch.as_tensor(x) for x, _ in batches])).numpy()
    assert np.abs(s1 - ref).max() <= 1e-4
    s3, t3 = score_onnx(fixed, batches, limit=6)
    assert np.array_equal(s3, s1[:6]) and (t3 == np.arange(6)).all()


def test_eval_of_an_onnx_scores_with_score_onnx_and_refuses_data_of_another_shape(tmp_path, capsys):
    import json

    from ednas.cli import main
    from ednas.data import load_data, make_loader

    path = export_onnx(fuse(build_model(ARCH, 10)), tmp_path / "m.onnx", 32)
    out = tmp_path / "eval.json"
    assert main(["eval", "--model", str(path), "--data", "synthetic:classes=10,n=64,size=32", "--predictions", str(tmp_path / "p.npz"), "--json", str(out)]) == 0
    preds = np.load(tmp_path / "p.npz")
    want, targets = score_onnx(path, make_loader(load_data("synthetic:classes=10,n=64,size=32"), "test", 256, False))
    assert np.array_equal(preds["scores"], want) and np.array_equal(preds["targets"], targets)
    assert json.loads(out.read_text())["n"] == len(targets)
    capsys.readouterr()
    assert main(["eval", "--model", str(path), "--data", "synthetic:classes=10,size=16"]) == 2
    err = capsys.readouterr().err
    assert "3x16x16" in err and "3x32x32" in err and str(path) in err


# -- the board script -------------------------------------------------------------------------


def test_board_package_is_standalone(tmp_path):
    """ednas.runtime.board imports nothing of ednas or torch: it runs, as a top-level package, where neither can be imported."""
    import os

    where = os.path.dirname(os.path.dirname(board.__file__))
    probe = (
        "import sys; sys.modules['ednas'] = None; sys.modules['torch'] = None; sys.path.insert(0, %r); import board; "
        "r = board.interleaved({'x': lambda: None}, 0, 2, 2, 0.0); "
        "print(board.__name__, r['x']['n'])" % where
    )
    r = subprocess.run([sys.executable, "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "board 4"


def test_runtime_imports_only_the_bottom_layer():
    """ednas.runtime may import the standard library, numpy, onnx, onnxruntime, torch (LiteRT's and OpenVINO's packages where their
    extras are used), ednas.errors and ednas.io only."""
    import ast
    from pathlib import Path

    import ednas.runtime

    allowed_ednas = {"ednas.errors", "ednas.io", "ednas.runtime"}
    third_party = {"numpy", "onnx", "onnxruntime", "torch", "ai_edge_litert", "litert_torch", "torchao", "openvino"}
    for path in Path(ednas.runtime.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                top = name.split(".")[0]
                if top == "ednas":
                    assert any(name == a or name.startswith(a + ".") for a in allowed_ednas), (path.name, name)
                else:
                    assert top in third_party or top in sys.stdlib_module_names or top == "__future__", (path.name, name)


@pytest.mark.parametrize("dtype", ["f32", "i8", "i16"])
def test_every_model_the_kit_plans_passes_the_onnx_checker_with_the_keys_output_shape(dtype):
    """The kit writes its models with onnx's helpers: each one the cifar space's operators need is valid ONNX, and shape
    inference gives the output shape the operator key (or the context pair) says."""
    import onnx

    from ednas import preset
    from ednas.latency.ops import space_ops

    keys = [op.key for op in space_ops(preset("cifar"), 32, 10, dtype)]
    seen_types = set()
    for key in keys:
        op = board.parse_key(key)
        if op["type"] in seen_types and op["type"] not in ("dw", "expand"):
            continue  # one of each type, and every depthwise and expand shape
        seen_types.add(op["type"])
        for mid, _ in board.plan(key):
            data, shape = board.build(mid)
            model = onnx.load_from_string(data)
            onnx.checker.check_model(model, full_check=True)
            out = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph.output[0]
            dims = [d.dim_value for d in out.type.tensor_type.shape.dim]
            if mid.startswith("sw:"):
                want = [1, op["cout"]] if op["type"] == "fc" else [1, op["cout"], op["ho"], op["wo"]]
            else:
                want = shape  # the context models keep their input's shape
            assert dims == want, (mid, dims, want)
    assert seen_types >= {"stem-dw", "stem-pw", "expand", "dw", "project", "add", "head", "pool", "fc"}
