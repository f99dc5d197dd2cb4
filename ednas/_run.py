"""What every long-running command shares: progress bars, TensorBoard writers, provenance.

One place, so that ``ednas train``, ``ednas search``, ``ednas lut build`` and
the report show progress and record where a result came from the same way.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["progress", "tb_writer", "git_commit"]


def progress(enabled: bool, total: int, desc: str, unit: str = "it"):
    """A tqdm bar (``None`` when disabled), cleared when it closes."""
    if not enabled or total <= 0:
        return None
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
