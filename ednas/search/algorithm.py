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
path)``, :mod:`ednas.seeds`).  At the end the argmax architecture is derived, fitted to the budget
(:mod:`ednas.search.derive`), measured on the host where the target is the
host, and written out.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
import yaml

from ednas import __version__
from ednas._run import git_commit, tb_writer
from ednas._run import progress as progress_bar
from ednas.arch.spec import ArchSpec
from ednas.checkpoint import resume_state, save_checkpoint
from ednas.config import config_dict
from ednas.data import DataSet, arch_split, make_loader
from ednas.errors import ConfigError, DataError, LatencyTableError, TrainingError
from ednas.io import atomic_write_json, atomic_write_text
from ednas.latency.measure import measure_latency
from ednas.latency.model import Budget
from ednas.nn.build import SUPERNET_KINDS, build_model, build_supernet
from ednas.nn.files import save_supernet
from ednas.runtime import Timing
from ednas.search.derive import fit_budget, layer_probs
from ednas.search.feedback import MERGE_KINDS, FeedbackBlock
from ednas.search.gumbel import sample_choices, tau_at
from ednas.search.loss import LOSS_KINDS, LatencyLoss
from ednas.seeds import derive
from ednas.train.metrics import evaluate
from ednas.train.recipe import Recipe, make_optimizer
from ednas.train.schedule import lr_at

__all__ = ["SearchConfig", "search"]

log = logging.getLogger(__name__)

FIT_MODES = ("none", "repair", "both")
PATH_BATCHES = ("dealt", "shared")
UPDATES = ("alternate", "joint")
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
    #: alternate (weight step on the weight split, alpha step on the architecture split: Algorithm 1) or joint (weights and alpha in one step on one batch of the whole training split: single level)
    update: str = "alternate"
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
        if not 0.0 < self.fit_low <= 1.0:
            raise ConfigError(f"{name('fit_low')} must be in (0, 1], got {self.fit_low}")


def _settings(cfg: SearchConfig, space: ArchSpec, data: DataSet, latency, budget: Budget, seed: int) -> dict:
    """What decides the search's trajectory: a checkpoint resumes only with the same."""
    d = {k: v for k, v in config_dict(cfg).items() if k not in ("fit", "fit_low", "measure", "space")}
    return {**d, "space": space.format(), "data": data.spec, "input_size": data.input_size, "seed": seed,
            "target": getattr(getattr(latency, "table", None), "target", type(latency).__name__), "budget_ms": round(budget.ms, 9)}


def _entropy(p: torch.Tensor) -> float:
    p = p[p > 0]
    return float(-(p * p.log()).sum())


class _Search:
    def __init__(self, cfg: SearchConfig, out, data: DataSet, latency, budget: Budget, space: ArchSpec,
                 timing: Timing | None, seed: int, progress: bool | None, tensorboard: bool, dist=None):
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

        # under torchrun each rank holds one path; otherwise this process holds all P
        self.dist = dist
        P = cfg.paths
        if dist is not None and dist.world != P:
            raise ConfigError(f"--paths {P} under torchrun with {dist.world} processes: start one process per path "
                              f"(torchrun --nproc_per_node={P})")
        self.local = [dist.rank] if dist is not None else list(range(P))
        self.main = dist is None or dist.rank == 0

        torch.manual_seed(derive(seed, "init"))
        base = build_supernet(self.space, self.data.num_classes, kind=cfg.supernet)
        self._apply_masks(base)
        self.paths = [base] + [copy.deepcopy(base) for _ in range(len(self.local) - 1)]
        self.paths = [p.to(memory_format=torch.channels_last) for p in self.paths]
        self.opt_w = [make_optimizer(p.weight_parameters(), cfg.lr, cfg.momentum, cfg.weight_decay) for p in self.paths]
        self.opt_a = [torch.optim.Adam(p.arch_parameters(), lr=cfg.arch_lr, betas=(0.5, 0.999)) for p in self.paths]
        self.feedback = FeedbackBlock(self.paths, cfg.merge, [[ow, oa] for ow, oa in zip(self.opt_w, self.opt_a)],
                                      group=dist.group if dist is not None else None)

        w_idx, a_idx = arch_split(self.data.labels("train"), cfg.weight_split, seed=derive(seed, "arch-split"))
        if cfg.update == "joint":  # single level: one batch of the whole training split trains both
            w_idx = a_idx = None
        workers = getattr(data, "workers", 2)
        w_all, a_all = self._loaders(w_idx, "weight-batches", P, workers), self._loaders(a_idx, "arch-batches", P, workers)
        self.w_loaders = [w_all[p] for p in self.local]
        self.a_loaders = [a_all[p] for p in self.local]
        self.val_loader = make_loader(self.data, "val", 256, False, workers=workers)
        self.steps_per_epoch = min(len(l) for l in w_all)  # the same on every rank
        if self.steps_per_epoch < 1 or min(len(l) for l in a_all) < 1:
            raise DataError(f"the data set is too small for {P} path(s) with batch size {cfg.batch_size}: "
                            f"{w_all[0].num_images} weight-split and {a_all[0].num_images} architecture-split images")
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.names = [n for n, _ in base.named_choices()]
        self.settled: dict | None = None  # alpha of the final epoch's last in-band step (settle)

    def _loaders(self, indices, purpose: str, P: int, workers: int) -> list:
        """One loader per path: ``dealt`` shards the epoch's batches over the paths, ``shared`` gives all one loader."""
        cfg = self.cfg
        if cfg.path_batches == "shared":  # the same object for every path: one batch per step, fetched once
            return [make_loader(self.data, "train", cfg.batch_size, True, indices, derive(self.seed, purpose), workers)] * P
        return [make_loader(self.data, "train", cfg.batch_size, True, indices, derive(self.seed, purpose), workers, shard=(p, P))
                for p in range(P)]

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
        """The task loss of both steps (the CE term of eq. 13)."""
        return F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)

    def _weight_step(self, p: int, net, x, y, lr: float, tau: float, gen: torch.Generator, where: str) -> float:
        """One SGD step of path ``p``'s weights on its batch, under freshly sampled g (eq. 15). Returns the loss."""
        net.train()
        with torch.no_grad():
            sample_choices(net.choices(), tau, self.cfg.hard, gen)
        ce = self._criterion(net(x), y)
        if not torch.isfinite(ce):
            raise TrainingError(f"search diverged at {where} (path {p}); lower the learning rate (now {self.cfg.lr})")
        opt = self.opt_w[p]
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        ce.backward()
        opt.step()
        return float(ce.detach())

    def _arch_step(self, p: int, net, x, y, tau: float, gen: torch.Generator) -> tuple[float, float]:
        """One Adam step of path ``p``'s alpha (eq. 10, first order; weights frozen). Returns (CE, E[LAT])."""
        sample_choices(net.choices(), tau, self.cfg.hard, gen)
        weights = net.weight_parameters()
        for w in weights:
            w.requires_grad_(False)
        try:
            ce = self._criterion(net(x), y)
            lat = self.latency.expected(net)
            loss = self.loss(ce, lat)
            self.opt_a[p].zero_grad(set_to_none=True)
            loss.backward()
            self.opt_a[p].step()
        finally:
            for w in weights:
                w.requires_grad_(True)
        return float(ce.detach()), float(lat.detach())

    def _update_lambda(self) -> None:
        """Dual ascent on the predicted latency of the paths' current argmax networks (one lambda for all ranks)."""
        lat_now = [self.latency.predict(net.picks()) for net in self.paths]
        mean_lat = sum(lat_now) / len(lat_now)
        if self.dist is not None:
            mean_lat = self.dist.all_mean(mean_lat)
        self.loss.update(mean_lat)

    def _joint_step(self, p: int, net, x, y, lr: float, tau: float, gen: torch.Generator, where: str) -> tuple[float, float]:
        """Single-level update: one forward and backward on one batch moves path ``p``'s weights (SGD) and alpha (Adam).

        The loss is the architecture step's (``CE + lambda * E[LAT]``, eq. 13 or a budget form), its
        gradient goes to both; as in Single-Path NAS there is no separate architecture split.
        Returns (CE, E[LAT]).
        """
        net.train()
        sample_choices(net.choices(), tau, self.cfg.hard, gen)
        ce = self._criterion(net(x), y)
        if not torch.isfinite(ce):
            raise TrainingError(f"search diverged at {where} (path {p}); lower the learning rate (now {self.cfg.lr})")
        lat = self.latency.expected(net)
        loss = self.loss(ce, lat)
        opt_w, opt_a = self.opt_w[p], self.opt_a[p]
        for g in opt_w.param_groups:
            g["lr"] = lr
        opt_w.zero_grad(set_to_none=True)
        opt_a.zero_grad(set_to_none=True)
        loss.backward()
        opt_w.step()
        opt_a.step()
        return float(ce.detach()), float(lat.detach())

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
        net = self.paths[0]
        if not self._settles() or self.settled is None or self._in_band(self.latency.predict(net.picks())):
            return None
        with torch.no_grad():
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
        gens = [torch.Generator().manual_seed(self._gen_seed(epoch, p)) for p in self.local]
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
                sums["ce_a"] += sum(losses) / len(losses)
                sums["lat"] += sum(lat for _, lat in steps) / len(steps)
                sums["na"] += 1
                self._update_lambda()
                self._note_in_band(epoch, i)
            else:
                losses = [self._weight_step(p, net, *batches[p], lr, tau, gens[p], where) for p, net in enumerate(self.paths)]
                if self._arch_now(epoch, i):
                    for p, (net, batch) in enumerate(zip(self.paths, _next(a_iters))):
                        ce_a, lat = self._arch_step(p, net, *batch, tau, gens[p])
                        sums["ce_a"] += ce_a / len(self.paths)
                        sums["lat"] += lat / len(self.paths)
                    sums["na"] += 1
                    self._update_lambda()
                    self._note_in_band(epoch, i)
            sums["ce_w"] += sum(losses) / len(losses)
            sums["n"] += 1
            b = self.feedback(losses) if cfg.paths > 1 else None
            if b is not None:
                sums["beta_spread"] += float(b.max() - b.min())
                sums["nb"] += 1
            if writer is not None:
                writer.add_scalar("search/ce_weight_step", sums["ce_w"] / sums["n"], step)
                writer.add_scalar("search/lr", lr, step)
                if search_alpha:
                    writer.add_scalar("search/E_lat_ms", sums["lat"] / max(sums["na"], 1), step)
                    writer.add_scalar("search/lambda", self.loss.lam, step)
                    writer.add_scalar("search/lambda_low", self.loss.lam_low, step)
                if b is not None:
                    writer.add_scalar("search/beta0", float(b[0]), step)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(ce=f"{losses[0]:.3f}", lam=f"{self.loss.net_lam:.3g}", tau=f"{tau:.2f}")
        return {"tau": tau, "ce_weight": sums["ce_w"] / max(sums["n"], 1),
                "ce_arch": sums["ce_a"] / sums["na"] if sums["na"] else None,
                "E_lat_ms_sampled": sums["lat"] / sums["na"] if sums["na"] else None,
                "arch_steps": sums["na"], "beta_spread": sums["beta_spread"] / sums["nb"] if sums["nb"] else None}

    @torch.no_grad()
    def _epoch_eval(self, epoch: int, rec: dict, writer) -> dict:
        net = self.paths[0]
        picks = net.picks()
        for c in net.choices():
            c.g = None
        exp_lat = float(self.latency.expected(net))
        for c in net.choices():
            c.fixed = c.argmax()
        val = evaluate(net, self.val_loader)
        for c in net.choices():
            c.fixed = None
        probs = {n: [round(float(v), 5) for v in c.probs()] for n, c in net.named_choices()}
        ent = {n: _entropy(c.probs()) for n, c in net.named_choices()}
        rec.update(epoch=epoch + 1, val_top1=val["top1"], val_loss=val["loss"], E_lat_ms=exp_lat,
                   argmax_lat_ms=self.latency.predict(picks), lam=self.loss.lam, lam_low=self.loss.lam_low, probs=probs,
                   mean_entropy=sum(ent.values()) / max(len(ent), 1))
        if writer is not None:
            writer.add_scalar("search/val_top1_argmax", val["top1"], epoch + 1)
            writer.add_scalar("search/E_lat_softmax_ms", exp_lat, epoch + 1)
            writer.add_scalar("search/argmax_lat_ms", rec["argmax_lat_ms"], epoch + 1)
            writer.add_scalar("search/tau", rec["tau"], epoch + 1)
            for n, e in ent.items():
                writer.add_scalar(f"entropy/{n}", e, epoch + 1)
            writer.flush()
        return rec

    # -- state ---------------------------------------------------------------
    def state(self, epoch: int, history: list, wall: float) -> dict:
        return {
            "paths": [p.state_dict() for p in self.paths],
            "opt_w": [o.state_dict() for o in self.opt_w],
            "opt_a": [o.state_dict() for o in self.opt_a],
            "loss": self.loss.state_dict(),
            "epoch": epoch,
            "history": history,
            "wall_s": wall,
            "settled": self.settled,
        }

    def load(self, ck: dict) -> tuple[int, list, float]:
        self.settled = ck.get("settled")
        for p, sd in zip(self.paths, ck["paths"]):
            p.load_state_dict(sd)
        for o, sd in zip(self.opt_w, ck["opt_w"]):
            o.load_state_dict(sd)
        for o, sd in zip(self.opt_a, ck["opt_a"]):
            o.load_state_dict(sd)
        self.loss.load_state_dict(ck["loss"])
        return ck["epoch"], ck["history"], ck["wall_s"]

    # -- the whole search ------------------------------------------------------
    def run(self, resume: bool = False, on_epoch_end: Optional[Callable[[int, dict], None]] = None) -> dict:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        ckpt = self.out / ("checkpoint.pt" if self.main else f"checkpoint.rank{self.dist.rank}.pt")
        start, history, wall_before = 0, [], 0.0
        ck = resume_state(ckpt, self.settings) if resume else None
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
                log.debug("search epoch %d/%d: val top-1 of the argmax net %.2f %%, argmax %.4g ms, lambda %.3g",
                          epoch + 1, cfg.epochs, rec["val_top1"], rec["argmax_lat_ms"], rec["lam"])
            history.append(rec)
            save_checkpoint(ckpt, self.state(epoch + 1, history, wall_before + time.time() - t0), self.settings)
            if self.dist is not None:
                self.dist.barrier()  # every rank's checkpoint of this epoch is on disk
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
            measured = measure_latency(model, self.input_size, timing=self.timing)
        layer_recs = []
        for i, (l, p, p0) in enumerate(zip(layers, picks, picks0)):
            layer_recs.append({
                "index": i, "stage": l.stage, "block": l.block, "stride": l.stride, "cin": l.cin, "cout": l.spec.out,
                "kernel": p["kernel"], "expansion": p["expansion"], "skip": p["skip"],
                "argmax": p0, "probs": probs[i], "changed_by_fit": p != p0,
            })
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
            "min_ms": float(self.latency.min_ms),
            "max_ms": float(self.latency.max_ms),
            "lambda": self.loss.lam,
            "steps": steps,
            "images_seen": steps * cfg.batch_size * (1 if cfg.path_batches == "shared" else cfg.paths),
            "arch_steps": arch_steps,
            # images through a forward and backward pass, all paths: the search's compute
            "compute_images": (steps + (0 if cfg.update == "joint" else arch_steps)) * cfg.batch_size * cfg.paths,
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
            "n_fit_changes": len(changes),
            "beta_spread": sum(spreads) / len(spreads) if spreads else None,
            "update": cfg.update,
            "arch_every": cfg.arch_every,
            "path_batches": cfg.path_batches,
            "supernet": cfg.supernet,
            "val_top1_argmax": last.get("val_top1"),
            "target": target,
            "paths": cfg.paths,
            "merge": cfg.merge,
            "history": [{k: v for k, v in h.items() if k != "probs"} for h in history],
        }
        atomic_write_json(self.out / "search.json", result)
        return result


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
        for batch in loader:
            n += 1
            yield batch
        if n == 0:  # never spin on an empty split
            raise DataError("the architecture split gives no batch; use a smaller --batch-size or a larger --weight-split complement")
        k += 1


def search(cfg: SearchConfig, out, *, data: DataSet, latency, budget: Budget, space: ArchSpec,
           timing: Timing | None = None, seed: int = 0, progress: bool | None = None, tensorboard: bool = True,
           resume: bool = False, on_epoch_end: Optional[Callable[[int, dict], None]] = None, dist=None) -> dict:
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
        dist: a :class:`ednas.dist.DistInfo` when each process holds one path
            (under ``torchrun``); rank 0 writes the outputs and returns the
            result, the others return ``{}``.
    """
    return _Search(cfg, out, data, latency, budget, space, timing, seed, progress, tensorboard, dist).run(resume, on_epoch_end)
