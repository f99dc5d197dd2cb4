"""Scaling a skeleton: a width multiplier on every stage, as MobileNet scales its networks.

A budget outside what a space can reach is a budget for another size of the
same skeleton.  :func:`scale_space` multiplies the stem's and every stage's
widths (each candidate of a searched width) by ``width_mult`` and rounds them
to multiples of ``divisor`` (8), never below ``divisor`` nor more than 10 %
below the exact product, with MobileNet's ``_make_divisible`` rule.  The head
keeps its width (MobileNetV2 keeps its 1280 below multiplier 1) and so do
kernels, expansions, strides and depths: only the widths move.  A multiplier
of 1 returns the space unchanged.

:data:`WIDTH_MULTS` is the ladder the budget fit tries (``ednas run`` and
``ednas search`` with a ``--budget-ms`` outside the space's range); a budget
that no multiplier in ``[WIDTH_MULTS[0], WIDTH_MULTS[-1]]`` brings inside the
range is refused.

:func:`uniform_arch` is the hand-designed network of a space's skeleton
(what an engineer ships without NAS): the space's largest network (every
repeat, the widest width, the largest expansion) with one kernel,
:data:`UNIFORM_KERNEL`, everywhere -- MobileNetV2's choices.  Scaled by
:func:`scale_space` to a budget it is the ``uniform`` baseline of the report
(:mod:`ednas.report.baselines`) and of ``benchmarks/pareto.py``.
"""

from __future__ import annotations

import dataclasses

from ednas.arch.spec import ArchSpec, parse_arch

__all__ = ["UNIFORM_KERNEL", "WIDTH_MULTS", "make_divisible", "scale_space", "uniform_arch"]

#: the width multipliers a budget fit may choose from, smallest to largest
WIDTH_MULTS = (0.25, 0.35, 0.5, 0.625, 0.75, 0.875, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)

#: the one kernel of :func:`uniform_arch` (MobileNetV2's 3x3)
UNIFORM_KERNEL = 3


def make_divisible(v: float, divisor: int = 8) -> int:
    """``v`` rounded to the nearest multiple of ``divisor``, at least ``divisor`` and at least 0.9 ``v`` (MobileNet's rule)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new


def scale_space(space: ArchSpec, width_mult: float, divisor: int = 8) -> ArchSpec:
    """``space`` with the stem's and every stage's widths times ``width_mult`` (rounded; see the module docstring)."""
    if width_mult == 1.0:
        return space

    def w(c: int) -> int:
        return make_divisible(c * width_mult, divisor)

    stages = []
    for stage in space.stages:
        blocks = []
        for b in stage:
            widths = tuple(sorted({w(c) for c in b.widths})) if b.widths else ()
            if len(widths) == 1:  # two candidates that round to one width: a fixed width
                widths = ()
            blocks.append(dataclasses.replace(b, out=w(b.out), widths=widths))
        stages.append(tuple(blocks))
    scaled = dataclasses.replace(space, stem=dataclasses.replace(space.stem, out=w(space.stem.out)), stages=tuple(stages))
    return parse_arch(scaled.format())  # the scaled widths pass the same checks as a written space


def uniform_arch(space: ArchSpec) -> ArchSpec:
    """The hand-designed network of ``space``'s skeleton: its largest network with :data:`UNIFORM_KERNEL` everywhere (a fixed network)."""
    big = space.largest()
    stages = tuple(tuple(dataclasses.replace(b, kernels=(UNIFORM_KERNEL,)) for b in stage) for stage in big.stages)
    return parse_arch(dataclasses.replace(big, stages=stages).format())
