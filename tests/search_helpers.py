"""A synthetic latency model with a known cost per candidate, implementing LatencyModel's interface."""

import itertools

import torch


class SyntheticLatency:
    """LAT = fixed + sum over kept layers of scale * k^2 * e (+ a per-block constant); skip costs 0."""

    policy = "fallback"
    threads = 1

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
