"""Atomic writes: nothing already written is lost if a run is interrupted.

Every output (checkpoints, metrics, arch files, tables) is written to a
temporary file in the same directory, flushed, then renamed over the target:
a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_write_text", "atomic_write_json", "atomic_save", "read_json"]


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    return _atomic(Path(path), lambda f: f.write(text.encode()))


def atomic_write_json(path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def atomic_save(obj: Any, path) -> Path:
    """``torch.save`` to ``path`` atomically."""
    return _atomic(Path(path), lambda f: torch.save(obj, f))


def read_json(path) -> Any:
    return json.loads(Path(path).read_text())


def _jsonable(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
