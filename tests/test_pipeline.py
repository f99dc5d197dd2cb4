"""`ednas run`: stages, skip-if-complete, settings changes keep old outputs, summary keys."""

import json

from ednas.cli import main

SUMMARY_KEYS = ("data", "target", "budget_ms", "arch", "params", "macs", "top1", "top1_int8", "latency_ms_predicted",
                "latency_ms_measured", "onnx_max_abs_diff", "wall_s", "stages", "latency_ms_argmax", "fit_changes")


def _argv(out, *extra):
    return ["run", "--out", str(out), "--data", "synthetic:classes=4,n=192,size=32", "--target", "tda2x",
            "--space", "stem_k11_m1_c8_s1 | ir_k3.5.7_e2_c16_s2 | ir_k3.5.7_e2_c16_skip | head_c32",
            "--search-epochs", "2", "--warmup-epochs", "1", "--train-epochs", "1", "--batch-size", "16",
            "--baselines", "none", "--lut-check", "0", "--no-progress", *extra]


def test_run_writes_summary_and_skips_complete_stages(tmp_path, capsys):
    assert main(_argv(tmp_path)) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    for k in SUMMARY_KEYS:
        assert k in s, k
    assert set(s["stages"]) >= {"lut", "search", "train", "export", "baselines", "report"}
    assert s["latency_ms_predicted"] <= s["budget_ms"]  # the derived network, after the budget fit
    search = json.loads((tmp_path / "search" / "search.json").read_text())
    assert s["latency_ms_argmax"] == search["latency_ms_argmax"] and s["fit_changes"] == search["n_fit_changes"]
    # tda2x is not this machine: nothing is called measured on it; the host time is kept apart
    assert s["latency_ms_measured"] is None and s["latency_ms_host_fp32"] > 0
    assert (tmp_path / "report.html").is_file() and (tmp_path / "report.md").is_file()
    for stage in ("lut", "search", "train", "export"):
        assert (tmp_path / stage / "stage.json").is_file()
    capsys.readouterr()
    # a second run finds every stage complete
    assert main(_argv(tmp_path)) == 0
    err = capsys.readouterr().err
    for stage in ("lut", "search", "train", "export"):
        assert f"[{stage}] complete, skipped" in err
    s2 = json.loads((tmp_path / "summary.json").read_text())
    assert s2["arch"] == s["arch"] and s2["top1"] == s["top1"]
    assert all(s2["stages"][k]["skipped"] for k in ("lut", "search", "train", "export"))
    # changing a training setting re-runs train and what follows, keeping the old outputs
    assert main(_argv(tmp_path, "--train-epochs", "2")) == 0
    err = capsys.readouterr().err
    assert "[search] complete, skipped" in err and "[train] running" in err and "[export] running" in err
    assert (tmp_path / "train.old-1" / "model.pt").is_file()
    assert json.loads((tmp_path / "train" / "metrics.json").read_text())["epochs"] == 2


def test_run_reports_an_unreachable_budget_before_training(tmp_path, capsys):
    assert main(_argv(tmp_path, "--budget-ms", "1e6")) == 2
    err = capsys.readouterr().err
    assert "is outside what the space reaches at any width multiplier in [0.25, 3]" in err  # not even a scaled skeleton reaches it
    assert not (tmp_path / "search" / "checkpoint.pt").exists()


def test_interrupted_stage_resumes_or_is_kept_aside(tmp_path, capsys, monkeypatch):
    import ednas.search.algorithm as alg

    real = alg._Search.run

    def interrupted(self, resume=False, on_epoch_end=None):
        def stop(epoch, rec):
            raise KeyboardInterrupt

        return real(self, resume, on_epoch_end=stop)

    monkeypatch.setattr(alg._Search, "run", interrupted)
    assert main(_argv(tmp_path)) == 130  # interrupted after the first search epoch
    assert (tmp_path / "search" / "checkpoint.pt").is_file() and not (tmp_path / "search" / "stage.json").exists()
    monkeypatch.setattr(alg._Search, "run", real)
    capsys.readouterr()
    # same settings: the search resumes from its checkpoint
    assert main(_argv(tmp_path)) == 0
    assert "[search] resuming" in capsys.readouterr().err
    # interrupted again, then run with other search settings: the partial folder is kept aside
    monkeypatch.setattr(alg._Search, "run", interrupted)
    assert main(_argv(tmp_path, "--search-epochs", "3")) == 130
    monkeypatch.setattr(alg._Search, "run", real)
    capsys.readouterr()
    assert main(_argv(tmp_path, "--search-epochs", "4")) == 0
    err = capsys.readouterr().err
    assert "[search] interrupted with other settings" in err
    assert (tmp_path / "search.old-2" / "checkpoint.pt").is_file()


def test_the_baselines_train_with_the_runs_threads_after_the_export_timed_with_one(tmp_path, monkeypatch):
    """The export times its files with the timing's one thread; it must not leave it set for the baselines trained after it.

    (Until the tenth session it did: the report's ``uniform`` baseline trained on one thread, 1.7x slower.)
    """
    import torch

    import ednas.deploy.export as export_mod
    import ednas.report.baselines as baselines_mod

    seen = {}
    real_fit, real_export = baselines_mod.fit, export_mod._export

    def fit(*a, **kw):
        seen["baseline_fit"] = torch.get_num_threads()
        return real_fit(*a, **kw)

    def export(*a, **kw):
        seen["export"] = torch.get_num_threads()
        return real_export(*a, **kw)

    monkeypatch.setattr(baselines_mod, "fit", fit)
    monkeypatch.setattr(export_mod, "_export", export)
    old = torch.get_num_threads()
    try:
        assert main(_argv(tmp_path, "--baselines", "uniform@1.0", "--threads", "2")) == 0
    finally:
        torch.set_num_threads(old)
    assert seen == {"export": 1, "baseline_fit": 2}
