"""Nothing lost: corrupt checkpoints fall back, non-finite steps are skipped and counted, full disks and signals leave no half-written file."""

import errno
import json
import logging
import os
import shutil
import signal

import pytest
import torch

import ednas.io
from ednas import build_model
from ednas.arch.spec import parse_arch
from ednas.checkpoint import load_checkpoint, previous_path, resume_state, save_checkpoint
from ednas.cli import main
from ednas.data import load_data
from ednas.errors import CheckpointError, DiskError, TrainingError
from ednas.io import atomic_write_text
from ednas.latency import LatencyTable, load_table, space_ops
from ednas.nn.files import load_model
from ednas.signals import Interrupted, deferred, handling
from ednas.train.trainer import TrainConfig, fit, train
from tests.conftest import TINY_SPACE
from tests.search_helpers import SyntheticLatency, make_search

SMALL = "stem_k11_m1_c8_s1 | ir_k3_e2_c8_s2 | ir_k5_e2_c16_s2_acb | head_c16"
SYNTH = "synthetic:classes=4,n=96,size=16"


def _train(out, epochs=2, resume=False, **kw):
    cfg = TrainConfig(epochs=epochs, batch_size=16, **kw)
    return train(cfg, out, arch=SMALL, data=load_data(SYNTH), progress=False, tensorboard=False, resume=resume)


def _same_weights(a, b):
    sa, sb = load_model(a)[0].state_dict(), load_model(b)[0].state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- checkpoints: checksum, torn files, the previous one ------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-epoch training: checkpoint.pt (epoch 2), checkpoint.prev.pt (epoch 1), model.pt."""
    out = tmp_path_factory.mktemp("ref")
    return out, _train(out)


def test_a_checkpoint_keeps_the_one_it_replaced(trained):
    out, _ = trained
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2
    assert load_checkpoint(previous_path(out / "checkpoint.pt"))["epoch"] == 1


@pytest.mark.parametrize("damage", ["torn", "bit"])
def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(trained, tmp_path, damage, caplog):
    ref, ref_metrics = trained
    cut = tmp_path / "cut"
    shutil.copytree(ref, cut)
    (cut / "model.pt").unlink()
    ck = cut / "checkpoint.pt"
    raw = bytearray(ck.read_bytes())
    if damage == "torn":  # a write cut short (a crash of the machine, a copy interrupted)
        ck.write_bytes(bytes(raw[: len(raw) // 3]))
    else:  # one flipped bit inside a weight: the zip reader does not notice, the checksum does
        w = load_checkpoint(ck)["model"]["head.fc.weight"].numpy().tobytes()
        raw[raw.find(w) + 5] ^= 0x04
        ck.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="is corrupt"):
        load_checkpoint(ck)
    with caplog.at_level(logging.WARNING, logger="ednas"):
        state = resume_state(ck, load_checkpoint(previous_path(ck))["settings"])
    assert state["epoch"] == 1
    assert any("checkpoint.pt' is corrupt" in r.message and "previous checkpoint" in r.message for r in caplog.records)
    # resuming from it replays epoch 2: the same weights as the uninterrupted run
    m = _train(cut, resume=True)
    assert _same_weights(ref / "model.pt", cut / "model.pt") and m["history"] == ref_metrics["history"]


def test_no_usable_checkpoint_is_an_error_naming_both(tmp_path):
    ck = tmp_path / "checkpoint.pt"
    ck.write_bytes(b"PK\x03\x04 torn")
    previous_path(ck).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"no usable checkpoint: .*checkpoint.pt' is corrupt.*checkpoint.prev.pt' is corrupt"):
        resume_state(ck, {})


def test_a_corrupt_table_is_an_error_naming_the_file(tmp_path):
    sp = parse_arch(TINY_SPACE)
    path = tmp_path / "lut.json"
    LatencyTable(target="x", input_size=32, entries={op.key: 0.1 for op in space_ops(sp, 32, 10)}).save(path)
    assert len(load_table(path)) == len(space_ops(sp, 32, 10))  # as written, it loads
    d = json.loads(path.read_text())
    d["constant_ms"] = 0.5
    path.write_text(json.dumps(d))
    with pytest.raises(Exception, match=f"latency table '{path}' is corrupt"):
        load_table(path)
    del d["checksum"]  # edited on purpose: a table without a checksum is read as it is
    path.write_text(json.dumps(d))
    assert load_table(path).constant_ms == 0.5


# -- numerical faults ------------------------------------------------------------------------------


class NaNAt:
    """Hooks: the logits of the training forwards numbered in ``calls`` (from 1) become NaN.

    ``before[n]`` is the model's state as forward n starts, ``after[n]`` as
    the next training forward starts (so after step n, skipped or not).
    """

    def __init__(self, model, calls):
        self.model, self.calls, self.n = model, set(calls), 0
        self.before: dict = {}
        self.after: dict = {}
        model.register_forward_pre_hook(self.pre)
        model.register_forward_hook(self.post)

    def state(self):
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def pre(self, module, args):
        if module.training:
            self.n += 1
            if self.n - 1 in self.calls:
                self.after[self.n - 1] = self.state()
            if self.n in self.calls:
                self.before[self.n] = self.state()

    def post(self, module, args, out):
        return out * float("nan") if module.training and self.n in self.calls else out


def test_a_nan_loss_skips_the_step_and_counts_it(tmp_path, caplog):
    data = load_data(SYNTH)
    model = build_model(parse_arch(SMALL), 4)
    hook = NaNAt(model, [3])
    cfg = TrainConfig(epochs=1, batch_size=16)
    with caplog.at_level(logging.WARNING, logger="ednas"):
        m = fit(model, data, cfg, tmp_path, progress=False, tensorboard=True)
    # skipped: weights, BN statistics and all were left exactly as they were
    assert 3 in hook.after, "training stopped after the NaN step"
    before, after = hook.before[3], hook.after[3]
    assert [k for k in before if not torch.equal(before[k], after[k])] == []
    # and counted: metrics.json, the epoch's record, the log and TensorBoard
    assert m["skipped_steps"] == 1 and m["history"][0]["skipped_steps"] == 1
    assert json.loads((tmp_path / "metrics.json").read_text())["skipped_steps"] == 1
    assert any("weight step skipped at epoch 1 step 2" in r.message for r in caplog.records)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tmp_path / "tb"))
    ea.Reload()
    assert [e.value for e in ea.Scalars("train/skipped_steps")] == [1.0]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_non_finite_steps_in_a_row_stop_and_keep_the_last_good_checkpoint(tmp_path):
    data = load_data(SYNTH)
    model = build_model(parse_arch(SMALL), 4)
    cfg = TrainConfig(epochs=3, batch_size=16, max_skipped_steps=3)
    steps = data.size("train") // 16  # training batches per epoch
    NaNAt(model, range(steps + 1, 10 * steps))  # every step of epoch 2 on
    with pytest.raises(TrainingError, match="3 weight steps in a row had a non-finite loss.*checkpoint of the last complete epoch is kept"):
        fit(model, data, cfg, tmp_path, progress=False, tensorboard=False)
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["epoch"] == 1 and all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())


def test_search_skips_and_counts_non_finite_weight_arch_and_lambda_steps(tmp_path):
    space = parse_arch(TINY_SPACE)

    class FaultyLatency(SyntheticLatency):
        n_steps = 0
        nan_next = False

        def expected(self, net):  # the 2nd architecture step's E[LAT] is NaN (the epoch's evaluation runs without grad)
            e = super().expected(net)
            if torch.is_grad_enabled():
                FaultyLatency.n_steps += 1
                return e * float("nan") if FaultyLatency.n_steps == 2 else e
            return e

        def predict(self, picks):
            if self.nan_next:
                self.nan_next = False
                return float("nan")
            return super().predict(picks)

    lat = FaultyLatency(space)
    s = make_search(tmp_path, lat, epochs=2, arch_warmup_epochs=1, paths=1, budget_frac=0.02)  # over budget: lambda rises
    NaNAt(s.paths[0], [2])  # the 2nd weight step's loss
    alphas, lams = [], []
    real_arch, real_lam = s._arch_step, s._update_lambda

    def arch_step(p, net, *a, **k):
        alphas.append([c.alpha.detach().clone() for c in net.choices()])
        return real_arch(p, net, *a, **k)

    def update_lambda(*a, **k):
        lat.nan_next = len(lams) == 4  # the 3rd update sees a NaN latency
        lams.append(s.loss.lam)
        real_lam(*a, **k)
        lams.append(s.loss.lam)

    s._arch_step, s._update_lambda = arch_step, update_lambda
    res = s.run()
    assert res["skipped_steps"] == {"weight": 1, "arch": 1, "lambda": 1}
    assert json.loads((tmp_path / "search.json").read_text())["skipped_steps"] == res["skipped_steps"]
    assert res["history"][-1]["skipped_steps"] == res["skipped_steps"]
    # the skipped architecture step left alpha as it was; the skipped lambda update left lambda as it was
    assert all(torch.equal(a, b) for a, b in zip(alphas[1], alphas[2]))
    assert not all(torch.equal(a, b) for a, b in zip(alphas[0], alphas[1]))  # an applied step does move it
    assert lams[2] != lams[3] and lams[4] == lams[5]


# -- disk: unwritable, full ----------------------------------------------------------------------------


def test_a_full_disk_is_one_line_and_leaves_the_last_checkpoint_whole(tmp_path, monkeypatch, capsys):
    out = tmp_path / "t"
    real_fsync = os.fsync
    writes = []

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else ""
        writes.append(name)
        if ".checkpoint.pt." in name and sum(".checkpoint.pt." in w for w in writes) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(ednas.io.os, "fsync", fsync)
    rc = main(["train", "--out", str(out), "--data", SYNTH, "--arch", SMALL, "--epochs", "3", "--batch-size", "16",
               "--no-progress", "--no-tensorboard"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert f"cannot write '{out / 'checkpoint.pt'}': the disk holding '{out}' is full" in err
    assert "the previous file is unchanged" in err
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1  # the checkpoint before the failed write, whole
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no partial file left
    assert not (out / "model.pt").exists()


def test_an_unwritable_output_folder_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    def no_permission(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(ednas.io.tempfile, "mkstemp", no_permission)  # running as root, chmod would not stop us
    assert main(["train", "--out", str(tmp_path / "o"), "--data", SYNTH, "--no-progress"]) == 2
    assert f"--out '{tmp_path / 'o'}': cannot write there (Permission denied)" in capsys.readouterr().err
    with pytest.raises(DiskError, match="no permission to write there"):
        atomic_write_text(tmp_path / "x.txt", "x")


# -- signals ---------------------------------------------------------------------------------------


def test_a_signal_during_a_write_waits_for_the_file(tmp_path, monkeypatch):
    """SIGTERM in the middle of writing a checkpoint: the file is completed and renamed, then the command stops."""
    real = torch.save

    def save_and_signal(obj, f):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the checkpoint is half written
        real(obj, f)

    with handling():
        monkeypatch.setattr(ednas.io.torch, "save", save_and_signal)
        with pytest.raises(Interrupted) as e:
            save_checkpoint(tmp_path / "checkpoint.pt", {"epoch": 7, "w": torch.ones(3)}, {"a": 1})
    assert e.value.exit_code == 143
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 7
    with handling(), pytest.raises(Interrupted):
        with deferred():
            os.kill(os.getpid(), signal.SIGINT)
            held = True  # still here: the signal waits for the end of the block
    assert held


def test_an_interrupted_training_exits_143_and_says_how_to_resume(tmp_path, monkeypatch, capsys):
    import ednas.train.trainer as trainer

    real_fit = trainer.fit

    def fit_then_signal(*a, **k):
        k["on_epoch_end"] = lambda epoch, rec: os.kill(os.getpid(), signal.SIGTERM) if epoch == 1 else None
        return real_fit(*a, **k)

    monkeypatch.setattr(trainer, "fit", fit_then_signal)
    argv = ["train", "--out", str(tmp_path), "--data", SYNTH, "--arch", SMALL, "--epochs", "2", "--batch-size", "16",
            "--no-progress", "--no-tensorboard"]
    assert main(argv) == 143
    err = capsys.readouterr().err
    assert f"interrupted by SIGTERM; the checkpoint of epoch 1 of 2 is '{tmp_path / 'checkpoint.pt'}'" in err
    assert "rerun the same command with --resume" in err
    assert main(argv) == 2  # without --resume the unfinished run is not overwritten
    assert "add --resume to continue it" in capsys.readouterr().err
