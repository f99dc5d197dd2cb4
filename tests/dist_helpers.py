"""Running ednas under torchrun from tests, and the single-process equivalent of D data-parallel processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from ednas.checkpoint import load_checkpoint

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def flags(args: dict) -> list[str]:
    """``{"batch_size": 8, "progress": False}`` -> ``["--batch-size", "8", "--no-progress"]``."""
    out = []
    for k, v in args.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            out.append(flag if v else f"--no-{k.replace('_', '-')}")
        else:
            out += [flag, str(v)]
    return out


def ednas_cmd(nproc: int, command: str, args: dict, *launcher: str) -> list[str]:
    """The torchrun command line of ``ednas COMMAND`` on ``nproc`` local processes (``launcher``: extra torchrun flags)."""
    head = list(launcher) or ["--standalone"]
    return TORCHRUN + head + [f"--nproc_per_node={nproc}", "-m", "ednas.cli", command] + flags(args)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def torchrun(nproc: int, command: str, args: dict, *launcher: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(ednas_cmd(nproc, command, args, *launcher), capture_output=True, text=True, timeout=timeout, env=_env())


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    """Start ``cmd`` in its own process group, its output to ``log``."""
    f = open(log, "w")  # noqa: SIM115 - closed by the process's end
    return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)


def checkpoint_epoch(path: Path) -> int:
    try:
        return int(load_checkpoint(path)["epoch"]) if path.is_file() else 0
    except Exception:  # noqa: BLE001 - a file being replaced; ask again
        return 0


def wait_for_epoch(proc: subprocess.Popen, ckpt: Path, epoch: int, timeout: float = 900) -> int:
    """Poll until ``ckpt`` records ``epoch`` (or the process ends); returns the epoch seen."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        e = checkpoint_epoch(ckpt)
        if e >= epoch or proc.poll() is not None:
            return e
        time.sleep(0.05)
    raise TimeoutError(f"no checkpoint of epoch {epoch} at {ckpt} after {timeout} s")


def kill_group(proc: subprocess.Popen) -> None:
    """Kill a torchrun agent and its workers (they run in sessions of their own)."""
    workers = workers_of(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in workers.values():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def workers_of(agent_pid: int) -> dict[int, int]:
    """``{rank: pid}`` of the worker processes a torchrun agent started (read from /proc)."""
    out = {}
    try:
        kids = Path(f"/proc/{agent_pid}/task/{agent_pid}/children").read_text().split()
    except OSError:
        return out
    for k in kids:
        try:
            env = Path(f"/proc/{k}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for kv in env:
            if kv.startswith(b"RANK="):
                out[int(kv[5:])] = int(k)
    return out


class Ghost:
    """Makes a module's training forward what D data-parallel processes compute together.

    The batch is cut in D parts (the batches the D processes would get); each
    part runs with batch statistics of its own and from the same running
    statistics, which afterwards become the mean of the D updates (what the
    processes' averaging does).  The outputs are concatenated, so a mean loss
    over them has the gradient of the processes' averaged gradients.  In
    evaluation mode it is the module itself.
    """

    def __init__(self, module: nn.Module, parts: int):
        self.module, self.parts = module, parts
        self.forward = module.forward
        self.bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def __call__(self, x):
        if not self.module.training:
            return self.forward(x)
        # new buffer tensors for every part (autograd keeps the ones a part's backward needs)
        start = [(m.running_mean, m.running_var, m.num_batches_tracked) for m in self.bns]
        outs, ends = [], []
        for part in x.chunk(self.parts):
            for m, (rm, rv, nb) in zip(self.bns, start):
                m.running_mean, m.running_var, m.num_batches_tracked = rm.clone(), rv.clone(), nb.clone()
            outs.append(self.forward(part))
            ends.append([(m.running_mean, m.running_var) for m in self.bns])
        for i, m in enumerate(self.bns):
            m.running_mean = sum(e[i][0] for e in ends) / self.parts
            m.running_var = sum(e[i][1] for e in ends) / self.parts
        return torch.cat(outs)


def ghost(module: nn.Module, parts: int) -> nn.Module:
    """``module`` with its forward replaced by :class:`Ghost`'s (in place)."""
    module.forward = Ghost(module, parts)
    return module


class GhostNet(nn.Module):
    """A wrapper module whose forward is :class:`Ghost`'s (for code that copies the module)."""

    def __init__(self, net: nn.Module, parts: int):
        super().__init__()
        self.net, self.parts = net, parts

    def forward(self, x):
        return Ghost(self.net, self.parts)(x)


def assert_same_state(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].double(), b[k].double(), atol=atol, rtol=0), (k, float((a[k].double() - b[k].double()).abs().max()))
