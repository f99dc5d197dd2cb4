"""One seed scheme: every random draw of a run comes from ``(seed, purpose, keys...)``.

A run has one ``--seed``.  Each consumer of randomness (weight init, batch
order, augmentation, Gumbel noise of path p in epoch e, the calibration
draw, ...) asks :func:`derive` for its own seed with a purpose string and
integer keys, so that

* the draws of different purposes are independent (no two share a stream);
* a resumed run draws exactly what an uninterrupted one does, since nothing
  depends on how many numbers were drawn before;
* adding a new consumer does not shift the draws of the existing ones.

The data split has a seed of its own (``--data.split-seed``), so that the
test images of a result never move with ``--seed``.
"""

from __future__ import annotations

import hashlib

__all__ = ["derive"]


def derive(seed: int, purpose: str, *keys: int) -> int:
    """A 62-bit seed for ``purpose`` (and integer ``keys``, e.g. epoch and path) of run seed ``seed``."""
    text = "|".join([str(int(seed)), purpose, *(str(int(k)) for k in keys)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") & ((1 << 62) - 1)  # room to add an epoch without overflow
