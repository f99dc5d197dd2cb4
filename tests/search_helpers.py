"""A synthetic latency model with a known cost per candidate, implementing LatencyModel's interface."""

import itertools

import torch

from ednas.arch.spec import parse_arch
from ednas.config import resolve_config
from ednas.data import load_data
from ednas.latency.model import LatencyModel
from ednas.search.algorithm import SearchConfig, _Search, search
from tests.conftest import TINY_SPACE

SYNTH = "synthetic:classes=4,n=192,size=32"
# small, fast settings for the tests' searches
FAST = dict(space=TINY_SPACE, epochs=4, arch_warmup_epochs=1, batch_size=16, paths=2, measure=False, arch_lr=0.1)


def search_config(**kw) -> SearchConfig:
    """A checked :class:`SearchConfig` of the test defaults, updated with ``kw``."""
    return resolve_config(SearchConfig, {**FAST, **kw})


def _parts(out, latency, data, budget_ms, budget_frac, kw):
    cfg = search_config(**kw)
    space = parse_arch(cfg.space)
    data = data or load_data(SYNTH)
    budget = latency.budget(ms=budget_ms, frac=None if budget_ms is not None else budget_frac)
    return cfg, dict(out=out, data=data, latency=latency, budget=budget, space=space)


def run_search(out, latency, data=None, budget_ms=None, budget_frac=0.5, seed=0, resume=False, on_epoch_end=None, **kw) -> dict:
    """``search()`` as ``ednas search`` calls it, with the test defaults."""
    cfg, parts = _parts(out, latency, data, budget_ms, budget_frac, kw)
    return search(cfg, parts.pop("out"), **parts, seed=seed, progress=False, tensorboard=False, resume=resume, on_epoch_end=on_epoch_end)


def make_search(out, latency, data=None, budget_ms=None, budget_frac=0.5, seed=0, cls=_Search, hardware=None, **kw):
    """The search object itself (to look inside it), with the test defaults."""
    cfg, parts = _parts(out, latency, data, budget_ms, budget_frac, kw)
    return cls(cfg, timing=None, seed=seed, progress=False, tensorboard=False, hardware=hardware, **parts)


class SyntheticLatency:
    """LAT = fixed + sum over kept layers of scale * k^2 * e (+ a per-block constant); skip costs 0."""

    policy = "fallback"
    threads = 1
    budget = LatencyModel.budget  # the one way budgets are resolved

    def __init__(self, space, fixed=1.0, scale=0.01, block=0.05, masked=None):
        self.space, self.fixed, self.scale, self.block = space, fixed, scale, block
        self.layers = list(space.layers())
        self.masked = masked or {}  # layer index -> set of kernels masked

    def cost(self, i, k, e, skip):
        return 0.0 if skip else self.block + self.scale * k * k * e

    def layer_ms(self, i):
        l = self.layers[i]
        t = torch.zeros(len(l.spec.kernels), len(l.spec.expansions), 2)
        for (a, k), (b, e) in itertools.product(enumerate(l.spec.kernels), enumerate(l.spec.expansions)):
            t[a, b, 0] = self.cost(i, k, e, False)
        return t

    def allowed(self, i):
        return [k not in self.masked.get(i, ()) for k in self.layers[i].spec.kernels]

    def expected(self, net):
        total = torch.tensor(self.fixed)
        for i, blk in enumerate(net.searchable_blocks()):
            g = blk.mix_weights()
            total = total + torch.einsum("i,j,s,ijs->", g["kernel"], g["expansion"], g["skip"], self.layer_ms(i))
        return total

    def predict(self, picks):
        if not isinstance(picks, list):
            raise TypeError("picks only")
        return self.fixed + sum(self.cost(i, p["kernel"], p["expansion"], p["skip"]) for i, p in enumerate(picks))

    def _extreme(self, f):
        picks = []
        for i, l in enumerate(self.layers):
            ks = [k for k, a in zip(l.spec.kernels, self.allowed(i)) if a]
            picks.append({"kernel": f(ks), "expansion": f(l.spec.expansions), "skip": l.can_skip and f is min})
        return self.predict(picks)

    @property
    def min_ms(self):
        return self._extreme(min)

    @property
    def max_ms(self):
        return self._extreme(max)
