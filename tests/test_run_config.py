"""One config tree: nested settings reach their stage; data loaded once; checks before any measurement; layers."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ednas.cli import main
from ednas.config import given, resolve_config
from ednas.errors import ConfigError
from ednas.pipeline import RunConfig

ROOT = Path(__file__).resolve().parents[1]
SPACE = "stem_k11_m1_c8_s1 | ir_k3.5.7_e2_c16_s2 | ir_k3.5.7_e2_c16_skip | head_c32"
FAST = ["--data", "synthetic:classes=4,n=192,size=32", "--target", "tda2x", "--space", SPACE, "--search-epochs", "2",
        "--warmup-epochs", "1", "--train-epochs", "1", "--batch-size", "16", "--baselines", "none", "--lut-check", "0",
        "--no-progress", "--no-tensorboard"]


class _Stop(Exception):
    pass


def test_nested_settings_set_by_flag_and_by_yaml_reach_their_stage(tmp_path, monkeypatch):
    import ednas.pipeline as pipeline

    seen = {}
    real_search = pipeline.search

    def search_spy(cfg, out, **kw):
        seen["search"] = cfg
        return real_search(cfg, out, **kw)

    def train_spy(cfg, out, **kw):
        seen["train"] = cfg
        raise _Stop  # enough: the training stage got its settings

    monkeypatch.setattr(pipeline, "search", search_spy)
    monkeypatch.setattr(pipeline, "train", train_spy)
    conf = tmp_path / "run.yaml"
    conf.write_text("search:\n  tau0: 1.25\n  loss: budget\ntrain:\n  label_smoothing: 0.05\n  lr: 0.3\n")
    with pytest.raises(_Stop):
        main(["run", "--out", str(tmp_path / "o"), "--config", str(conf), *FAST, "--search.lr", "0.037", "--train.lr", "0.021"])
    s, t = seen["search"], seen["train"]
    assert (s.tau0, s.loss, s.lr) == (1.25, "budget", 0.037)  # YAML and flag, in the search
    assert (t.label_smoothing, t.lr) == (0.05, 0.021)  # YAML, and the flag wins over the file
    assert (s.epochs, t.epochs, s.batch_size, t.batch_size) == (2, 1, 16, 16)  # the old flat flags
    # the resolved tree is written once, nested by section, each field once
    saved = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert saved["search"]["lr"] == 0.037 and saved["train"]["lr"] == 0.021 and saved["search"]["tau0"] == 1.25
    assert "search_epochs" not in saved and "train_epochs" not in saved and saved["search"]["epochs"] == 2
    # and the search's own record says what it ran with
    stage = json.loads((tmp_path / "o" / "search" / "stage.json").read_text())
    assert stage["settings"]["search"]["lr"] == 0.037 and stage["settings"]["search"]["loss"] == "budget"


def test_a_specific_flag_wins_over_an_alias_and_given_is_tracked():
    cfg = resolve_config(RunConfig, {"out": "o", "batch_size": "32", "train.batch_size": "8"})
    assert cfg.search.batch_size == 32 and cfg.train.batch_size == 8
    assert given(cfg, "train.batch_size") and given(cfg.search, "batch_size") and not given(cfg, "search.lr")


def test_unknown_nested_key_names_its_section(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("out: o\nsearch:\n  taux: 1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'search.taux' in section 'search'.*tau0"):
        resolve_config(RunConfig, {}, yaml_path=str(conf))


def test_the_data_set_is_loaded_once_per_run(tmp_path, monkeypatch):
    import ednas.data.datasets as datasets

    calls = []
    real = datasets._synthetic

    def counting(*a, **k):
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(datasets, "_synthetic", counting)
    assert main(["run", "--out", str(tmp_path), *FAST]) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["top1"] is not None and s["top1_int8"] is not None  # every stage ran, export included
    assert len(calls) == 1


def test_a_budget_conflict_fails_before_any_latency_measurement(tmp_path, capsys):
    cache = tmp_path / "cache"
    argv = ["run", "--out", str(tmp_path / "o"), "--target", "host-ort", "--lut-cache", str(cache), "--baselines", "none", "--no-progress"]
    assert main([*argv, "--budget-ms", "0.1", "--budget-frac", "0.3"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main([*argv, "--budget-frac", "1.5"]) == 2
    assert "must be in [0, 1]" in capsys.readouterr().err
    assert main([*argv, "--budget-ms", "-1"]) == 2
    assert "must be > 0" in capsys.readouterr().err
    # nothing was measured: no table file anywhere
    assert not list(tmp_path.rglob("*.json"))


# every flag these commands had before their settings had sections -> the setting it sets now
EARLIER_FLAGS = {
    "run": {"--data": "data.spec", "--target": "latency.target", "--budget-ms": "latency.budget_ms", "--budget-frac": "latency.budget_frac",
            "--space": "search.space", "--search-epochs": "search.epochs", "--warmup-epochs": "search.arch_warmup_epochs",
            "--paths": "search.paths", "--train-epochs": "train.epochs", "--batch-size": "train.batch_size", "--quant": "export.quant",
            "--pow2": "export.pow2", "--baselines": "baselines.names", "--lut-check": "lut_check", "--input-size": "data.input_size",
            "--lut-cache": "latency.cache", "--seed": "seed", "--threads": "threads", "--workers": "data.workers", "--progress": "progress"},
    "search": {"--space": "search.space", "--data": "data.spec", "--target": "latency.target", "--budget-ms": "latency.budget_ms",
               "--epochs": "search.epochs", "--warmup-epochs": "search.arch_warmup_epochs", "--batch-size": "search.batch_size",
               "--weight-split": "search.weight_split", "--lr": "search.lr", "--momentum": "search.momentum",
               "--weight-decay": "search.weight_decay", "--label-smoothing": "search.label_smoothing", "--arch-lr": "search.arch_lr",
               "--tau0": "search.tau0", "--tau-min": "search.tau_min", "--hard": "search.hard", "--loss": "search.loss",
               "--lam": "search.lam", "--lam-lr": "search.lam_lr", "--paths": "search.paths", "--merge": "search.merge",
               "--supernet": "search.supernet", "--fit": "search.fit", "--fit-low": "search.fit_low", "--measure": "search.measure",
               "--input-size": "data.input_size", "--lut-cache": "latency.cache", "--seed": "seed", "--threads": "threads",
               "--workers": "data.workers", "--resume": "resume", "--tensorboard": "tensorboard"},
    "train": {"--arch": "arch", "--data": "data.spec", "--epochs": "train.epochs", "--batch-size": "train.batch_size", "--lr": "train.lr",
              "--warmup-epochs": "train.lr_warmup_epochs", "--momentum": "train.momentum", "--weight-decay": "train.weight_decay",
              "--label-smoothing": "train.label_smoothing", "--quant-friendly": "train.quant_friendly",
              "--quant-weight-decay": "train.quant_weight_decay", "--branches": "train.branches", "--inherit": "train.inherit",
              "--input-size": "data.input_size", "--seed": "seed", "--threads": "threads", "--workers": "data.workers", "--resume": "resume"},
    "export": {"--model": "model", "--quant": "export.quant", "--pow2": "export.pow2", "--mixed-precision": "export.mixed_precision",
               "--weight-bits": "export.weight_bits", "--per-channel": "export.per_channel", "--calib-data": "export.calib_data",
               "--calib-images": "export.calib_images", "--calib-method": "export.calib_method", "--data": "data",
               "--split": "export.split", "--eval-images": "export.eval_images", "--dynamic-batch": "export.dynamic_batch",
               "--opset": "export.opset", "--threads": "timing.threads", "--latency-rounds": "timing.rounds",
               "--latency-runs": "timing.repeats", "--compare-images": "export.compare_images", "--diff-tol": "export.diff_tol", "--seed": "seed"},
    "profile": {"--input": "input_size"},
    "lut build": {"--input": "input_size"},
}
VALUES = {"epochs": "10", "arch_warmup_epochs": "2", "lr_warmup_epochs": "0.5", "batch_size": "16", "weight_bits": "8", "budget_frac": "0.5", "opset": "17", "weight_split": "0.5",
          "quant": "int16", "loss": "budget", "merge": "kernels", "supernet": "darts", "fit": "repair", "calib_method": "entropy",
          "split": "val", "baselines": "none", "names": "none"}


@pytest.mark.parametrize("command", list(EARLIER_FLAGS))
def test_every_earlier_flag_still_sets_its_setting(command, tmp_path):
    from ednas.cli import build_parser

    parser = build_parser()
    base = ["--out", str(tmp_path)] if command not in ("profile",) else []
    base += ["--model", "m.pt"] if command in ("export", "profile") else []
    for flag, path in EARLIER_FLAGS[command].items():
        leaf = path.rsplit(".", 1)[-1]
        bool_flag = flag in ("--pow2", "--hard", "--measure", "--resume", "--tensorboard", "--progress", "--quant-friendly",
                             "--branches", "--per-channel", "--mixed-precision", "--dynamic-batch")
        value = [] if bool_flag else [VALUES.get(leaf, "7" if "epochs" in leaf or leaf in ("paths", "seed", "threads") else "x.yaml" if leaf == "arch" else "0.25")]
        if leaf in ("spec", "target", "space", "cache", "inherit", "model", "calib_data", "data", "input_size", "workers", "lut_check",
                    "calib_images", "eval_images", "compare_images", "rounds", "repeats", "lam", "lam_lr", "tau0", "tau_min"):
            value = {"spec": ["digits"], "target": ["tda2x"], "space": ["cifar"], "cache": ["c"], "inherit": ["s"], "model": ["m.pt"],
                     "calib_data": ["digits"], "data": ["digits"], "input_size": ["32"], "workers": ["0"], "lut_check": ["3"],
                     "calib_images": ["8"], "eval_images": ["8"], "compare_images": ["4"], "rounds": ["3"], "repeats": ["9"],
                     "lam": ["0.5"], "lam_lr": ["0.5"], "tau0": ["1.5"], "tau_min": ["0.5"]}[leaf]
        args = parser.parse_args([*command.split(), *base, flag, *value])
        ns = {k: v for k, v in vars(args).items() if not k.startswith("_") and k not in ("command", "sub_command")}
        cfg = resolve_config(args._cls, ns)
        assert given(cfg, path), (command, flag, path)


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed (pip install -e '.[dev]')")
def test_layer_contracts_hold_and_a_planted_back_import_breaks_them(tmp_path):
    def lint(root: Path) -> subprocess.CompletedProcess:
        env = {"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
        return subprocess.run([shutil.which("lint-imports"), "--config", str(root / "pyproject.toml")], cwd=root,
                              capture_output=True, text=True, env=env, timeout=300)

    ok = lint(ROOT)
    assert ok.returncode == 0, ok.stdout[-2000:]
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "ednas", copy / "ednas", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    nn_init = copy / "ednas" / "nn" / "__init__.py"
    nn_init.write_text(nn_init.read_text() + "\nimport ednas.search.loss  # noqa: E402,F401 - a planted back-import\n")
    broken = lint(copy)
    assert broken.returncode != 0
    assert "ednas.nn is not allowed to import ednas.search" in broken.stdout
