"""Train a fixed network: ``ednas train`` and the training stage of ``ednas run``.

The recipe is :class:`~ednas.train.recipe.Recipe` (SGD with Nesterov
momentum, linear warm-up then the cosine of eq. 16, label smoothing, no
weight decay on BN parameters and biases), with pad-crop (+ flip) at 32 px
or RandomResizedCrop + flip + ColorJitter for folders (``ednas.data``).
The loss follows the data set's task (:func:`ednas.train.task.task_loss`):
cross-entropy with label smoothing, or, for multi-label data (Pascal VOC),
binary cross-entropy with logits; multi-label results report mAP
(``map``, ``map_voc07``, per-class ``ap``) where single-label ones report
top-1/top-5.
With ``quant_friendly`` it follows TI's guidance for fixed-point deployment
instead: weight decay on every parameter, depthwise weights and biases
included.

A checkpoint is written atomically after every epoch; ``resume`` continues
from it (only when it was written with the same settings) and ends with the
same weights as an uninterrupted run: all randomness is drawn from
``(seed, epoch)`` (:mod:`ednas.seeds`).  A step whose loss or gradient is
not finite is skipped and counted (``skipped_steps`` in ``metrics.json``,
each epoch's record and TensorBoard); ``max_skipped_steps`` of them in a
row stop the run (:mod:`ednas.train.guard`).

Everything runs on the run's device (:mod:`ednas.device`), in
``channels_last``, the forward pass under its autocast (bf16 by default on
CUDA; fp16 with a gradient scaler).  Under ``torchrun`` the training is
data-parallel (DistributedDataParallel): ``--batch-size`` is per process,
each process takes every W-th batch of the epoch's order, gradients are
averaged, and rank 0 evaluates and writes.  A checkpoint holds no trace of
the world size, so it resumes on any number of processes.  The share of the
steps' wall time spent waiting for data is measured (``data_wait_share`` in
``metrics.json``).
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from ednas._run import progress as progress_bar
from ednas._run import tb_writer
from ednas.arch.spec import ArchSpec, load_arch
from ednas.checkpoint import resume_state, save_checkpoint
from ednas.config import config_dict
from ednas.data import DataSet, make_loader
from ednas.device import Hardware
from ednas.dist import DistInfo, average_
from ednas.errors import ConfigError, TrainingError
from ednas.io import atomic_write_json
from ednas.nn.build import build_model, inherit_weights
from ednas.nn.files import load_supernet, save_model
from ednas.nn.fuse import deploy_model
from ednas.nn.macs import count_macs
from ednas.seeds import derive
from ednas.train.guard import StepGuard, all_finite
from ednas.train.metrics import evaluate
from ednas.train.recipe import Recipe, make_optimizer
from ednas.train.schedule import lr_at
from ednas.train.task import task_loss

__all__ = ["TrainConfig", "train", "fit", "train_step", "bn_buffers", "resolve_arch"]

log = logging.getLogger(__name__)


@dataclass
class TrainConfig(Recipe):
    """Training a fixed network (the derived one, or any arch)."""

    #: training epochs
    epochs: int = 10
    #: TI's fixed-point guidance: weight decay on all parameters incl. depthwise and biases
    quant_friendly: bool = False
    #: weight decay used when quant_friendly is on
    quant_weight_decay: float = 1e-4
    #: train every depthwise with ACNet-style branches (fused away on export)
    branches: bool = False
    #: a search directory (or its supernet.pt) whose weights the derived network starts from
    inherit: Optional[str] = None

    def check(self, name) -> None:
        super().check(name)
        if self.epochs < 1:
            raise ConfigError(f"{name('epochs')} must be >= 1, got {self.epochs}")
        if self.quant_weight_decay < 0:
            raise ConfigError(f"{name('quant_weight_decay')} must be >= 0, got {self.quant_weight_decay}")


def resolve_arch(arch: str | ArchSpec, branches: bool = False) -> ArchSpec:
    """The fixed network to train: a space trains its largest network; ``branches`` adds ACNet branches."""
    spec = arch if isinstance(arch, ArchSpec) else load_arch(arch)[0]
    if not spec.is_fixed:
        spec = spec.largest()
    if branches:
        spec = spec.with_picks([{"kernel": l.spec.kernels[0], "expansion": l.spec.expansions[0]} for l in spec.layers()], branches=True)
    return spec


def train(cfg: TrainConfig, out, *, arch: str | ArchSpec, data: DataSet, seed: int = 0, progress: bool | None = None,
          tensorboard: bool = True, resume: bool = False, on_epoch_end: Optional[Callable[[int, dict], None]] = None,
          hardware: Hardware | None = None, dist: DistInfo | None = None) -> dict | None:
    """Train ``arch`` on ``data``, evaluate on the test split, write model.pt and metrics.json in ``out``.

    Returns the metrics (``None`` on the processes other than rank 0 under
    torchrun; see :func:`fit` for ``hardware`` and ``dist``).
    """
    spec = resolve_arch(arch, cfg.branches)
    torch.manual_seed(derive(seed, "init"))
    model = build_model(spec, data.num_classes)
    if cfg.inherit:
        p = Path(cfg.inherit)
        supernet, picks = load_supernet(p / "supernet.pt" if p.is_dir() else p)
        inherit_weights(model, supernet, picks)
    return fit(model, data, cfg, out, seed=seed, progress=progress, tensorboard=tensorboard, resume=resume,
               on_epoch_end=on_epoch_end, save=True, hardware=hardware, dist=dist)


def _settings(model: nn.Module, data: DataSet, cfg: TrainConfig, seed: int, hw: Hardware) -> dict:
    """What decides the trained weights: a checkpoint resumes only with the same.

    The device, the number of processes and the fault limit are not among
    them (a checkpoint resumes on another device or world size); mixed
    precision is, when on.
    """
    arch = model.arch.format() if hasattr(model, "arch") else type(model).__name__
    amp = {"amp": hw.amp} if hw.amp != "off" else {}
    d = {k: v for k, v in config_dict(cfg).items() if k != "max_skipped_steps"}
    files = {} if data.in_memory else {"jitter": list(data.jitter)}  # augmentation settings of data read from files
    return {"arch": arch, "data": data.spec, "input_size": data.input_size, "seed": seed, **files, **d, **amp}


# the name of DDP's "do not broadcast buffers before every forward" (renamed in recent torch releases)
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
                   else {"broadcast_buffers": False})


def bn_buffers(model: nn.Module) -> list[torch.Tensor]:
    """The running statistics of every batch norm (averaged over data-parallel processes after each step)."""
    return [b for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for b in (m.running_mean, m.running_var) if b is not None]


def train_step(net: nn.Module, opt: torch.optim.Optimizer, scaler, x: torch.Tensor, y: torch.Tensor, lr: float,
               label_smoothing: float, hw: Hardware, guard: StepGuard | None = None, where: str = "",
               dist: DistInfo | None = None, multilabel: bool = False) -> torch.Tensor | None:
    """One SGD step: forward under the run's autocast, the task loss in fp32 (:func:`ednas.train.task.task_loss`), (scaled) backward, step.

    Returns the loss, or ``None`` when ``guard`` skipped the step (a
    non-finite loss or gradient; see :class:`~ednas.train.guard.StepGuard`;
    without a guard the first such step raises :class:`TrainingError`).
    ``net`` may be a DistributedDataParallel wrapper (its backward averages
    the gradients over the processes); pass ``dist`` then, so that every
    process skips the same steps.
    """
    guard = guard or StepGuard(1, "training")
    for g in opt.param_groups:
        g["lr"] = lr
    guard.before(net)
    with hw.autocast():
        logits = net(x)
    loss = task_loss(logits.float(), y, multilabel, label_smoothing)
    sync = None
    if dist is not None:
        def sync() -> bool:  # DDP averaged the gradients in the backward pass; the losses too, so that all agree
            return math.isfinite(dist.all_mean(float(loss.detach())))
    if not guard.step(loss, opt, net.parameters(), where=where, scaler=scaler, sync=sync):
        return None
    return loss.detach()


def fit(model: nn.Module, data: DataSet, cfg: TrainConfig, out, *, seed: int = 0, progress: bool | None = None,
        tensorboard: bool = True, resume: bool = False, save: bool = True,
        on_epoch_end: Optional[Callable[[int, dict], None]] = None, hardware: Hardware | None = None,
        dist: DistInfo | None = None) -> dict | None:
    """The training loop for any classifier ``model`` on ``data`` (baseline networks reuse it with ``save=False``).

    Writes ``checkpoint.pt`` every epoch and, at the end, ``metrics.json``
    (and ``model.pt`` when ``save`` and the model is an ednas
    :class:`~ednas.nn.build.Net`) in ``out``.

    ``hardware``: the device and mixed precision (default: the CPU, fp32).
    ``dist``: under torchrun, the training is data-parallel over the world
    (DistributedDataParallel): each process takes every W-th batch of
    ``cfg.batch_size`` images (the batch size is per process, the global batch
    ``W x batch_size``; the learning rate is used as given), gradients are
    averaged in the backward pass and BN statistics after each step; rank 0
    evaluates, writes every file and returns the metrics, the others return
    ``None``.
    """
    hw = hardware or Hardware.cpu()
    rank, world = (dist.rank, dist.world) if dist is not None else (0, 1)
    main = rank == 0
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.to(hw.device, memory_format=torch.channels_last)
    decay_all = cfg.quant_friendly
    wd = cfg.quant_weight_decay if cfg.quant_friendly else cfg.weight_decay
    opt = make_optimizer(model.parameters(), cfg.lr, cfg.momentum, wd, decay_all)
    scaler = hw.grad_scaler()

    train_loader = make_loader(data, "train", cfg.batch_size, True, seed=derive(seed, "batches"), workers=data.workers,
                               shard=(rank, world), device=hw.device)
    val_loader = make_loader(data, "val", 256, False, workers=data.workers, device=hw.device) if main else None
    steps_per_epoch = train_loader.rounds  # the same on every process
    if steps_per_epoch < 1:
        per = f" for each of {world} processes" if world > 1 else ""
        raise ConfigError(f"the training split of '{data.spec}' gives no batch of {cfg.batch_size} images{per}")
    total = steps_per_epoch * cfg.epochs
    warmup = int(round(cfg.lr_warmup_epochs * steps_per_epoch))

    ckpt_path = out / "checkpoint.pt"
    settings = _settings(model, data, cfg, seed, hw)
    start_epoch, history, wall_before = 0, [], 0.0
    guard = StepGuard(cfg.max_skipped_steps, "training", f"lower the learning rate (now {cfg.lr})")
    if resume:
        ck = dist.on_main(lambda: resume_state(ckpt_path, settings)) if dist is not None else resume_state(ckpt_path, settings)
        if ck is not None:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            if "scaler" in ck:
                scaler.load_state_dict(ck["scaler"])
            start_epoch, history, wall_before = ck["epoch"], ck["history"], ck["wall_s"]
            guard.load_counts(ck.get("skipped_steps"))
            if ck.get("world", 1) != world:
                log.info("resuming a checkpoint written by %d process(es) on %d: the global batch is now %d images (was %d)",
                         ck.get("world", 1), world, world * cfg.batch_size, ck.get("world", 1) * cfg.batch_size)
    net = model
    buffers = bn_buffers(model)
    if dist is not None:
        # BN statistics are averaged after each step instead of broadcast from rank 0 before each forward
        net = DistributedDataParallel(model, device_ids=[hw.device.index] if hw.is_cuda else None, **_NO_BUFFER_SYNC)
        if main:
            log.info("data-parallel training on %d processes (%s each): %d images per process and step, %d in all; lr %g as given",
                     world, hw.describe(), cfg.batch_size, world * cfg.batch_size, cfg.lr)
    writer = tb_writer(tensorboard, out) if main else None

    t0 = time.time()
    wait_s = loop_s = 0.0
    for epoch in range(start_epoch, cfg.epochs):
        # dropout etc.: the same draw with or without a resume; each process its own
        torch.manual_seed(derive(seed, "epoch", epoch, *([rank] if rank else [])))
        train_loader.set_epoch(epoch)
        model.train()
        loss_sum, n_seen = 0.0, 0
        bar = progress_bar(progress if main else False, steps_per_epoch, f"train {epoch + 1}/{cfg.epochs}")
        batches = iter(train_loader)
        t_loop = time.perf_counter()
        for i in range(steps_per_epoch):
            t_wait = time.perf_counter()
            x, y = next(batches)
            wait_s += time.perf_counter() - t_wait  # the step waits on the data here and only here
            step = epoch * steps_per_epoch + i
            lr = lr_at(step, total, warmup, cfg.lr)
            loss = train_step(net, opt, scaler, x, y, lr, cfg.label_smoothing, hw, guard, f"epoch {epoch + 1} step {i}", dist,
                              multilabel=data.multilabel)
            if dist is not None:
                average_(buffers, None, world)
            loss_v = float("nan") if loss is None else loss.item()
            if loss is not None:
                loss_sum += loss_v * len(y)
                n_seen += len(y)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_v:.3f}", lr=f"{lr:.4f}")
            if writer is not None:
                writer.add_scalar("train/loss", loss_v, step)
                writer.add_scalar("train/lr", lr, step)
        loop_s += time.perf_counter() - t_loop
        if bar is not None:
            bar.close()
        if not all_finite(model.parameters()):
            raise TrainingError(f"training stopped: the weights became non-finite in epoch {epoch + 1}; the checkpoint of the last "
                                f"complete epoch is kept; lower the learning rate (now {cfg.lr})")
        train_loss = loss_sum / max(n_seen, 1)
        if dist is not None:
            train_loss = dist.all_mean(train_loss)
        if main:
            val = evaluate(model, val_loader, data.multilabel, data.classes, hw)
            rec = {"epoch": epoch + 1, "train_loss": train_loss, "val_top1": val["top1"], "val_loss": val["loss"],
                   "skipped_steps": guard.total}
            if data.multilabel:
                rec["val_map"] = val["map"]
            history.append(rec)
            log.debug("train epoch %d/%d: loss %.4f, val %s %s, data wait %.1f %% of the steps' time", epoch + 1, cfg.epochs,
                      rec["train_loss"], val["score_name"], val["score"], 100 * wait_s / max(loop_s, 1e-9))
            if writer is not None:
                writer.add_scalar(f"val/{val['score_name']}", val["score"] if val["score"] is not None else float("nan"), epoch + 1)
                writer.add_scalar("val/loss", val["loss"], epoch + 1)
                writer.add_scalar("train/skipped_steps", guard.total, epoch + 1)
                writer.flush()
            state = {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "epoch": epoch + 1,
                "history": history,
                "wall_s": wall_before + time.time() - t0,
                "world": world,
                "skipped_steps": guard.counts(),
            }
            if scaler.is_enabled():
                state["scaler"] = scaler.state_dict()
            save_checkpoint(ckpt_path, state, settings)
        else:
            rec = {"epoch": epoch + 1, "train_loss": train_loss}
        if dist is not None:
            dist.barrier()  # the checkpoint of this epoch is on disk before anyone goes on
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, rec)

    wall = wall_before + time.time() - t0
    if not main:
        return None
    test = evaluate(model, make_loader(data, "test", 256, False, workers=data.workers, device=hw.device), data.multilabel, data.classes, hw)
    val = evaluate(model, val_loader, data.multilabel, data.classes, hw)
    cpu_model = model if hw.device.type == "cpu" else copy.deepcopy(model).cpu()
    metrics = {
        "top1": test["top1"],
        "top5": test["top5"],
        "test_loss": test["loss"],
        "val_top1": val["top1"],
        "val_loss": val["loss"],
        "epochs": cfg.epochs,
        "params": int(sum(p.numel() for p in model.parameters())),
        # conv + linear MACs of the deploy form (branches and BN fused), as ednas profile and fvcore count them
        "macs": int(count_macs(deploy_model(cpu_model), data.input_size)[0]),
        "wall_s": wall,
        # share of the training steps' wall time spent waiting for a batch (this process, the epochs it ran)
        "data_wait_share": wait_s / loop_s if loop_s > 0 else None,
        "device": str(hw.device),
        "amp": hw.amp,
        "processes": world,
        "arch": settings["arch"],
        "data": data.spec,
        "n_test": test["n"],
        "skipped_steps": guard.total,
        "history": history,
    }
    if data.multilabel:  # per-class AP in percent (None for a class without a positive test image)
        metrics.update(task="multilabel", map=test["map"], map_voc07=test["map_voc07"], ap=test["ap"], ap_voc07=test["ap_voc07"],
                       val_map=val["map"])
    if save and hasattr(model, "arch"):
        save_model(out / "model.pt", model, input_size=data.input_size, data=data, config=settings)
    atomic_write_json(out / "metrics.json", metrics)
    if writer is not None and test["score"] is not None:
        writer.add_scalar(f"test/{test['score_name']}", test["score"], cfg.epochs)
        writer.close()
    return metrics
