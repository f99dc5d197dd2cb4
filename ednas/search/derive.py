"""Derive the network (argmax alpha per layer) and make sure it meets the budget.

``derive`` takes the argmax candidate of every choice (eq. 14's most probable
kernel, expansion, skip).  The argmax network of a relaxed search can still be
over budget, and nothing in the loss forbids landing well under it, so
:func:`fit_budget` checks the derived network's predicted latency and:

* **repair** (over budget): repeatedly moves the layer whose alpha margin is
  smallest (the choice the search was least sure of: ``p(current) -
  p(target)``) to its next cheaper candidate, until the network fits;
* **fill** (only with ``mode="both"``, under ``low * budget``): moves the least
  sure choices to their next more expensive candidate while the network stays
  within the budget, until it reaches ``low * budget`` or nothing fits.

"Next" is along one choice (kernel, expansion, skip) at a time, ordered by the
latency table, and every change is returned for the report.  A block with
tied (kernel, expansion) pairs (``_tied``) has one choice: a kernel move
takes the new kernel's expansion with it (the change's ``with``), and its
expansion never moves alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from ednas.errors import ConfigError

__all__ = ["fit_budget", "layer_probs"]


def layer_probs(supernet) -> list[dict]:
    """Per layer, ``{kind: {candidate: probability}}`` of the supernet's choices."""
    return [
        {kind: {str(k): p for k, p in probs.items()} for kind, probs in blk.probs().items()}
        for blk in supernet.searchable_blocks()
    ]


def _options(layer, kind: str) -> list:
    b = layer.spec
    if kind == "kernel":
        return list(b.kernels)
    if kind == "expansion":
        return [] if b.pairs else list(b.expansions)  # tied: moves with its kernel
    return [False, True] if layer.can_skip else [False]


def _key(kind: str, value) -> str:
    if kind == "skip":
        return "skip" if value else "block"
    return str(value)


def fit_budget(picks: Sequence[dict], layers: Sequence, probs: Sequence[dict], latency, budget_ms: float,
               mode: str = "both", low: float = 0.85, allowed=None) -> tuple[list[dict], list[dict]]:
    """Move choices until the predicted latency is within ``[low * budget, budget]`` (see module doc).

    Args:
        picks: per layer ``{kernel, expansion, skip}``.
        layers: the space's ``layers()``.
        probs: per layer ``{kind: {candidate: p}}`` (from :func:`layer_probs`).
        latency: an object with ``predict(picks) -> ms``.
        budget_ms: the budget B.
        mode: ``none``, ``repair`` or ``both``.
        low: the fill target as a fraction of B.
        allowed: optional ``allowed(layer_index) -> list[bool]`` per kernel candidate.

    Returns:
        The new picks and the list of changes ``{layer, kind, from, to, margin, latency_ms}``.
    """
    if mode not in ("none", "repair", "both"):
        raise ConfigError(f"unknown budget fit mode '{mode}'; expected none, repair or both")
    picks = [dict(p) for p in picks]
    changes: list[dict] = []
    if mode == "none":
        return picks, changes

    def moves(direction: int):
        cur = latency.predict(picks)
        out = []
        for i, layer in enumerate(layers):
            if picks[i]["skip"] and direction < 0 and not layer.skip_proj:
                continue  # nothing is cheaper than an identity (a projection may be dearer than some of the block's candidates)
            for kind in ("kernel", "expansion", "skip"):
                opts = _options(layer, kind)
                if len(opts) < 2 or (picks[i]["skip"] and kind != "skip"):
                    continue
                for v in opts:
                    if v == picks[i][kind]:
                        continue
                    if kind == "kernel" and allowed is not None and not allowed(i)[layer.spec.kernels.index(v)]:
                        continue
                    pk = probs[i].get(kind, {})
                    margin = pk.get(_key(kind, picks[i][kind]), 1.0) - pk.get(_key(kind, v), 0.0)
                    # a skipped block comes back with any of its (kernel, expansion) candidates, not only
                    # the ones it held when skipped (those may be too big to fit)
                    variants = [{"expansion": dict(layer.spec.pairs)[v]}] if kind == "kernel" and layer.spec.pairs else [{}]
                    if kind == "skip" and picks[i]["skip"]:
                        ks = [k for j, k in enumerate(layer.spec.kernels) if allowed is None or allowed(i)[j]]
                        variants = [{"kernel": k, "expansion": e} for k, e in layer.spec.pair_options if k in ks]
                    for extra in variants:
                        trial = [dict(p) for p in picks]
                        trial[i][kind] = v
                        trial[i].update(extra)
                        lat = latency.predict(trial)
                        if (lat - cur) * direction <= 0:
                            continue
                        out.append((margin, abs(lat - cur), i, kind, v, lat, extra))
        return cur, out

    # repair: over budget -> the least sure choice to its nearest cheaper candidate
    cur, cand = moves(-1)
    while cur > budget_ms:
        if not cand:
            raise ConfigError(f"cannot bring the derived network under the budget {budget_ms:.4g} ms (now {cur:.4g} ms)")
        # per (layer, kind), the nearest cheaper candidate (smallest latency drop)
        nearest = {}
        for m in cand:
            k = (m[2], m[3])
            if k not in nearest or m[1] < nearest[k][1]:
                nearest[k] = m
        margin, _, i, kind, v, lat, extra = min(nearest.values(), key=lambda m: (m[0], -m[1]))
        changes.append({"layer": i, "kind": kind, "from": picks[i][kind], "to": v, "margin": margin, "latency_ms": lat, "why": "over budget",
                        **({"with": extra} if extra else {})})
        picks[i][kind] = v
        picks[i].update(extra)
        cur, cand = moves(-1)

    if mode == "both":
        cur, cand = moves(+1)
        while cur < low * budget_ms:
            nearest = {}
            for m in cand:
                if m[5] > budget_ms:
                    continue
                k = (m[2], m[3])
                if k not in nearest or m[1] < nearest[k][1]:
                    nearest[k] = m
            if not nearest:
                break
            margin, _, i, kind, v, lat, extra = min(nearest.values(), key=lambda m: (m[0], -m[1]))
            changes.append({"layer": i, "kind": kind, "from": picks[i][kind], "to": v, "margin": margin, "latency_ms": lat,
                            "why": f"under {low:g} x budget", **({"with": extra} if extra else {})})
            picks[i][kind] = v
            picks[i].update(extra)
            cur, cand = moves(+1)
    return picks, changes
