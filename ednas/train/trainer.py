"""Train a fixed network: ``ednas train`` and the training stage of ``ednas run``.

The recipe is :class:`~ednas.train.recipe.Recipe` (SGD with Nesterov
momentum, linear warm-up then the cosine of eq. 16, label smoothing, no
weight decay on BN parameters and biases), with pad-crop (+ flip) at 32 px
or RandomResizedCrop + flip + ColorJitter for folders (``ednas.data``).
The loss follows the data set's task (:func:`ednas.train.task.criterion`):
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
``(seed, epoch)`` (:mod:`ednas.seeds`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn

from ednas._run import progress as progress_bar
from ednas._run import tb_writer
from ednas.arch.spec import ArchSpec, load_arch
from ednas.checkpoint import resume_state, save_checkpoint
from ednas.config import config_dict
from ednas.data import DataSet, make_loader
from ednas.errors import ConfigError, TrainingError
from ednas.io import atomic_write_json
from ednas.nn.build import build_model, inherit_weights
from ednas.nn.files import load_supernet, save_model
from ednas.nn.fuse import deploy_model
from ednas.nn.macs import count_macs
from ednas.seeds import derive
from ednas.train.metrics import evaluate
from ednas.train.recipe import Recipe, make_optimizer
from ednas.train.schedule import lr_at
from ednas.train.task import criterion

__all__ = ["TrainConfig", "train", "fit", "resolve_arch"]

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
          tensorboard: bool = True, resume: bool = False, on_epoch_end: Optional[Callable[[int, dict], None]] = None) -> dict:
    """Train ``arch`` on ``data``, evaluate on the test split, write model.pt and metrics.json in ``out``. Returns the metrics."""
    spec = resolve_arch(arch, cfg.branches)
    torch.manual_seed(derive(seed, "init"))
    model = build_model(spec, data.num_classes)
    if cfg.inherit:
        p = Path(cfg.inherit)
        supernet, picks = load_supernet(p / "supernet.pt" if p.is_dir() else p)
        inherit_weights(model, supernet, picks)
    return fit(model, data, cfg, out, seed=seed, progress=progress, tensorboard=tensorboard, resume=resume,
               on_epoch_end=on_epoch_end, save=True)


def _settings(model: nn.Module, data: DataSet, cfg: TrainConfig, seed: int) -> dict:
    """What decides the trained weights: a checkpoint resumes only with the same."""
    arch = model.arch.format() if hasattr(model, "arch") else type(model).__name__
    files = {} if data.in_memory else {"jitter": list(data.jitter)}  # augmentation settings of data read from files
    return {"arch": arch, "data": data.spec, "input_size": data.input_size, "seed": seed, **files, **config_dict(cfg)}


def fit(model: nn.Module, data: DataSet, cfg: TrainConfig, out, *, seed: int = 0, progress: bool | None = None,
        tensorboard: bool = True, resume: bool = False, save: bool = True,
        on_epoch_end: Optional[Callable[[int, dict], None]] = None) -> dict:
    """The training loop for any classifier ``model`` on ``data`` (baseline networks reuse it with ``save=False``).

    Writes ``checkpoint.pt`` every epoch and, at the end, ``metrics.json``
    (and ``model.pt`` when ``save`` and the model is an ednas
    :class:`~ednas.nn.build.Net`) in ``out``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.to(memory_format=torch.channels_last)
    decay_all = cfg.quant_friendly
    wd = cfg.quant_weight_decay if cfg.quant_friendly else cfg.weight_decay
    opt = make_optimizer(model.parameters(), cfg.lr, cfg.momentum, wd, decay_all)

    loss_fn = criterion(data, cfg.label_smoothing)
    train_loader = make_loader(data, "train", cfg.batch_size, True, seed=derive(seed, "batches"), workers=data.workers)
    val_loader = make_loader(data, "val", 256, False, workers=data.workers)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch < 1:
        raise ConfigError(f"the training split of '{data.spec}' gives no batch of {cfg.batch_size} images")
    total = steps_per_epoch * cfg.epochs
    warmup = int(round(cfg.lr_warmup_epochs * steps_per_epoch))

    ckpt_path = out / "checkpoint.pt"
    settings = _settings(model, data, cfg, seed)
    start_epoch, history, wall_before = 0, [], 0.0
    ck = resume_state(ckpt_path, settings) if resume else None
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, history, wall_before = ck["epoch"], ck["history"], ck["wall_s"]
    writer = tb_writer(tensorboard, out)

    t0 = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        torch.manual_seed(derive(seed, "epoch", epoch))  # dropout etc.: same draw with or without a resume
        train_loader.set_epoch(epoch)
        model.train()
        loss_sum, n_seen = 0.0, 0
        bar = progress_bar(progress, steps_per_epoch, f"train {epoch + 1}/{cfg.epochs}")
        for i, (x, y) in enumerate(train_loader):
            step = epoch * steps_per_epoch + i
            lr = lr_at(step, total, warmup, cfg.lr)
            for g in opt.param_groups:
                g["lr"] = lr
            loss = loss_fn(model(x), y)
            if not torch.isfinite(loss):
                raise TrainingError(f"training diverged at epoch {epoch + 1} step {i} (loss {loss.item()}); lower the learning rate (now {cfg.lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            n_seen += len(y)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.4f}")
            if writer is not None:
                writer.add_scalar("train/loss", loss.item(), step)
                writer.add_scalar("train/lr", lr, step)
        if bar is not None:
            bar.close()
        val = evaluate(model, val_loader, data.multilabel, data.classes)
        rec = {"epoch": epoch + 1, "train_loss": loss_sum / max(n_seen, 1), "val_top1": val["top1"], "val_loss": val["loss"]}
        if data.multilabel:
            rec["val_map"] = val["map"]
        history.append(rec)
        log.debug("train epoch %d/%d: loss %.4f, val %s %s", epoch + 1, cfg.epochs, rec["train_loss"], val["score_name"], val["score"])
        if writer is not None:
            writer.add_scalar(f"val/{val['score_name']}", val["score"] if val["score"] is not None else float("nan"), epoch + 1)
            writer.add_scalar("val/loss", val["loss"], epoch + 1)
            writer.flush()
        save_checkpoint(ckpt_path, {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": epoch + 1,
            "history": history,
            "wall_s": wall_before + time.time() - t0,
        }, settings)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, rec)

    wall = wall_before + time.time() - t0
    test = evaluate(model, make_loader(data, "test", 256, False, workers=data.workers), data.multilabel, data.classes)
    val = evaluate(model, val_loader, data.multilabel, data.classes)
    metrics = {
        "top1": test["top1"],
        "top5": test["top5"],
        "test_loss": test["loss"],
        "val_top1": val["top1"],
        "val_loss": val["loss"],
        "epochs": cfg.epochs,
        "params": int(sum(p.numel() for p in model.parameters())),
        # conv + linear MACs of the deploy form (branches and BN fused), as ednas profile and fvcore count them
        "macs": int(count_macs(deploy_model(model), data.input_size)[0]),
        "wall_s": wall,
        "arch": settings["arch"],
        "data": data.spec,
        "n_test": test["n"],
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
