"""End-to-end timing of whole networks: one set of settings, one loop.

Every end-to-end latency ednas reports (the latency table's fitted constant
and its validation, the search's measured latency, ``ednas export``'s fp32
vs quantized figures, ``ednas profile``, the report's baselines) is taken by
:func:`time_onnx` (ONNX Runtime) or :func:`time_torch` (PyTorch eager,
channels_last) with a :class:`Timing`, and both run
:func:`ednas.runtime.board.interleaved`: in round r every model is timed
back to back (``warmup`` untimed runs, then at least ``repeats`` runs and
``min_time_s`` seconds; their 20th percentile by default, ``Timing.stat``),
then round r + 1; a model's figure is the median of its round figures.  A slow episode of a shared machine then
hits every model of a round alike, and no single episode decides the median.

Threads are always set (default 1): on small shared machines, timings at
more threads than the machine can spare come in fast and slow episodes up to
2x apart.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from ednas.errors import ConfigError
from ednas.runtime import board
from ednas.runtime.session import ort_session

__all__ = ["Reference", "Timing", "channels_last", "time_onnx", "time_torch", "torch_threads"]


@dataclass
class Timing:
    """How end-to-end latencies are measured (every figure of a run is taken this way)."""

    #: intra-op threads while timing (keep it what you deploy with)
    threads: int = 1
    #: untimed runs before each timed batch
    warmup: int = 10
    #: timed runs per model per round (at least; see min_time_s)
    repeats: int = 20
    #: interleaved rounds over all models; a figure is the median of the round medians
    rounds: int = 5
    #: each timed batch runs at least this long, in seconds (20 ms and 20 runs: 0.45-0.62x the time of 50 ms and 50 runs
    #: for +0.26 point of a table check's MAPE, benchmarks/e2e_timing.py; BENCHMARKS.md "How long a whole network's timed batch runs")
    min_time_s: float = 0.02
    #: statistic of the runs of one timed batch: p20 (their 20th percentile: resists interference, keeps
    #: the round-to-round scatter low), median, min, p10, p25
    stat: str = "p20"
    #: a model whose round figures still disagree after `rounds` gets more rounds, up to this many
    #: (None: 3 x rounds, as a table entry; = rounds turns it off)
    max_rounds: int | None = None
    #: ... while the standard error of its median is above this share of it
    rel_tol: float = board.REL_TOL

    def adaptive(self) -> dict:
        """The adaptive-rounds keywords of :func:`ednas.runtime.board.interleaved`."""
        return {"max_rounds": self.max_rounds, "rel_tol": self.rel_tol}

    def check(self, name: Callable[[str], str] | None = None) -> None:
        """Raise a :class:`~ednas.errors.ConfigError` naming the first bad setting.

        ``name(field)`` is how the message names a field (the config system
        passes the user's flag); default ``timing.FIELD``.
        """
        name = name or (lambda f: f"timing.{f}")
        for f, low in (("threads", 1), ("warmup", 0), ("repeats", 1), ("rounds", 1)):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise ConfigError(f"{name(f)} must be an integer >= {low}, got {v!r}"
                                  + (" (timings need a deliberate thread count)" if f == "threads" else ""))
        if isinstance(self.min_time_s, bool) or not isinstance(self.min_time_s, (int, float)) or not self.min_time_s >= 0:
            raise ConfigError(f"{name('min_time_s')} must be a number >= 0, got {self.min_time_s!r}")
        if self.max_rounds is not None and (isinstance(self.max_rounds, bool) or not isinstance(self.max_rounds, int)
                                            or self.max_rounds < self.rounds):
            raise ConfigError(f"{name('max_rounds')} must be none or an integer >= {name('rounds')} ({self.rounds}), got {self.max_rounds!r}")
        if isinstance(self.rel_tol, bool) or not isinstance(self.rel_tol, (int, float)) or not 0 <= self.rel_tol <= 1:
            raise ConfigError(f"{name('rel_tol')} must be a number in [0, 1], got {self.rel_tol!r}")
        if self.stat not in board.STATISTICS:
            raise ConfigError(f"{name('stat')} must be one of {', '.join(board.STATISTICS)}, got {self.stat!r}")


@dataclass(frozen=True)
class Reference:
    """A fixed reference network timed alongside the models, and its time when a latency table was built.

    ``onnx`` is the model's bytes (input shape ``shape``, or its own), ``ms``
    its time in the table (``None``: only the ratios are wanted), ``format``
    the file format of the bytes (``onnx`` when None; ``tflite`` for a
    LiteRT table's: :meth:`ednas.runtime.interface.Runtime.reference`).  See
    :func:`ednas.runtime.board.interleaved`.
    """

    onnx: bytes
    ms: float | None = None
    shape: tuple | None = None
    format: str | None = None


def time_onnx(models: dict, timing: Timing | None = None, progress: Callable | None = None, reference: Reference | None = None) -> dict:
    """End-to-end ONNX Runtime ms of ``{name: .onnx path or bytes}``, interleaved.

    Sessions are :func:`~ednas.runtime.ort_session` at ``timing.threads``
    (sequential, one inter-op thread, ``ORT_ENABLE_ALL``), fed random input
    of each model's input shape (batch 1 for a symbolic batch).

    Returns:
        ``{name: {"ms", "spread_ms", "min_ms", "n", "rounds_ms"}}``: the
        median of the round medians, the standard deviation of the round
        medians, the fastest single run, the number of timed runs, and the
        round medians (see :func:`ednas.runtime.board.interleaved`).  With a
        ``reference``, also each model's ``rel``, ``scaled_ms`` (its time at
        the speed the reference had when the table was built) and the
        reference's own figures under :data:`ednas.runtime.board.REFERENCE`.
    """
    timing = timing or Timing()
    timing.check()
    runners = {}
    for name, model in models.items():
        sess = ort_session(model, timing.threads)
        runners[name] = _bind(sess.run, None, board.feed(sess))
    ref = None
    if reference is not None:
        sess = ort_session(reference.onnx, timing.threads)
        ref = _bind(sess.run, None, board.feed(sess, list(reference.shape) if reference.shape else None))
    return board.interleaved(runners, timing.warmup, timing.repeats, timing.rounds, timing.min_time_s, progress,
                             reference=ref, ref_ms=None if reference is None else reference.ms, stat=timing.stat, **timing.adaptive())


@contextmanager
def torch_threads(n: int):
    """Run a block with ``n`` intra-op torch threads, then restore the old count."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def channels_last(t):
    """A 4-d tensor in channels_last memory format (others unchanged)."""
    import torch

    return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t


def time_torch(models: dict, input_size: int | None = None, timing: Timing | None = None, progress: Callable | None = None, inputs: dict | None = None,
               device=None, amp_dtype=None) -> dict:
    """End-to-end PyTorch eager ms of ``{name: nn.Module}``, interleaved (same loop and result as :func:`time_onnx`).

    Each module runs in eval mode, channels_last, under ``inference_mode``
    with ``timing.threads`` intra-op threads, on a random
    ``1 x 3 x input_size x input_size`` image, or on ``inputs[name]`` when
    given (any shape: the host-torch operator table times single operators).
    ``device`` (default the CPU) and ``amp_dtype`` (autocast, default none)
    say where and how; on CUDA every run waits for the device, so a run's
    time is its latency.
    """
    import torch

    timing = timing or Timing()
    timing.check()
    if input_size is None and not inputs:
        raise ConfigError("time_torch needs input_size or inputs")
    with torch_threads(timing.threads), torch.inference_mode():
        gen = torch.Generator().manual_seed(0)
        default = None if input_size is None else channels_last(torch.rand(1, 3, input_size, input_size, generator=gen) * 2 - 1)
        runners = {}
        dev = torch.device(device or "cpu")
        for name, m in models.items():
            m = m.eval().to(dev, memory_format=torch.channels_last)
            x = channels_last(inputs[name]) if inputs and name in inputs else default
            runners[name] = _bind(m, x.to(dev), device=dev, amp_dtype=amp_dtype)
        return board.interleaved(runners, timing.warmup, timing.repeats, timing.rounds, timing.min_time_s, progress, stat=timing.stat,
                                 **timing.adaptive())


def _bind(fn, *args, device=None, amp_dtype=None):
    """``fn(*args)`` as a zero-argument callable (a runner of the loop), on ``device`` under ``amp_dtype``'s autocast."""
    if (device is None or device.type == "cpu") and amp_dtype is None:
        def run():
            return fn(*args)

        return run
    import torch

    def run_on_device():
        with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = fn(*args)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    return run_on_device
