"""Benchmark: images per second of a training step and a search step, on 1 and 2 processes, and on a GPU.

Each case runs in fresh processes: one plain process, or ``torchrun
--standalone --nproc_per_node=2`` (gloo), every process with its share of
the cores as intra-op threads.  The steps are the product's own:

* ``train``: :func:`ednas.train.trainer.train_step` on the preset's largest
  fixed network (DistributedDataParallel on 2 processes, BN statistics
  averaged after the step as ``ednas train`` does), batches from the
  in-memory loader (augmented on the device), with the time spent waiting
  for a batch measured;
* ``search``: one iteration of Algorithm 1 (:class:`ednas.search.algorithm._Search`:
  weight step, architecture step, lambda update) on the preset's search space
  with one path: on 2 processes a data-parallel search (P = 1, D = 2);
* ``search_p2``: the same with two feedback paths: in one process both paths
  one after the other, on 2 processes one path each (P = 2, D = 1), merged
  every step.

Weak scaling: the batch is per process (``cifar`` 64 images at 32 px,
``imagenet`` 8 at 224 px on the CPU), so 2 processes step on twice the
images; images/s counts the images of the weight steps of all processes (an
iteration of the search also takes an architecture batch of the same size).
The median over the timed steps is taken, the first ``--warmup`` steps are
dropped.

With CUDA (``torch.cuda.is_available()``) a GPU section runs the same steps
in 1 process on ``cuda`` with ``--amp off`` and ``bf16`` (larger batches:
``cifar`` 256, ``imagenet`` 64) and names the GPU; without CUDA it records
why it was skipped.

    python benchmarks/scale.py                 # full: ~25 min on a quiet 2-core machine
    python benchmarks/scale.py --quick         # proves it runs end to end (small batches, 2 steps)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, write_result  # noqa: E402

SIZE = {"cifar": 32, "imagenet": 224}
CPU_BATCH = {"cifar": 64, "imagenet": 8}
GPU_BATCH = {"cifar": 256, "imagenet": 64}
QUICK_BATCH = {"cifar": 16, "imagenet": 2}
KINDS = ("train", "search", "search_p2")


# ---------------------------------------------------------------------------
# one process of a case


def worker(kind: str, preset: str, batch: int, steps: int, warmup: int, device: str, amp: str, out: str) -> None:
    import torch

    from ednas._perf import set_threads, tune_malloc
    from ednas.arch.spec import PRESETS
    from ednas.arch.spec import preset as get_preset
    from ednas.device import DeviceConfig, default_threads, resolve_hardware
    from ednas.dist import init_from_env

    tune_malloc()
    hw = resolve_hardware(DeviceConfig(device=device, amp=amp))
    dist = init_from_env(hw.device)
    threads = set_threads(default_threads())
    world, rank = (dist.world, dist.rank) if dist is not None else (1, 0)
    size = PRESETS[preset][1]
    space = get_preset(preset)
    torch.manual_seed(0)
    if kind == "train":
        times, wait = _train_steps(space, size, batch, steps + warmup, hw, dist, world, rank)
        per_step_images = batch * world
    else:
        paths = 2 if kind == "search_p2" else 1
        times, wait = _search_steps(space, size, batch, steps + warmup, hw, dist, world, paths)
        per_step_images = batch * max(world, paths)
    times = times[warmup:]
    med = statistics.median(times)
    res = {"kind": kind, "preset": preset, "input": size, "batch_per_process": batch, "processes": world, "threads_per_process": threads,
           "device": str(hw.device), "amp": hw.amp, "step_ms": med * 1e3, "images_per_s": per_step_images / med,
           "steps_ms": [round(t * 1e3, 2) for t in times], "data_wait_share": wait}
    if hw.is_cuda:
        res["gpu"] = torch.cuda.get_device_name(hw.device)
        res["peak_gpu_mib"] = torch.cuda.max_memory_allocated(hw.device) / 2**20
    if rank == 0:
        Path(out).write_text(json.dumps(res))
    if dist is not None:
        dist.close()


def _sync(hw) -> None:
    import torch

    if hw.is_cuda:
        torch.cuda.synchronize(hw.device)


def _train_steps(space, size, batch, n, hw, dist, world, rank):
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from ednas.data import load_data, make_loader
    from ednas.dist import average_
    from ednas.nn.build import build_model
    from ednas.train.recipe import make_optimizer
    from ednas.train.trainer import bn_buffers, train_step

    data = load_data(f"synthetic:classes=10,n={batch * world * n},size={size}")
    model = build_model(space.largest(), 10).to(hw.device, memory_format=torch.channels_last).train()
    opt = make_optimizer(model.parameters(), 0.05, 0.9, 5e-5)
    scaler = hw.grad_scaler()
    net = DistributedDataParallel(model, device_ids=[hw.device.index] if hw.is_cuda else None, broadcast_buffers=False) if dist else model
    buffers = bn_buffers(model)
    loader = make_loader(data, "train", batch, True, seed=0, shard=(rank, world), device=hw.device)
    batches = iter(loader)
    times, waits = [], []
    for _ in range(min(n, loader.rounds)):
        _sync(hw)
        t0 = time.perf_counter()
        x, y = next(batches)
        t1 = time.perf_counter()
        loss = train_step(net, opt, scaler, x, y, 0.05, 0.1, hw)
        if dist is not None:
            average_(buffers, None, world)
        loss.item()  # the training loop's one sync per step
        _sync(hw)
        t2 = time.perf_counter()
        times.append(t2 - t0)
        waits.append(t1 - t0)
    return times, sum(waits) / sum(times)


def _search_steps(space, size, batch, n, hw, dist, world, paths):
    from ednas.config import resolve_config
    from ednas.context import RunContext
    from ednas.data import DataConfig
    from ednas.latency.config import LatencyConfig
    from ednas.search.algorithm import SearchConfig, _Search

    shards = max(world, paths)
    # the weight split (80 %) holds n batches for every shard, the architecture split at least as many
    # (at least 20 images per class: the splits are stratified)
    images = max(int(batch * shards * n / 0.8) + batch * shards, 200)
    data_cfg = DataConfig(spec=f"synthetic:classes=10,n={images},size={size}")
    ctx = RunContext(data=data_cfg, space=space.format(), latency=LatencyConfig(target="tda2x", budget_frac=0.5))
    cfg = resolve_config(SearchConfig, dict(epochs=2, arch_warmup_epochs=0, batch_size=batch, paths=paths, measure=False))
    with tempfile.TemporaryDirectory() as tmp:
        s = _Search(cfg, tmp, ctx.data, ctx.latency_model(), ctx.budget(), ctx.space, None, 0, False, False, dist, hw)
        stamps = []
        update = s._update_lambda

        def stamped(*args, **kwargs):  # the last call of an iteration: the time between two calls is one iteration
            update(*args, **kwargs)
            _sync(hw)
            stamps.append(time.perf_counter())

        s._update_lambda = stamped
        s.steps_per_epoch = min(s.steps_per_epoch, n + 1)
        s._epoch(0, None, None)
    return [b - a for a, b in zip(stamps, stamps[1:])], None


# ---------------------------------------------------------------------------
# the cases


def run_case(kind: str, preset: str, batch: int, procs: int, steps: int, warmup: int, device: str = "cpu", amp: str = "off") -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    args = ["--worker", kind, preset, str(batch), str(steps), str(warmup), device, amp, out]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if procs == 1:
        cmd = [sys.executable, __file__, *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", __file__, *args]
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    res = json.loads(Path(out).read_text())
    os.unlink(out)
    res["process_wall_s"] = time.time() - t
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small batches, 2 timed steps: proves the script runs")
    ap.add_argument("--presets", nargs="+", default=["cifar", "imagenet"])
    ap.add_argument("--kinds", nargs="+", default=list(KINDS))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the cases (medians over rounds)")
    ap.add_argument("--worker", nargs=8, metavar=("KIND", "PRESET", "BATCH", "STEPS", "WARMUP", "DEVICE", "AMP", "OUT"))
    a = ap.parse_args()
    if a.worker:
        kind, preset, batch, steps, warmup, device, amp, out = a.worker
        worker(kind, preset, int(batch), int(steps), int(warmup), device, amp, out)
        return
    if a.quick:
        a.steps, a.warmup, a.rounds = 2, 1, 1
    cpu_batch = QUICK_BATCH if a.quick else CPU_BATCH
    t_start = time.time()
    runs: dict = {}
    for r in range(a.rounds):
        for preset in a.presets:
            for kind in a.kinds:
                for procs in (1, 2):
                    res = run_case(kind, preset, cpu_batch[preset], procs, a.steps, a.warmup)
                    runs.setdefault((preset, kind, procs), []).append(res)
                    print(f"round {r} cpu {preset:8s} {kind:9s} {procs} proc: {res['step_ms']:8.1f} ms/step "
                          f"{res['images_per_s']:8.1f} img/s", flush=True)
    cpu = []
    for rs in runs.values():
        cpu.append({**{k: rs[0][k] for k in ("preset", "input", "kind", "processes", "threads_per_process", "batch_per_process", "device", "amp")},
                    "step_ms": statistics.median(x["step_ms"] for x in rs),
                    "images_per_s": statistics.median(x["images_per_s"] for x in rs),
                    "data_wait_share": statistics.median(x["data_wait_share"] for x in rs) if rs[0]["data_wait_share"] is not None else None,
                    "rounds": [{"step_ms": x["step_ms"], "images_per_s": x["images_per_s"]} for x in rs]})
    for row in cpu:
        one = next(x for x in cpu if x["preset"] == row["preset"] and x["kind"] == row["kind"] and x["processes"] == 1)
        row["speedup_vs_1_process"] = row["images_per_s"] / one["images_per_s"]

    import torch

    if torch.cuda.is_available():
        gpu_batch = QUICK_BATCH if a.quick else GPU_BATCH
        gpu = {"name": torch.cuda.get_device_name(0), "runs": []}
        for preset in a.presets:
            for kind in a.kinds:
                for amp in ("off", "bf16"):
                    res = run_case(kind, preset, gpu_batch[preset], 1, a.steps, a.warmup, "cuda", amp)
                    gpu["runs"].append(res)
                    print(f"gpu {preset:8s} {kind:9s} amp {amp:4s}: {res['step_ms']:8.1f} ms/step {res['images_per_s']:9.1f} img/s", flush=True)
    else:
        gpu = {"skipped": f"no CUDA device here (torch {torch.__version__}, torch.cuda.is_available() is False); "
                          "the GPU section runs the same steps on cuda when there is one"}
    write_result("scale_quick" if a.quick else "scale", {"quick": a.quick, "steps": a.steps, "warmup": a.warmup, "rounds": a.rounds, "cpu": cpu, "gpu": gpu,
                           "wall_s": time.time() - t_start, "command": " ".join(["python", "benchmarks/scale.py", *sys.argv[1:]])})


if __name__ == "__main__":
    main()
