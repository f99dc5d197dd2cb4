"""What every long-running command shares: progress, TensorBoard writers, provenance.

One place, so that ``ednas train``, ``ednas search``, ``ednas lut build`` and
the report show progress and record where a result came from the same way.

Progress is shown where a person watches: a tqdm bar when stderr is a
terminal; elsewhere (a log file, CI) a bar would write an unreadable stream
of carriage returns, so :func:`progress` logs one line per tenth of the work
instead.  ``enabled=None`` means "if stderr is a terminal", ``True`` forces
the bar (or the log lines) and ``False`` shows nothing.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["progress", "tb_writer", "git_commit", "LogProgress"]

log = logging.getLogger("ednas.progress")


class LogProgress:
    """A stand-in for a tqdm bar that logs a line every ``every`` of ``total`` updates."""

    def __init__(self, total: int, desc: str, unit: str = "it", lines: int = 10):
        self.total, self.desc, self.unit = int(total), desc, unit
        self.n = 0
        self.every = max(1, self.total // max(1, lines))
        self.t0 = time.time()
        self.postfix = ""

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n % self.every == 0 or self.n == self.total:
            rate = self.n / max(time.time() - self.t0, 1e-9)
            log.info("%s: %d/%d %s (%.1f %s/s)%s", self.desc, self.n, self.total, self.unit, rate, self.unit,
                     f" {self.postfix}" if self.postfix else "")

    def set_postfix(self, **kw) -> None:
        self.postfix = " ".join(f"{k}={v}" for k, v in kw.items())

    def close(self) -> None:
        pass


def progress(enabled: bool | None, total: int, desc: str, unit: str = "it"):
    """A progress bar (see the module docstring), or ``None`` when nothing is shown."""
    if enabled is False or total <= 0:
        return None
    tty = sys.stderr.isatty()
    if enabled is None and not tty:
        return None
    if not tty:
        return LogProgress(total, desc, unit)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)


def tb_writer(enabled: bool, out: Path):
    """A TensorBoard ``SummaryWriter`` writing to ``out/tb`` (``None`` when disabled)."""
    if not enabled:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(Path(out) / "tb"))


def git_commit() -> str | None:
    """The short commit of the ednas checkout (``+dirty`` with uncommitted changes), or ``None`` outside git."""
    here = Path(__file__).resolve().parent
    try:
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, cwd=here)
        if r.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                               timeout=5, cwd=here).stdout.strip()
        return r.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
