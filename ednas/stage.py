"""Work in a folder: skipped when complete, resumed when interrupted, kept aside when its settings change.

One mechanism for every piece of work ednas keeps on disk: the stages of
``ednas run`` (``lut/``, ``search/``, ...), each baseline network of the
report, and the cache of measured latency tables.

A stage folder holds, besides the work's own files:

``stage_started.json``  written before the work starts: its settings and their
                        fingerprint;
``stage.json``          written (atomically) when the work is complete: the
                        same, plus its wall time and the result it returned.

:func:`run_stage` then decides:

* ``stage.json`` with the same fingerprint: the work is complete; its result
  is returned without running anything ("complete, skipped");
* ``stage.json`` with another fingerprint (the settings changed), or
  ``stage_started.json`` with another fingerprint (interrupted with other
  settings, so its checkpoints cannot be resumed): the folder is renamed to
  ``NAME.old-N`` (nothing already written is lost) and the work runs afresh;
* ``stage_started.json`` with the same fingerprint: the work was interrupted;
  it runs again in the same folder, where it resumes from its own
  checkpoints ("resuming").

Settings must be JSON-serialisable; a stage that depends on another's output
includes that output (or its fingerprint) in its settings, so that when the
earlier stage re-runs, the later one does too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ednas.io import atomic_write_json, read_json

__all__ = ["StageResult", "fingerprint", "run_stage", "stage_state", "keep_aside"]

log = logging.getLogger(__name__)

MARKER = "stage.json"
STARTED = "stage_started.json"


def fingerprint(settings) -> str:
    """A short stable hash of JSON-serialisable ``settings``."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class StageResult:
    """What :func:`run_stage` returns: the work's result and how it was obtained."""

    result: dict
    skipped: bool
    wall_s: float
    fingerprint: str


def _read(path: Path) -> dict | None:
    try:
        d = read_json(path)
    except (OSError, ValueError):
        return None  # a damaged marker is not trusted: the work is redone (the folder kept aside)
    return d if isinstance(d, dict) else None


def stage_state(folder, settings) -> str:
    """``"complete"``, ``"interrupted"`` (same settings), ``"other"`` (other settings) or ``"new"``."""
    folder = Path(folder)
    fp = fingerprint(settings)
    done, started = folder / MARKER, folder / STARTED
    if done.is_file():
        d = _read(done)
        return "complete" if d is not None and d.get("fingerprint") == fp else "other"
    if started.is_file():
        d = _read(started)
        return "interrupted" if d is not None and d.get("fingerprint") == fp else "other"
    return "other" if folder.is_dir() and any(folder.iterdir()) else "new"


def keep_aside(folder, why: str, label: str | None = None) -> Path:
    """Rename ``folder`` to ``folder.old-N`` (the first free N) and say so."""
    folder = Path(folder)
    n = 1
    while folder.with_name(f"{folder.name}.old-{n}").exists():
        n += 1
    dest = folder.with_name(f"{folder.name}.old-{n}")
    folder.rename(dest)
    log.info("[%s] %s; the previous outputs are kept in %s", label or folder.name, why, dest.name)
    return dest


def run_stage(folder, settings, fn: Callable[[Path], dict], *, name: str | None = None, force: bool = False,
              quiet: bool = False) -> StageResult:
    """Run ``fn(folder)`` unless the work is already complete with these ``settings`` (see the module doc).

    Args:
        folder: the stage's folder (created as needed).
        settings: what the work depends on; a change re-runs it.
        fn: does the work in ``folder`` (resuming from its own checkpoints
            when the folder holds an interrupted run) and returns a
            JSON-serialisable result.
        name: how messages name the stage (default: the folder name).
        force: run even when complete (the old folder is kept aside).
        quiet: log at DEBUG instead of INFO (for many small stages).
    """
    folder = Path(folder)
    label = name or folder.name
    say = log.debug if quiet else log.info
    fp = fingerprint(settings)
    state = stage_state(folder, settings)
    if state == "complete" and not force:
        done = _read(folder / MARKER) or {}
        say("[%s] complete, skipped (%s)", label, folder)
        return StageResult(done.get("result") or {}, True, float(done.get("wall_s") or 0.0), fp)
    if (folder / MARKER).is_file():
        keep_aside(folder, "settings changed" if state == "other" else "run again", label)
    elif state == "other":
        keep_aside(folder, "interrupted with other settings" if (folder / STARTED).is_file() else "holds other files", label)
    folder.mkdir(parents=True, exist_ok=True)
    if state == "interrupted" and not force:
        say("[%s] resuming ...", label)
    else:
        atomic_write_json(folder / STARTED, {"stage": label, "fingerprint": fp, "settings": settings})
        say("[%s] running ...", label)
    t = time.time()
    result = fn(folder)
    wall = time.time() - t
    atomic_write_json(folder / MARKER, {"stage": label, "fingerprint": fp, "settings": settings, "wall_s": wall, "result": result})
    say("[%s] done in %.1f s", label, wall)
    return StageResult(result, False, wall, fp)
