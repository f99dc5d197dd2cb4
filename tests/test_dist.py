"""Several processes under torchrun (gloo on the CPU): the same results as their single-process equivalents.

Each test starts real worker processes with ``python -m torch.distributed.run``.
Workers and references run one intra-op thread each: another thread count sums
in another order, and the second step of these small networks already turns
those 1e-7 differences into 1e-4.  The single-process equivalent of D data-parallel processes of batch B is one
process of batch D x B whose steps treat each B-image part as a process would
(BN statistics of its own, gradients averaged: :class:`tests.dist_helpers.Ghost`
for training, :class:`_VirtualRanks` for the search): the loaders hand the D
processes the parts of exactly that batch, with the same augmentation.
"""

import contextlib
import json
import time

import pytest
import torch

from ednas.commands import SearchCommand, search_command
from ednas.config import resolve_config
from ednas.context import RunContext
from ednas.data import load_data
from ednas.nn.build import build_model
from ednas.nn.files import load_model
from ednas.runtime import torch_threads
from ednas.search.algorithm import _Search
from ednas.search.gumbel import sample_choices
from ednas.seeds import derive
from ednas.train.trainer import TrainConfig, fit, resolve_arch
from tests.conftest import TINY_SPACE
from tests.dist_helpers import GhostNet, assert_same_state, ednas_cmd, kill_group, start, torchrun, wait_for_epoch, workers_of

ARGS = dict(space=TINY_SPACE, data="synthetic:classes=4,n=192,size=32", target="tda2x", epochs=2, warmup_epochs=1,
            batch_size=16, paths=2, merge="all", threads=1, measure=False, tensorboard=False, progress=False)

TRAIN_ARCH = "stem_k11_m1_c8_s1 | ir_k3_e2_c16_s2 | ir_k5_e2_c16_s2_acb | head_c32"
TRAIN_DATA = "synthetic:classes=4,n=64,size=32"
TRAIN_ARGS = dict(arch=TRAIN_ARCH, data=TRAIN_DATA, epochs=2, batch_size=8, lr=0.05, threads=1, progress=False, tensorboard=False)


def _ok(r):
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])


def test_torchrun_two_ranks_equal_two_local_paths(tmp_path):
    ref = search_command(resolve_config(SearchCommand, dict(out=str(tmp_path / "local"), **ARGS)))
    r = torchrun(2, "search", dict(out=str(tmp_path / "dist"), **ARGS))
    _ok(r)
    a = torch.load(tmp_path / "local" / "supernet.pt", weights_only=True)
    b = torch.load(tmp_path / "dist" / "supernet.pt", weights_only=True)
    assert a["picks"] == b["picks"]
    assert_same_state(a["state_dict"], b["state_dict"])
    # rank 0's one checkpoint holds both ranks' paths, and they hold the same merged weights (merge = all)
    assert not list((tmp_path / "dist").glob("checkpoint.rank*.pt"))
    ck = torch.load(tmp_path / "dist" / "checkpoint.pt", weights_only=True)
    assert len(ck["paths"]) == 2 and ck["world"] == {"paths": 2, "processes": 2}
    for k in ck["paths"][0]:
        assert torch.equal(ck["paths"][0][k], ck["paths"][1][k]), k
    assert ref["arch"] in r.stdout
    # the curves too: each epoch's means over both paths, as the one process reports them (not rank 0's path alone)
    ha = json.loads((tmp_path / "local" / "search.json").read_text())["history"]
    hb = json.loads((tmp_path / "dist" / "search.json").read_text())["history"]
    for k in ("ce_weight", "ce_arch", "E_lat_ms_sampled", "E_lat_ms", "argmax_lat_ms", "val_top1", "lam", "arch_steps"):
        a_, b_ = [h[k] for h in ha], [h[k] for h in hb]
        assert [v is None for v in b_] == [v is None for v in a_], k
        assert [v for v in b_ if v is not None] == pytest.approx([v for v in a_ if v is not None], abs=1e-5), k


def test_two_process_training_equals_one_process_on_the_concatenated_batches(tmp_path):
    """DDP on 2 ranks of batch 8 = one process of batch 16 (BN statistics per 8-image part), to 1e-5, over 8 steps."""
    _ok(torchrun(2, "train", dict(out=str(tmp_path / "dist"), **TRAIN_ARGS)))
    dist_model, _ = load_model(tmp_path / "dist" / "model.pt")
    dist_metrics = json.loads((tmp_path / "dist" / "metrics.json").read_text())

    torch.manual_seed(derive(0, "init"))
    model = build_model(resolve_arch(TRAIN_ARCH), 4)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05)
    with torch_threads(1):
        ref = fit(GhostNet(model, 2), load_data(TRAIN_DATA), cfg, tmp_path / "ref", progress=False, tensorboard=False, save=False)
    assert_same_state(model.state_dict(), dist_model.state_dict())
    assert dist_metrics["processes"] == 2 and dist_metrics["top1"] == ref["top1"]
    assert [h["train_loss"] for h in dist_metrics["history"]] == pytest.approx([h["train_loss"] for h in ref["history"]], abs=1e-5)


class _VirtualRanks(_Search):
    """One process holding the paths of a P x D search, each path acting as its D ranks would.

    The definition of a data-parallel step, written out: the path's batch is
    cut in D parts (the ranks' batches); for each part, from the same weights,
    BN statistics and Gumbel noise, the forward pass, loss and gradients a
    rank computes; then the mean of the D gradients, BN statistics and losses
    (in the order the ranks' all-reduce sums them) and one optimizer step.
    """

    parts = 2

    def _parts(self, net, step, params, x, y, gen):
        state = gen.get_state()
        bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        start = [(m.running_mean, m.running_var, m.num_batches_tracked) for m in bns]
        grads, bufs, vals = [], [], []
        for xp, yp in zip(x.chunk(self.parts), y.chunk(self.parts)):
            gen.set_state(state)  # every rank draws the same noise
            for m, (rm, rv, nb) in zip(bns, start):
                m.running_mean, m.running_var, m.num_batches_tracked = rm.clone(), rv.clone(), nb.clone()
            for q in params:
                q.grad = None
            vals.append(step(xp, yp))
            grads.append([q.grad for q in params])
            bufs.append([(m.running_mean, m.running_var) for m in bns])
        for i, q in enumerate(params):
            q.grad = sum(g[i] for g in grads) / self.parts
        for i, m in enumerate(bns):
            m.running_mean = sum(b[i][0] for b in bufs) / self.parts
            m.running_var = sum(b[i][1] for b in bufs) / self.parts
        return (sum(torch.stack(v) for v in vals) / self.parts).tolist()

    def _weight_step(self, p, net, x, y, lr, tau, gen, where):
        net.train()

        def step(xp, yp):
            with torch.no_grad():
                sample_choices(net.choices(), tau, self.cfg.hard, gen)
            ce = self._criterion(net(xp), yp)
            ce.backward()
            return [ce.detach()]

        (loss,) = self._parts(net, step, net.weight_parameters(), x, y, gen)
        for g in self.opt_w[p].param_groups:
            g["lr"] = lr
        self.opt_w[p].step()
        return loss

    def _loss_step(self, net, tau, gen):
        """One rank's part of a step on ``CE + lambda * E[LAT]`` (the architecture and the joint step)."""

        def step(xp, yp):
            sample_choices(net.choices(), tau, self.cfg.hard, gen)
            ce = self._criterion(net(xp), yp)
            lat = self.latency.expected(net)
            self.loss(ce, lat).backward()
            return [ce.detach(), lat.detach()]

        return step

    def _arch_step(self, p, net, x, y, tau, gen, where=""):
        weights = net.weight_parameters()
        for w in weights:
            w.requires_grad_(False)

        ce, lat = self._parts(net, self._loss_step(net, tau, gen), net.arch_parameters(), x, y, gen)
        self.opt_a[p].step()
        for w in weights:
            w.requires_grad_(True)
        return ce, lat

    def _joint_step(self, p, net, x, y, lr, tau, gen, where):
        net.train()

        ce, lat = self._parts(net, self._loss_step(net, tau, gen), net.weight_parameters() + net.arch_parameters(), x, y, gen)
        for g in self.opt_w[p].param_groups:
            g["lr"] = lr
        self.opt_w[p].step()
        self.opt_a[p].step()
        return ce, lat


def _search_single(out, args: dict, batch_size: int, parts: int):
    cfg = resolve_config(SearchCommand, dict(args, out=str(out), batch_size=batch_size))
    ctx = RunContext(data=cfg.data, space=cfg.search.space, latency=cfg.latency, timing=cfg.timing, seed=cfg.seed, out=cfg.out,
                     needs_space=True)
    cls = type("V", (_VirtualRanks,), {"parts": parts})
    with torch_threads(1):
        return cls(cfg.search, ctx.out, ctx.data, ctx.latency_model(), ctx.budget(), ctx.space, ctx.timing, cfg.seed, False, False).run()


def _search_equivalence(tmp_path, paths: int, dp: int, update: str = "joint"):
    args = dict(ARGS, paths=paths, batch_size=8, epochs=2, update=update)
    _ok(torchrun(paths * dp, "search", dict(out=str(tmp_path / "dist"), **args)))
    ref = _search_single(tmp_path / "ref", args, 8 * dp, dp)
    a = torch.load(tmp_path / "ref" / "supernet.pt", weights_only=True)
    b = torch.load(tmp_path / "dist" / "supernet.pt", weights_only=True)
    assert a["picks"] == b["picks"]
    assert_same_state(a["state_dict"], b["state_dict"])
    got = json.loads((tmp_path / "dist" / "search.json").read_text())
    assert got["steps"] == ref["steps"] and got["lambda"] == pytest.approx(ref["lambda"], abs=1e-6)


@pytest.mark.parametrize("update", ["joint", "alternate"])  # the default single-level step and the paper's Algorithm 1
def test_one_path_on_two_ranks_equals_one_process_on_the_concatenated_batches(tmp_path, update):
    """P = 1, D = 2: a plain data-parallel search."""
    _search_equivalence(tmp_path, paths=1, dp=2, update=update)


@pytest.mark.slow
def test_two_paths_on_two_ranks_each_equal_two_local_paths_on_the_concatenated_batches(tmp_path):
    """P = 2, D = 2: gradients averaged inside each path, the feedback merge across them (4 processes)."""
    _search_equivalence(tmp_path, paths=2, dp=2)


@pytest.mark.slow
def test_search_started_on_two_ranks_resumes_on_one_and_finishes(tmp_path):
    """Killed after its first epoch on 2 ranks, resumed in one process: the result of an uninterrupted run."""
    args = dict(ARGS, epochs=3)
    ref = search_command(resolve_config(SearchCommand, dict(out=str(tmp_path / "local"), **args)))
    out = tmp_path / "dist"
    proc = start(ednas_cmd(2, "search", dict(out=str(out), **args)), tmp_path / "dist.log")
    seen = wait_for_epoch(proc, out / "checkpoint.pt", 1)
    kill_group(proc)
    assert 1 <= seen < 3, (tmp_path / "dist.log").read_text()[-2000:]
    res = search_command(resolve_config(SearchCommand, dict(out=str(out), resume=True, **args)))
    assert res["arch"] == ref["arch"] and res["lambda"] == pytest.approx(ref["lambda"], abs=1e-6)
    a = torch.load(tmp_path / "local" / "supernet.pt", weights_only=True)["state_dict"]
    b = torch.load(out / "supernet.pt", weights_only=True)["state_dict"]
    assert_same_state(a, b)


@pytest.mark.slow
def test_training_started_on_one_process_resumes_on_two(tmp_path):
    from ednas.train.trainer import train

    class Stop(KeyboardInterrupt):
        pass

    def stop(epoch, rec):
        if epoch == 1:
            raise Stop

    first = []
    with pytest.raises(Stop):
        train(TrainConfig(epochs=2, batch_size=8, lr=0.05), tmp_path, arch=TRAIN_ARCH, data=load_data(TRAIN_DATA), progress=False,
              tensorboard=False, on_epoch_end=lambda e, rec: (first.append(rec), stop(e, rec)))
    _ok(torchrun(2, "train", dict(out=str(tmp_path), resume=True, **TRAIN_ARGS)))
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["epochs"] == 2 and len(m["history"]) == 2 and m["processes"] == 2
    assert m["history"][0] == first[0]  # the first epoch is the single process's; the second ran on two


@pytest.mark.slow
def test_killed_rank_is_restarted_and_resumes_from_the_last_checkpoint(tmp_path):
    """torchrun --max-restarts: rank 1 killed after epoch 1; the restarted group resumes by itself and ends as an uninterrupted run."""
    args = dict(TRAIN_ARGS, epochs=3)
    _ok(torchrun(2, "train", dict(out=str(tmp_path / "ref"), **args)))
    out = tmp_path / "cut"
    proc = start(ednas_cmd(2, "train", dict(out=str(out), **args), "--standalone", "--max-restarts=1"), tmp_path / "cut.log")
    seen = wait_for_epoch(proc, out / "checkpoint.pt", 1)
    pids = workers_of(proc.pid)
    assert 1 <= seen < 3 and 1 in pids, (seen, pids)
    import os
    import signal

    os.kill(pids[1], signal.SIGKILL)
    assert proc.wait(timeout=900) == 0, (tmp_path / "cut.log").read_text()[-3000:]
    log = (tmp_path / "cut.log").read_text()
    assert "resuming from the last checkpoint" in log
    a, _ = load_model(tmp_path / "ref" / "model.pt")
    b, _ = load_model(out / "model.pt")
    assert_same_state(a.state_dict(), b.state_dict(), atol=0)


@pytest.mark.slow
def test_two_torchrun_agents_on_two_nodes_rendezvous_and_train(tmp_path):
    """--nnodes=2, c10d rendezvous on localhost: the same training as one node of 2 processes."""
    _ok(torchrun(2, "train", dict(out=str(tmp_path / "one"), **TRAIN_ARGS)))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = ["--nnodes=2", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id=ednas-{time.time_ns()}"]
    agents = [start(ednas_cmd(1, "train", dict(out=str(tmp_path / "two"), **TRAIN_ARGS), *launcher), tmp_path / f"node{i}.log")
              for i in range(2)]
    for i, a in enumerate(agents):
        assert a.wait(timeout=900) == 0, (tmp_path / f"node{i}.log").read_text()[-3000:]
    m = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m["processes"] == 2 and m["epochs"] == 2
    a, _ = load_model(tmp_path / "one" / "model.pt")
    b, _ = load_model(tmp_path / "two" / "model.pt")
    assert_same_state(a.state_dict(), b.state_dict())


@pytest.mark.parametrize("fails", [False, True])
def test_a_rank_leaves_the_group_after_meeting_the_others_unless_it_is_failing(fails, monkeypatch):
    # leaving while a peer still talks to this rank aborts the peer (gloo: "Connection closed by peer");
    # after a failure the peers may never reach a barrier, so a failing rank must not wait for them
    import torch.distributed as tdist

    from ednas.dist import DistInfo

    calls = []
    monkeypatch.setattr(tdist, "is_initialized", lambda: True)
    monkeypatch.setattr(tdist, "barrier", lambda *a, **k: calls.append("barrier"))
    monkeypatch.setattr(tdist, "destroy_process_group", lambda *a, **k: calls.append("destroy"))
    with pytest.raises(RuntimeError) if fails else contextlib.nullcontext(), DistInfo(rank=1, world=2, owned=True):
        if fails:
            raise RuntimeError("this rank failed")
    assert calls == (["destroy"] if fails else ["barrier", "destroy"])
    calls.clear()
    with DistInfo(rank=1, world=2, owned=False):  # a group someone else joined is theirs to leave
        pass
    assert calls == []
