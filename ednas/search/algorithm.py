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
checkpoint is written atomically; ``--resume`` continues from it to the same
result as an uninterrupted run (every random draw comes from ``(seed, epoch,
path)``).  At the end the argmax architecture is derived, fitted to the budget
(:mod:`ednas.search.derive`), measured on the host where the target is the
host, and written out.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from ednas import __version__
from ednas._perf import set_threads, tune_malloc
from ednas._run import git_commit, progress, tb_writer
from ednas.arch.spec import ArchSpec, load_arch
from ednas.config import config_dict, save_config
from ednas.data import arch_split, load_data, make_loader
from ednas.errors import ArchError, CheckpointError, ConfigError, DataError, LatencyTableError, TrainingError
from ednas.io import atomic_write_json, atomic_write_text
from ednas.nn.build import SUPERNET_KINDS, build_supernet
from ednas.search.derive import fit_budget, layer_probs
from ednas.search.feedback import MERGE_KINDS, FeedbackBlock
from ednas.search.gumbel import sample_choices, tau_at
from ednas.search.loss import LOSS_KINDS, LatencyLoss
from ednas.train.checkpoint import load_checkpoint, save_checkpoint
from ednas.train.metrics import evaluate
from ednas.train.schedule import lr_at
from ednas.train.trainer import make_optimizer

__all__ = ["SearchConfig", "search", "search_cli", "resolve_budget"]


@dataclass
class SearchConfig:
    #: output directory (arch.yaml, search.json, supernet.pt, alpha_history.json, tb/)
    out: str
    #: the search space: preset, arch string with choices, or file
    space: str = "cifar"
    #: data set: digits, cifar10:DIR, cifar100:DIR, folder:DIR, synthetic
    data: str = "digits"
    #: latency target: host-ort, host-torch, tda2x, tda4vm, roofline:FILE.yaml, file:TABLE.json, or a lut.json
    target: str = "host-ort"
    #: latency budget in ms
    budget_ms: Optional[float] = None
    #: budget as a fraction of the way from the space's smallest (0) to largest (1) network (default 0.5)
    budget_frac: Optional[float] = None
    #: search epochs (warm-up included)
    epochs: int = 30
    #: epochs that train weights only
    warmup_epochs: int = 5
    #: images per batch (per path)
    batch_size: int = 64
    #: fraction of the training set used for weights (the rest trains alpha)
    weight_split: float = 0.8
    #: peak learning rate of the weights (SGD, eq. 16)
    lr: float = 0.1
    #: SGD momentum (Nesterov)
    momentum: float = 0.9
    #: weight decay of the weights (not BN/biases)
    weight_decay: float = 5e-5
    #: label smoothing of the cross-entropy
    label_smoothing: float = 0.1
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
    #: measure the derived network end to end when the target is the host
    measure: bool = True
    #: input size for folder data
    input_size: Optional[int] = None
    #: directory for cached latency tables (default ~/.cache/ednas/lut)
    lut_cache: Optional[str] = None
    #: random seed
    seed: int = 0
    #: intra-op threads (0: all cores)
    threads: int = 0
    #: data loader workers (folder data)
    workers: int = 2
    #: continue from OUT/checkpoint.pt
    resume: bool = False
    #: show a progress bar
    progress: bool = True
    #: write TensorBoard scalars to OUT/tb
    tensorboard: bool = True


_RESUME_KEYS = ("space", "data", "target", "budget_ms", "budget_frac", "epochs", "warmup_epochs", "batch_size",
                "weight_split", "lr", "momentum", "weight_decay", "label_smoothing", "arch_lr", "tau0", "tau_min",
                "hard", "loss", "lam", "lam_lr", "paths", "merge", "supernet", "seed", "input_size")


def resolve_budget(cfg, latency) -> tuple[float, float | None]:
    """The budget in ms (and the fraction it sits at), checked against the space's range."""
    lo, hi = float(latency.min_ms), float(latency.max_ms)
    rng = f"[{lo:.4g}, {hi:.4g}] ms (smallest to largest network of the space on this target)"
    if cfg.budget_ms is not None and cfg.budget_frac is not None:
        raise ConfigError("give --budget-ms or --budget-frac, not both")
    if cfg.budget_ms is not None:
        b = float(cfg.budget_ms)
        if not lo <= b <= hi:
            raise ConfigError(f"--budget-ms {b:.4g} is outside the achievable range {rng}")
        return b, (b - lo) / (hi - lo) if hi > lo else None
    frac = 0.5 if cfg.budget_frac is None else float(cfg.budget_frac)
    if not 0.0 <= frac <= 1.0:
        raise ConfigError(f"--budget-frac {frac} must be in [0, 1]; 0 = smallest network ({lo:.4g} ms), 1 = largest ({hi:.4g} ms)")
    return lo + frac * (hi - lo), frac


def latency_model(target: str, space: ArchSpec, input_size: int, num_classes: int, cache: str | None = None, progress: bool = True):
    """The :class:`~ednas.latency.LatencyModel` of a target name or table file.

    A measured table (``host-ort``, ``host-torch``) is cached under ``cache``
    (default ``~/.cache/ednas/lut``), keyed by target, space, input size and
    classes, so a second search on the same space reuses it; a build that was
    interrupted resumes from the cached file.
    """
    import hashlib

    from ednas.latency import LatencyModel, build_table, load_table

    if target.endswith(".json") and not target.startswith("file:"):
        if not Path(target).is_file():
            raise LatencyTableError(f"latency table '{target}' does not exist")
        table = load_table(target)
    else:
        out = None
        if target in ("host-ort", "host-torch"):
            root = Path(cache).expanduser() if cache else Path.home() / ".cache" / "ednas" / "lut"
            key = hashlib.sha1(f"{target}|{space.format()}|{input_size}|{num_classes}".encode()).hexdigest()[:12]
            out = root / f"{target}-{input_size}-{key}.json"
        table = build_table(target, space, input_size, num_classes, out=out, progress=progress)
    return LatencyModel(space, input_size, num_classes, table)


def table_threads(latency) -> int:
    """The thread count a measured table (or a latency model's table) was built with; 1 if it does not say."""
    table = getattr(latency, "table", latency)
    meta = getattr(table, "meta", None) or {}
    return int((meta.get("measurement") or {}).get("threads") or meta.get("threads") or getattr(latency, "threads", 1) or 1)


def _is_host(latency) -> bool:
    return getattr(getattr(latency, "table", None), "target", None) in ("host-ort", "host-torch")


def _entropy(p: torch.Tensor) -> float:
    p = p[p > 0]
    return float(-(p * p.log()).sum())


class _Search:
    def __init__(self, cfg: SearchConfig, data=None, latency=None, dist=None):
        self.cfg = cfg
        if cfg.paths < 1:
            raise ConfigError(f"--paths must be >= 1, got {cfg.paths}")
        if cfg.merge not in MERGE_KINDS:
            raise ConfigError(f"unknown --merge '{cfg.merge}'; expected one of {', '.join(MERGE_KINDS)}")
        if cfg.loss not in LOSS_KINDS:
            raise ConfigError(f"unknown --loss '{cfg.loss}'; expected one of {', '.join(LOSS_KINDS)}")
        if cfg.supernet not in SUPERNET_KINDS:
            raise ConfigError(f"unknown --supernet '{cfg.supernet}'; expected one of {', '.join(SUPERNET_KINDS)}")
        if not 0 <= cfg.warmup_epochs < cfg.epochs:
            raise ConfigError(f"--warmup-epochs must be in [0, epochs) = [0, {cfg.epochs}), got {cfg.warmup_epochs}")
        if cfg.tau0 <= 0 or cfg.tau_min <= 0:
            raise ConfigError("--tau0 and --tau-min must be > 0")
        self.out = Path(cfg.out)
        self.data = data or load_data(cfg.data, seed=cfg.seed, input_size=cfg.input_size)
        self.space, _ = load_arch(cfg.space)
        if self.space.is_fixed:
            raise ArchError(f"--space '{cfg.space}' has no choices to search (e.g. 'k3.5.7', 'e3.6', 'skip')")
        self.input_size = self.data.input_size
        self.latency = latency or latency_model(cfg.target, self.space, self.input_size, self.data.num_classes,
                                                cfg.lut_cache, cfg.progress)
        self.budget_ms, self.budget_frac = resolve_budget(cfg, self.latency)
        self.loss = LatencyLoss(cfg.loss, cfg.lam, self.budget_ms, cfg.lam_lr)

        # under torchrun each rank holds one path; otherwise this process holds all P
        self.dist = dist
        P = cfg.paths
        if dist is not None and dist.world != P:
            raise ConfigError(f"--paths {P} under torchrun with {dist.world} processes: start one process per path "
                             f"(torchrun --nproc_per_node={P})")
        self.local = [dist.rank] if dist is not None else list(range(P))
        self.main = dist is None or dist.rank == 0

        torch.manual_seed(cfg.seed)
        base = build_supernet(self.space, self.data.num_classes, kind=cfg.supernet)
        self._apply_masks(base)
        self.paths = [base] + [copy.deepcopy(base) for _ in range(len(self.local) - 1)]
        self.paths = [p.to(memory_format=torch.channels_last) for p in self.paths]
        self.opt_w = [make_optimizer(p.weight_parameters(), cfg.lr, cfg.momentum, cfg.weight_decay) for p in self.paths]
        self.opt_a = [torch.optim.Adam(p.arch_parameters(), lr=cfg.arch_lr, betas=(0.5, 0.999)) for p in self.paths]
        self.feedback = FeedbackBlock(self.paths, cfg.merge, [[ow, oa] for ow, oa in zip(self.opt_w, self.opt_a)],
                                      group=dist.group if dist is not None else None)

        w_idx, a_idx = arch_split(self.data.labels("train"), cfg.weight_split, seed=cfg.seed)
        w_all = [make_loader(self.data, "train", cfg.batch_size, True, w_idx, cfg.seed, cfg.workers, shard=(p, P)) for p in range(P)]
        a_all = [make_loader(self.data, "train", cfg.batch_size, True, a_idx, cfg.seed + 7, cfg.workers, shard=(p, P)) for p in range(P)]
        self.w_loaders = [w_all[p] for p in self.local]
        self.a_loaders = [a_all[p] for p in self.local]
        self.val_loader = make_loader(self.data, "val", 256, False, workers=cfg.workers)
        self.steps_per_epoch = min(len(l) for l in w_all)  # the same on every rank
        if self.steps_per_epoch < 1 or min(len(l) for l in a_all) < 1:
            raise DataError(f"the data set is too small for {P} path(s) with batch size {cfg.batch_size}: "
                             f"{len(w_idx)} weight-split and {len(a_idx)} architecture-split images")
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.names = [n for n, _ in base.named_choices()]

    def _apply_masks(self, net) -> None:
        if getattr(self.latency, "policy", "fallback") != "mask":
            return
        for i, blk in enumerate(net.blocks):
            if blk.kernel_choice is not None:
                allowed = list(self.latency.allowed(i))
                if not any(allowed):
                    l = net.layers[i]
                    raise LatencyTableError(f"layer {i} (stage {l.stage} block {l.block}): none of the kernels {l.spec.kernels} "
                                     f"is supported on target '{self.cfg.target}'")
                blk.kernel_choice.set_allowed(allowed)

    def _gen_seed(self, epoch: int, p: int) -> int:
        """Seed of path p's Gumbel noise in an epoch (each path its own noise)."""
        return self.cfg.seed * 1_000_003 + epoch * 1009 + p

    # -- one epoch ---------------------------------------------------------
    def _epoch(self, epoch: int, writer, bar) -> dict:
        cfg = self.cfg
        tau = tau_at(epoch, cfg.epochs, cfg.tau0, cfg.tau_min)
        search_alpha = epoch >= cfg.warmup_epochs
        gens = [torch.Generator().manual_seed(self._gen_seed(epoch, p)) for p in self.local]
        torch.manual_seed(cfg.seed * 7919 + epoch)
        for l in self.w_loaders + self.a_loaders:
            l.set_epoch(epoch)
        w_iters = [iter(l) for l in self.w_loaders]
        a_iters = [_cycle(l, epoch) for l in self.a_loaders]
        sums = {"ce_w": 0.0, "ce_a": 0.0, "lat": 0.0, "n": 0, "na": 0}
        for i in range(self.steps_per_epoch):
            step = epoch * self.steps_per_epoch + i
            lr = lr_at(step, self.total_steps, self.steps_per_epoch, cfg.lr)  # one epoch of linear warm-up, then eq. 16
            losses = []
            for p, net in enumerate(self.paths):
                x, y = next(w_iters[p])
                net.train()
                with torch.no_grad():
                    sample_choices(net.choices(), tau, cfg.hard, gens[p])
                ce = F.cross_entropy(net(x), y, label_smoothing=cfg.label_smoothing)
                if not torch.isfinite(ce):
                    raise TrainingError(f"search diverged at epoch {epoch + 1} step {i} (path {p}); lower --lr (now {cfg.lr})")
                opt = self.opt_w[p]
                for g in opt.param_groups:
                    g["lr"] = lr
                opt.zero_grad(set_to_none=True)
                ce.backward()
                opt.step()
                losses.append(float(ce.detach()))
            sums["ce_w"] += sum(losses) / len(losses)
            sums["n"] += 1
            if search_alpha:
                lat_now = []
                for p, net in enumerate(self.paths):
                    xa, ya = next(a_iters[p])
                    sample_choices(net.choices(), tau, cfg.hard, gens[p])
                    weights = net.weight_parameters()
                    for w in weights:
                        w.requires_grad_(False)
                    ce_a = F.cross_entropy(net(xa), ya, label_smoothing=cfg.label_smoothing)
                    lat = self.latency.expected(net)
                    loss = self.loss(ce_a, lat)
                    self.opt_a[p].zero_grad(set_to_none=True)
                    loss.backward()
                    self.opt_a[p].step()
                    for w in weights:
                        w.requires_grad_(True)
                    sums["ce_a"] += float(ce_a.detach()) / len(self.paths)
                    sums["lat"] += float(lat.detach()) / len(self.paths)
                    lat_now.append(self.latency.predict(net.picks()))
                sums["na"] += 1
                mean_lat = sum(lat_now) / len(lat_now)
                if self.dist is not None:  # one lambda for all ranks
                    mean_lat = self.dist.all_mean(mean_lat)
                self.loss.update(mean_lat)
            b = self.feedback(losses) if self.cfg.paths > 1 else None
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
        val = evaluate(net, self.val_loader)
        for c in net.choices():
            c.fixed = None
        probs = {n: [round(float(v), 5) for v in c.probs()] for n, c in net.named_choices()}
        ent = {n: _entropy(c.probs()) for n, c in net.named_choices()}
        rec.update(epoch=epoch + 1, val_top1=val["top1"], val_loss=val["loss"], E_lat_ms=exp_lat,
                   argmax_lat_ms=self.latency.predict(picks), lam=self.loss.lam, probs=probs,
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
            "config": config_dict(self.cfg),
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
    def run(self, on_epoch_end: Optional[Callable[[int, dict], None]] = None) -> dict:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        ckpt = self.out / ("checkpoint.pt" if self.main else f"checkpoint.rank{self.dist.rank}.pt")
        start, history, wall_before = 0, [], 0.0
        if cfg.resume and ckpt.is_file():
            ck = load_checkpoint(ckpt)
            old = ck.get("config", {})
            new = config_dict(cfg)
            diff = [k for k in _RESUME_KEYS if k in old and old[k] != new[k]]
            if diff:
                raise CheckpointError(f"--resume: '{ckpt}' was written with other settings ({', '.join(f'{k}: {old[k]!r} vs {new[k]!r}' for k in diff)})")
            start, history, wall_before = self.load(ck)
        if self.main:
            save_config(cfg, self.out)
        writer = tb_writer(cfg.tensorboard, self.out) if self.main else None
        t0 = time.time()
        for epoch in range(start, cfg.epochs):
            bar = progress(cfg.progress and self.main, self.steps_per_epoch, f"search {epoch + 1}/{cfg.epochs}")
            rec = self._epoch(epoch, writer, bar)
            if bar is not None:
                bar.close()
            if self.main:
                rec = self._epoch_eval(epoch, rec, writer)
            history.append(rec)
            save_checkpoint(ckpt, self.state(epoch + 1, history, wall_before + time.time() - t0))
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
        from ednas.nn.build import build_model

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
        if cfg.measure and _is_host(self.latency):
            from ednas.latency import measure_latency

            model = build_model(arch, self.data.num_classes)
            measured = measure_latency(model, self.input_size, threads=table_threads(self.latency))
        layer_recs = []
        for i, (l, p, p0) in enumerate(zip(layers, picks, picks0)):
            layer_recs.append({
                "index": i, "stage": l.stage, "block": l.block, "stride": l.stride, "cin": l.cin, "cout": l.spec.out,
                "kernel": p["kernel"], "expansion": p["expansion"], "skip": p["skip"],
                "argmax": p0, "probs": probs[i], "changed_by_fit": p != p0,
            })
        provenance = {"ednas": __version__, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "data": self.data.spec,
                      "space": self.space.format(), "target": cfg.target, "seed": cfg.seed, "paths": cfg.paths,
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
        import yaml

        atomic_write_text(self.out / "arch.yaml", yaml.safe_dump(doc, sort_keys=False))
        atomic_write_json(self.out / "alpha_history.json", {"names": self.names, "epochs": [h["probs"] for h in history],
                                                            "candidates": {n: [str(x) for x in c.candidates] for n, c in net.named_choices()}})
        from ednas.search.state import save_supernet

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
            "target": cfg.target,
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


def search(cfg: SearchConfig, data=None, latency=None, on_epoch_end=None) -> dict:
    """Run the search of ``cfg``; ``latency`` may be given (e.g. a synthetic table's model).

    Under ``torchrun`` each process runs one feedback path (see :mod:`ednas.dist`);
    rank 0 writes the outputs and returns the result, the others return ``{}``.
    """
    from ednas.dist import init_from_env

    tune_malloc()
    dist = init_from_env()
    set_threads(cfg.threads or (1 if dist is not None else 0))
    try:
        return _Search(cfg, data=data, latency=latency, dist=dist).run(on_epoch_end)
    finally:
        if dist is not None:
            dist.close()


def search_cli(cfg: SearchConfig) -> dict | None:
    """``ednas search``: the headline numbers (search.json has everything)."""
    r = search(cfg)
    if not r:
        return None  # a non-zero rank under torchrun
    keys = ("arch", "predicted_latency_ms", "measured_latency_ms", "budget_ms", "lambda", "steps", "wall_s", "val_top1_argmax")
    return {k: r[k] for k in keys}
