"""Checkpoints: written atomically with a checksum, read with clear errors, resumed only with the same settings.

A checkpoint is a dict of tensors and plain values saved with ``torch.save``
(so ``torch.load(weights_only=True)`` reads it).  It carries

* the settings that decide the result of the work it belongs to
  (``settings``): the search and the training both resume through
  :func:`resume_state`, which refuses a checkpoint written with other
  settings and names the ones that differ;
* a ``checksum`` (SHA-256 over every tensor's bytes, dtype and shape and
  every plain value, :func:`digest`), checked whenever an ednas file is read
  (:func:`load_torch_file`): a file changed on disk after it was written is
  refused instead of loaded.  ``model.pt`` and ``supernet.pt`` carry one too.

Writing a checkpoint first renames the one it replaces to
``NAME.prev.pt`` (:func:`previous_path`).  When the latest checkpoint is
torn or corrupt, :func:`resume_state` says so in a warning and resumes from
the previous one, which is one epoch older.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch

from ednas.errors import CheckpointError
from ednas.io import atomic_save

__all__ = ["CHECKSUM", "check_resume", "digest", "load_torch_file", "previous_path", "save_checkpoint", "load_checkpoint", "resume_state",
           "settings_diff", "with_checksum"]

log = logging.getLogger(__name__)

CHECKSUM = "checksum"


def _feed(h, obj: Any) -> None:
    if torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode() + b":")
            _feed(h, obj[k])
            h.update(b",")
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for v in obj:
            _feed(h, v)
            h.update(b",")
        h.update(b"]")
    else:
        h.update(f"{type(obj).__name__}:{obj!r}".encode())


def digest(obj: Any) -> str:
    """SHA-256 (hex) of a checkpoint's contents, without its own ``checksum`` entry."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in obj.items() if k != CHECKSUM} if isinstance(obj, dict) else obj)
    return h.hexdigest()


def with_checksum(state: dict) -> dict:
    """``state`` plus its :func:`digest` under ``checksum``."""
    return {**state, CHECKSUM: digest(state)}


def previous_path(path) -> Path:
    """Where the checkpoint that ``path`` replaced is kept: ``checkpoint.pt`` -> ``checkpoint.prev.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def load_torch_file(path, what: str = "checkpoint") -> dict:
    """The dict saved in a torch file; a missing, corrupt or foreign file is a :class:`CheckpointError` naming it.

    A file with a ``checksum`` entry must match it (a file without one,
    written by an earlier version, is read as it is).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} '{path}' does not exist")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise CheckpointError(f"{what} '{path}' cannot be read ({e.strerror or e})") from e
    if head != b"PK\x03\x04":  # torch.save writes a zip archive
        raise CheckpointError(f"{what} '{path}' is corrupt or not a torch file (it is not the zip archive torch.save writes)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zips, damaged records, foreign pickles
        raise CheckpointError(f"{what} '{path}' is corrupt: truncated or damaged ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what} '{path}': expected a dict, got {type(obj).__name__}")
    if CHECKSUM in obj and obj[CHECKSUM] != digest(obj):
        raise CheckpointError(f"{what} '{path}' is corrupt: its contents do not match the checksum written with them "
                              "(the file was changed or damaged on disk)")
    return obj


def save_checkpoint(path, state: dict, settings: dict | None = None, keep_previous: bool = True) -> Path:
    """Write ``state`` (plus ``settings`` and a checksum) atomically: a reader sees the old file or the new one.

    With ``keep_previous`` the checkpoint it replaces is kept as
    :func:`previous_path` (the fallback of :func:`resume_state`).
    """
    if settings is not None:
        state = {**state, "settings": settings}
    return atomic_save(with_checksum(state), path, keep_previous=previous_path(path) if keep_previous else None)


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

    A torn or corrupt checkpoint is reported in a warning and the previous
    one (:func:`previous_path`) is used instead.  Returns ``None`` when
    there is no checkpoint at all (the work starts afresh).

    Raises:
        CheckpointError: no checkpoint is readable, or the one read was
            written with other settings (each differing one named, old vs new).
    """
    path = Path(path)
    prev = previous_path(path)
    broken: list[str] = []
    for p in (path, prev):
        if not p.is_file():
            continue
        try:
            ck = load_checkpoint(p)
        except CheckpointError as e:
            broken.append(str(e))
            continue
        old = ck.get("settings")
        if not isinstance(old, dict):
            raise CheckpointError(f"--resume: '{p}' records no settings (written by another ednas version); remove it to start afresh")
        diff = settings_diff(_plain(old), _plain(settings))
        if diff:
            raise CheckpointError(f"--resume: '{p}' was written with other settings ({'; '.join(diff)})")
        if broken:
            log.warning("%s; resuming from the previous checkpoint '%s' (epoch %s) instead", broken[0], p, ck.get("epoch", "?"))
        return ck
    if broken:
        raise CheckpointError(f"--resume: no usable checkpoint: {'; '.join(broken)}; remove them to start afresh")
    return None


def check_resume(path, resume: bool) -> None:
    """Before a command's work: never overwrite an unfinished run without ``--resume``; say so when it finds nothing.

    Raises:
        CheckpointError: ``path`` (or its previous one) holds the checkpoint
            of an unfinished run and ``resume`` is off: continuing would
            silently replace it at the end of the first epoch.
    """
    path = Path(path)
    found = [p for p in (path, previous_path(path)) if p.is_file()]
    if resume:
        if not found:
            log.warning("--resume: there is no checkpoint in '%s'; starting afresh", path.parent)
        return
    if not found:
        return
    try:
        ck = load_checkpoint(found[0])
        epoch, epochs = int(ck.get("epoch")), int((ck.get("settings") or {}).get("epochs"))
    except (CheckpointError, TypeError, ValueError):
        epoch, epochs = None, None
    if epoch is not None and epoch >= epochs:
        return  # a finished run: its outputs are complete, running again is the user's choice
    at = f" (epoch {epoch} of {epochs})" if epoch is not None else ""
    raise CheckpointError(f"'{path.parent}' holds the checkpoint of an unfinished run{at}: add --resume to continue it, "
                          f"or choose another --out (or delete '{found[0].name}') to start afresh")


def _plain(d: Any) -> Any:
    if isinstance(d, dict):
        return {str(k): _plain(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_plain(v) for v in d]
    return d
