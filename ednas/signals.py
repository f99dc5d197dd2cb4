"""Interruption: SIGINT and SIGTERM end a command cleanly, never in the middle of a write.

The command line installs :func:`handling` for the duration of a command.
A signal then raises :class:`Interrupted` (a ``KeyboardInterrupt`` that
carries the signal, so code that already cleans up after Ctrl-C cleans up
after a scheduler's SIGTERM too) in the main thread, at once, wherever the
command is: nothing ednas keeps needs the work in flight, since every
output is written atomically and the search and the training resume from
their last checkpoint.

Except while a write is in progress: :func:`deferred` (used by every
atomic write of :mod:`ednas.io`) holds a signal back until the file is
complete and renamed into place, then raises it.  So an interrupt never
costs the checkpoint that was being written when it came.

The command line turns :class:`Interrupted` into exit status ``128 +
signal`` (130 for SIGINT, 143 for SIGTERM) and a line saying how to resume.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

__all__ = ["Interrupted", "deferred", "handling", "check"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The command was interrupted by a signal (``signum``); exit status ``128 + signum``."""

    def __init__(self, signum: int = signal.SIGINT):
        self.signum = int(signum)
        super().__init__(signal.Signals(self.signum).name)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_depth = 0
_pending: int | None = None


def _handler(signum, frame) -> None:
    global _pending
    if _depth > 0:  # inside a write: raise when it is complete
        _pending = signum
        return
    raise Interrupted(signum)


def check() -> None:
    """Raise a signal held back by :func:`deferred` (when called outside any deferred section)."""
    global _pending
    if _depth == 0 and _pending is not None:
        s, _pending = _pending, None
        raise Interrupted(s)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back until the block is done (then raise :class:`Interrupted`).

    Only while :func:`handling` is active (elsewhere a signal does what it
    did before).  An exception from the block itself wins: the held signal
    is raised at the next :func:`check` or deferred block instead.
    """
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    check()


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` while the block runs (main thread only)."""
    global _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in SIGNALS}
    _pending = None
    for s in SIGNALS:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
