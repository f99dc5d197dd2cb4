"""Process-level performance settings, applied once at start-up.

On glibc, large temporary buffers (oneDNN's reorders in NCHW depthwise
convolution) are mmap'd and unmapped on every call, and the page faults make
the convolution up to 13x slower (measured: docs/latency.md).  Raising
the mmap and trim thresholds with ``mallopt`` keeps them in the heap: a
training step is about 1.3x faster.  Threads are set deliberately, since
timings with a default thread pool are not comparable.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import torch

__all__ = ["tune_malloc", "set_threads"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_TUNED = False


def tune_malloc(threshold: int = 1 << 30) -> bool:
    """Raise glibc's mmap/trim thresholds (no-op elsewhere). Returns whether it applied."""
    global _TUNED
    if _TUNED:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, threshold) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, threshold) == 1
    except (OSError, AttributeError):
        ok = False
    _TUNED = ok
    return ok


def set_threads(n: int = 0) -> int:
    """Use ``n`` intra-op threads (0: all cores) and one inter-op thread."""
    n = n or os.cpu_count() or 1
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass
    return n
