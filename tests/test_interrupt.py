"""SIGTERM and SIGINT to a running ``ednas search``, ``train``, ``run`` and ``lut build`` (real processes): exit 143 / 130, resume, same result.

A scheduler (SLURM, Kubernetes) stops a job with SIGTERM; a person with
Ctrl-C (SIGINT).  Each test starts the command as a user would, waits for
the first epoch's checkpoint, sends SIGTERM, checks the exit status and the
line that says how to continue, continues as that line says, and compares
the architecture and every weight with an uninterrupted run.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from ednas.nn.files import load_model

ROOT = Path(__file__).resolve().parents[1]
SPACE = "stem_k11_m1_c8_s1 | ir_k3.5.7_e2_c8 | ir_k3.5_e2_c16_s2_r2_skip | head_c16"
DATA = "synthetic:classes=4,n=160,size=16"


def _cmd(*argv) -> list[str]:
    return [sys.executable, "-m", "ednas.cli", *argv]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _run(argv, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(*argv), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)


def _terminate_after(argv, marker: Path, timeout=600, sig=signal.SIGTERM) -> tuple[int, str]:
    """Start ``argv``, send ``sig`` (SIGTERM) as soon as ``marker`` exists; return (exit status, stderr)."""
    p = subprocess.Popen(_cmd(*argv), cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not marker.exists():
        if p.poll() is not None:
            break
        if time.time() - t0 > timeout:
            p.kill()
            pytest.fail(f"{marker} never appeared")
        time.sleep(0.02)
    if p.poll() is None:
        p.send_signal(sig)
    _, err = p.communicate(timeout=timeout)
    return p.returncode, err


def _state(path: Path, key="state_dict") -> dict:
    return torch.load(path, weights_only=True)[key]


def _assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_sigterm_during_search_then_resume_equals_uninterrupted(tmp_path):
    argv = ["search", "--data", DATA, "--space", SPACE, "--target", "tda2x", "--epochs", "5", "--warmup-epochs", "1",
            "--batch-size", "16", "--paths", "2", "--threads", "1", "--no-measure", "--no-progress", "--no-tensorboard"]
    ref = _run([argv[0], "--out", str(tmp_path / "ref"), *argv[1:]])
    assert ref.returncode == 0, ref.stderr
    cut = tmp_path / "cut"
    rc, err = _terminate_after([argv[0], "--out", str(cut), *argv[1:]], cut / "checkpoint.pt")
    assert rc == 143, err
    assert "ednas: interrupted by SIGTERM" in err and "rerun the same command with --resume" in err, err
    assert not (cut / "search.json").exists()  # it did stop before the end
    res = _run([argv[0], "--out", str(cut), *argv[1:], "--resume"])
    assert res.returncode == 0, res.stderr
    a, b = yaml.safe_load((tmp_path / "ref" / "arch.yaml").read_text()), yaml.safe_load((cut / "arch.yaml").read_text())
    assert a["arch"] == b["arch"] and a["layers"] == b["layers"]
    _assert_same(_state(tmp_path / "ref" / "supernet.pt"), _state(cut / "supernet.pt"))


@pytest.mark.slow
def test_sigterm_during_run_then_rerun_equals_uninterrupted(tmp_path):
    argv = ["run", "--data", DATA, "--space", SPACE, "--target", "tda2x", "--search-epochs", "4", "--warmup-epochs", "1",
            "--train-epochs", "3", "--batch-size", "16", "--baselines", "none", "--lut-check", "0", "--quant", "none",
            "--threads", "1", "--no-progress", "--no-tensorboard"]
    ref = _run([argv[0], "--out", str(tmp_path / "ref"), *argv[1:]])
    assert ref.returncode == 0, ref.stderr
    cut = tmp_path / "cut"
    for marker in (cut / "search" / "checkpoint.pt", cut / "train" / "checkpoint.pt"):  # once in the search, once in the training
        rc, err = _terminate_after([argv[0], "--out", str(cut), *argv[1:]], marker)
        assert rc == 143, err
        assert "ednas: interrupted by SIGTERM" in err and "rerun the same command to continue" in err, err
    assert not (cut / "summary.json").exists()
    res = _run([argv[0], "--out", str(cut), *argv[1:]])
    assert res.returncode == 0, res.stderr
    a, b = yaml.safe_load((tmp_path / "ref" / "search" / "arch.yaml").read_text()), yaml.safe_load((cut / "search" / "arch.yaml").read_text())
    assert a["arch"] == b["arch"]
    _assert_same(_state(tmp_path / "ref" / "search" / "supernet.pt"), _state(cut / "search" / "supernet.pt"))
    _assert_same(load_model(tmp_path / "ref" / "train" / "model.pt")[0].state_dict(), load_model(cut / "train" / "model.pt")[0].state_dict())


def test_sigint_during_training_then_resume_equals_uninterrupted(tmp_path):
    """Ctrl-C: exit 130 and the resume line; --resume ends with the weights of an uninterrupted training."""
    arch = "stem_k11_m1_c8_s1 | ir_k5_e2_c8 | ir_k3_e2_c16_s2 ir_k5_e2_c16 | head_c16"
    argv = ["train", "--data", DATA, "--arch", arch, "--epochs", "4", "--batch-size", "16", "--threads", "1", "--no-progress",
            "--no-tensorboard"]
    ref = _run([argv[0], "--out", str(tmp_path / "ref"), *argv[1:]])
    assert ref.returncode == 0, ref.stderr
    cut = tmp_path / "cut"
    rc, err = _terminate_after([argv[0], "--out", str(cut), *argv[1:]], cut / "checkpoint.pt", sig=signal.SIGINT)
    assert rc == 130, err
    assert "ednas: interrupted by SIGINT" in err and "rerun the same command with --resume" in err, err
    assert not (cut / "model.pt").exists()
    res = _run([argv[0], "--out", str(cut), *argv[1:], "--resume"])
    assert res.returncode == 0, res.stderr
    _assert_same(load_model(tmp_path / "ref" / "model.pt")[0].state_dict(), load_model(cut / "model.pt")[0].state_dict())


def test_interrupted_lut_build_keeps_its_operators_and_the_rerun_measures_only_the_rest(tmp_path):
    """SIGTERM during ``lut build``: exit 143, a whole table of the operators measured so far; the rerun keeps them and adds the rest."""
    from ednas.latency.table import load_table

    out = tmp_path / "t.json"
    argv = ["lut", "build", "--target", "host-ort", "--space", SPACE, "--input-size", "16", "--num-classes", "4", "--out", str(out),
            "--warmup", "1", "--repeats", "5", "--rounds", "1", "--fit-archs", "0", "--no-progress"]
    rc, err = _terminate_after(argv, out)
    assert rc == 143, err
    assert "ednas: interrupted by SIGTERM" in err and "the operators measured so far are kept" in err, err
    part = load_table(out)  # whole: it loads, checksum and all
    assert 0 < len(part.entries)
    res = _run(argv)
    assert res.returncode == 0, res.stderr
    full = load_table(out)
    assert len(full.entries) > len(part.entries)  # the build was cut short, and the rerun measured what was missing
    for key, entry in part.entries.items():  # what was measured is kept, not measured again (ms is rescaled to the table's speed)
        assert (full.entries[key]["raw_ms"], full.entries[key]["ref_ms"]) == (entry["raw_ms"], entry["ref_ms"])
