"""Baselines priced like the searched network: in the budget's precision, by the deployed file's timer and scaling, once.

The timer is a spy (no duration of real code is asserted): it records what
it was asked to time (the file's precision, the reference network beside it,
the run's timing settings) and answers with figures derived from the file,
raw and scaled, so the test can follow one measurement from the width match
to the reported and plotted figure.
"""

import functools
import math

import pytest

from ednas.runtime import Reference, Timing, board

QUANT = {"bits": 8, "weight_bits": 8, "per_channel": True, "pow2": False}
WIDTHS = (0.05, 0.1, 0.15, 0.2)
SCALE = 0.8  # the spy's table-speed / now ratio: a scaled figure differs from the raw one


class _Table:
    """The parts of a host-ort int8 latency table the baselines read."""

    dtype, target, is_host = "i8", "host-ort", True
    meta = {"quant": QUANT}


def _weights(n: int) -> float:
    """The spy's raw ms of a network of ``n`` conv and linear weights (grows with the width)."""
    return n / 1e5


def _spy_timer(calls: list):
    import numpy as np
    import onnx

    def time_onnx(models, timing=None, progress=None, reference=None):
        ((name, model),) = models.items()
        graph = onnx.load_from_string(model).graph
        ops = {n.op_type for n in graph.node}
        raw = _weights(sum(int(np.prod(t.dims)) for t in graph.initializer if len(t.dims) >= 2))
        scaled = round(raw * SCALE, 6) if reference is not None and reference.ms else None
        calls.append({"int8": {"QuantizeLinear", "DequantizeLinear"} <= ops, "reference": reference, "timing": timing, "raw": raw,
                      "scaled": scaled})
        out = {name: {"ms": raw, "spread_ms": 0.0, "min_ms": raw, "n": 1, "rounds_ms": [raw]}}
        if reference is not None:
            out[name].update(rel=raw / 0.3125, scaled_ms=scaled)
            out[board.REFERENCE] = {"ms": 0.3125, "table_ms": reference.ms, "ratio": round(0.3125 / reference.ms, 4)}
        return out

    return time_onnx


def test_baseline_latency_is_one_scaled_int8_measurement_the_one_matching_chose(tmp_path, monkeypatch):
    pytest.importorskip("timm")
    from ednas.data import load_data
    from ednas.report import baselines
    from ednas.train.trainer import TrainConfig

    data = load_data("synthetic:classes=3,n=48,size=16")
    table = _Table()
    ref = Reference(b"the table's reference network", ms=0.25)
    monkeypatch.setattr(baselines, "table_reference", lambda t: (ref, "") if t is table else (None, "not the run's table"))
    calls: list[dict] = []
    monkeypatch.setattr(baselines, "time_onnx", _spy_timer(calls))

    def second_timer(*a, **k):
        raise AssertionError("a baseline on host-ort was timed a second way (fp32, unscaled)")

    monkeypatch.setattr(baselines, "measure_onnx_ms", second_timer)
    monkeypatch.setattr(baselines, "match_width", functools.partial(baselines.match_width, widths=WIDTHS))

    def file_ms(w):  # what the spy answers for the network of width w, at the table's speed
        model = baselines.build_baseline("mobilenetv2", 3, 16, w)[0]
        return round(_weights(sum(p.numel() for p in model.parameters() if p.dim() >= 2)) * SCALE, 6)

    budget = (file_ms(0.1) + file_ms(0.15)) / 2
    timing = Timing(threads=1, warmup=0, repeats=1, rounds=1, min_time_s=0.0)
    matched, fixed = baselines.run_baselines(data, tmp_path, ["mobilenetv2@match", "mobilenetv2@0.05"], TrainConfig(epochs=1),
                                             target="host-ort", timing=timing, budget_ms=budget, progress=False, table=table)

    # every timing: the int8 file (ednas's quantizer), beside the table's reference, with the run's timing settings
    assert calls and all(c["int8"] and c["reference"] is ref and c["timing"] is timing for c in calls)
    # the matched network: each probed width timed once, nothing after training; the reported figure is the very one matching chose
    assert len(calls) == len(matched["width_probes"]) + 1  # + the fixed-width network's one timing
    assert matched["width"] == 0.1 and matched["width_matched"]
    chosen = dict(matched["width_probes"])[0.1]
    assert matched["latency_ms"] == chosen <= budget
    probe = next(c for c in calls[: len(matched["width_probes"])] if c["scaled"] == chosen)
    assert matched["latency_ms_raw"] == probe["raw"] and matched["latency_ms"] == round(probe["raw"] * SCALE, 6) != probe["raw"]
    for r in (matched, fixed):
        assert r["latency_precision"] == "int8" and r["latency_scaled"] is True
        assert r["latency_reference"]["used"] and r["latency_reference"]["ratio"] == 1.25
        assert "ONNX Runtime int8" in r["latency_source"] and "reference network" in r["latency_source"]
        assert "latency_ms_host_ort" not in r  # no second figure of the same network
        # the quantized file's top-1 (ednas's quantizer, the export's default settings) beside the fp32 one
        assert r["quant_precision"] == "int8" and 0.0 <= r["top1_int8"] <= 100.0 and math.isfinite(r["top1"])
    assert "width match" in matched["latency_measured"] and "after training" in fixed["latency_measured"]
    assert fixed["latency_ms"] == calls[-1]["scaled"]  # a given width: one timing, after training

    # cached: nothing is timed or trained again
    calls.clear()
    again = baselines.run_baselines(data, tmp_path, ["mobilenetv2@match", "mobilenetv2@0.05"], TrainConfig(epochs=1), target="host-ort",
                                    timing=timing, budget_ms=budget, progress=False, table=table)
    assert again == [matched, fixed] and calls == []


def _cifar_like():
    """A summary, export record and baselines shaped like the CIFAR run of issue 24 (int8 budget)."""
    summary = {"target": "host-ort", "latency_dtype": "i8", "budget_ms": 0.5777, "top1": 80.1, "top1_int8": 79.6,
               "latency_ms_measured": 0.559, "latency_ms_predicted": 0.57,
               "deployed": {"precision": "i8", "raw_ms": 0.61, "scaled_ms": 0.559}}
    exp = {"quant": "int8", "latency_ms_fp32": 0.33, "latency_ms_quant": 0.61, "latency_ms_fp32_scaled": 0.308, "latency_ms_quant_scaled": 0.559}
    bl = [{"title": "MobileNetV3-Large", "width": 0.3, "latency_ms": 0.531, "latency_precision": "int8", "top1": 70.2, "top1_int8": 69.1,
           "latency_source": "measured: ONNX Runtime int8 ..."},
          {"title": "MobileNetV2", "width": 0.25, "latency_ms": 0.5, "latency_precision": "int8", "top1": 60.3}]
    return summary, exp, bl


def test_figure_plots_every_network_in_the_budgets_precision_and_the_derived_other_precision_labelled():
    from ednas.report.baselines import comparison
    from ednas.report.figures import accuracy_latency

    summary, exp, bl = _cifar_like()
    c = comparison(summary, exp, bl)
    pts = {p["label"]: p for p in c["points"]}
    assert list(pts) == ["ednas int8", "ednas fp32", "MobileNetV3-Large x0.3", "MobileNetV2 x0.25 (fp32 top-1)"]
    assert (pts["ednas int8"]["latency_ms"], pts["ednas int8"]["top1"], pts["ednas int8"]["kind"]) == (0.559, 79.6, "derived")
    assert (pts["ednas fp32"]["latency_ms"], pts["ednas fp32"]["top1"], pts["ednas fp32"]["kind"]) == (0.308, 80.1, "derived-other")
    assert (pts["MobileNetV3-Large x0.3"]["latency_ms"], pts["MobileNetV3-Large x0.3"]["top1"]) == (0.531, 69.1)  # its int8 top-1
    assert pts["MobileNetV2 x0.25 (fp32 top-1)"]["top1"] == 60.3  # no int8 score: the fp32 one, and the label says so
    assert c["precision"] == "int8" and "int8" in c["title"]
    assert "ONNX Runtime int8" in c["xlabel"] and "scaled to the latency table's reference network" in c["xlabel"]
    assert accuracy_latency(c["points"], summary["budget_ms"], c["xlabel"], "test top-1 (%)", c["title"])[:8] == b"\x89PNG\r\n\x1a\n"

    # not scaled (no reference on this machine): raw figures everywhere, and the axis says so
    raw = dict(summary, latency_ms_measured=0.61, deployed={"precision": "i8", "raw_ms": 0.61, "scaled_ms": None})
    c = comparison(raw, exp, bl)
    assert [p["latency_ms"] for p in c["points"][:2]] == [0.61, 0.33] and "no reference" in c["xlabel"]

    # an fp32 budget: fp32 everywhere, the int8 file is the second point
    f32 = dict(summary, latency_dtype="f32", latency_ms_measured=0.308, deployed={"precision": "f32", "raw_ms": 0.33, "scaled_ms": 0.308})
    c = comparison(f32, exp, [dict(b, latency_precision="fp32") for b in bl])
    assert [(p["label"], p["latency_ms"], p["top1"]) for p in c["points"][:2]] == [("ednas fp32", 0.308, 80.1), ("ednas int8", 0.559, 79.6)]
    assert [p["top1"] for p in c["points"][2:]] == [70.2, 60.3] and "fp32" in c["xlabel"]

    # an analytic target: the table's prediction, in the profile's precision, no host files
    c = comparison(dict(summary, target="tda4vm", latency_ms_measured=None), exp, bl)
    assert [p["label"] for p in c["points"]][:2] == ["ednas int8", "MobileNetV3-Large x0.3"] and c["points"][0]["latency_ms"] == 0.57
    assert "predicted" in c["xlabel"]
