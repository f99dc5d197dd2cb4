"""Running exported networks: ONNX Runtime sessions, the one timing loop, scoring."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Timing"]


@dataclass
class Timing:
    """How end-to-end latencies are measured (every figure of a run is taken this way)."""

    #: intra-op threads while timing (keep it what you deploy with)
    threads: int = 1
    #: untimed runs before each timed batch
    warmup: int = 10
    #: timed runs per model per round (at least; see min_time_s)
    repeats: int = 50
    #: interleaved rounds over all models; a figure is the median of the round medians
    rounds: int = 5
    #: each timed batch runs at least this long, in seconds
    min_time_s: float = 0.05
