"""Train a fixed network: ``ednas train``.

The recipe (paper Sec. IV-A and the bag of tricks it cites): SGD with Nesterov
momentum, learning rate with linear warm-up then cosine decay (eq. 16), label
smoothing, no weight decay on BN parameters and biases, pad-crop (+ flip) at
32 px or RandomResizedCrop + flip + ColorJitter for folders.  With
``quant_friendly`` it follows TI's guidance for fixed-point deployment
instead: weight decay on every parameter, depthwise weights and biases
included.

A checkpoint is written atomically after every epoch; ``--resume`` continues
from it and ends with the same weights as an uninterrupted run (all
randomness is drawn from ``(seed, epoch)``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ednas._perf import set_threads, tune_malloc
from ednas._run import progress, tb_writer
from ednas.arch.spec import ArchSpec, load_arch
from ednas.config import config_dict, save_config
from ednas.data import load_data, make_loader
from ednas.errors import CheckpointError, ConfigError, TrainingError
from ednas.io import atomic_write_json
from ednas.train.checkpoint import load_checkpoint, save_checkpoint, save_model
from ednas.train.metrics import evaluate
from ednas.train.schedule import lr_at

__all__ = ["TrainConfig", "train", "fit", "train_cli", "make_optimizer", "param_groups"]


@dataclass
class TrainConfig:
    #: output directory (model.pt, metrics.json, config.yaml, checkpoint.pt, tb/)
    out: str
    #: preset name, arch string or arch file (a space trains its largest network)
    arch: str = "cifar"
    #: data set: digits, cifar10:DIR, cifar100:DIR, folder:DIR, synthetic
    data: str = "digits"
    #: training epochs
    epochs: int = 10
    #: images per batch
    batch_size: int = 64
    #: peak learning rate (eq. 16's lr0)
    lr: float = 0.1
    #: linear warm-up length in epochs
    warmup_epochs: float = 1.0
    #: SGD momentum (Nesterov)
    momentum: float = 0.9
    #: weight decay (not on BN and biases unless quant_friendly)
    weight_decay: float = 5e-5
    #: label smoothing of the cross-entropy
    label_smoothing: float = 0.1
    #: TI's fixed-point guidance: weight decay on all parameters incl. depthwise and biases
    quant_friendly: bool = False
    #: weight decay used when quant_friendly is on
    quant_weight_decay: float = 1e-4
    #: train every depthwise with ACNet-style branches (fused away on export)
    branches: bool = False
    #: a search directory (or its supernet.pt) whose weights the derived network starts from
    inherit: Optional[str] = None
    #: input size for folder data (in-memory sets have their own)
    input_size: Optional[int] = None
    #: random seed
    seed: int = 0
    #: intra-op threads (0: all cores)
    threads: int = 0
    #: data loader worker processes (folder data)
    workers: int = 2
    #: continue from OUT/checkpoint.pt
    resume: bool = False
    #: show a progress bar
    progress: bool = True
    #: write TensorBoard scalars to OUT/tb
    tensorboard: bool = True


def param_groups(params: Iterable[nn.Parameter], weight_decay: float, decay_all: bool = False) -> list[dict]:
    """Two groups: decayed weights, and BN parameters and biases (1-d) without decay."""
    params = [p for p in params if p.requires_grad]
    if decay_all:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(params: Iterable[nn.Parameter], lr: float, momentum: float, weight_decay: float, decay_all: bool = False):
    """SGD with Nesterov momentum over ``params`` (see :func:`param_groups`)."""
    return torch.optim.SGD(param_groups(params, weight_decay, decay_all), lr=lr, momentum=momentum, nesterov=momentum > 0)


def _resolve_arch(cfg: TrainConfig) -> tuple[ArchSpec, int | None]:
    spec, size = load_arch(cfg.arch)
    if not spec.is_fixed:
        spec = spec.largest()
    if cfg.branches:
        spec = spec.with_picks([{"kernel": l.spec.kernels[0], "expansion": l.spec.expansions[0]} for l in spec.layers()], branches=True)
    return spec, size


_RESUME_KEYS = ("arch", "data", "epochs", "batch_size", "lr", "warmup_epochs", "momentum", "weight_decay",
                "label_smoothing", "quant_friendly", "quant_weight_decay", "branches", "seed", "inherit", "input_size")


def train(cfg: TrainConfig, on_epoch_end: Optional[Callable[[int, dict], None]] = None) -> dict:
    """Train the arch of ``cfg``, evaluate on the test split, write model.pt and metrics.json. Returns the metrics."""
    from ednas.nn.build import build_model

    tune_malloc()
    set_threads(cfg.threads)
    data = load_data(cfg.data, seed=cfg.seed, input_size=cfg.input_size)
    arch, _ = _resolve_arch(cfg)
    torch.manual_seed(cfg.seed)
    model = build_model(arch, data.num_classes)
    if cfg.inherit:
        _inherit(model, cfg.inherit)
    return fit(model, data, cfg, on_epoch_end=on_epoch_end, save=True)


def fit(model: nn.Module, data, cfg: TrainConfig, on_epoch_end: Optional[Callable[[int, dict], None]] = None, save: bool = True) -> dict:
    """The training loop of ``ednas train`` for any classifier ``model`` on ``data``.

    Writes ``config.yaml``, ``checkpoint.pt`` every epoch and, at the end,
    ``metrics.json`` (and ``model.pt`` when ``save`` and the model is an ednas
    :class:`~ednas.nn.build.Net`) in ``cfg.out``; resumes with ``cfg.resume``.
    Baseline networks (timm, torchvision) reuse it with ``save=False``.
    """
    if cfg.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {cfg.epochs}")
    if cfg.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {cfg.batch_size}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.to(memory_format=torch.channels_last)
    decay_all = cfg.quant_friendly
    wd = cfg.quant_weight_decay if cfg.quant_friendly else cfg.weight_decay
    opt = make_optimizer(model.parameters(), cfg.lr, cfg.momentum, wd, decay_all)

    train_loader = make_loader(data, "train", cfg.batch_size, True, seed=cfg.seed, workers=cfg.workers)
    val_loader = make_loader(data, "val", 256, False, workers=cfg.workers)
    steps_per_epoch = len(train_loader)
    total = steps_per_epoch * cfg.epochs
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))

    ckpt_path = out / "checkpoint.pt"
    start_epoch, history, wall_before = 0, [], 0.0
    if cfg.resume and ckpt_path.is_file():
        ck = load_checkpoint(ckpt_path)
        old = ck.get("config", {})
        diff = [k for k in _RESUME_KEYS if k in old and old[k] != config_dict(cfg)[k]]
        if diff:
            raise CheckpointError(f"--resume: '{ckpt_path}' was written with other settings ({', '.join(f'{k}: {old[k]!r} vs {config_dict(cfg)[k]!r}' for k in diff)})")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, history, wall_before = ck["epoch"], ck["history"], ck["wall_s"]
    save_config(cfg, out)
    writer = tb_writer(cfg.tensorboard, out)

    t0 = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        torch.manual_seed(cfg.seed * 7919 + epoch)  # dropout etc.: same draw with or without a resume
        train_loader.set_epoch(epoch)
        model.train()
        loss_sum, n_seen = 0.0, 0
        bar = progress(cfg.progress, steps_per_epoch, f"train {epoch + 1}/{cfg.epochs}")
        for i, (x, y) in enumerate(train_loader):
            step = epoch * steps_per_epoch + i
            lr = lr_at(step, total, warmup, cfg.lr)
            for g in opt.param_groups:
                g["lr"] = lr
            loss = F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing)
            if not torch.isfinite(loss):
                raise TrainingError(f"training diverged at epoch {epoch + 1} step {i} (loss {loss.item()}); lower --lr (now {cfg.lr})")
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
        val = evaluate(model, val_loader)
        rec = {"epoch": epoch + 1, "train_loss": loss_sum / max(n_seen, 1), "val_top1": val["top1"], "val_loss": val["loss"]}
        history.append(rec)
        if writer is not None:
            writer.add_scalar("val/top1", val["top1"], epoch + 1)
            writer.add_scalar("val/loss", val["loss"], epoch + 1)
            writer.flush()
        save_checkpoint(ckpt_path, {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": epoch + 1,
            "history": history,
            "wall_s": wall_before + time.time() - t0,
            "config": config_dict(cfg),
        })
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, rec)

    wall = wall_before + time.time() - t0
    test = evaluate(model, make_loader(data, "test", 256, False, workers=cfg.workers))
    val = evaluate(model, val_loader)
    metrics = {
        "top1": test["top1"],
        "top5": test["top5"],
        "test_loss": test["loss"],
        "val_top1": val["top1"],
        "val_loss": val["loss"],
        "epochs": cfg.epochs,
        "params": int(sum(p.numel() for p in model.parameters())),
        "wall_s": wall,
        "arch": model.arch.format() if hasattr(model, "arch") else type(model).__name__,
        "data": data.spec,
        "n_test": test["n"],
        "history": history,
    }
    if save and hasattr(model, "arch"):
        save_model(out / "model.pt", model, input_size=data.input_size, data=data, config=config_dict(cfg))
    atomic_write_json(out / "metrics.json", metrics)
    if writer is not None:
        writer.add_scalar("test/top1", test["top1"], cfg.epochs)
        writer.close()
    return metrics


def train_cli(cfg: TrainConfig) -> dict:
    """``ednas train``: the headline metrics (the whole record is in metrics.json)."""
    m = train(cfg)
    return {k: m[k] for k in ("top1", "top5", "val_loss", "epochs", "params", "wall_s")}


def _inherit(model, source: str) -> None:
    """Copy the supernet's weights (centre crops of the meta-kernels) into ``model``."""
    from ednas.nn.build import inherit_weights

    p = Path(source)
    p = p / "supernet.pt" if p.is_dir() else p
    from ednas.search.state import load_supernet

    supernet, picks = load_supernet(p)
    inherit_weights(model, supernet, picks)
