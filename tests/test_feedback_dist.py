"""The feedback merge across processes (one path per rank), against the merge of paths held in one process.

Under torchrun each rank holds one path and scales its tensors by its own
beta before one SUM all-reduce.  Here the ranks are threads of this process
and the collective is simulated (``torch.distributed``'s ``get_rank``,
``get_world_size`` and ``all_reduce`` replaced by a barrier and a sum in rank
order), so the code under test is :meth:`FeedbackBlock._merge_dist` itself,
compared with the single-process merge on copies of the same paths.  The
real collectives are exercised by tests/test_dist.py (torchrun, gloo).
"""

from __future__ import annotations

import copy
import threading

import pytest
import torch
import torch.distributed as tdist

from ednas.nn.build import build_supernet
from ednas.search.feedback import FeedbackBlock, betas
from tests.conftest import TINY_SPACE
from tests.search_helpers import diverged_paths


def _paths(n=3):
    return diverged_paths(lambda: build_supernet(TINY_SPACE, 4), n)


class _Collective:
    """N threads as N ranks: all_reduce(SUM) through a barrier, the sum taken in rank order."""

    def __init__(self, world: int):
        self.world, self.local = world, threading.local()
        self.slots: list = [None] * world
        self.barrier = threading.Barrier(world)

    def install(self, monkeypatch):
        monkeypatch.setattr(tdist, "get_world_size", lambda group=None: self.world)
        monkeypatch.setattr(tdist, "get_rank", lambda group=None: self.local.rank)
        monkeypatch.setattr(tdist, "all_reduce", self.all_reduce)

    def all_reduce(self, tensor, op=None, group=None, async_op=False):
        self.slots[self.local.rank] = tensor.clone()
        self.barrier.wait()
        total = self.slots[0].clone()
        for t in self.slots[1:]:
            total += t
        self.barrier.wait()  # every rank has read the slots before any reuses them
        tensor.copy_(total)

    def run(self, fn):
        """fn(rank) on every rank at once; returns their results in rank order."""
        out, errors = [None] * self.world, []

        def target(rank):
            self.local.rank = rank
            try:
                out[rank] = fn(rank)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
                self.barrier.abort()

        threads = [threading.Thread(target=target, args=(r,), daemon=True) for r in range(self.world)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        if errors:
            raise errors[0]
        if any(t.is_alive() for t in threads):  # ranks disagreeing on the collectives they call wait forever
            self.barrier.abort()
            raise AssertionError("a rank is still waiting in a collective: the ranks did not call the same all-reduces")
        return out


def _state(path, opts, names):
    params = dict(path.named_parameters())
    sd = path.state_dict()
    mom = {n: opts[0].state[params[n]]["momentum_buffer"].clone() for n in names if n in params and params[n] in opts[0].state}
    return {n: sd[n].clone() for n in names}, mom


@pytest.mark.parametrize("merge", ["kernels", "kernels+alpha", "all"])
def test_distributed_merge_equals_the_merge_of_the_same_paths_in_one_process(merge, monkeypatch):
    paths, opts = _paths()
    local_paths, local_opts = copy.deepcopy((paths, opts))
    before = {n: t.clone() for n, t in paths[1].state_dict().items()}
    losses = [0.4, 1.3, 0.9]
    local = FeedbackBlock(local_paths, merge, local_opts)
    b_local = local(losses)
    coll = _Collective(3)
    coll.install(monkeypatch)
    blocks = [FeedbackBlock([paths[r]], merge, [opts[r]], group=object()) for r in range(3)]
    b_dist = coll.run(lambda r: blocks[r]([losses[r]]))
    for b in b_dist:  # every rank gets the betas of all the losses
        assert torch.allclose(b, b_local) and torch.allclose(b, betas(losses))
    names = local.names
    expect, expect_mom = _state(local_paths[0], local_opts[0], names)
    assert expect_mom  # the momentum of merged weights is part of the merge
    for r in range(3):
        got, got_mom = _state(paths[r], opts[r], names)
        for n in names:
            assert got[n].dtype == expect[n].dtype
            assert torch.allclose(got[n], expect[n], rtol=1e-6, atol=1e-7), (r, n)
        assert got_mom.keys() == expect_mom.keys()
        for n in expect_mom:
            assert torch.allclose(got_mom[n], expect_mom[n], rtol=1e-6, atol=1e-7), (r, n)
    assert any(not torch.equal(expect[n], before[n]) for n in names)  # the merge moved the paths


@pytest.mark.parametrize("where", ["one process", "one path per rank"])
def test_a_left_out_paths_non_finite_tensors_do_not_reach_the_merge(where, monkeypatch):
    paths, opts = _paths()
    with torch.no_grad():  # the diverged path: its loss is NaN and so are its weights
        for t in paths[2].parameters():
            t.fill_(float("nan"))
    losses = [0.4, 1.3, float("nan")]
    if where == "one process":
        b = FeedbackBlock(paths, "all", opts)(losses)
    else:
        coll = _Collective(3)
        coll.install(monkeypatch)
        blocks = [FeedbackBlock([paths[r]], "all", [opts[r]], group=object()) for r in range(3)]
        b = coll.run(lambda r: blocks[r]([losses[r]]))[0]
    assert float(b[2]) == 0.0 and float(b[0]) > float(b[1]) > 0
    for p in paths:  # every path, the diverged one too, now holds the finite merge of the other two
        assert all(torch.isfinite(t).all() for t in p.parameters())
    assert all(torch.equal(a, c) for a, c in zip(paths[0].parameters(), paths[2].parameters()))


def test_no_usable_loss_leaves_every_rank_as_it_was(monkeypatch):
    paths, opts = _paths()
    before = [copy.deepcopy(p.state_dict()) for p in paths]
    coll = _Collective(3)
    coll.install(monkeypatch)
    blocks = [FeedbackBlock([paths[r]], "all", [opts[r]], group=object()) for r in range(3)]
    out = coll.run(lambda r: blocks[r]([float("nan")]))
    assert out == [None, None, None]
    for p, sd in zip(paths, before):
        assert all(torch.equal(v, sd[k]) for k, v in p.state_dict().items())


def test_a_group_holds_one_path_per_rank():
    paths, _ = _paths(n=2)
    with pytest.raises(ValueError, match="one path"):
        FeedbackBlock(paths, "all", group=object())
