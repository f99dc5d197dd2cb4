"""A synthetic latency model with a known cost per candidate, implementing LatencyModel's interface."""

import copy
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
# (update: the paper's Algorithm 1, whose steps most of the tests check; the default, joint, is named where a test is about it)
FAST = dict(space=TINY_SPACE, epochs=4, arch_warmup_epochs=1, batch_size=16, paths=2, measure=False, arch_lr=0.1, update="alternate")


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
    """LAT = fixed + sum over kept layers of layer_scale[i] * (block + scale * k^2 * e); skip costs 0.

    ``layer_scale`` (default 1 everywhere) makes layers cost differently, as
    layers at different resolutions do, so that the networks' latencies lie
    dense rather than on a coarse grid.
    """

    policy = "fallback"
    threads = 1
    budget = LatencyModel.budget  # the one way budgets are resolved

    def __init__(self, space, fixed=1.0, scale=0.01, block=0.05, masked=None, layer_scale=None):
        self.space, self.fixed, self.scale, self.block = space, fixed, scale, block
        self.layers = list(space.layers())
        self.layer_scale = list(layer_scale) if layer_scale is not None else [1.0] * len(self.layers)
        self.masked = masked or {}  # layer index -> set of kernels masked

    def cost(self, i, k, e, skip):
        return 0.0 if skip else self.layer_scale[i] * (self.block + self.scale * k * k * e)

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


def wide_pattern_data(n: int = 384, size: int = 24, gap: int = 6, seed: int = 0):
    """Two classes that only a pattern wider than 3x3 tells apart.

    Each image holds two dots ``gap`` pixels apart on a dark field with a
    little noise: side by side in class 0, one above the other in class 1.
    The two dots lie in two different colour channels (drawn at random), so
    the stem, a depthwise filter per channel, never sees both in one filter:
    the relation between them is found only after the channels are mixed,
    by a depthwise kernel (or a stack of them) that spans the gap.
    """
    from ednas.data import DataSet

    g = torch.Generator().manual_seed(seed)
    splits = {}
    for split, m in (("train", n), ("val", n // 2), ("test", n // 2)):
        y = torch.arange(m) % 2
        x = 12.0 * torch.rand(m, 3, size, size, generator=g)
        for i in range(m):
            # 4 px from the border: the training crops (pad 4) never cut a dot off
            r = int(torch.randint(4, size - 4 - gap, (1,), generator=g))
            c = int(torch.randint(4, size - 4 - gap, (1,), generator=g))
            r2, c2 = (r, c + gap) if y[i] == 0 else (r + gap, c)
            ch = torch.randperm(3, generator=g)[:2].tolist()
            x[i, ch[0], r, c] = 255.0
            x[i, ch[1], r2, c2] = 255.0
        splits[split] = (x.to(torch.uint8), y)
    return DataSet(name="wide-pattern", spec=f"wide-pattern:n={n},size={size},gap={gap},seed={seed}", num_classes=2,
                   classes=["side by side", "one above the other"], input_size=size, mean=(0.05,) * 3, std=(0.1,) * 3,
                   augment="padcrop", splits=splits)


def diverged_paths(make, n=3, seed=0):
    """``n`` copies of ``make()``, each moved apart and given optimizer state (SGD momentum, Adam on alpha): paths to merge."""
    torch.manual_seed(seed)
    base = make()
    paths = [base] + [copy.deepcopy(base) for _ in range(n - 1)]
    opts = []
    for i, p in enumerate(paths):  # make them differ, with optimizer state
        torch.manual_seed(100 + i)
        with torch.no_grad():
            for t in p.parameters():
                t.add_(0.1 * torch.randn_like(t))
        o = torch.optim.SGD(p.weight_parameters(), lr=0.1, momentum=0.9)
        a = torch.optim.Adam(p.arch_parameters(), lr=0.1)
        p(torch.randn(2, 3, 32, 32)).pow(2).sum().backward()
        o.step()
        a.step()
        opts.append([o, a])
    return paths, opts


def all_assignments(net):
    """Every joint assignment of the supernet's choices, pinned one-hot as its argmax, with its probability under the original softmax(alpha)."""
    import torch.nn.functional as F

    choices = net.choices()
    saved = [c.alpha.detach().clone() for c in choices]
    try:
        for idx in itertools.product(*(range(len(c.candidates)) for c in choices)):
            p = 1.0
            with torch.no_grad():
                for c, a, i in zip(choices, saved, idx):
                    p *= float(F.softmax(a, -1)[i])
                    c.alpha.copy_(F.one_hot(torch.tensor(i), len(c.candidates)).float())
            yield idx, p
    finally:
        with torch.no_grad():
            for c, a in zip(choices, saved):
                c.alpha.copy_(a)
