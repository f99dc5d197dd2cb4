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
   ascent on lambda (``auto``);
3. the feedback merge of the paths, weighted by their weight-step losses.

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
from ednas.train.task import task_loss

__all__ = ["SearchConfig", "search"]

log = logging.getLogger(__name__)

FIT_MODES = ("none", "repair", "both")


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
    #: feedback paths P (1: plain single-path search)
    paths: int = 2
    #: what the feedback block merges: kernels, kernels+alpha, all
    merge: str = "all"
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
        if self.lam < 0 or self.lam_lr < 0:
            raise ConfigError(f"{name('lam')} and {name('lam_lr')} must be >= 0, got {self.lam} and {self.lam_lr}")
        if self.paths < 1:
            raise ConfigError(f"{name('paths')} must be >= 1, got {self.paths}")
        for key, value, kinds in (("merge", self.merge, MERGE_KINDS), ("loss", self.loss, LOSS_KINDS),
                                  ("supernet", self.supernet, SUPERNET_KINDS), ("fit", self.fit, FIT_MODES)):
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
        self.loss = LatencyLoss(cfg.loss, cfg.lam, self.budget_ms, cfg.lam_lr)
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
        workers = getattr(data, "workers", 2)
        w_all = [make_loader(self.data, "train", cfg.batch_size, True, w_idx, derive(seed, "weight-batches"), workers, shard=(p, P)) for p in range(P)]
        a_all = [make_loader(self.data, "train", cfg.batch_size, True, a_idx, derive(seed, "arch-batches"), workers, shard=(p, P)) for p in range(P)]
        self.w_loaders = [w_all[p] for p in self.local]
        self.a_loaders = [a_all[p] for p in self.local]
        self.val_loader = make_loader(self.data, "val", 256, False, workers=workers)
        self.steps_per_epoch = min(len(l) for l in w_all)  # the same on every rank
        if self.steps_per_epoch < 1 or min(len(l) for l in a_all) < 1:
            raise DataError(f"the data set is too small for {P} path(s) with batch size {cfg.batch_size}: "
                            f"{len(w_idx)} weight-split and {len(a_idx)} architecture-split images")
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.names = [n for n, _ in base.named_choices()]

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

    def _epoch(self, epoch: int, writer, bar) -> dict:
        cfg = self.cfg
        tau = tau_at(epoch, cfg.epochs, cfg.tau0, cfg.tau_min)
        search_alpha = epoch >= cfg.arch_warmup_epochs
        gens = [torch.Generator().manual_seed(self._gen_seed(epoch, p)) for p in self.local]
        torch.manual_seed(derive(self.seed, "epoch", epoch))
        for l in self.w_loaders + self.a_loaders:
            l.set_epoch(epoch)
        w_iters = [iter(l) for l in self.w_loaders]
        a_iters = [_cycle(l, epoch) for l in self.a_loaders]
        warmup = int(round(cfg.lr_warmup_epochs * self.steps_per_epoch))
        sums = {"ce_w": 0.0, "ce_a": 0.0, "lat": 0.0, "n": 0, "na": 0}
        for i in range(self.steps_per_epoch):
            step = epoch * self.steps_per_epoch + i
            lr = lr_at(step, self.total_steps, warmup, cfg.lr)  # linear warm-up, then eq. 16
            where = f"epoch {epoch + 1} step {i}"
            losses = [self._weight_step(p, net, *next(w_iters[p]), lr, tau, gens[p], where) for p, net in enumerate(self.paths)]
            sums["ce_w"] += sum(losses) / len(losses)
            sums["n"] += 1
            if search_alpha:
                for p, net in enumerate(self.paths):
                    ce_a, lat = self._arch_step(p, net, *next(a_iters[p]), tau, gens[p])
                    sums["ce_a"] += ce_a / len(self.paths)
                    sums["lat"] += lat / len(self.paths)
                sums["na"] += 1
                self._update_lambda()
            b = self.feedback(losses) if cfg.paths > 1 else None
            if writer is not None:
                writer.add_scalar("search/ce_weight_step", sums["ce_w"] / sums["n"], step)
                writer.add_scalar("search/lr", lr, step)
                if search_alpha:
                    writer.add_scalar("search/E_lat_ms", sums["lat"] / sums["na"], step)
                    writer.add_scalar("search/lambda", self.loss.lam, step)
                if b is not None:
                    writer.add_scalar("search/beta0", float(b[0]), step)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(ce=f"{losses[0]:.3f}", lam=f"{self.loss.lam:.3g}", tau=f"{tau:.2f}")
        return {"tau": tau, "ce_weight": sums["ce_w"] / max(sums["n"], 1),
                "ce_arch": sums["ce_a"] / sums["na"] if sums["na"] else None,
                "E_lat_ms_sampled": sums["lat"] / sums["na"] if sums["na"] else None}

    @torch.no_grad()
    def _epoch_eval(self, epoch: int, rec: dict, writer) -> dict:
        net = self.paths[0]
        picks = net.picks()
        for c in net.choices():
            c.g = None
        exp_lat = float(self.latency.expected(net))
        for c in net.choices():
            c.fixed = c.argmax()
        val = evaluate(net, self.val_loader, self.data.multilabel, self.data.classes)
        for c in net.choices():
            c.fixed = None
        probs = {n: [round(float(v), 5) for v in c.probs()] for n, c in net.named_choices()}
        ent = {n: _entropy(c.probs()) for n, c in net.named_choices()}
        if self.data.multilabel:
            rec["val_map"] = val["map"]
        rec.update(epoch=epoch + 1, val_top1=val["top1"], val_loss=val["loss"], E_lat_ms=exp_lat,
                   argmax_lat_ms=self.latency.predict(picks), lam=self.loss.lam, probs=probs,
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
    def state(self, epoch: int, history: list, wall: float) -> dict:
        return {
            "paths": [p.state_dict() for p in self.paths],
            "opt_w": [o.state_dict() for o in self.opt_w],
            "opt_a": [o.state_dict() for o in self.opt_a],
            "loss": self.loss.state_dict(),
            "epoch": epoch,
            "history": history,
            "wall_s": wall,
        }

    def load(self, ck: dict) -> tuple[int, list, float]:
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
                log.debug("search epoch %d/%d: val %s of the argmax net %s, argmax %.4g ms, lambda %.3g", epoch + 1, cfg.epochs,
                          "mAP" if "val_map" in rec else "top-1", rec.get("val_map", rec["val_top1"]), rec["argmax_lat_ms"], rec["lam"])
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
        picks0 = net.picks()
        probs = layer_probs(net)
        layers = list(self.space.layers())
        allowed = self.latency.allowed if getattr(self.latency, "policy", "") == "mask" else None
        picks, changes = fit_budget(picks0, layers, probs, self.latency, self.budget_ms, cfg.fit, cfg.fit_low, allowed)
        arch = self.space.with_picks(picks, branches=False)
        predicted = self.latency.predict(picks)
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
                      "commit": git_commit()}
        doc = {
            "arch": arch.format(),
            "input_size": self.input_size,
            "num_classes": self.data.num_classes,
            "predicted_latency_ms": predicted,
            "measured_latency_ms": measured,
            "budget_ms": self.budget_ms,
            "layers": layer_recs,
            "fit_changes": changes,
            "provenance": provenance,
        }
        atomic_write_text(self.out / "arch.yaml", yaml.safe_dump(doc, sort_keys=False))
        atomic_write_json(self.out / "alpha_history.json", {"names": self.names, "epochs": [h["probs"] for h in history],
                                                            "candidates": {n: [str(x) for x in c.candidates] for n, c in net.named_choices()}})
        save_supernet(self.out / "supernet.pt", net, picks, self.input_size, self.data)
        steps = self.steps_per_epoch * cfg.epochs
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
            "images_seen": steps * cfg.batch_size * cfg.paths,
            "wall_s": wall,
            "arch": arch.format(),
            "argmax_arch": self.space.with_picks(picks0, branches=False).format(),
            "argmax_latency_ms": self.latency.predict(picks0),
            "fit_changes": changes,
            "val_top1_argmax": last.get("val_top1"),
            **({"val_map_argmax": last.get("val_map")} if self.data.multilabel else {}),
            "target": target,
            "paths": cfg.paths,
            "merge": cfg.merge,
            "history": [{k: v for k, v in h.items() if k != "probs"} for h in history],
        }
        atomic_write_json(self.out / "search.json", result)
        return result


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
