"""The settings and entry points of ``ednas search``, ``ednas train`` and ``ednas export``.

Each command's settings class is made of the stages' own sections (the same
classes ``ednas run`` holds), with the section fields also available as flat
flags (``FLAT``), as they were before sections existed: ``ednas search
--lr 0.05`` is ``--search.lr 0.05``.  The entry points build one
:class:`~ednas.context.RunContext` (every check before any work) and call
the library functions with its objects.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Optional

from ednas._perf import set_threads, tune_malloc
from ednas.arch.spec import load_arch
from ednas.checkpoint import check_resume
from ednas.config import given, save_config
from ednas.context import RunContext, check_out_dir
from ednas.data import DataConfig
from ednas.deploy.export import ExportConfig, export_model
from ednas.device import DeviceConfig, Hardware, default_threads, resolve_hardware
from ednas.dist import DistInfo, init_from_env
from ednas.errors import ConfigError
from ednas.latency.config import LatencyConfig, table_precision
from ednas.runtime import Timing
from ednas.search.algorithm import SearchConfig, search
from ednas.train.trainer import TrainConfig, train

__all__ = ["HEADLINES", "SearchCommand", "TrainCommand", "ExportCommand", "search_command", "train_command", "export_command"]

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class SearchCommand:
    """``ednas search``."""

    #: output directory (arch.yaml, search.json, supernet.pt, alpha_history.json, tb/)
    out: str
    data: DataConfig = field(default_factory=DataConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    timing: Timing = field(default_factory=Timing)
    hardware: DeviceConfig = field(default_factory=DeviceConfig)
    #: random seed (weights, batches, Gumbel noise; not the data split)
    seed: int = 0
    #: intra-op threads per process (0: the cores, shared by the processes on a node under torchrun)
    threads: int = 0
    #: continue from OUT/checkpoint.pt (written with the same settings; on any number of processes); automatic after a torchrun restart
    resume: bool = False
    #: progress bars (default: only when stderr is a terminal)
    progress: Optional[bool] = None
    #: write TensorBoard scalars to OUT/tb
    tensorboard: bool = True

    FLAT: ClassVar[tuple] = ("data", "latency", "search", "hardware")
    ALIASES: ClassVar[dict] = {"warmup_epochs": "search.arch_warmup_epochs", "lut_cache": "latency.cache", "latency_dtype": "latency.dtype",
                               "remote_token_file": "latency.remote_token_file"}

    def check(self, name) -> None:
        _check_threads(self.threads, name)


@dataclass(kw_only=True)
class TrainCommand:
    """``ednas train``."""

    #: output directory (model.pt, metrics.json, config.yaml, checkpoint.pt, tb/)
    out: str
    #: preset name, arch string or arch file (a space trains its largest network)
    arch: str = "cifar"
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    hardware: DeviceConfig = field(default_factory=DeviceConfig)
    #: random seed
    seed: int = 0
    #: intra-op threads per process (0: the cores, shared by the processes on a node under torchrun)
    threads: int = 0
    #: continue from OUT/checkpoint.pt (written with the same settings; on any number of processes); automatic after a torchrun restart
    resume: bool = False
    #: progress bars (default: only when stderr is a terminal)
    progress: Optional[bool] = None
    #: write TensorBoard scalars to OUT/tb
    tensorboard: bool = True

    FLAT: ClassVar[tuple] = ("data", "train", "hardware")
    ALIASES: ClassVar[dict] = {"warmup_epochs": "train.lr_warmup_epochs"}
    EXAMPLE: ClassVar[str] = """\
  # ednas train --config train.yaml --out runs/t   (flags override the file)
  arch: runs/search/arch.yaml
  data: {spec: folder:/data/imagenet, input_size: 224}
  train: {epochs: 90, batch_size: 128, lr: 0.4}
  hardware: {device: cuda, amp: bf16}

Several processes (one per GPU, or per CPU socket), one node or many:
  torchrun --standalone --nproc_per_node=8 -m ednas.cli train --arch ... --data ... --out runs/t
--batch-size is per process: the global batch is batch-size x processes. --lr is used as given,
whatever the number of processes: when the global batch grows k times, raise --lr k times
(the linear scaling rule; keep the warm-up). Rank 0 writes every file; a checkpoint resumes on
any number of processes, and after a restart (torchrun --max-restarts) the run resumes by itself.
See docs/distributed.md.
"""

    def check(self, name) -> None:
        _check_threads(self.threads, name)


@dataclass(kw_only=True)
class ExportCommand:
    """``ednas export``."""

    #: model.pt written by 'ednas train'
    model: str
    #: output directory (model.onnx, model_<quant>.onnx, export.json, config.yaml)
    out: str
    #: evaluation data spec (default: the one the model was trained on)
    data: Optional[str] = None
    #: seed of the calibration draw
    seed: int = 0
    export: ExportConfig = field(default_factory=ExportConfig)
    timing: Timing = field(default_factory=Timing)

    FLAT: ClassVar[tuple] = ("export", "timing")
    ALIASES: ClassVar[dict] = {"latency_rounds": "timing.rounds", "latency_runs": "timing.repeats"}


def _check_threads(threads: int, name) -> None:
    if threads < 0:
        raise ConfigError(f"{name('threads')} must be >= 0 (0: all cores), got {threads}")


def _start(threads: int, hardware: DeviceConfig) -> tuple[Hardware, DistInfo | None]:
    """The device, the process group under torchrun (else ``None``) and the threads of this process."""
    tune_malloc()
    hw = resolve_hardware(hardware)
    dist = init_from_env(hw.device)
    set_threads(threads or default_threads())
    if dist is not None:
        dist.quiet_others()
    return hw, dist


def _resume(resume: bool, dist: DistInfo | None) -> bool:
    """``--resume``, or a worker group torchrun restarted (``--max-restarts``): it continues from the last checkpoint."""
    if dist is not None and dist.restarts > 0 and not resume:
        log.warning("torchrun restarted the processes (restart %d): resuming from the last checkpoint", dist.restarts)
        return True
    return resume


def search_command(cfg: SearchCommand) -> dict | None:
    """``ednas search``: the search's result (also in OUT/search.json); the CLI prints its :data:`HEADLINES`."""
    hw, dist = _start(cfg.threads, cfg.hardware)
    with dist or contextlib.nullcontext():  # leaves the process group (after a barrier unless failing)
        dtype, qopts = table_precision(cfg.latency)  # f32 on host-ort unless --latency-dtype says otherwise
        resume = _resume(cfg.resume, dist)
        check_resume(Path(cfg.out) / "checkpoint.pt", resume)  # before any measurement

        def context() -> RunContext:
            ctx = RunContext(data=cfg.data, space=cfg.search.space, latency=cfg.latency, timing=cfg.timing,
                             timing_threads_given=given(cfg, "timing.threads"), seed=cfg.seed, progress=cfg.progress,
                             out=cfg.out, needs_space=True, table_dtype=dtype, table_quant=qopts)
            ctx.budget()  # measures a host table here if it must (once: the other ranks then read the cache)
            return ctx

        if dist is None:
            ctx = context()
        else:  # rank 0 first: it alone measures a latency table and writes the cache
            ctx = context() if dist.main else None
            dist.barrier()
            ctx = ctx or context()
        if dist is None or dist.main:
            save_config(cfg, ctx.out)
        r = search(cfg.search, ctx.out, data=ctx.data, latency=ctx.latency_model(), budget=ctx.budget(), space=ctx.space,
                   timing=ctx.timing, seed=cfg.seed, progress=cfg.progress, tensorboard=cfg.tensorboard,
                   resume=resume, dist=dist, hardware=hw)
    return r or None  # None: a non-zero rank under torchrun


def train_command(cfg: TrainCommand) -> dict | None:
    """``ednas train``: the metrics (also in OUT/metrics.json); the CLI prints its :data:`HEADLINES`.

    Under torchrun the training is data-parallel (see :func:`ednas.train.trainer.fit`);
    the processes other than rank 0 return ``None``.
    """
    hw, dist = _start(cfg.threads, cfg.hardware)
    with dist or contextlib.nullcontext():  # leaves the process group (after a barrier unless failing)
        arch, _ = load_arch(cfg.arch)  # a malformed arch fails before the data is read
        ctx = RunContext(data=cfg.data, seed=cfg.seed, progress=cfg.progress, out=cfg.out)
        resume = _resume(cfg.resume, dist)
        check_resume(ctx.out / "checkpoint.pt", resume)
        if dist is None or dist.main:
            save_config(cfg, ctx.out)
        return train(cfg.train, ctx.out, arch=arch, data=ctx.data, seed=cfg.seed, progress=cfg.progress,
                     tensorboard=cfg.tensorboard, resume=resume, hardware=hw, dist=dist)


def export_command(cfg: ExportCommand) -> dict:
    """``ednas export``: the export record (also in OUT/export.json); the CLI prints its :data:`HEADLINES`."""
    if not Path(cfg.model).is_file():
        raise ConfigError(f"--model: model file '{cfg.model}' does not exist")
    out = check_out_dir(cfg.out)
    save_config(cfg, out)
    return export_model(cfg.export, cfg.model, out, data_spec=cfg.data, timing=cfg.timing, seed=cfg.seed)


#: what the command line prints of each command's result (the files hold everything)
HEADLINES = {
    "search": ("arch", "predicted_latency_ms", "measured_latency_ms", "budget_ms", "lambda", "steps", "wall_s", "val_top1_argmax"),
    "train": ("top1", "top5", "val_loss", "epochs", "params", "macs", "wall_s", "data_wait_share"),
    "export": ("max_abs_diff", "top1_fp32", "top1_quant", "drop", "latency_ms_fp32", "latency_ms_quant", "threads", "onnx", "onnx_quant"),
}
