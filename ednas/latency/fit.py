"""Any budget reachable: the width multiplier that brings a budget well inside a space's range.

A space spans ``[min_ms, max_ms]`` on a table.  A ``--budget-ms`` outside that
range is a budget for a narrower or wider version of the same skeleton, so
:func:`fit_width_mult` walks the ladder of :data:`ednas.arch.scale.WIDTH_MULTS`
from 1 towards the budget (down when it is below the range, up when above),
prices each scaled space's range, and stops once the budget has passed the
middle of a range.  Of the multipliers whose range holds the budget it keeps
the one that puts it nearest the middle (position 0.5 of the range), so the
search has room on both sides.

How a range is priced:

* analytic targets and board files: the scaled space's own table (instant);
* measured targets (``host-ort``, ``host-torch``): its smallest and largest
  networks timed end to end as the unscaled table prices networks (its
  precision, scaled to its reference network's speed), so that a full table
  is measured only for the multiplier chosen; that table then decides, and
  if the budget falls outside its range after all the next-best multiplier
  is measured.

A budget that no multiplier in the ladder's range reaches is refused in one
line naming the reachable range.

Re-centring a budget near the top of the range (``recentre``,
``--latency.recentre``).  A budget inside the range but near its top leaves
the search no room above: every searched choice ends at its largest, and the
skeleton's widest widths are the ceiling.  With ``recentre = r > 0`` a budget
at position ``p > 1 - r`` of the range (0 = smallest network, 1 = largest) is
fit like one above it, multiplier 1 among the candidates (kept when no other
puts the budget nearer the middle).  Only the top: near the bottom, scaling
down narrows every network, and Pareto v2 measured that to lose (its
``ednas-wide`` rows at 0.2 of the range, x0.5, 3.1 points behind the
unscaled search over 3 seeds).  ``r = 0.25`` by default: at the top (0.8
and 0.9 of the range, x1.25-x1.5) the re-centred search was 2.14 points ahead
of the unscaled one over 12 (budget, seed) pairs, 95 % interval 0.58-3.70
(BENCHMARKS.md; docs/search.md).  :func:`fit_width_mult`
itself re-centres either way (multiplier 1 a candidate whenever the budget
is inside the range).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ednas.arch.scale import WIDTH_MULTS, scale_space
from ednas.arch.spec import ArchSpec
from ednas.errors import ConfigError

__all__ = ["fit_width_mult", "needs_fit"]

log = logging.getLogger(__name__)


def needs_fit(budget_ms: float, min_ms: float, max_ms: float, recentre: float = 0.0) -> bool:
    """Whether a budget must be fit by a width multiplier: outside ``[min_ms, max_ms]``, or within ``recentre`` of its top."""
    if not min_ms <= budget_ms <= max_ms:
        return True
    if recentre <= 0 or max_ms <= min_ms:
        return False
    return (budget_ms - min_ms) / (max_ms - min_ms) > 1 - recentre


def fit_width_mult(base: ArchSpec, budget_ms: float, base_model, model_of: Callable, estimate: Callable | None = None,
                   target: str = "", mults: tuple[float, ...] = WIDTH_MULTS):
    """``(width_mult, scaled space, its latency model)`` with ``budget_ms`` inside the model's range (see the module docstring).

    Args:
        base: the space as given (multiplier 1).
        budget_ms: the budget B.
        base_model: the latency model of ``base`` (its range decides the direction).
        model_of: ``space -> LatencyModel`` on the same target (a table for a scaled space).
        estimate: ``space -> (min_ms, max_ms)`` without a table (measured targets), or ``None``.
        mults: the ladder of multipliers.

    Raises:
        ConfigError: no multiplier of the ladder brings the budget inside the range.
    """
    lo1, hi1 = base_model.min_ms, base_model.max_ms
    inside = lo1 <= budget_ms <= hi1  # re-centring (see the module docstring): multiplier 1 is a candidate
    down = budget_ms < ((lo1 + hi1) / 2 if inside else lo1)
    ladder = sorted((m for m in mults if (m < 1.0 if down else m > 1.0)), reverse=down)
    tried: list[tuple[float, float, float, ArchSpec]] = [(1.0, lo1, hi1, base)] if inside else []
    models: dict[float, object] = {1.0: base_model} if inside else {}

    def range_at(m: float) -> tuple[float, float, ArchSpec]:
        space = scale_space(base, m)
        if estimate is not None:
            lo, hi = estimate(space)
        else:
            models[m] = model_of(space)
            lo, hi = models[m].min_ms, models[m].max_ms
        return lo, hi, space

    for m in ladder:
        lo, hi, space = range_at(m)
        tried.append((m, lo, hi, space))
        log.debug("width x%g: range [%.4g, %.4g] ms", m, lo, hi)
        mid = (lo + hi) / 2
        if (budget_ms >= mid) if down else (budget_ms <= mid):
            break  # the budget has passed the middle of this range: further multipliers only move it to the other edge
    holding = [t for t in tried if t[1] <= budget_ms <= t[2]]
    if not holding:
        # the whole ladder's reach: its narrowest space's smallest network to its widest space's largest
        ends = {t[0]: t for t in tried}
        lo_all = (ends.get(mults[0]) or (mults[0], *range_at(mults[0])))[1]
        hi_all = (ends.get(mults[-1]) or (mults[-1], *range_at(mults[-1])))[2]
        raise ConfigError(
            f"--budget-ms {budget_ms:.4g} is outside what the space reaches at any width multiplier in [{mults[0]:g}, {mults[-1]:g}]: "
            f"[{lo_all:.4g}, {hi_all:.4g}] ms" + (f" on target {target}" if target else ""))

    def off_centre(t):
        return abs((budget_ms - t[1]) / (t[2] - t[1]) - 0.5) if t[2] > t[1] else 0.0

    for m, _, _, space in sorted(holding, key=off_centre):
        model = models.get(m) or model_of(space)
        if model.min_ms <= budget_ms <= model.max_ms:
            return m, space, model
        log.info("width x%g: its table's range [%.4g, %.4g] ms misses the budget the end-to-end estimate placed in it; trying the next",
                 m, model.min_ms, model.max_ms)
    raise ConfigError(f"--budget-ms {budget_ms:.4g}: no scaled space's table holds it (tried width multipliers "
                      f"{', '.join(f'{t[0]:g}' for t in holding)}" + (f" on target {target})" if target else ")"))
