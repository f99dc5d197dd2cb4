"""The run report (HTML + Markdown) from a fake run directory, and the baselines it plots."""

import json
import math
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from ednas.errors import EdnasError
from ednas.report.report import flatten, fmt, write_report
from tests.conftest import TINY_SPACE

# the derived network of TINY_SPACE: k5 | k7 e6 s2, (skipped), | k3 e2 s2
PICKS = [
    {"kernel": 5, "expansion": 1, "skip": False},
    {"kernel": 7, "expansion": 6, "skip": False},
    {"kernel": 3, "expansion": 3, "skip": True},
    {"kernel": 3, "expansion": 2, "skip": False},
]
STAGE_FILES = ["lut/lut.json", "lut/validation.json", "search/search.json", "search/arch.yaml", "search/alpha_history.json",
               "train/metrics.json", "export/export.json", "baselines/mobilenetv2/result.json", "baselines/mixnet/result.json"]
ALL_FIGURES = {"network", "accuracy_latency", "search_curves", "alpha", "lut_scatter", "quant", "training"}


def _summary(arch: str) -> dict:
    # distinctive numbers, so that finding one in the page means it was printed
    return {
        "data": "digits", "target": "host-ort", "budget_ms": 0.16158, "arch": arch, "params": 123457, "macs": 2345679,
        "top1": 97.3456, "top5": 99.9123, "top1_int8": 96.8123, "int8_drop": 0.5333, "latency_ms_predicted": 0.15432,
        "latency_ms_measured": 0.14876, "latency_ms_int8": 0.12987, "within_budget_measured": True, "onnx_max_abs_diff": 2.3456e-06,
        "lut_check": {"check_n": 12, "check_mape": 3.4567, "check_spearman": 0.9812}, "fit_changes": 1, "wall_s": 412.345,
        "latency_ms_argmax": 0.16543, "argmax_in_band": False,
        "stages": {"lut": {"wall_s": 61.234, "skipped": True}, "search": {"wall_s": 108.765, "skipped": False},
                   "train": {"wall_s": 35.4321, "skipped": False}, "export": {"wall_s": 12.3456}, "baselines": {"wall_s": 150.987}},
        "ednas": "0.1.0", "out": "runs/x",
    }


def _fake_run(root: Path) -> tuple[Path, dict]:
    """A run directory with every stage's files, small and with known numbers (no training)."""
    from ednas.arch.spec import parse_arch
    from ednas.latency import build_table

    space = parse_arch(TINY_SPACE)
    arch = space.with_picks(PICKS, branches=False)
    run = root / "run"
    (run / "lut").mkdir(parents=True)
    build_table("roofline", space, 32, 10, out=run / "lut" / "lut.json")  # analytic: instant, no measuring
    pairs = [{"arch": f"a{i}", "predicted_ms": 0.1 + 0.01 * i, "measured_ms": 0.102 + 0.0105 * i} for i in range(8)]
    (run / "lut" / "validation.json").write_text(json.dumps({"n": 8, "mape": 2.345, "spearman": 0.9876, "pairs": pairs, "measured_with": "onnxruntime, 1 thread"}))
    (run / "search").mkdir()
    hist = [{"epoch": e + 1, "tau": 2.0 / (e + 1), "lam": 0.1 * e, "ce_weight": 2.3 - 0.4 * e, "ce_arch": None if e == 0 else 2.2 - 0.4 * e,
             "E_lat_ms": 0.16 + 0.001 * e, "argmax_lat_ms": 0.17 - 0.002 * e, "val_top1": 20.0 + 20 * e} for e in range(3)]
    (run / "search" / "search.json").write_text(json.dumps({
        "budget_ms": 0.16158, "budget_frac": 0.5, "min_ms": 0.12, "max_ms": 0.2, "predicted_latency_ms": 0.15432, "measured_latency_ms": 0.15,
        "argmax_latency_ms": 0.165, "latency_ms_argmax": 0.165, "n_fit_changes": 1, "argmax_in_band": False, "band_low": 0.9,
        "lambda": 0.2, "steps": 30, "images_seen": 3840, "paths": 2, "wall_s": 108.7, "arch": arch.format(), "history": hist}))
    layers = []
    for l, p in zip(space.layers(), PICKS):
        layers.append({"index": l.index, "stage": l.stage, "block": l.block, "stride": l.stride, "cin": l.cin, "cout": l.spec.out,
                       "kernel": p["kernel"], "expansion": p["expansion"], "skip": p["skip"], "argmax": dict(p, kernel=7) if l.index == 0 else p,
                       "probs": {"kernel": {str(k): round(1 / len(l.spec.kernels), 3) for k in l.spec.kernels}}, "changed_by_fit": l.index == 0})
    doc = {"arch": arch.format(), "input_size": 32, "num_classes": 10, "predicted_latency_ms": 0.15432, "budget_ms": 0.16158, "layers": layers,
           "fit_changes": [{"layer": 0, "kind": "kernel", "from": 7, "to": 5, "latency_ms": 0.15432, "why": "over budget"}],
           "provenance": {"ednas": "0.1.0", "commit": "abc1234", "seed": 0}}
    (run / "search" / "arch.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    names = ["L0.kernel", "L1.kernel", "L1.expansion", "L2.skip", "L3.kernel"]
    cands = {"L0.kernel": ["3", "5", "7"], "L1.kernel": ["3", "5", "7"], "L1.expansion": ["3", "6"], "L2.skip": ["block", "skip"], "L3.kernel": ["3", "5"]}
    epochs = [{n: [1 / len(cands[n])] * len(cands[n]) for n in names} for _ in range(3)]
    (run / "search" / "alpha_history.json").write_text(json.dumps({"names": names, "candidates": cands, "epochs": epochs}))
    (run / "train").mkdir()
    (run / "train" / "metrics.json").write_text(json.dumps({"top1": 97.3456, "top5": 99.9123, "epochs": 3, "params": 123457, "n_test": 359, "wall_s": 35.4,
                                                            "history": [{"epoch": e + 1, "train_loss": 2.0 - 0.5 * e, "val_top1": 50.0 + 20 * e} for e in range(3)]}))
    (run / "export").mkdir()
    (run / "export" / "export.json").write_text(json.dumps({"quant": "int8", "top1_fp32": 97.3456, "top1_quant": 96.8123, "drop": 0.5333,
                                                            "latency_ms_fp32": 0.14876, "latency_ms_quant": 0.12987, "speedup": 1.1455, "threads": 1,
                                                            "max_abs_diff": 2.3456e-06, "n_eval": 359, "calib_images": 64, "split": "test"}))
    for name, title, ms, top1 in (("mobilenetv2", "MobileNetV2", 0.29, 95.1), ("mixnet", "MixNet-S", 0.9, 96.2)):
        d = run / "baselines" / name
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({"format": 1, "name": name, "title": title, "source": "timm", "reference": name, "width": 0.35,
                                                   "strides_removed_at": [32, 16], "epochs": 3, "top1": top1, "params": 400000, "macs": 15000000,
                                                   "latency_ms": ms, "latency_source": "measured: ONNX Runtime fp32, 1 thread(s), batch 1", "target": "host-ort"}))
    (run / "config.yaml").write_text("out: runs/x\ndata: digits\ntarget: host-ort\n")
    return run, _summary(arch.format())


def _numbers(summary: dict) -> list[str]:
    return [fmt(v) for _, v in flatten(summary) if isinstance(v, (int, float)) and not isinstance(v, bool)]


def test_fmt_is_the_one_number_format():
    assert fmt(None) == "n/a" and fmt(True) == "yes" and fmt(False) == "no"
    assert fmt(1234567) == "1,234,567" and fmt(12) == "12"
    assert fmt(97.3456) == "97.35" and fmt(0.15432) == "0.1543" and fmt(412.345) == "412.3"
    assert fmt(12345.6) == "12,346" and fmt(2.3456e-06) == "2.35e-06" and fmt(0.0) == "0"
    assert fmt(float("nan")) == "nan" and fmt("host-ort") == "host-ort"


def test_report_embeds_every_figure_and_prints_every_summary_number(tmp_path):
    run, summary = _fake_run(tmp_path)
    html_path, md_path = write_report(run, summary)
    assert html_path == run / "report.html" and md_path == run / "report.md"
    page, md = html_path.read_text(), md_path.read_text()
    pngs = sorted(p.stem for p in (run / "report_files").glob("*.png"))
    assert set(pngs) == ALL_FIGURES
    assert page.count("data:image/png;base64,") == len(pngs)  # one self-contained file: every figure embedded
    assert "report_files/" not in page and "<img" in page and page.count("<img") == len(pngs)
    for name in pngs:
        assert f"](report_files/{name}.png)" in md
    for text in (page, md):
        for number in _numbers(summary):
            assert number in text, number
    assert "Not run" not in page and "could not be rendered" not in page
    # the derived network's kernels, the fit change and the baselines are in the tables
    assert "MobileNetV2" in page and "MixNet-S" in page and "over budget" in page
    assert "abc1234" in page  # provenance: the commit the search recorded
    # the search's own argmax network before the fit, against the budget, and how many choices the fit changed
    for text in (page, md):
        assert "before the budget fit): 0.1654 ms predicted (102.4 % of the budget); the budget fit changed 1 choice(s)" in text


def test_a_report_written_again_draws_only_the_figures_whose_data_changed(tmp_path, monkeypatch):
    from collections import OrderedDict

    from ednas.report import figures

    monkeypatch.setattr(figures, "_DRAWN", OrderedDict())  # nothing drawn before this test
    drawn = []
    real_png = figures._png

    def counting_png(fig):
        drawn.append(fig)
        return real_png(fig)

    monkeypatch.setattr(figures, "_png", counting_png)
    run, summary = _fake_run(tmp_path)
    write_report(run, summary)
    assert len(drawn) == len(ALL_FIGURES)
    first = {p.stem: p.read_bytes() for p in (run / "report_files").glob("*.png")}
    # ednas run's second write: the same stages, only the summary's times differ
    write_report(run, dict(summary, wall_s=summary.get("wall_s", 0) + 1.5, stages={"report": {"wall_s": 1.5, "skipped": False}}))
    assert len(drawn) == len(ALL_FIGURES)
    assert {p.stem: p.read_bytes() for p in (run / "report_files").glob("*.png")} == first
    # a stage's data changed: that figure (and only it) is drawn again, from the new data
    m = json.loads((run / "train" / "metrics.json").read_text())
    m["history"][-1]["val_top1"] = 12.5
    (run / "train" / "metrics.json").write_text(json.dumps(m))
    write_report(run, summary)
    assert len(drawn) == len(ALL_FIGURES) + 1
    assert (run / "report_files" / "training.png").read_bytes() != first["training"]


def test_analytic_target_plots_the_predicted_latency(tmp_path):
    run, summary = _fake_run(tmp_path)
    summary["target"] = "tda4vm"  # the host measurement is not the target's
    page = write_report(run, summary)[0].read_text()
    assert "predicted (tda4vm)" in page and "measured (tda4vm)" not in page


def test_derived_macs_are_read_from_the_run_never_recounted(tmp_path, monkeypatch):
    import ednas.nn.macs
    import ednas.report.profile

    recounts = []
    monkeypatch.setattr(ednas.nn.macs, "count_macs", lambda *a, **k: recounts.append(a))
    monkeypatch.setattr(ednas.report.profile, "load_network", lambda *a, **k: recounts.append(a))
    run, summary = _fake_run(tmp_path)
    page = write_report(run, summary)[0].read_text()
    assert fmt(summary["macs"]) in page  # summary.json's figure
    del summary["macs"]  # an older summary: train/metrics.json's figure
    metrics = json.loads((run / "train" / "metrics.json").read_text())
    (run / "train" / "metrics.json").write_text(json.dumps(dict(metrics, macs=3456789)))
    page = write_report(run, summary)[0].read_text()
    assert "3,456,789" in page and "from train/metrics.json" in page
    assert recounts == []


def test_missing_stages_become_not_run_sections(tmp_path):
    run = tmp_path / "empty"
    summary = _summary("stem_k11_m1_c8_s1 | ir_k5_e1_c8 | head_c32")
    html_path, md_path = write_report(run, summary)
    page, md = html_path.read_text(), md_path.read_text()
    for rel in ("search/search.json", "lut/lut.json", "export/export.json", "train/metrics.json"):
        assert f"Not run: {rel} is missing" in page and f"*Not run: {rel} is missing*" in md
    assert "Baselines: not run" in page
    for number in _numbers(summary):
        assert number in page and number in md
    # the architecture is still drawn from summary.json's arch string, and the derived network plotted
    pngs = {p.stem for p in (run / "report_files").glob("*.png")}
    assert pngs == {"network", "accuracy_latency"} and page.count("data:image/png;base64,") == 2


@pytest.mark.parametrize("gone", STAGE_FILES)
def test_any_one_missing_file_still_writes_the_report(tmp_path, gone):
    run, summary = _fake_run(tmp_path)
    (run / gone).unlink()
    page = write_report(run, summary)[0].read_text()
    assert "could not be rendered" not in page
    assert page.count("data:image/png;base64,") == len(list((run / "report_files").glob("*.png")))
    for number in _numbers(summary):
        assert number in page


def test_unreadable_file_and_failing_figure_do_not_crash(tmp_path, monkeypatch):
    run, summary = _fake_run(tmp_path)
    (run / "search" / "search.json").write_text("{not json")
    from ednas.report import figures

    def boom(*a, **k):
        raise RuntimeError("figure exploded")

    monkeypatch.setattr(figures, "quant_bars", boom)
    page = write_report(run, summary)[0].read_text()
    assert "search/search.json is unreadable" in page
    assert "could not be rendered (RuntimeError: figure exploded)" in page
    assert "Alpha over time" in page  # the rest of the search section is still there
    assert page.count("data:image/png;base64,") == len(list((run / "report_files").glob("*.png")))
    assert not (run / "report_files" / "quant.png").exists()  # no stale figure from an earlier report


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _headless(browser: str, *args: str) -> str:
    """Run headless Chromium with a fresh profile and no network chatter; its stdout."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                               "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
                               *args], check=True, capture_output=True, text=True, timeout=120).stdout


def _screenshot(browser: str, page: Path, png: Path, size: str = "1280,4000") -> None:
    _headless(browser, f"--screenshot={png}", f"--window-size={size}", page.resolve().as_uri())


def _colourful(png: Path) -> tuple[float, float]:
    """(std of the grey levels, share of clearly coloured pixels) of a screenshot below the page header."""
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB")).astype(float)[120:]  # the dark blue header and nav are not figures
    sat = img.max(axis=2) - img.min(axis=2)
    return float(img.mean(axis=2).std()), float((sat > 60).mean())


def test_report_in_a_real_browser_shows_its_figures(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium/chrome on this machine (apt-get install chromium to run this check)")
    run, summary = _fake_run(tmp_path)
    html_path, _ = write_report(run, summary)
    # the same page with every figure's pixels removed (a 1x1 transparent PNG of the same layout)
    blank = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
    stripped = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", f"data:image/png;base64,{blank}", html_path.read_text())
    (run / "stripped.html").write_text(stripped)
    _screenshot(browser, html_path, tmp_path / "full.png")
    _screenshot(browser, run / "stripped.html", tmp_path / "stripped.png")
    std_full, colour_full = _colourful(tmp_path / "full.png")
    std_stripped, colour_stripped = _colourful(tmp_path / "stripped.png")
    assert std_full > 10, "the rendered page is blank"
    # the figures (blue kernels, orange bars, heatmap) put colour on the page that text and tables do not
    assert colour_full > 0.01 and colour_full > 5 * max(colour_stripped, 1e-3), (colour_full, colour_stripped)


# ---------------------------------------------------------------------------
# the summary card: the answer first


HOST_LUT = {"target": "host-ort", "dtype": "i8", "measurement": {"runtime": "onnxruntime", "threads": 1}}
BASELINES = [{"name": "mobilenetv2", "title": "MobileNetV2", "width": 0.35, "top1": 95.1, "latency_ms": 0.29, "latency_source": "measured: ONNX Runtime fp32"},
             {"name": "mobilenetv3", "title": "MobileNetV3-Large", "width": 0.25, "top1": 93.4, "top1_int8": 92.8, "latency_ms": 0.1555, "latency_source": "measured: ONNX Runtime fp32"}]


def _card_summary(**change) -> dict:
    s = dict(_summary("stem_k11_m1_c8_s1 | ir_k5_e1_c8 | ir_k7_e6_c16_s2 | ir_k3_e2_c24_s2 | head_c32"), latency_dtype="i8")
    s.update(change)
    return {k: v for k, v in s.items() if v is not None}


def _card_text(card) -> str:
    from ednas.report.report import _card_markdown

    return "\n".join(_card_markdown(card))


def test_card_says_the_verdict_both_accuracies_the_latency_against_the_budget_and_the_baselines():
    from ednas.report.report import summary_card

    card = summary_card(_card_summary(), BASELINES, {"quant": "int8"}, HOST_LUT)
    assert card.verdict == "met"
    assert card.headline == "Latency budget met: 0.1488 ms measured against 0.1616 ms (92.07 % of it)"
    assert card.scope == "budget for the int8 file on host-ort, timed in ONNX Runtime (1 thread)"
    tiles = {label.split()[0]: (lines, detail) for label, lines, detail in card.tiles}
    assert tiles["Accuracy"][0] == ["97.35 % fp32", "96.81 % int8"] and "int8 loses 0.5333 points" in tiles["Accuracy"][1]
    assert tiles["Latency"][0] == ["0.1488 ms measured", "budget 0.1616 ms"] and "0.1543 ms predicted" in tiles["Latency"][1]
    assert tiles["Network"][0] == ["123,457 params", "2,345,679 MACs"]
    assert tiles["Network"][1].startswith("3 blocks; depthwise kernels 3, 5, 7; expansions 1, 2, 6; stem 11x11, head 32 channels")
    assert card.compare_headers == ["network", "top-1 fp32 (%)", "top-1 int8 (%)", "latency (ms)", "within budget", "latency is"]
    assert card.compare == [["ednas (derived)", 97.3456, 96.8123, 0.14876, "yes", "measured, int8 file"],
                            ["MobileNetV2 x0.35", 95.1, None, 0.29, "no", "measured: ONNX Runtime fp32"],
                            ["MobileNetV3-Large x0.25", 93.4, 92.8, 0.1555, "yes", "measured: ONNX Runtime fp32"]]
    assert card.notes == [] and card.arch.startswith("stem_k11")
    text = _card_text(card)
    assert text.startswith("**\u2713 Latency budget met: 0.1488 ms measured against 0.1616 ms")
    for piece in ("97.35 % fp32, 96.81 % int8", "| MobileNetV3-Large x0.25 | 93.4 | 92.8 | 0.1555 | yes |", "| MobileNetV2 x0.35 | 95.1 | n/a | 0.29 | no |",
                  "| **ednas (derived)** | **97.35** | **96.81** | **0.1488** |"):
        assert piece in text, piece


def test_card_says_missed_over_the_tolerance_and_met_within_it():
    from ednas.report.report import summary_card

    missed = summary_card(_card_summary(latency_ms_measured=0.2))
    assert missed.verdict == "missed" and missed.headline.startswith("Latency budget missed: 0.2 ms measured against 0.1616 ms (123.8 % of it)")
    assert missed.compare[0][4] == "no"
    close = summary_card(_card_summary(latency_ms_measured=0.165))  # 2 % over: timing noise (verdict.MEASURED_TOLERANCE)
    assert close.verdict == "met" and "within the 5 % timing tolerance" in close.headline
    # the run's own verdict decides where it has one
    ruled = summary_card(_card_summary(verdict={"ok": False, "checks": [{"check": "measured", "ok": False}], "failures": []}))
    assert ruled.verdict == "missed"
    # a missed LUT check is not hidden below the card
    lut_missed = summary_card(_card_summary(verdict={"ok": False, "checks": [], "failures": [{"check": "lut", "what": "the latency table's check: MAPE 38.0 %"}]}))
    assert lut_missed.verdict == "met" and any("MAPE 38.0 %" in n and "warning" in n for n in lut_missed.notes)


def test_card_on_an_analytic_target_says_not_measured_and_shows_the_prediction():
    from ednas.report.report import summary_card

    card = summary_card(_card_summary(target="tda4vm", latency_ms_measured=None), BASELINES,
                        lut={"target": "tda4vm", "dtype": "i8", "measurement": {"runtime": "analytic"}})
    assert card.verdict == "not measured"
    assert card.headline == "Latency not measured on tda4vm: 0.1543 ms predicted against a budget of 0.1616 ms (95.51 % of it)"
    assert card.scope == "budget for the int8 file on tda4vm, priced by its analytic latency model"
    latency = next(lines for label, lines, _ in card.tiles if label == "Latency")
    assert latency == ["not measured", "budget 0.1616 ms"]
    assert card.compare[0][3:] == [0.15432, "yes", "predicted, int8 file"]  # the derived row is the prediction, labelled so


def test_card_with_missing_pieces_says_so_instead_of_crashing():
    from ednas.report.report import summary_card

    # no int8 model, no baselines
    card = summary_card(_card_summary(top1_int8=None))
    acc = next(lines for label, lines, _ in card.tiles if label.startswith("Accuracy"))
    assert acc == ["97.35 % fp32", "int8: not run"]
    assert card.notes == ["Baselines: none run."] and len(card.compare) == 1
    assert card.compare_headers == ["network", "top-1 fp32 (%)", "latency (ms)", "within budget", "latency is"]  # no int8 column to fill
    # nothing at all
    empty = summary_card({})
    assert empty.verdict == "no budget" and empty.headline == "No latency budget recorded" and empty.scope == ""
    tiles = {label.split()[0]: lines for label, lines, _ in empty.tiles}
    assert tiles == {"Accuracy": ["n/a fp32", "int8: not run"], "Latency": ["not measured", "no budget"], "Network": ["n/a params", "n/a MACs"]}
    assert "architecture not recorded" in _card_text(empty)
    # a budget but no latency at all on the host: still "not measured", no number invented
    unmeasured = summary_card({"target": "host-ort", "budget_ms": 0.2})
    assert unmeasured.verdict == "not measured" and unmeasured.headline == "Latency not measured (the deployed file was not timed)"
    # an arch string that does not parse is shown, not fatal
    bad = summary_card({"arch": "not an arch"})
    assert "architecture string not readable" in _card_text(bad) and "`not an arch`" in _card_text(bad)


def test_card_on_multilabel_data_shows_map():
    from ednas.report.report import summary_card

    card = summary_card(_card_summary(task="multilabel", top1=None, top1_int8=None, map=61.234, map_voc07=58.91, map_int8=60.5),
                        [dict(BASELINES[0], top1=None, map=55.5)], {"quant": "int8", "task": "multilabel"}, HOST_LUT)
    label, lines, detail = card.tiles[0]
    assert label == "Accuracy (test mAP)" and lines == ["61.23 % fp32", "60.5 % int8"] and "VOC07 11-point 58.91 %" in detail
    assert card.compare_headers[1:3] == ["mAP fp32 (%)", "mAP int8 (%)"] and card.compare[1][1:3] == [55.5, None]


def test_reports_open_with_the_card_and_end_with_the_folded_summary_keys(tmp_path):
    run, summary = _fake_run(tmp_path)
    summary["latency_dtype"] = "i8"
    html_path, md_path = write_report(run, summary)
    page, md = html_path.read_text(), md_path.read_text()
    # markdown: the title, then the card, before any section
    lines = md.splitlines()
    assert lines[0] == "# ednas run report: run" and lines[1] == ""
    assert lines[2].startswith("**\u2713 Latency budget met: 0.1488 ms measured against 0.1616 ms")
    card_md = md.split("\n## ")[0]
    for piece in ("97.35 % fp32", "96.81 % int8", "budget for the int8 file on host-ort", "MobileNetV2 x0.35", "MixNet-S x0.35", "123,457 params"):
        assert piece in card_md, piece
    # html: the card between the title and the navigation, the key table last and folded
    body = page.split("<body>", 1)[1]
    assert re.match(r'\s*<header><h1>[^<]*</h1></header>\s*<section id="card" class="card" data-verdict="met">', body)
    assert body.index('<section id="card"') < body.index("<nav>") < body.index('<section id="summary"')
    last = page.rsplit("<section ", 1)[1]
    assert last.startswith('id="keys"') and "<details><summary>every key of summary.json" in last
    assert 'summary.json key' not in page.split('id="keys"')[0]  # the key dump is no longer in the Summary section
    assert md.split("\n## ")[-1].startswith("summary.json") and "<details><summary>every key of summary.json" in md


def test_a_card_that_fails_to_render_does_not_lose_the_report(tmp_path, monkeypatch):
    import ednas.report.report as report

    def boom(*a, **k):
        raise RuntimeError("card exploded")

    monkeypatch.setattr(report, "summary_card", boom)
    run, summary = _fake_run(tmp_path)
    page = write_report(run, summary)[0].read_text()
    assert "The summary card could not be rendered (RuntimeError: card exploded)" in page
    assert '<section id="accuracy"' in page and page.count("data:image/png;base64,") == len(ALL_FIGURES)


class _Dom(HTMLParser):
    """Every element of a page in document order: (tag, attrs, depth), and the text inside the card."""

    VOID = {"meta", "img", "br", "hr", "input", "link"}

    def __init__(self):
        super().__init__()
        self.elements, self.stack, self.card_text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs), len(self.stack)))
        if tag not in self.VOID:
            self.stack.append((tag, dict(attrs).get("id")))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if any(i == "card" for _, i in self.stack):
            self.card_text.append(data)


def test_report_in_a_real_browser_opens_with_the_summary_card(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium/chrome on this machine (apt-get install chromium to run this check)")
    run, summary = _fake_run(tmp_path)
    summary["latency_dtype"] = "i8"
    html_path, _ = write_report(run, summary)
    dom = _Dom()
    dom.feed(_headless(browser, "--dump-dom", html_path.resolve().as_uri()))
    tags = [(t, a.get("id"), a.get("class")) for t, a, _ in dom.elements]
    h1 = next(i for i, (t, _, _) in enumerate(tags) if t == "h1")
    depth = dom.elements[h1][2]
    # the first element after the title (not inside it) is the card
    after = next(e for e in dom.elements[h1 + 1:] if e[2] <= depth)
    assert after[0] == "section" and after[1].get("id") == "card", after
    text = " ".join(" ".join(dom.card_text).split())
    for piece in ("Latency budget met", "0.1488 ms measured", "0.1616 ms", "97.35 % fp32", "96.81 % int8", "123,457 params",
                  "budget for the int8 file on host-ort", "MobileNetV2 x0.35"):
        assert piece in text, piece
    # the screenshot: the card's green verdict band is at the top of the first screen
    import numpy as np
    from PIL import Image

    _screenshot(browser, html_path, tmp_path / "card.png", size="1200,900")
    img = np.asarray(Image.open(tmp_path / "card.png").convert("RGB")).astype(int)
    band = (np.abs(img - np.array([0xE6, 0xF4, 0xEA])).sum(axis=2) <= 6)  # p.verdict.met's background
    rows = np.nonzero(band.mean(axis=1) > 0.5)[0]
    assert len(rows) > 20 and rows.min() < 200, (len(rows), rows[:3])
    assert img[: rows.min()].std() > 10  # the title bar above it


# ---------------------------------------------------------------------------
# baselines


def test_baselines_are_restrided_for_small_inputs():
    pytest.importorskip("timm")
    import torch

    from ednas.report.baselines import build_baseline, default_width

    model, info = build_baseline("mobilenetv2", 10, 32)
    assert info["width"] == default_width(32) == 0.35
    assert info["strides_removed_at"] == [32, 16] and info["final_map"] == 4
    with torch.no_grad():
        assert model.eval().forward_features(torch.zeros(1, 3, 32, 32)).shape[-1] == 4
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    big, info = build_baseline("mnasnet@0.5", 10, 224)
    assert info["strides_removed_at"] == [] and info["final_map"] == 7 and info["width"] == 0.5
    for bad in ("resnet", "mixnet@wide", "mixnet@9"):
        with pytest.raises(EdnasError):
            build_baseline(bad, 10, 32)


def test_run_baselines_trains_measures_and_caches(tmp_path, monkeypatch):
    pytest.importorskip("timm")
    from ednas.data import load_data
    from ednas.report import baselines
    from ednas.train.trainer import TrainConfig

    data = load_data("synthetic:classes=3,n=48,size=32")
    recipe = TrainConfig(epochs=1)
    seen = []
    res = baselines.run_baselines(data, tmp_path, ["mobilenetv2@0.1"], recipe, target="tda4vm", progress=False, on_result=lambda n, r: seen.append(n))
    (r,) = res
    assert seen == ["mobilenetv2@0.1"]
    for key in ("top1", "params", "macs", "latency_ms", "latency_ms_host_ort", "latency_source"):
        assert r[key] is not None, key
    assert r["latency_source"].startswith("predicted: tda4vm") and r["latency_ms_host_ort"] > 0
    assert json.loads((tmp_path / "mobilenetv2_w0.1" / "result.json").read_text())["macs"] == r["macs"]
    assert not (tmp_path / "mobilenetv2_w0.1" / "checkpoint.pt").exists()

    def no_training(*a, **k):
        raise AssertionError("a cached baseline was trained again")

    monkeypatch.setattr("ednas.report.baselines.fit", no_training)
    assert baselines.run_baselines(data, tmp_path, ["mobilenetv2@0.1"], recipe, target="tda4vm", progress=False) == res
    assert baselines.load_baselines(tmp_path) == res
    with pytest.raises(EdnasError, match="unknown baseline"):
        baselines.run_baselines(data, tmp_path, ["mobilenetv2", "lenet"], recipe)


def test_match_width_takes_the_widest_network_within_the_budget():
    from ednas.report.baselines import MATCH_WIDTHS, match_width

    built = []

    def build(w):
        built.append(w)
        return w

    def ms(w):  # latency grows with width
        return 0.1 + w

    m = match_width(build, ms, budget_ms=0.5)
    assert m["matched"] and m["width"] == max(w for w in MATCH_WIDTHS if 0.1 + w <= 0.5) == 0.4
    assert m["latency_ms"] == pytest.approx(0.5)
    assert len(built) <= math.ceil(math.log2(len(MATCH_WIDTHS))) + 1 < len(MATCH_WIDTHS)  # bisection, not a sweep
    assert sorted(w for w, _ in m["probes"]) == sorted(set(built))
    over = match_width(build, ms, budget_ms=0.01)  # even the narrowest is over: it is kept, and flagged
    assert not over["matched"] and over["width"] == min(MATCH_WIDTHS)
    assert match_width(build, lambda w: None, budget_ms=1.0)["matched"] is False  # a target that cannot price it


def test_match_width_probes_the_narrowest_width_only_when_nothing_wider_fits():
    from ednas.report.baselines import MATCH_WIDTHS, match_width

    def run(budget):
        built = []
        m = match_width(lambda w: built.append(w) or w, lambda w: 0.1 + w, budget_ms=budget)
        return m, built

    narrowest = min(MATCH_WIDTHS)
    for budget in (0.5, 1.0, 2.1, 0.1 + MATCH_WIDTHS[1]):  # a wider width fits: the narrowest is never built
        m, built = run(budget)
        assert m["matched"] and m["width"] > narrowest and narrowest not in built
        assert len(built) <= math.ceil(math.log2(len(MATCH_WIDTHS) + 1))
    m, built = run(0.1 + narrowest)  # only the narrowest fits: it is probed and matched
    assert m["matched"] and m["width"] == narrowest and narrowest in built
    m, built = run(0.1)  # nothing fits: the narrowest is probed, kept and flagged
    assert not m["matched"] and m["width"] == narrowest and m["latency_ms"] == pytest.approx(0.1 + narrowest)
    assert m["measurement"] == pytest.approx(0.1 + narrowest)


def _scan(widths, ms, budget):
    """What ``match_width`` must return: the widest width within the budget (every width timed), else the narrowest, unmatched."""
    fits = [w for w in sorted(widths) if ms(w) <= budget]
    return (max(fits), True) if fits else (min(widths), False)


def test_match_width_returns_what_timing_every_width_returns_for_any_latency_that_grows_with_width():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from ednas.report.baselines import MATCH_WIDTHS, match_width

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(steps=st.lists(st.floats(0.0, 1.0), min_size=len(MATCH_WIDTHS), max_size=len(MATCH_WIDTHS)),
           budget=st.floats(0.0, 45.0))
    def check(steps, budget):  # any non-decreasing latency: plateaus (widths rounding to one network) and jumps included
        lat = dict(zip(MATCH_WIDTHS, [sum(steps[: i + 1]) for i in range(len(steps))]))
        m = match_width(lambda w: w, lat.__getitem__, budget_ms=budget)
        assert (m["width"], m["matched"]) == _scan(MATCH_WIDTHS, lat.__getitem__, budget)
        assert m["latency_ms"] == lat[m["width"]]

    check()


def test_match_width_times_fewer_networks_than_bisection_where_latency_follows_a_power_of_width():
    from ednas.report.baselines import MATCH_WIDTHS, match_width

    for a, b, p in ((0.05, 0.3, 1.6), (0.2, 0.1, 2.0), (0.4, 0.2, 1.0)):  # overhead + c * width^p, as the baselines' probes are
        def ms(w, a=a, b=b, p=p):
            return a + b * w ** p
        counts = []
        for k in range(1, 20):
            budget = ms(MATCH_WIDTHS[1]) + (ms(MATCH_WIDTHS[-1]) - ms(MATCH_WIDTHS[1])) * k / 20
            built = []
            m = match_width(lambda w, built=built: built.append(w) or w, ms, budget_ms=budget)
            assert (m["width"], m["matched"]) == _scan(MATCH_WIDTHS, ms, budget)
            counts.append(len(built))
        # bisection over the 40 widths times five or six networks (5.3 on average here)
        assert max(counts) <= 6 and sum(counts) / len(counts) <= 4.5, counts


def test_match_width_on_multiply_adds_times_fewer_networks_where_latency_steps_with_the_rounded_channels():
    from ednas.arch.spec import preset
    from ednas.nn.macs import count_macs
    from ednas.report.baselines import MATCH_WIDTHS, build_baseline, match_width

    space = preset("cifar")
    macs = {}

    def build(w):
        return build_baseline("uniform", 10, 32, w, space=space)[0].eval()

    def size(net):
        return count_macs(net, 32)[0] / 1e6

    for w in MATCH_WIDTHS:
        macs[w] = size(build(w))
    assert len(set(macs.values())) < len(MATCH_WIDTHS)  # some widths round to the same channels: latency has steps

    timed = []

    def ms(net):  # a fixed cost and a part that grows with the multiply-adds, as the default run's probes do
        timed.append(1)
        return 0.48 + 0.0076 * size(net)

    on_macs, on_width = [], []
    lo, hi = ms(build(0.5)), ms(build(2.0))
    for k in range(1, 10):
        budget = lo + (hi - lo) * k / 10
        for counts, size_of in ((on_macs, size), (on_width, None)):
            timed.clear()
            m = match_width(build, ms, budget_ms=budget, size_of=size_of)
            assert (m["width"], m["matched"]) == _scan(MATCH_WIDTHS, lambda w: 0.48 + 0.0076 * macs[w], budget)
            counts.append(len(timed))
    assert max(on_macs) <= 4 and sum(on_macs) < sum(on_width), (on_macs, on_width)


def test_widths_whose_channels_round_to_the_same_network_are_timed_once():
    import torch.nn as nn

    from ednas.report.baselines import match_width

    def build(w):  # channels rounded to multiples of 8, as the baselines' widths are
        return nn.Conv2d(3, max(8, int(16 * w + 4) // 8 * 8), 3)

    timed = []

    def ms(net):
        timed.append(net.out_channels)
        return 0.1 * net.out_channels

    widths = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 1.0, 1.05, 1.1, 1.15, 1.2, 1.25]
    m = match_width(build, ms, budget_ms=1.7, widths=widths)  # 16 channels fit, 24 do not
    assert m["matched"] and m["width"] == 1.2 and build(1.2).out_channels == 16
    assert len(timed) == len(set(timed))  # each network timed once
    probed = [w for w, _ in m["probes"]]
    assert len(probed) > len(timed)  # some probed widths were the same network as one timed before
    assert all(v == 0.1 * build(w).out_channels for w, v in m["probes"])


def test_default_baseline_is_the_width_matched_uniform_network_and_the_others_stay_by_name():
    from ednas.report.baselines import FIXED_BASELINES, baseline_names

    assert baseline_names("default") == ["uniform@match"]
    assert baseline_names("mobilenets") == ["mobilenetv2@match", "mobilenetv3@match"]  # the default before issue 21
    assert baseline_names("fixed") == list(FIXED_BASELINES) and len(FIXED_BASELINES) == 6
    assert baseline_names("mixnet,fbnetc@0.5") == ["mixnet", "fbnetc@0.5"]


def test_matched_baseline_is_the_widest_within_the_budget_on_the_target(tmp_path):
    pytest.importorskip("timm")
    from ednas.data import load_data
    from ednas.latency.targets import analytic_latency
    from ednas.report import baselines
    from ednas.train.trainer import TrainConfig

    data = load_data("synthetic:classes=3,n=48,size=32")

    def ms(width):
        return analytic_latency(baselines.build_baseline("mobilenetv2", 3, 32, width)[0].eval(), 32, "tda2x")["ms"]

    budget = (ms(0.25) + ms(0.3)) / 2  # between two widths of the grid
    (r,) = baselines.run_baselines(data, tmp_path, ["mobilenetv2@match"], TrainConfig(epochs=1), target="tda2x", budget_ms=budget, progress=False)
    assert r["width"] == 0.25 and r["width_matched"] and r["latency_ms"] <= budget < ms(0.3)
    assert r["width_matched_to_ms"] == budget
    with pytest.raises(EdnasError, match="needs the budget"):
        baselines.run_baselines(data, tmp_path, ["mobilenetv3@match"], TrainConfig(epochs=1), target="tda2x")


def test_pareto_front_keeps_only_points_nothing_beats():
    from ednas.report.figures import pareto_front

    pts = [{"latency_ms": 1.0, "top1": 50}, {"latency_ms": 2.0, "top1": 60}, {"latency_ms": 1.5, "top1": 45},
           {"latency_ms": 3.0, "top1": 60}, {"latency_ms": 0.5, "top1": 40}, {"latency_ms": None, "top1": 99}]
    assert pareto_front(pts) == [4, 0, 1]  # fastest first; 1.5 ms (slower and worse than 1.0 ms) and 3.0 ms (no better) are beaten


def test_labels_of_crowded_points_do_not_overlap():
    import itertools
    import random

    from ednas.report.figures import _plt, place_labels

    plt = _plt()
    rng = random.Random(0)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xy = [(0.16 + 0.001 * rng.random(), 50 + rng.random()) for _ in range(14)]  # a tight cluster
    ax.scatter(*zip(*xy))
    ax.margins(0.3)
    labels = [f"network {i} (seed {i % 2})" for i in range(14)]
    boxes = place_labels(ax, xy, labels)
    assert len(boxes) == 14
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    axbox = ax.get_window_extent(fig.canvas.get_renderer())
    assert all(axbox.x0 <= b.x0 and b.x1 <= axbox.x1 and axbox.y0 <= b.y0 and b.y1 <= axbox.y1 for b in boxes)
    plt.close(fig)


def test_report_says_what_was_scaled_when_the_budget_needed_it(tmp_path):
    run, summary = _fake_run(tmp_path)
    for wm, said in ((1.0, False), (0.5, True)):
        summary["width_mult"] = wm
        html_path, md_path = write_report(run, summary)
        md = md_path.read_text()
        assert ("widths were scaled by 0.5" in md) == said
        assert ("widths were scaled by 0.5" in html_path.read_text()) == said
