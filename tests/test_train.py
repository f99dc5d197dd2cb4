import json
import pickle

import numpy as np
import pytest
import torch

from ednas.checkpoint import with_checksum
from ednas.cli import main
from ednas.data import load_data
from ednas.nn.files import load_model
from ednas.train.trainer import TrainConfig, train

SMALL = "stem_k11_m1_c8_s1 | ir_k3_e2_c16_s2 | ir_k5_e2_c16_s2_acb | head_c32_d10"


def _train(out, arch=SMALL, on_epoch_end=None, **kw):
    """The library call ``ednas train`` makes (digits, batch 64, 2 epochs unless given)."""
    cfg = TrainConfig(**{"epochs": 2, "batch_size": 64, **kw})
    return train(cfg, out, arch=arch, data=load_data("digits"), progress=False, tensorboard=False, on_epoch_end=on_epoch_end)


def _train_cli(out, *argv):
    assert main(["train", "--out", str(out), "--data", "digits", "--threads", "2", "--no-progress", "--no-tensorboard", *argv]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    ref = _train(tmp_path / "ref")

    class Stop(KeyboardInterrupt):
        pass

    def stop_after_first(epoch, rec):
        if epoch == 1:
            raise Stop()

    with pytest.raises(Stop):
        _train(tmp_path / "cut", on_epoch_end=stop_after_first)
    assert (tmp_path / "cut" / "checkpoint.pt").is_file() and not (tmp_path / "cut" / "model.pt").exists()
    # resume through the command line, as a user would
    assert main(["train", "--out", str(tmp_path / "cut"), "--arch", SMALL, "--epochs", "2", "--threads", "2",
                 "--no-progress", "--no-tensorboard", "--resume"]) == 0
    a, _ = load_model(tmp_path / "ref" / "model.pt")
    b, _ = load_model(tmp_path / "cut" / "model.pt")
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    resumed = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert resumed["top1"] == ref["top1"] and resumed["history"] == ref["history"]


def test_resume_refuses_other_settings(tmp_path, capsys):
    _train(tmp_path, epochs=1)
    assert main(["train", "--out", str(tmp_path), "--arch", SMALL, "--epochs", "1", "--lr", "0.3", "--resume", "--no-progress"]) == 2
    assert "was written with other settings (lr: 0.1 vs 0.3)" in capsys.readouterr().err


def test_metrics_model_config_and_eval(tmp_path, capsys):
    m = _train_cli(tmp_path, "--epochs", "3", "--arch", "cifar-kernels")  # a preset by name; the kernel-only one is the cheaper to train
    for k in ("top1", "top5", "val_loss", "epochs", "params", "wall_s"):
        assert k in m
    assert m["top1"] > 80 and m["top5"] >= m["top1"] and m["epochs"] == 3
    model, meta = load_model(tmp_path / "model.pt")
    assert meta["arch"] == m["arch"] and m["params"] == sum(p.numel() for p in model.parameters())
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "tb").exists() is False
    rc = main(["eval", "--model", str(tmp_path / "model.pt"), "--json", str(tmp_path / "e.json"),
               "--predictions", str(tmp_path / "p.npz")])
    assert rc == 0
    e = json.loads((tmp_path / "e.json").read_text())
    assert e["top1"] == pytest.approx(m["top1"]) and e["n"] == 359
    p = np.load(tmp_path / "p.npz")
    assert p["scores"].shape == (359, 10) and p["targets"].shape == (359,)
    # anyone can recompute the metrics from the predictions
    from sklearn.metrics import accuracy_score, top_k_accuracy_score

    assert 100 * accuracy_score(p["targets"], p["scores"].argmax(1)) == pytest.approx(e["top1"])
    assert 100 * top_k_accuracy_score(p["targets"], p["scores"], k=5, labels=range(10)) == pytest.approx(e["top5"])


def _run_cli(capsys, *argv):
    rc = main(list(argv))
    err = capsys.readouterr().err
    return rc, err


@pytest.mark.parametrize("argv, fragment", [
    (["--data", "mnist"], "unknown data kind 'mnist'"),
    (["--data", "cifar10:/no/such/dir"], "'/no/such/dir' does not exist"),
    (["--arch", "stem_k11_c8 | ir_k4_e2_c8 | head_c8"], "stage 1 block 0 ('ir_k4_e2_c8'): field 'k' = 4"),
    (["--arch", "missing_file.yaml"], "arch file 'missing_file.yaml' does not exist"),
    (["--epochs", "0"], "--epochs must be >= 1"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, argv, fragment):
    rc, err = _run_cli(capsys, "train", "--out", str(tmp_path), "--no-progress", *argv)
    assert rc == 2
    assert fragment in err and "Traceback" not in err and err.count("\n") == 1


def test_cli_error_for_truncated_batch(tmp_path, capsys):
    d = {b"data": np.zeros((20, 3072), dtype=np.uint8), b"labels": [0] * 20}
    raw = pickle.dumps(d, protocol=2)
    (tmp_path / "data_batch_1").write_bytes(raw[:-100])
    (tmp_path / "test_batch").write_bytes(raw)
    rc, err = _run_cli(capsys, "train", "--out", str(tmp_path / "o"), "--data", f"cifar10:{tmp_path}", "--no-progress")
    assert rc == 2 and "data_batch_1' is truncated or corrupted" in err


def test_cli_eval_errors(tmp_path, capsys):
    rc, err = _run_cli(capsys, "eval", "--model", str(tmp_path / "none.pt"))
    assert rc == 2 and "none.pt' does not exist" in err
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    rc, err = _run_cli(capsys, "eval", "--model", str(tmp_path / "bad.pt"))
    assert rc == 2 and "bad.pt' is corrupt" in err


def test_model_whose_arch_does_not_match_its_weights(tmp_path):
    _train(tmp_path, epochs=1)
    meta = torch.load(tmp_path / "model.pt", weights_only=True)
    meta["arch"] = SMALL.replace("ir_k3_e2_c16_s2", "ir_k5_e2_c16_s2")
    torch.save(with_checksum(meta), tmp_path / "wrong.pt")  # consistent on disk: only the arch is wrong
    from ednas.errors import EdnasError

    with pytest.raises(EdnasError, match="does not match its weights.*shape mismatch"):
        load_model(tmp_path / "wrong.pt")


def test_cifar_sample_trains_with_the_same_command(tmp_path, cifar_dir):
    rc = main(["train", "--out", str(tmp_path), "--data", f"cifar10:{cifar_dir}", "--arch", SMALL, "--epochs", "1",
               "--no-progress", "--no-tensorboard"])
    assert rc == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n_test"] == 1000 and m["top1"] > 15  # one epoch of a tiny net: well above chance (10 %)
