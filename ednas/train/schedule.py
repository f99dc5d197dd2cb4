"""Learning rate: linear warm-up, then the cosine decay of eq. (16).

``lr = 1/2 (1 + cos(pi b / B)) lr0`` where ``b`` counts the batches after
warm-up and ``B`` their total; during the ``W`` warm-up batches the rate rises
linearly to ``lr0``.  Computed from the step index alone, so a resumed run
gets exactly the rates of an uninterrupted one.
"""

from __future__ import annotations

import math

__all__ = ["lr_at"]


def lr_at(step: int, total: int, warmup: int, lr0: float) -> float:
    """The learning rate of 0-based batch ``step`` of ``total`` with ``warmup`` warm-up batches."""
    warmup = min(max(int(warmup), 0), max(total - 1, 0))
    if step < warmup:
        return lr0 * (step + 1) / warmup
    b, big_b = step - warmup, max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(b, big_b) / big_b)) * lr0
