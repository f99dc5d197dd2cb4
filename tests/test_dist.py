"""Feedback paths as ranks under torchrun: the same search as P paths in one process."""

import subprocess
import sys

import torch

from ednas.commands import SearchCommand, search_command
from ednas.config import resolve_config
from tests.conftest import TINY_SPACE

ARGS = dict(space=TINY_SPACE, data="synthetic:classes=4,n=192,size=32", target="tda2x", epochs=2, warmup_epochs=1,
            batch_size=16, paths=2, merge="all", threads=1, measure=False, tensorboard=False, progress=False)


def test_torchrun_two_ranks_equal_two_local_paths(tmp_path):
    ref = search_command(resolve_config(SearchCommand, dict(out=str(tmp_path / "local"), **ARGS)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ednas.cli", "search",
           "--out", str(tmp_path / "dist")]
    for k, v in ARGS.items():
        flag = "--" + k.replace("_", "-")
        cmd += [flag if v is True else f"--no-{k.replace('_', '-')}"] if isinstance(v, bool) else [flag, str(v)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "dist" / "checkpoint.rank1.pt").is_file()
    a = torch.load(tmp_path / "local" / "supernet.pt", weights_only=True)
    b = torch.load(tmp_path / "dist" / "supernet.pt", weights_only=True)
    assert a["picks"] == b["picks"]
    for k in a["state_dict"]:
        assert torch.allclose(a["state_dict"][k].double(), b["state_dict"][k].double(), atol=1e-5), k
    # the two ranks hold the same merged weights (merge = all)
    r0 = torch.load(tmp_path / "dist" / "checkpoint.pt", weights_only=True)["paths"][0]
    r1 = torch.load(tmp_path / "dist" / "checkpoint.rank1.pt", weights_only=True)["paths"][0]
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    assert ref["arch"] in r.stdout
