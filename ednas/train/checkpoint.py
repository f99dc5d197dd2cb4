"""Model files and training checkpoints, written atomically, read with clear errors.

``model.pt`` holds only tensors and plain values (so ``torch.load`` runs with
``weights_only=True``): format version, the arch string, number of classes,
input size, normalisation, class names, the data spec, the resolved config and
the state dict (training form, BN unfused; :func:`ednas.fuse` makes the deploy
form).  A checkpoint adds the optimizer state and the loop position.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ednas.arch.spec import parse_arch
from ednas.errors import CheckpointError, EdnasError
from ednas.io import atomic_save

__all__ = ["save_model", "load_model", "load_model_file", "save_checkpoint", "load_checkpoint", "MODEL_FORMAT"]

MODEL_FORMAT = 1


def save_model(path, model, *, input_size: int, data=None, config: dict | None = None, extra: dict | None = None) -> Path:
    """Write ``model`` (a :class:`~ednas.nn.build.Net`) and what is needed to rebuild and feed it."""
    meta: dict[str, Any] = {
        "format": MODEL_FORMAT,
        "kind": "ednas-model",
        "arch": model.arch.format(),
        "num_classes": int(model.num_classes),
        "input_size": int(input_size),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "config": config or {},
    }
    if data is not None:
        meta.update(data=data.spec, mean=list(data.mean), std=list(data.std), classes=list(data.classes))
    meta.update(extra or {})
    return atomic_save(meta, path)


def _torch_load(path: Path, what: str) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{what} '{path}' does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zips, pickles, wrong files
        raise CheckpointError(f"{what} '{path}' is corrupt or not a torch file ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what} '{path}': expected a dict, got {type(obj).__name__}")
    return obj


def load_model_file(path) -> dict:
    """The raw contents of a model file, checked for format and keys."""
    path = Path(path)
    meta = _torch_load(path, "model file")
    if meta.get("kind") != "ednas-model":
        raise CheckpointError(f"model file '{path}' is not an ednas model (no kind 'ednas-model'); "
                         "expected the model.pt written by 'ednas train'")
    if meta.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"model file '{path}' has format {meta.get('format')}, this ednas reads format {MODEL_FORMAT}")
    for key in ("arch", "num_classes", "input_size", "state_dict"):
        if key not in meta:
            raise CheckpointError(f"model file '{path}' lacks '{key}'")
    return meta


def load_model(path):
    """Rebuild the network of a model file and load its weights.

    Returns ``(model, meta)`` with the model in eval mode.

    Raises:
        EdnasError: missing or corrupt file, or an architecture that does not
            match the weights (the first mismatching tensors are named).
    """
    from ednas.nn.build import build_model

    path = Path(path)
    meta = load_model_file(path)
    try:
        arch = parse_arch(meta["arch"])
    except EdnasError as e:
        raise CheckpointError(f"model file '{path}': {e}") from e
    model = build_model(arch, int(meta["num_classes"]))
    sd = meta["state_dict"]
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f"shape mismatch: {'; '.join(shapes[:3])}")
        if missing:
            parts.append(f"missing: {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"unexpected: {', '.join(unexpected[:3])}")
        raise CheckpointError(f"model file '{path}': its architecture '{meta['arch']}' does not match its weights ({'; '.join(parts)})")
    model.load_state_dict(sd)
    return model.eval(), meta


def save_checkpoint(path, state: dict) -> Path:
    return atomic_save(state, path)


def load_checkpoint(path) -> dict:
    return _torch_load(Path(path), "checkpoint")
