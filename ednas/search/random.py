"""Random search: the baseline a searched network must beat at the same compute.

Architectures are drawn from the search space (every choice of every layer
uniformly and independently, kernels the target masks left out) and kept
when the latency table predicts them inside the band ``[low * B, B]`` (the
band the search's dual ascent aims at; a draw under ``low * B`` would give
away latency the budget allows).  Each kept network is trained from scratch
with the training recipe for an equal share of a compute budget, counted in
images through a forward and backward pass: by default the search's own
(``search.json``'s ``compute_images``), so random search and the search cost
the same.  The network with the best validation top-1 is the result; like
the search's, its ``arch.yaml`` is read by ``ednas train --arch``, which
retrains it with the recipe the searched network is trained with.

Each candidate is trained in its own folder through
:func:`ednas.stage.run_stage`, so an interrupted random search resumes with
the candidates it had finished.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from ednas._run import git_commit
from ednas.arch.spec import ArchSpec
from ednas.config import config_dict
from ednas.data import DataSet
from ednas.errors import ConfigError
from ednas.io import atomic_write_json, atomic_write_text
from ednas.latency.model import Budget
from ednas.seeds import derive
from ednas.stage import run_stage
from ednas.train.trainer import TrainConfig, train

__all__ = ["RandomSearchConfig", "random_search", "sample_in_band"]

log = logging.getLogger(__name__)


@dataclass
class RandomSearchConfig:
    """Random search under the budget: how many networks, in which band, for how long each."""

    #: networks trained (the compute is shared among them)
    samples: int = 4
    #: lower edge of the latency band, as a fraction of the budget (0: any network within the budget)
    low: float = 0.9
    #: epochs per network (default: an equal share of the compute budget)
    epochs: Optional[int] = None
    #: draws tried before settling for networks outside the band
    max_draws: int = 20000

    def check(self, name) -> None:
        if self.samples < 1:
            raise ConfigError(f"{name('samples')} must be >= 1, got {self.samples}")
        if not 0.0 <= self.low <= 1.0:
            raise ConfigError(f"{name('low')} must be in [0, 1], got {self.low}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"{name('epochs')} must be >= 1, got {self.epochs}")
        if self.max_draws < 1:
            raise ConfigError(f"{name('max_draws')} must be >= 1, got {self.max_draws}")


def _draw(space: ArchSpec, latency, rng: random.Random) -> list[dict]:
    """One network: every choice uniform and independent; a stage's width and depth drawn once for all its repeats, tied pairs as one."""
    picks = []
    width = depth = None
    for i, layer in enumerate(space.layers()):
        b = layer.spec
        if layer.repeat == 0:
            width = rng.choice(list(layer.widths))
            depth = rng.choice(list(b.depths)) if b.depths else None
        allowed = latency.allowed(i) if hasattr(latency, "allowed") else [True] * len(b.kernels)
        kernels = [k for k, ok in zip(b.kernels, allowed) if ok] or list(b.kernels)
        skip = layer.repeat >= depth if depth is not None else bool(layer.can_skip and rng.random() < 0.5)
        if b.pairs:  # tied: one draw over the (allowed) pairs
            k, e = rng.choice([(k, e) for k, e in b.pairs if k in kernels])
        else:
            k, e = rng.choice(kernels), rng.choice(list(b.expansions))
        pick = {"kernel": k, "expansion": e, "skip": skip}
        if len(layer.widths) > 1:
            pick["width"] = width
        picks.append(pick)
    return picks


def sample_in_band(space: ArchSpec, latency, budget_ms: float, n: int, low: float = 0.9, seed: int = 0,
                   max_draws: int = 20000) -> list[tuple[list[dict], float]]:
    """``n`` distinct networks of ``space`` whose predicted latency lies in ``[low * budget_ms, budget_ms]``.

    Draws uniformly (every choice independent).  When fewer than ``n``
    distinct draws land in the band within ``max_draws``, the rest are the
    distinct draws within the budget closest to it.

    Returns:
        ``[(picks, predicted_ms)]``, in the order drawn.

    Raises:
        ConfigError: no draw at all is within the budget.
    """
    rng = random.Random(seed)
    in_band: dict[str, tuple[list[dict], float]] = {}
    under: dict[str, tuple[list[dict], float]] = {}
    for _ in range(max_draws):
        picks = _draw(space, latency, rng)
        key = repr(picks)
        if key in in_band or key in under:
            continue
        ms = float(latency.predict(picks))
        if low * budget_ms <= ms <= budget_ms:
            in_band[key] = (picks, ms)
            if len(in_band) == n:
                break
        elif ms <= budget_ms:
            under[key] = (picks, ms)
    found = list(in_band.values())
    if len(found) < n:
        rest = sorted(under.values(), key=lambda pm: -pm[1])[: n - len(found)]
        if rest:
            log.warning("random search: %d of %d networks in [%.3g, %.3g] ms after %d draws; the others are the closest under the budget",
                        len(found), n, low * budget_ms, budget_ms, max_draws)
        found += rest
    if not found:
        raise ConfigError(f"random search: none of {max_draws} random networks is within the budget {budget_ms:.4g} ms")
    return found


def random_search(cfg: RandomSearchConfig, out, *, data: DataSet, latency, budget: Budget, space: ArchSpec,
                  recipe: TrainConfig, compute_images: int | None = None, seed: int = 0,
                  progress: bool | None = None) -> dict:
    """Sample networks under the budget, train each, keep the best by validation (see the module docstring).

    Args:
        cfg: how many networks, the band, epochs per network.
        out: output folder: ``arch.yaml`` (the best network), ``random.json``,
            one ``candidate-<i>/`` folder per network.
        data: the loaded data set; networks train on its training split and
            are compared on its validation split.
        latency: the latency model of ``space`` on the target (the search's).
        budget: the budget (``latency.budget(...)``).
        space: the search space.
        recipe: the training recipe; its ``epochs`` are replaced by each
            network's share of the compute.
        compute_images: the compute to share, in images through a forward
            and backward pass (``search.json``'s ``compute_images``); needed
            unless ``cfg.epochs`` is set.
        seed: draws and training.

    Returns:
        ``random.json``'s content: ``arch`` (the best), ``predicted_latency_ms``,
        ``budget_ms``, ``candidates`` (each: arch, predicted ms, epochs,
        val_top1, wall_s), ``best``, ``epochs_each``, ``compute_images``
        (what was spent), ``wall_s``.
    """
    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_train = len(data.labels("train"))
    if cfg.epochs is not None:
        epochs = cfg.epochs
    elif compute_images is not None:
        epochs = max(1, round(compute_images / (cfg.samples * n_train)))
    else:
        raise ConfigError("random search: give the compute to match (compute_images) or the epochs per network")
    drawn = sample_in_band(space, latency, budget.ms, cfg.samples, cfg.low, derive(seed, "random-search"), cfg.max_draws)
    recipe_each = dataclasses.replace(recipe, epochs=epochs, branches=False, inherit=None)
    candidates = []
    for i, (picks, ms) in enumerate(drawn):
        arch = space.with_picks(picks, branches=False).format()
        settings = {"arch": arch, "data": data.spec, "seed": seed, "recipe": config_dict(recipe_each)}

        def work(folder: Path, arch=arch) -> dict:
            m = train(recipe_each, folder, arch=arch, data=data, seed=seed, progress=progress, tensorboard=False, resume=True)
            return {"val_top1": m["val_top1"], "top1": m["top1"], "wall_s": m["wall_s"], "params": m["params"], "macs": m["macs"]}

        r = run_stage(out / f"candidate-{i}", settings, work, name=f"random network {i + 1}/{len(drawn)}").result
        candidates.append({"arch": arch, "picks": picks, "predicted_latency_ms": ms, "epochs": epochs, **r})
        log.info("random network %d/%d: %.4g ms predicted, val top-1 %.2f %%", i + 1, len(drawn), ms, r["val_top1"])
    # best validation top-1; on a tie the faster network
    best = max(range(len(candidates)), key=lambda j: (candidates[j]["val_top1"], -candidates[j]["predicted_latency_ms"]))
    chosen = candidates[best]
    result = {
        "arch": chosen["arch"],
        "predicted_latency_ms": chosen["predicted_latency_ms"],
        "budget_ms": budget.ms,
        "band": [cfg.low * budget.ms, budget.ms],
        "best": best,
        "epochs_each": epochs,
        "compute_images": epochs * n_train * len(candidates),
        "compute_images_target": compute_images,
        "candidates": candidates,
        "wall_s": time.time() - t0,
    }
    doc = {"arch": chosen["arch"], "input_size": data.input_size, "num_classes": data.num_classes,
           "predicted_latency_ms": chosen["predicted_latency_ms"], "budget_ms": budget.ms, "val_top1": chosen["val_top1"],
           "provenance": {"method": "random search", "samples": len(candidates), "epochs_each": epochs, "seed": seed,
                          "data": data.spec, "space": space.format(), "commit": git_commit()}}
    atomic_write_text(out / "arch.yaml", yaml.safe_dump(doc, sort_keys=False))
    atomic_write_json(out / "random.json", result)
    return result
