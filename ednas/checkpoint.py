"""Checkpoints: written atomically, read with clear errors, resumed only with the same settings.

A checkpoint is a dict of tensors and plain values saved with ``torch.save``
(so ``torch.load(weights_only=True)`` reads it).  It carries the settings
that decide the result of the work it belongs to (``settings``): the
search and the training both resume through :func:`resume_state`, which
refuses a checkpoint written with other settings and names the ones that
differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ednas.errors import CheckpointError
from ednas.io import atomic_save

__all__ = ["load_torch_file", "save_checkpoint", "load_checkpoint", "resume_state", "settings_diff"]


def load_torch_file(path, what: str = "checkpoint") -> dict:
    """The dict saved in a torch file; a missing, corrupt or foreign file is a :class:`CheckpointError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} '{path}' does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zips, pickles, wrong files
        raise CheckpointError(f"{what} '{path}' is corrupt or not a torch file ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what} '{path}': expected a dict, got {type(obj).__name__}")
    return obj


def save_checkpoint(path, state: dict, settings: dict | None = None) -> Path:
    """Write ``state`` (plus ``settings``) atomically: a reader sees the old file or the new one."""
    if settings is not None:
        state = {**state, "settings": settings}
    return atomic_save(state, path)


def load_checkpoint(path) -> dict:
    return load_torch_file(Path(path), "checkpoint")


def settings_diff(old: dict, new: dict) -> list[str]:
    """``"key: old vs new"`` for every setting that differs (a key only one side has counts)."""
    out = []
    for k in sorted(set(old) | set(new)):
        if old.get(k, "<unset>") != new.get(k, "<unset>"):
            out.append(f"{k}: {old.get(k, '<unset>')!r} vs {new.get(k, '<unset>')!r}")
    return out


def resume_state(path, settings: dict) -> dict | None:
    """The checkpoint at ``path`` if there is one, after checking it was written with ``settings``.

    Returns ``None`` when there is no checkpoint (the work starts afresh).

    Raises:
        CheckpointError: the file is corrupt, or it was written with other
            settings (each differing one named, old vs new).
    """
    path = Path(path)
    if not path.is_file():
        return None
    ck = load_checkpoint(path)
    old = ck.get("settings")
    if not isinstance(old, dict):
        raise CheckpointError(f"--resume: '{path}' records no settings (written by another ednas version); remove it to start afresh")
    diff = settings_diff(_plain(old), _plain(settings))
    if diff:
        raise CheckpointError(f"--resume: '{path}' was written with other settings ({'; '.join(diff)})")
    return ck


def _plain(d: Any) -> Any:
    if isinstance(d, dict):
        return {str(k): _plain(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_plain(v) for v in d]
    return d
