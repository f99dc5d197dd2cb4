"""Numerical faults: a step with a non-finite loss or gradient is skipped and counted, never applied.

One mixed-precision overflow, one bad batch or one spike of the learning
rate can make a loss or a gradient NaN or infinite; applied, it would turn
every weight into NaN and lose the run.  The training loop and both steps of
the search go through one :class:`StepGuard`:

* before the forward pass, :meth:`StepGuard.before` keeps a copy of the
  modules' buffers (BN running statistics, which a forward pass in training
  mode updates even when its loss turns out NaN);
* :meth:`StepGuard.step` computes the gradient and applies the optimizer
  step only when the loss and every gradient are finite; otherwise it
  restores the buffers, leaves the parameters and the optimizer untouched,
  counts the skip (per kind: ``weight``, ``arch``, ...), and logs a warning;
* after ``limit`` skipped steps in a row of one stream (one path's weight
  steps, say) it raises :class:`~ednas.errors.TrainingError`: the run has
  diverged, and the checkpoint of the last complete epoch is left as it was.

A value that is not a step (the search's lambda) is guarded with
:meth:`StepGuard.accept`, which counts a non-finite value the same way and
tells the caller to keep the previous one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from ednas.errors import TrainingError

__all__ = ["StepGuard", "all_finite"]

log = logging.getLogger(__name__)


def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """Whether every element of every tensor is finite (one fused norm over all of them)."""
    ts = [t.detach() for t in tensors if t is not None]
    if not ts:
        return True
    return bool(torch.isfinite(torch.nn.utils.get_total_norm(ts, norm_type=2.0, error_if_nonfinite=False)))


class StepGuard:
    """Skips and counts steps with a non-finite loss or gradient (see the module docstring).

    Args:
        limit: skipped steps in a row (of one stream) after which the run stops.
        what: how messages name the run (``training``, ``search``).
        hint: what to try when it stops (e.g. lowering the learning rate).
    """

    def __init__(self, limit: int, what: str = "training", hint: str = ""):
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit, self.what, self.hint = int(limit), what, hint
        self.skipped: dict[str, int] = {}
        self._in_row: dict[object, int] = {}
        self._saved: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []

    # -- counting ------------------------------------------------------------------
    @property
    def total(self) -> int:
        return sum(self.skipped.values())

    def counts(self) -> dict[str, int]:
        return dict(self.skipped)

    def load_counts(self, counts: dict | None) -> None:
        self.skipped = {str(k): int(v) for k, v in (counts or {}).items()}

    def _bad(self, kind: str, stream, where: str, why: str) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + 1
        n = self._in_row[stream] = self._in_row.get(stream, 0) + 1
        log.warning("%s: %s step skipped at %s (%s); %d skipped in a row, %d in all", self.what, kind, where, why, n, self.total)
        if n >= self.limit:
            raise TrainingError(
                f"{self.what} stopped: {n} {kind} steps in a row had a non-finite loss or gradient (last at {where}: {why}); "
                f"the checkpoint of the last complete epoch is kept{'; ' + self.hint if self.hint else ''}"
            )

    def _good(self, stream) -> None:
        self._in_row[stream] = 0

    # -- steps ---------------------------------------------------------------------
    def before(self, *modules: nn.Module) -> None:
        """Keep a copy of the buffers of ``modules`` (BN statistics and counters; restored if the step is skipped)."""
        self._saved = []
        for m in modules:
            bufs = list(m.buffers())
            self._saved.append((bufs, [b.detach().clone() for b in bufs]))

    def _restore(self) -> None:
        with torch.no_grad():
            for bufs, copies in self._saved:
                for b, c in zip(bufs, copies):
                    b.copy_(c)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, params: Iterable[torch.Tensor], *,
             kind: str = "weight", stream=None, where: str = "", scaler=None, sync: Callable[[], bool] | None = None) -> bool:
        """Backward and ``optimizer.step()`` if ``loss`` and the gradients of ``params`` are finite.

        Returns whether the step was applied.  The gradients are cleared
        first (``zero_grad(set_to_none=True)``).

        ``scaler``: a :class:`torch.amp.GradScaler` (fp16): the loss is
        scaled for the backward pass and the gradients unscaled before they
        are checked; a skipped step lowers its scale as ``GradScaler`` would.
        ``sync``: called after the backward pass to make the data-parallel
        ranks act as one (it averages their gradients); it returns whether
        every rank's loss was finite.  With it, every rank runs its backward
        pass and its all-reduce even on a bad loss, so that all of them take
        the same decision and none waits for the others.

        Raises:
            TrainingError: the ``limit``-th skipped step in a row of ``stream``.
        """
        stream = kind if stream is None else (kind, stream)
        optimizer.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss.detach()).all())
        if not finite and sync is None:
            self._restore()
            self._bad(kind, stream, where, f"loss {float(loss.detach().float().mean())}")
            return False
        scaled = scaler is not None and scaler.is_enabled()
        (scaler.scale(loss) if scaled else loss).backward()
        if sync is not None:
            finite = sync()
        if scaled:
            scaler.unscale_(optimizer)
        params = list(params)
        if not finite or not all_finite(p.grad for p in params):
            optimizer.zero_grad(set_to_none=True)
            if scaled:
                scaler.update()  # the overflow lowers the scale
            self._restore()
            self._bad(kind, stream, where, "non-finite gradient" if finite else "non-finite loss")
            return False
        if scaled:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        self._good(stream)
        return True

    def accept(self, value: float, *, kind: str, where: str = "") -> bool:
        """Whether ``value`` is finite; a non-finite one is counted as a skipped ``kind`` step."""
        if math.isfinite(float(value)):
            self._good(kind)
            return True
        self._bad(kind, kind, where, f"value {value}")
        return False
