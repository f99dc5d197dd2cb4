"""Atomic writes: nothing already written is lost if a run is interrupted or the disk fills up.

Every output (checkpoints, metrics, arch files, tables) is written to a
temporary file in the same directory, flushed and synced, then renamed over
the target: a reader sees the old file or the new one, never half of one.

* A signal (SIGINT/SIGTERM) that arrives during a write is held back until
  the file is in place (:func:`ednas.signals.deferred`).
* A write that fails (no permission, read-only file system, disk full)
  removes its temporary file and raises :class:`~ednas.errors.DiskError`,
  naming the file and the reason; the target keeps its previous contents.
* ``keep_previous``: before the new file replaces the target, the target
  is renamed to that path, so the last good version survives a file that
  is later found corrupt (checkpoints keep ``checkpoint.prev.pt``).
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ednas.errors import ConfigError, DiskError
from ednas.signals import deferred

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_save", "read_json", "canonical_json", "check_writable_dir", "check_writable_file", "disk_error"]

_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def disk_error(path, err: OSError, existed: bool | None = None) -> DiskError:
    """A :class:`DiskError` for a failed write of ``path``: what failed, and what is left."""
    path = Path(path)
    why = err.strerror or str(err)
    if err.errno in _FULL:
        what = f"the disk holding '{path.parent}' is full ({why}); free some space and rerun the same command"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = f"no permission to write there ({why}); choose another output folder or fix its permissions"
    else:
        what = why
    kept = "" if existed is None else (" nothing was half written: the previous file is unchanged" if existed
                                       else " nothing was half written: no partial file is left")
    return DiskError(f"cannot write '{path}': {what};{kept}" if kept else f"cannot write '{path}': {what}")


def _atomic(path: Path, write, keep_previous: Path | None = None) -> Path:
    path = Path(path)
    existed = path.exists()
    with deferred():
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            if keep_previous is not None and existed:
                os.replace(path, keep_previous)
            os.replace(tmp, path)
            tmp = None
        except OSError as e:
            raise disk_error(path, e, existed) from e
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    return _atomic(Path(path), lambda f: f.write(data))


def atomic_write_text(path, text: str) -> Path:
    return _atomic(Path(path), lambda f: f.write(text.encode()))


def atomic_write_json(path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def atomic_save(obj: Any, path, keep_previous=None) -> Path:
    """``torch.save`` to ``path`` atomically (the old file renamed to ``keep_previous`` first, if given)."""
    return _atomic(Path(path), lambda f: torch.save(obj, f), Path(keep_previous) if keep_previous is not None else None)


def read_json(path) -> Any:
    return json.loads(Path(path).read_text())


def canonical_json(obj: Any) -> str:
    """One text per JSON value (sorted keys, no spaces): what checksums of JSON files are taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_jsonable)


def check_writable_dir(path, flag: str = "--out") -> Path:
    """Create the folder ``path`` if needed and make sure a file can be written in it.

    Raises:
        ConfigError: a part of the path is a file, or the folder cannot be
            created or written (naming ``flag``, the path and the reason).
    """
    return _writable_dir(_expand(path, flag), flag, path)


def check_writable_file(path, flag: str = "--out") -> Path:
    """Make sure the file ``path`` can be written (its folder is created if needed); see :func:`check_writable_dir`."""
    p = _expand(path, flag)
    if p.is_dir():
        raise ConfigError(f"{flag} '{path}' is a folder; expected a file name")
    _writable_dir(p.parent, flag, path)
    return p


def _expand(path, flag: str) -> Path:
    try:
        return Path(path).expanduser()
    except RuntimeError as e:  # '~user' of no such user
        raise ConfigError(f"{flag} '{path}': cannot expand it ({e})") from e


def _writable_dir(p: Path, flag: str, shown) -> Path:
    for parent in [p, *p.parents]:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"{flag} '{shown}': '{parent}' is a file, not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".ednas-write-check.", dir=p)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise ConfigError(f"{flag} '{shown}': cannot write there ({e.strerror or e})") from e
    return p


def _jsonable(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
