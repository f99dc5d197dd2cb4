"""The search: Algorithm 1 with eq. (10), Gumbel-softmax, the latency loss and the feedback block.

The training set is split into a weight split and an architecture split
(80/20 by default, stratified, fixed seed).  Each of P paths (the feedback
block, eq. 3-5; P = 1 is the plain single-path search) holds its own copy of
the supernet, its own mini-batches (the epoch's batches are dealt out to the
paths, so P paths together see each image once per epoch) and its own Gumbel
noise.  Every iteration:

1. weight step on the weight split: sample ``g`` (eq. 15, no gradient to
   alpha), cross-entropy, SGD with Nesterov momentum, learning rate with
   linear warm-up and cosine decay (eq. 16);
2. after the warm-up epochs, architecture step on the architecture split
   (eq. 10, first order): sample ``g``, ``CE + lambda * E[LAT]`` (eq. 13 or a
   budget form, :mod:`ednas.search.loss`), Adam on alpha only; then the dual
   ascent on lambda (``auto``: towards the band ``[band_low * B, B]``);
   ``arch_every = k`` takes this step after every k-th weight step only;
3. the feedback merge of the paths, weighted by their weight-step losses.

``update = joint`` replaces steps 1-2 after the warm-up by one single-level
step on one batch of the whole training split (weights and alpha together).
``path_batches = shared`` gives every path the same batch, so that the paths
differ only in their Gumbel noise and beta weighs sampled architectures.
With ``settle`` (and the ``auto`` loss), a final argmax network outside the
band is replaced by the final epoch's last in-band iterate of alpha.

The temperature decays per epoch (:func:`ednas.search.gumbel.tau_at`).  After
every epoch the argmax network is evaluated on the validation split and a
checkpoint is written atomically; ``resume`` continues from it to the same
result as an uninterrupted run (every random draw comes from ``(seed, epoch,
path)``, :mod:`ednas.seeds`).  A weight or architecture step whose loss or
gradient is not finite, or a non-finite lambda, is skipped and counted
(``skipped_steps`` in ``search.json``, each epoch's record and TensorBoard);
``max_skipped_steps`` in a row stop the search (:mod:`ednas.train.guard`).
At the end the argmax architecture is derived, fitted to the budget
(:mod:`ednas.search.derive`), measured on the host where the target is the
host, and written out.

Devices and processes (:mod:`ednas.device`, :mod:`ednas.dist`): the paths,
alpha, the Gumbel noise (drawn by a generator on the device), the latency
model's tensors and the batches live on the run's device; the weight step's
forward runs under its autocast, the architecture step in fp32.  Under
``torchrun`` the world is P paths x D data-parallel ranks: the epoch's
batches are dealt out to every rank, the D ranks of a path average their
gradients and BN statistics every step (so a path steps on D batches at
once, as one process stepping on their concatenation with BN statistics per
part), and the feedback merge runs across paths.  Rank 0 writes the outputs
and one checkpoint holding every path, which resumes on any number of
processes.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import yaml

from ednas import __version__
from ednas._run import git_commit, tb_writer
from ednas._run import progress as progress_bar
from ednas.arch.spec import ArchSpec
from ednas.checkpoint import resume_state, save_checkpoint
from ednas.config import config_dict
from ednas.data import DataSet, arch_split, make_loader
from ednas.device import Hardware
from ednas.errors import CheckpointError, ConfigError, DataError, LatencyTableError, TrainingError
from ednas.io import atomic_write_json, atomic_write_text
from ednas.latency.measure import measure_latency
from ednas.latency.model import Budget
from ednas.nn.bn import bn_calibration_loader, recompute_bn_stats
from ednas.nn.build import SUPERNET_KINDS, build_model, build_supernet, inherit_weights
from ednas.nn.files import save_supernet
from ednas.runtime import Timing
from ednas.search.derive import fit_budget, layer_probs
from ednas.search.feedback import MERGE_KINDS, FeedbackBlock
from ednas.search.gumbel import sample_choices, tau_at
from ednas.search.loss import LOSS_KINDS, LatencyLoss
from ednas.seeds import derive
from ednas.train.guard import StepGuard, all_finite
from ednas.train.metrics import evaluate
from ednas.train.recipe import Recipe, make_optimizer
from ednas.train.schedule import lr_at
from ednas.train.task import task_loss
from ednas.train.trainer import bn_buffers

__all__ = ["SearchConfig", "search"]

log = logging.getLogger(__name__)

FIT_MODES = ("none", "repair", "both")
PATH_BATCHES = ("dealt", "shared")
UPDATES = ("alternate", "joint")
#: images the search's per-epoch score recomputes the argmax network's BN statistics on (half of ednas.nn.bn.BN_IMAGES: in the
#: default run's search the curve stayed within one validation image of 1000's at half the pass, benchmarks/bn_images.py)
SEARCH_BN_IMAGES = 500
#: the dual ascent aims this fraction of the band's width inside each of its edges (a band [0.9 B, B]: at
#: [0.925 B, 0.975 B]), so that the argmax network, which moves in steps of one choice, ends inside the band
BAND_AIM = 0.25


@dataclass
class SearchConfig(Recipe):
    """Algorithm 1: the search space, its schedule, the loss and the feedback block."""

    #: the search space: preset, arch string with choices, or file (default: cifar for inputs <= 64 px, else imagenet)
    space: Optional[str] = None
    #: search epochs (the weights-only warm-up included)
    epochs: int = 20
    #: epochs at the start that train the weights only (alpha frozen)
    arch_warmup_epochs: int = 5
    #: fraction of the training set used for weights (the rest trains alpha)
    weight_split: float = 0.8
    #: Adam learning rate of alpha
    arch_lr: float = 0.05
    #: Gumbel-softmax temperature at the first epoch
    tau0: float = 2.0
    #: temperature at the last epoch (exponential decay)
    tau_min: float = 0.2
    #: straight-through one-hot samples instead of soft ones
    hard: bool = False
    #: latency loss: auto (dual ascent on lambda), eq13, budget, fbnet
    loss: str = "auto"
    #: lambda (fixed for eq13/budget; the start for auto)
    lam: float = 0.0
    #: dual ascent step size of lambda (auto)
    lam_lr: float = 0.5
    #: auto: proportional term of lambda (damps the dual ascent's swings; 0: pure dual ascent)
    lam_p: float = 5.0
    #: auto: lower edge of the band [band_low x B, B] the dual ascent keeps the argmax network in (0: only LAT <= B)
    band_low: float = 0.9
    #: auto: if the final argmax network is outside the band, end on alpha of the final epoch's last step whose argmax network was in it
    settle: bool = True
    #: feedback paths P (1: plain single-path search)
    paths: int = 2
    #: what the feedback block merges: kernels, kernels+alpha, all
    merge: str = "all"
    #: batches of the P paths: dealt (each path its own; together they see each image once per epoch) or shared (one batch for all, the paths differ only in their Gumbel noise)
    path_batches: str = "dealt"
    #: joint (the default: weights and alpha in one step on one batch of the whole training split: single level, 0.8x the
    #: search's compute; Pareto v2's 9 complete pairs tie it with Algorithm 1: docs/search.md says why)
    #: or alternate (weight step on the weight split, alpha step on the architecture split: the paper's Algorithm 1)
    update: str = "joint"
    #: alternate: one architecture step per arch_every weight steps (1: after every weight step)
    arch_every: int = 1
    #: supernet: metakernel (one conv per layer), darts or fbnet (multi-path baselines)
    supernet: str = "metakernel"
    #: after deriving: none, repair (over budget), both (repair, and fill up to fit_low x budget)
    fit: str = "both"
    #: fill target as a fraction of the budget
    fit_low: float = 0.85
    #: measure the derived network end to end when the table was measured on this kind of host
    measure: bool = True
    #: weight-split images the argmax network's BN statistics are recomputed on before it is scored each epoch (0: score with the supernet's own, mixture statistics)
    bn_images: int = SEARCH_BN_IMAGES

    def check(self, name) -> None:
        super().check(name)
        if self.epochs < 1:
            raise ConfigError(f"{name('epochs')} must be >= 1, got {self.epochs}")
        if not 0 <= self.arch_warmup_epochs < self.epochs:
            raise ConfigError(f"{name('arch_warmup_epochs')} must be in [0, epochs) = [0, {self.epochs}), got {self.arch_warmup_epochs}")
        if not 0.0 < self.weight_split < 1.0:
            raise ConfigError(f"{name('weight_split')} must be in (0, 1), got {self.weight_split}")
        if not self.arch_lr > 0:
            raise ConfigError(f"{name('arch_lr')} must be > 0, got {self.arch_lr}")
        if not (self.tau0 > 0 and self.tau_min > 0):
            raise ConfigError(f"{name('tau0')} and {name('tau_min')} must be > 0, got {self.tau0} and {self.tau_min}")
        if self.lam < 0 or self.lam_lr < 0 or self.lam_p < 0:
            raise ConfigError(f"{name('lam')}, {name('lam_lr')} and {name('lam_p')} must be >= 0, got {self.lam}, {self.lam_lr} and {self.lam_p}")
        if not 0.0 <= self.band_low < 1.0:
            raise ConfigError(f"{name('band_low')} must be in [0, 1), got {self.band_low}")
        if self.paths < 1:
            raise ConfigError(f"{name('paths')} must be >= 1, got {self.paths}")
        if self.arch_every < 1:
            raise ConfigError(f"{name('arch_every')} must be >= 1, got {self.arch_every}")
        for key, value, kinds in (("merge", self.merge, MERGE_KINDS), ("loss", self.loss, LOSS_KINDS),
                                  ("supernet", self.supernet, SUPERNET_KINDS), ("fit", self.fit, FIT_MODES),
                                  ("path_batches", self.path_batches, PATH_BATCHES), ("update", self.update, UPDATES)):
            if value not in kinds:
                raise ConfigError(f"{name(key)} '{value}' is unknown; expected one of {', '.join(kinds)}")
        if self.bn_images < 0:
            raise ConfigError(f"{name('bn_images')} must be >= 0, got {self.bn_images}")
        if not 0.0 < self.fit_low <= 1.0:
            raise ConfigError(f"{name('fit_low')} must be in (0, 1], got {self.fit_low}")


def _settings(cfg: SearchConfig, space: ArchSpec, data: DataSet, latency, budget: Budget, seed: int) -> dict:
    """What decides the search's trajectory: a checkpoint resumes only with the same."""
    d = {k: v for k, v in config_dict(cfg).items() if k not in ("fit", "fit_low", "measure", "space", "max_skipped_steps", "bn_images")}
    return {**d, "space": space.format(), "data": data.spec, "input_size": data.input_size, "seed": seed,
            "target": getattr(getattr(latency, "table", None), "target", type(latency).__name__), "budget_ms": round(budget.ms, 9)}


def _entropy(p: torch.Tensor) -> float:
    p = p[p > 0]
    return float(-(p * p.log()).sum())


class _Search:
    def __init__(self, cfg: SearchConfig, out, data: DataSet, latency, budget: Budget, space: ArchSpec,
                 timing: Timing | None, seed: int, progress: bool | None, tensorboard: bool, dist=None,
                 hardware: Hardware | None = None):
        self.cfg, self.seed, self.progress, self.tensorboard = cfg, seed, progress, tensorboard
        self.out = Path(out)
        self.data, self.space, self.latency, self.budget = data, space, latency, budget
        self.timing = timing or Timing(threads=getattr(getattr(latency, "table", None), "threads", 1))
        self.input_size = data.input_size
        self.budget_ms, self.budget_frac = budget.ms, budget.frac
        span = float(latency.max_ms) - float(latency.min_ms)
        self.loss = LatencyLoss(cfg.loss, cfg.lam, self.budget_ms, cfg.lam_lr, low=cfg.band_low, span_ms=span if span > 0 else None,
                                margin=BAND_AIM * (1.0 - (cfg.band_low or 0.9)), kp=cfg.lam_p)
        self.settings = _settings(cfg, space, data, latency, budget, seed)
        self.guard = StepGuard(cfg.max_skipped_steps, "search", f"lower the learning rates (now --lr {cfg.lr}, --arch-lr {cfg.arch_lr})")

        # under torchrun the world is P paths x D data-parallel ranks and each rank holds one path
        # (rank r: path r // D); otherwise this process holds all P
        self.dist, self.hw = dist, hardware or Hardware.cpu()
        P = cfg.paths
        self.layout = dist.layout(P) if dist is not None else None
        self.local = [self.layout.path] if dist is not None else list(range(P))
        self.main = dist is None or dist.rank == 0
        self._dp = self.layout is not None and self.layout.dp > 1  # several ranks per path: they average their gradients
        # the epoch's batches are dealt out to every rank (or local path): shard r of n_shards
        shards, self.n_shards = ([dist.rank], dist.world) if dist is not None else (list(range(P)), P)

        torch.manual_seed(derive(seed, "init"))
        base = build_supernet(self.space, self.data.num_classes, kind=cfg.supernet)
        self._apply_masks(base)
        self.paths = [base] + [copy.deepcopy(base) for _ in range(len(self.local) - 1)]
        self.paths = [p.to(self.hw.device, memory_format=torch.channels_last) for p in self.paths]
        self.opt_w = [make_optimizer(p.weight_parameters(), cfg.lr, cfg.momentum, cfg.weight_decay) for p in self.paths]
        self.opt_a = [torch.optim.Adam(p.arch_parameters(), lr=cfg.arch_lr, betas=(0.5, 0.999)) for p in self.paths]
        self.scalers = [self.hw.grad_scaler() for _ in self.paths]  # fp16 only; a pass-through otherwise
        self.feedback = FeedbackBlock(self.paths, cfg.merge, [[ow, oa] for ow, oa in zip(self.opt_w, self.opt_a)],
                                      group=self.layout.path_group if dist is not None else None)

        w_idx, a_idx = arch_split(self.data.labels("train"), cfg.weight_split, seed=derive(seed, "arch-split"))
        if cfg.update == "joint":  # single level: one batch of the whole training split trains both
            w_idx = a_idx = None
        workers = getattr(data, "workers", None)
        self.w_loaders = self._loaders(w_idx, "weight-batches", workers, shards)
        self.a_loaders = self._loaders(a_idx, "arch-batches", workers, shards)
        if self.a_loaders[0].rounds < 1:  # a small architecture split: its last, partial batch too (the alpha steps cycle them)
            self.a_loaders = self._loaders(a_idx, "arch-batches", workers, shards, drop_last=False)
        if self.a_loaders[0].rounds < 1:  # fewer batches than shards: every path cycles the whole split
            self.a_loaders = self._loaders(a_idx, "arch-batches", workers, [0] * len(shards), drop_last=False, n_shards=1)
        self.val_loader = make_loader(self.data, "val", 256, False, workers=workers, device=self.hw.device) if self.main else None
        # the fixed, seeded images the argmax network's BN statistics are recomputed on before each epoch's score
        self.bn_loader = (bn_calibration_loader(self.data, cfg.bn_images, derive(seed, "bn-images"), w_idx, batch_size=256, workers=workers,
                                                device=self.hw.device) if self.main and cfg.bn_images > 0 else None)
        self.steps_per_epoch = self.w_loaders[0].rounds  # the same on every rank
        if self.steps_per_epoch < 1 or self.a_loaders[0].rounds < 1:
            raise DataError(f"the data set is too small for {P} path(s) on {self.n_shards // P if dist is not None else 1} process(es) each "
                            f"with batch size {cfg.batch_size}: {self.w_loaders[0].num_images} weight-split and "
                            f"{self.a_loaders[0].num_images} architecture-split images")
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.names = [n for n, _ in base.named_choices()]
        self.settled: dict | None = None  # alpha of the final epoch's last in-band step (settle)

    def _loaders(self, indices, purpose: str, workers, shards: list[int], drop_last: bool | None = None, n_shards: int | None = None) -> list:
        """One loader per local path.

        ``dealt``: the epoch's batches are dealt out over every path (and, under
        torchrun, every rank): shard ``r`` of ``n_shards``.  ``shared``: every
        path sees the same batch (one loader object for the local paths; under
        torchrun a path's D ranks cut it in D shards).
        """
        cfg, dev = self.cfg, self.hw.device

        def make(shard):
            return make_loader(self.data, "train", cfg.batch_size, True, indices, derive(self.seed, purpose), workers, drop_last=drop_last,
                               shard=shard, device=dev)

        if cfg.path_batches == "shared":
            if self.dist is None:
                return [make((0, 1))] * len(self.local)  # the same object: one batch per step, fetched once
            return [make((self.layout.dp_rank, self.layout.dp))]
        return [make((r, n_shards or self.n_shards)) for r in shards]

    def _apply_masks(self, net) -> None:
        if getattr(self.latency, "policy", "fallback") != "mask":
            return
        for i, blk in enumerate(net.searchable_blocks()):
            if blk.choice("kernel") is not None:
                allowed = list(self.latency.allowed(i))
                if not any(allowed):
                    l = net.layers[i]
                    raise LatencyTableError(f"layer {i} (stage {l.stage} block {l.block}): none of the kernels {l.spec.kernels} "
                                     f"is supported on target '{self.cfg.target}'")
                blk.choice("kernel").set_allowed(allowed)

    def _gen_seed(self, epoch: int, p: int) -> int:
        """Seed of path p's Gumbel noise in an epoch (each path its own noise)."""
        return derive(self.seed, "gumbel", epoch, p)

    # -- one epoch ---------------------------------------------------------
    def _criterion(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The task loss of both steps (the CE term of eq. 13; BCE-with-logits on multi-label data, :mod:`ednas.train.task`)."""
        return task_loss(logits, y, self.data.multilabel, self.cfg.label_smoothing)

    def _weight_step(self, p: int, net, x, y, lr: float, tau: float, gen: torch.Generator, where: str) -> float:
        """One SGD step of path ``p``'s weights on its batch, under freshly sampled g (eq. 15). Returns the loss."""
        net.train()
        with torch.no_grad():
            sample_choices(net.choices(), tau, self.cfg.hard, gen)
        self.guard.before(net)
        with self.hw.autocast():
            logits = net(x)
        ce = self._criterion(logits.float(), y)
        opt = self.opt_w[p]
        for g in opt.param_groups:
            g["lr"] = lr
        vals: list[float] = []
        params = net.weight_parameters()

        def sync() -> bool:  # the path's data-parallel ranks average their gradients and losses
            vals[:] = self._data_parallel(net, params, ce)
            return all(math.isfinite(v) for v in vals)

        if not self.guard.step(ce, opt, params, kind="weight", stream=p, where=f"{where} (path {p})", scaler=self.scalers[p],
                               sync=sync if self._dp else None):
            return float("nan")  # skipped: the feedback merge leaves this path out (beta = 0)
        return vals[0] if vals else float(ce.detach())

    def _arch_step(self, p: int, net, x, y, tau: float, gen: torch.Generator, where: str = "") -> tuple[float, float]:
        """One Adam step of path ``p``'s alpha (eq. 10, first order; weights frozen; in fp32). Returns (CE, E[LAT]), NaN when skipped."""
        sample_choices(net.choices(), tau, self.cfg.hard, gen)
        weights = net.weight_parameters()
        for w in weights:
            w.requires_grad_(False)
        try:
            self.guard.before(net)
            ce = self._criterion(net(x), y)
            lat = self.latency.expected(net)
            loss = self.loss(ce, lat)
            vals: list[float] = []
            params = net.arch_parameters()

            def sync() -> bool:
                vals[:] = self._data_parallel(net, params, ce, lat)
                return all(math.isfinite(v) for v in vals)

            if not self.guard.step(loss, self.opt_a[p], params, kind="arch", stream=p, where=f"{where} (path {p})",
                                   sync=sync if self._dp else None):
                return float("nan"), float("nan")
            ce_v, lat_v = vals if vals else (float(ce.detach()), float(lat.detach()))
        finally:
            for w in weights:
                w.requires_grad_(True)
        return ce_v, lat_v

    def _data_parallel(self, net, params, *values: torch.Tensor) -> list[float]:
        """The D ranks of a path act as one: average the gradients of ``params``, the BN statistics and ``values``.

        One all-reduce over the path's group (DDP's averaging, done here
        because a step trains either the weights or alpha of the same
        module); a no-op with one rank per path.  Returns ``values`` as floats.
        """
        vals = torch.stack([v.detach().float() for v in values])
        if self.layout is not None and self.layout.dp > 1:
            grads = [q.grad for q in params if q.grad is not None]
            self.layout.average_(grads + bn_buffers(net) + [vals])
        return vals.tolist()

    def _update_lambda(self, where: str = "") -> None:
        """Dual ascent on the predicted latency of the paths' current argmax networks (one lambda for all ranks).

        A non-finite latency or lambda is not applied (lambda keeps its value) and is counted as a skipped ``lambda`` step.
        """
        lat_now = [self.latency.predict(net.picks()) for net in self.paths]
        mean_lat = sum(lat_now) / len(lat_now)
        if self.dist is not None:
            mean_lat = self.dist.all_mean(mean_lat)
        before = self.loss.state_dict()
        if not self.guard.accept(mean_lat, kind="lambda", where=where):
            return
        lam = self.loss.update(mean_lat)
        if not self.guard.accept(lam + self.loss.lam_low + self.loss.net_lam, kind="lambda", where=where):
            self.loss.load_state_dict(before)  # both multipliers and their errors keep their values

    def _joint_step(self, p: int, net, x, y, lr: float, tau: float, gen: torch.Generator, where: str) -> tuple[float, float]:
        """Single-level update: one forward and backward on one batch moves path ``p``'s weights (SGD) and alpha (Adam).

        The loss is the architecture step's (``CE + lambda * E[LAT]``, eq. 13 or a budget form), its
        gradient goes to both; as in Single-Path NAS there is no separate architecture split.
        The network's forward pass runs under the run's autocast, the loss and the latency term in fp32.
        Returns (CE, E[LAT]), NaN when the step was skipped.
        """
        net.train()
        sample_choices(net.choices(), tau, self.cfg.hard, gen)  # with the graph: the gradient reaches alpha through g
        self.guard.before(net)
        with self.hw.autocast():
            logits = net(x)
        ce = self._criterion(logits.float(), y)
        lat = self.latency.expected(net)
        loss = self.loss(ce, lat)
        opt = _Both(self.opt_w[p], self.opt_a[p])
        for g in self.opt_w[p].param_groups:
            g["lr"] = lr
        vals: list[float] = []
        params = net.weight_parameters() + net.arch_parameters()

        def sync() -> bool:
            vals[:] = self._data_parallel(net, params, ce, lat)
            return all(math.isfinite(v) for v in vals)

        if not self.guard.step(loss, opt, params, kind="joint", stream=p, where=f"{where} (path {p})", scaler=self.scalers[p],
                               sync=sync if self._dp else None):
            return float("nan"), float("nan")
        ce_v, lat_v = vals if vals else (float(ce.detach()), float(lat.detach()))
        return ce_v, lat_v

    def _note_in_band(self, epoch: int, i: int) -> None:
        """In the final epoch, keep alpha of the last architecture step whose argmax network was in the band (``settle``)."""
        if not self._settles() or epoch != self.cfg.epochs - 1:
            return
        if self._in_band(self.latency.predict(self.paths[0].picks())):
            self.settled = {"step": i, "alpha": [a.detach().clone() for a in self.paths[0].arch_parameters()]}

    def _settles(self) -> bool:
        return self.cfg.settle and self.cfg.loss == "auto"  # the band is the auto loss's aim; the others have none

    def _in_band(self, ms: float) -> bool:
        return self.cfg.band_low * self.budget_ms <= ms <= self.budget_ms

    def _settle(self) -> dict | None:
        """When the final argmax network is outside the band, take alpha from the last in-band step of the final epoch."""
        if not self._settles() or self.settled is None or self._in_band(self.latency.predict(self.paths[0].picks())):
            return None
        with torch.no_grad():  # every path (the merge keeps them one architecture; the saved supernet holds them all)
            for net in self.paths:
                for a, kept in zip(net.arch_parameters(), self.settled["alpha"]):
                    a.copy_(kept)
        return {"epoch": self.cfg.epochs, "step": self.settled["step"]}

    def _arch_now(self, epoch: int, i: int) -> bool:
        """Whether step ``i`` of ``epoch`` (alternate schedule) is followed by an architecture step."""
        return epoch >= self.cfg.arch_warmup_epochs and i % self.cfg.arch_every == 0

    def _epoch(self, epoch: int, writer, bar) -> dict:
        cfg = self.cfg
        tau = tau_at(epoch, cfg.epochs, cfg.tau0, cfg.tau_min)
        search_alpha = epoch >= cfg.arch_warmup_epochs
        joint = cfg.update == "joint" and search_alpha
        gens = [torch.Generator(device=self.hw.device).manual_seed(self._gen_seed(epoch, p)) for p in self.local]
        torch.manual_seed(derive(self.seed, "epoch", epoch))
        for l in self.w_loaders + self.a_loaders:
            l.set_epoch(epoch)
        w_iters = _iters(self.w_loaders, iter)
        a_iters = _iters(self.a_loaders, lambda l: _cycle(l, epoch))
        warmup = int(round(cfg.lr_warmup_epochs * self.steps_per_epoch))
        sums = {"ce_w": 0.0, "ce_a": 0.0, "lat": 0.0, "n": 0, "na": 0, "beta_spread": 0.0, "nb": 0}
        for i in range(self.steps_per_epoch):
            step = epoch * self.steps_per_epoch + i
            lr = lr_at(step, self.total_steps, warmup, cfg.lr)  # linear warm-up, then eq. 16
            where = f"epoch {epoch + 1} step {i}"
            batches = _next(w_iters)
            if joint:
                steps = [self._joint_step(p, net, *batches[p], lr, tau, gens[p], where) for p, net in enumerate(self.paths)]
                losses = [ce for ce, _ in steps]
                done = [(c, l) for c, l in steps if c == c]  # skipped steps (NaN) are counted by the guard, not averaged
                if done:
                    sums["ce_a"] += sum(c for c, _ in done) / len(done)
                    sums["lat"] += sum(l for _, l in done) / len(done)
                    sums["na"] += 1
                self._update_lambda(where)
                self._note_in_band(epoch, i)
            else:
                losses = [self._weight_step(p, net, *batches[p], lr, tau, gens[p], where) for p, net in enumerate(self.paths)]
                if self._arch_now(epoch, i):
                    arch = [self._arch_step(p, net, *batch, tau, gens[p], where) for p, (net, batch) in enumerate(zip(self.paths, _next(a_iters)))]
                    arch = [(c, l) for c, l in arch if c == c]
                    if arch:
                        sums["ce_a"] += sum(c for c, _ in arch) / len(arch)
                        sums["lat"] += sum(l for _, l in arch) / len(arch)
                    sums["na"] += 1
                    self._update_lambda(where)
                    self._note_in_band(epoch, i)
            done = [v for v in losses if v == v]
            if done:
                sums["ce_w"] += sum(done) / len(done)
                sums["n"] += 1
            b = self.feedback(losses) if cfg.paths > 1 else None
            if b is not None:
                sums["beta_spread"] += float(b.max() - b.min())
                sums["nb"] += 1
            if writer is not None:
                if sums["n"]:
                    writer.add_scalar("search/ce_weight_step", sums["ce_w"] / sums["n"], step)
                writer.add_scalar("search/lr", lr, step)
                writer.add_scalar("search/skipped_steps", self.guard.total, step)
                if search_alpha and sums["na"]:
                    writer.add_scalar("search/E_lat_ms", sums["lat"] / sums["na"], step)
                    writer.add_scalar("search/lambda", self.loss.lam, step)
                    writer.add_scalar("search/lambda_low", self.loss.lam_low, step)
                if b is not None:
                    writer.add_scalar("search/beta0", float(b[0]), step)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(ce=f"{losses[0]:.3f}", lam=f"{self.loss.net_lam:.3g}", tau=f"{tau:.2f}")
        n, na = sums["n"], sums["na"]
        if self.dist is not None:  # the epoch's means over every path (each rank's sums are over its own), as one process reports them
            t = torch.tensor([float(sums[k]) for k in ("ce_w", "n", "ce_a", "lat", "na")], dtype=torch.float64)
            torch.distributed.all_reduce(t)
            sums["ce_w"], n, sums["ce_a"], sums["lat"], na = t.tolist()
        return {"tau": tau, "ce_weight": sums["ce_w"] / n if n else None,
                "ce_arch": sums["ce_a"] / na if na else None,
                "E_lat_ms_sampled": sums["lat"] / na if na else None,
                "arch_steps": sums["na"], "beta_spread": sums["beta_spread"] / sums["nb"] if sums["nb"] else None,
                "skipped_steps": self.guard.counts()}

    def argmax_network(self, picks: list[dict] | None = None) -> torch.nn.Module:
        """The argmax network of path 0 as a fixed network holding the supernet's weights (and BN statistics), in eval mode.

        It computes what the supernet pinned at its argmax computes
        (:func:`~ednas.nn.build.inherit_weights`; equal to float rounding for
        every supernet kind, tests/test_search_score.py) at the cost of the
        network itself: skipped blocks are gone, narrowed layers narrow, one
        kernel per layer (the pinned supernet runs every layer at its
        widest).  Built under a forked generator: building it draws nothing
        from the search's.
        """
        net = self.paths[0]
        picks = picks if picks is not None else net.picks()
        with torch.random.fork_rng(devices=[]):  # building modules initialises weights: from a forked generator
            model = build_model(self.space.with_picks(picks, branches=False), self.data.num_classes)  # as the supernet is built
            model = inherit_weights(model, net, picks)
        return model.to(self.hw.device, memory_format=torch.channels_last).eval()

    @torch.no_grad()
    def _epoch_eval(self, epoch: int, rec: dict, writer) -> dict:
        net = self.paths[0]
        picks = net.picks()
        for c in net.choices():
            c.g = None
        exp_lat = float(self.latency.expected(net))
        # the argmax network scored with its own BN statistics (recomputed on fixed images), not the mixture's
        model = self.argmax_network(picks)
        t_bn = time.time()
        if self.bn_loader is not None:
            recompute_bn_stats(model, self.bn_loader, self.hw)
            t_bn = time.time() - t_bn
        else:
            t_bn = 0.0
        val = evaluate(model, self.val_loader, self.data.multilabel, self.data.classes, self.hw)
        del model
        probs = {n: [round(float(v), 5) for v in c.probs()] for n, c in net.named_choices()}
        ent = {n: _entropy(c.probs()) for n, c in net.named_choices()}
        if self.data.multilabel:
            rec["val_map"] = val["map"]
        rec.update(epoch=epoch + 1, val_top1=val["top1"], val_loss=val["loss"], bn_images=self.cfg.bn_images, bn_recalibration_s=round(t_bn, 4),
                   E_lat_ms=exp_lat,
                   argmax_lat_ms=self.latency.predict(picks), lam=self.loss.lam, lam_low=self.loss.lam_low, probs=probs,
                   mean_entropy=sum(ent.values()) / max(len(ent), 1))
        if writer is not None:
            writer.add_scalar(f"search/val_{val['score_name']}_argmax", val["score"] if val["score"] is not None else float("nan"), epoch + 1)
            writer.add_scalar("search/E_lat_softmax_ms", exp_lat, epoch + 1)
            writer.add_scalar("search/argmax_lat_ms", rec["argmax_lat_ms"], epoch + 1)
            writer.add_scalar("search/tau", rec["tau"], epoch + 1)
            for n, e in ent.items():
                writer.add_scalar(f"entropy/{n}", e, epoch + 1)
            writer.flush()
        return rec

    # -- state ---------------------------------------------------------------
    def _all_paths(self) -> list[dict] | None:
        """Every path's state (weights, both optimizers, scaler), on the CPU, in path order; on rank 0 (``None`` elsewhere).

        Under torchrun the first rank of each path sends its path to rank 0
        (one gather over the paths' group): a checkpoint holds all P paths
        whatever the world size, so it resumes on any number of processes.
        """
        mine = [_cpu({"net": n.state_dict(), "opt_w": ow.state_dict(), "opt_a": oa.state_dict(), "scaler": sc.state_dict()})
                for n, ow, oa, sc in zip(self.paths, self.opt_w, self.opt_a, self.scalers)]
        if self.dist is None:
            return mine
        if self.layout.dp_rank != 0:
            return None
        if self.layout.path_group is not None:
            mine = [s for part in self.dist.all_gather_objects(mine, self.layout.path_group) for s in part]
        return mine if self.main else None

    def state(self, epoch: int, history: list, wall: float, paths: list[dict] | None = None) -> dict:
        paths = paths if paths is not None else self._all_paths()
        st = {
            "paths": [s["net"] for s in paths],
            "opt_w": [s["opt_w"] for s in paths],
            "opt_a": [s["opt_a"] for s in paths],
            "loss": self.loss.state_dict(),
            "skipped_steps": self.guard.counts(),
            "epoch": epoch,
            "history": history,
            "wall_s": wall,
            "world": {"paths": self.cfg.paths, "processes": self.dist.world if self.dist is not None else 1},
            "settled": self.settled,
        }
        if self.scalers[0].is_enabled():
            st["scalers"] = [s["scaler"] for s in paths]
        return st

    def load(self, ck: dict) -> tuple[int, list, float]:
        n, P = len(ck["paths"]), self.cfg.paths
        if n != P:
            raise CheckpointError(f"--resume: the checkpoint in '{self.out}' holds {n} of the {P} paths (written one file per "
                                  "process by an earlier ednas); remove it to start afresh")
        self.settled = ck.get("settled")
        for i, p in enumerate(self.local):
            self.paths[i].load_state_dict(ck["paths"][p])
            self.opt_w[i].load_state_dict(ck["opt_w"][p])
            self.opt_a[i].load_state_dict(ck["opt_a"][p])
            if "scalers" in ck:
                self.scalers[i].load_state_dict(ck["scalers"][p])
        self.loss.load_state_dict(ck["loss"])
        self.guard.load_counts(ck.get("skipped_steps"))
        was = ck.get("world", {}).get("processes", 1 if n == 1 else None)
        now = self.dist.world if self.dist is not None else 1
        if was is not None and was != now and self.main:
            log.info("resuming a search checkpoint written by %d process(es) on %d: each path's batch is now %d images (was %d)",
                     was, now, self.cfg.batch_size * max(1, now // P), self.cfg.batch_size * max(1, was // P))
        return ck["epoch"], ck["history"], ck["wall_s"]

    # -- the whole search ------------------------------------------------------
    def run(self, resume: bool = False, on_epoch_end: Optional[Callable[[int, dict], None]] = None) -> dict:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        ckpt = self.out / "checkpoint.pt"  # rank 0's; it holds every path
        start, history, wall_before = 0, [], 0.0
        ck = None
        if resume:
            ck = self.dist.on_main(lambda: resume_state(ckpt, self.settings)) if self.dist is not None else resume_state(ckpt, self.settings)
        if ck is not None:
            start, history, wall_before = self.load(ck)
        writer = tb_writer(self.tensorboard, self.out) if self.main else None
        t0 = time.time()
        for epoch in range(start, cfg.epochs):
            bar = progress_bar(self.progress if self.main else False, self.steps_per_epoch, f"search {epoch + 1}/{cfg.epochs}")
            rec = self._epoch(epoch, writer, bar)
            if bar is not None:
                bar.close()
            if self.main:
                rec = self._epoch_eval(epoch, rec, writer)
                log.debug("search epoch %d/%d: val %s of the argmax net %s, argmax %.4g ms, lambda %.3g", epoch + 1, cfg.epochs,
                          "mAP" if "val_map" in rec else "top-1", rec.get("val_map", rec["val_top1"]), rec["argmax_lat_ms"], rec["lam"])
            history.append(rec)
            if not all(all_finite(n.parameters()) for n in self.paths):
                raise TrainingError(f"search stopped: the weights or alphas became non-finite in epoch {epoch + 1}; the checkpoint "
                                    f"of the last complete epoch is kept; {self.guard.hint}")
            paths = self._all_paths()
            if self.main:
                save_checkpoint(ckpt, self.state(epoch + 1, history, wall_before + time.time() - t0, paths), self.settings)
            if self.dist is not None:
                self.dist.barrier()  # this epoch's checkpoint is on disk before anyone goes on
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, rec)
        wall = wall_before + time.time() - t0
        if not self.main:
            return {}
        result = self._finish(history, wall)
        if writer is not None:
            writer.close()
        return result

    def _finish(self, history: list, wall: float) -> dict:
        cfg = self.cfg
        net = self.paths[0]
        last_ms = self.latency.predict(net.picks())
        settled_from = self._settle()
        picks0 = net.picks()
        probs = layer_probs(net)
        layers = list(self.space.layers())
        allowed = self.latency.allowed if getattr(self.latency, "policy", "") == "mask" else None
        picks, changes = fit_budget(picks0, layers, probs, self.latency, self.budget_ms, cfg.fit, cfg.fit_low, allowed)
        arch = self.space.with_picks(picks, branches=False)
        predicted = self.latency.predict(picks)
        argmax_ms = self.latency.predict(picks0)
        measured = None
        table = getattr(self.latency, "table", None)
        if cfg.measure and table is not None and table.is_host:
            model = build_model(arch, self.data.num_classes)
            measured = measure_latency(model, self.input_size, timing=self.timing, table=table)  # as the table prices it: its precision, its speed
        layer_recs = []
        cin = self.space.stem.out
        for i, (l, p, p0) in enumerate(zip(layers, picks, picks0)):
            cout = int(p.get("width", l.spec.out))
            layer_recs.append({
                "index": i, "stage": l.stage, "block": l.block, "stride": l.stride, "cin": cin, "cout": cout,
                "kernel": p["kernel"], "expansion": p["expansion"], "skip": p["skip"],
                "argmax": p0, "probs": probs[i], "changed_by_fit": p != p0,
            })
            cin = cout
        target = table.target if table is not None else type(self.latency).__name__
        provenance = {"ednas": __version__, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "data": self.data.spec,
                      "space": self.space.format(), "target": target, "seed": self.seed, "paths": cfg.paths,
                      "merge": cfg.merge, "supernet": cfg.supernet, "loss": cfg.loss, "epochs": cfg.epochs,
                      "path_batches": cfg.path_batches, "update": cfg.update, "arch_every": cfg.arch_every,
                      "commit": git_commit()}
        doc = {
            "arch": arch.format(),
            "input_size": self.input_size,
            "num_classes": self.data.num_classes,
            "predicted_latency_ms": predicted,
            "measured_latency_ms": measured,
            "budget_ms": self.budget_ms,
            "argmax_latency_ms": argmax_ms,
            "layers": layer_recs,
            "fit_changes": changes,
            "provenance": provenance,
        }
        atomic_write_text(self.out / "arch.yaml", yaml.safe_dump(doc, sort_keys=False))
        atomic_write_json(self.out / "alpha_history.json", {"names": self.names, "epochs": [h["probs"] for h in history],
                                                            "candidates": {n: [str(x) for x in c.candidates] for n, c in net.named_choices()}})
        save_supernet(self.out / "supernet.pt", net, picks, self.input_size, self.data)
        steps = self.steps_per_epoch * cfg.epochs
        arch_steps = sum(h.get("arch_steps") or 0 for h in history)
        spreads = [h["beta_spread"] for h in history if h.get("beta_spread") is not None]
        last = history[-1] if history else {}
        result = {
            "predicted_latency_ms": predicted,
            "measured_latency_ms": measured,
            "budget_ms": self.budget_ms,
            "budget_frac": self.budget_frac,
            # the width multiplier the space was scaled by to bring the budget inside its range (1: as given)
            "width_mult": getattr(self.budget, "width_mult", 1.0),
            "min_ms": float(self.latency.min_ms),
            "max_ms": float(self.latency.max_ms),
            "lambda": self.loss.lam,
            "steps": steps,
            # distinct images per step: every path's shard, or one batch all paths share (cut over a path's ranks)
            "images_seen": steps * cfg.batch_size * (self.n_shards // cfg.paths if cfg.path_batches == "shared" else self.n_shards),
            "arch_steps": arch_steps,
            # images through a forward and backward pass, all paths and ranks: the search's compute
            "compute_images": (steps + (0 if cfg.update == "joint" else arch_steps)) * cfg.batch_size * self.n_shards,
            "wall_s": wall,
            "arch": arch.format(),
            "argmax_arch": self.space.with_picks(picks0, branches=False).format(),
            "argmax_latency_ms": argmax_ms,
            "latency_ms_argmax": argmax_ms,
            "argmax_in_band": self._in_band(argmax_ms),
            # settle: the final step's argmax network was outside the band, alpha is the final epoch's last in-band step's
            "argmax_settled_from": settled_from,
            "last_step_argmax_latency_ms": last_ms,
            "band_low": cfg.band_low,
            "lambda_low": self.loss.lam_low,
            "fit_changes": changes,
            "skipped_steps": self.guard.counts(),
            "n_fit_changes": len(changes),
            "beta_spread": sum(spreads) / len(spreads) if spreads else None,
            "update": cfg.update,
            "arch_every": cfg.arch_every,
            "path_batches": cfg.path_batches,
            "supernet": cfg.supernet,
            "val_top1_argmax": last.get("val_top1"),
            **({"val_map_argmax": last.get("val_map")} if self.data.multilabel else {}),
            "target": target,
            "paths": cfg.paths,
            "merge": cfg.merge,
            "history": [{k: v for k, v in h.items() if k != "probs"} for h in history],
        }
        atomic_write_json(self.out / "search.json", result)
        return result


def _cpu(obj):
    """``obj`` with every tensor on the CPU (a checkpoint that loads anywhere)."""
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


class _Both:
    """Two optimizers stepped as one (the joint update's SGD on the weights and Adam on alpha; GradScaler accepts it)."""

    def __init__(self, *opts: torch.optim.Optimizer):
        self.opts = opts

    @property
    def param_groups(self) -> list:
        return [g for o in self.opts for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.opts:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.opts:
            o.step()


def _iters(loaders: list, make) -> list:
    """An iterator per path; paths that share a loader object (``path_batches = shared``) share one iterator."""
    made: dict[int, object] = {}
    for l in loaders:
        if id(l) not in made:
            made[id(l)] = make(l)
    return [made[id(l)] for l in loaders]


def _next(iters: list) -> list:
    """The step's batch of every path: one ``next`` per distinct iterator, so shared paths get the same batch."""
    got: dict[int, object] = {}
    out = []
    for it in iters:
        if id(it) not in got:
            got[id(it)] = next(it)
        out.append(got[id(it)])
    return out


def _cycle(loader, epoch: int):
    """Endless batches of the (smaller) architecture split, reshuffled on each pass."""
    k = 0
    while True:
        loader.set_epoch(epoch * 1000 + k)
        n = 0
        for _, batch in zip(range(loader.rounds), loader):  # as many batches on every rank, so the ranks stay in step
            n += 1
            yield batch
        if n == 0:  # never spin on an empty split
            raise DataError("the architecture split gives no batch; use a smaller --batch-size or a larger --weight-split complement")
        k += 1


def search(cfg: SearchConfig, out, *, data: DataSet, latency, budget: Budget, space: ArchSpec,
           timing: Timing | None = None, seed: int = 0, progress: bool | None = None, tensorboard: bool = True,
           resume: bool = False, on_epoch_end: Optional[Callable[[int, dict], None]] = None, dist=None,
           hardware: Hardware | None = None) -> dict:
    """Run Algorithm 1 on ``data`` under ``budget`` and write the outputs in ``out`` (see the module docstring).

    Args:
        cfg: the search's settings.
        out: output folder (arch.yaml, search.json, supernet.pt, alpha_history.json, tb/, checkpoint.pt).
        data: the loaded data set (the search splits its training split).
        latency: the latency model of ``space`` on the target
            (:class:`~ednas.latency.LatencyModel`, or any object with its
            ``expected``/``predict``/``min_ms``/``max_ms`` interface).
        budget: from ``latency.budget(ms=..., frac=...)``.
        space: the search space.
        timing: how the derived network is timed on the host (default: the table's threads).
        seed: the run's seed (:mod:`ednas.seeds`).
        resume: continue from ``out/checkpoint.pt`` (written with the same settings).
        dist: a :class:`ednas.dist.DistInfo` under ``torchrun``: the world is
            ``cfg.paths`` paths x D data-parallel processes each; rank 0
            writes the outputs and the checkpoint (every path) and returns
            the result, the others return ``{}``.
        hardware: the device and mixed precision (:mod:`ednas.device`;
            default: the CPU, fp32).
    """
    return _Search(cfg, out, data, latency, budget, space, timing, seed, progress, tensorboard, dist, hardware).run(resume, on_epoch_end)
