"""Networks on disk: the trained ``model.pt`` and the searched ``supernet.pt``.

``model.pt`` holds only tensors and plain values (so ``torch.load`` runs with
``weights_only=True``): format version, the arch string, number of classes,
input size, normalisation, class names, the data spec, the resolved config and
the state dict (training form, BN unfused; :func:`ednas.fuse` makes the deploy
form), and a checksum of all of it (:mod:`ednas.checkpoint`).

``supernet.pt`` (written by the search, read by ``ednas train --inherit``)
holds the space, the supernet kind, the number of classes, the input size,
the final picks (after the budget fit) and the state dict (weights and alphas).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ednas.arch.spec import parse_arch
from ednas.checkpoint import load_torch_file, with_checksum
from ednas.errors import ArchError, CheckpointError
from ednas.io import atomic_save
from ednas.nn.build import build_model, build_supernet

__all__ = ["MODEL_FORMAT", "SUPERNET_FORMAT", "save_model", "load_model", "load_model_file", "save_supernet", "load_supernet"]

MODEL_FORMAT = 1
SUPERNET_FORMAT = 1


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
    return atomic_save(with_checksum(meta), path)


def load_model_file(path) -> dict:
    """The raw contents of a model file, checked for format and keys."""
    path = Path(path)
    meta = load_torch_file(path, "model file")
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
        CheckpointError: missing or corrupt file, or an architecture that does
            not match the weights (the first mismatching tensors are named).
    """
    path = Path(path)
    meta = load_model_file(path)
    try:
        arch = parse_arch(meta["arch"])
    except ArchError as e:
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


def save_supernet(path, net, picks, input_size: int, data=None) -> Path:
    """Write the searched supernet and the final picks (for weight inheritance)."""
    obj = {
        "kind": "ednas-supernet",
        "format": SUPERNET_FORMAT,
        "space": net.space.format(),
        "supernet": net.kind,
        "num_classes": int(net.num_classes),
        "input_size": int(input_size),
        "picks": [dict(p) for p in picks],
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
        "data": getattr(data, "spec", None),
    }
    return atomic_save(with_checksum(obj), path)


def load_supernet(path):
    """``(supernet, picks)`` from a ``supernet.pt``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"supernet file '{path}' does not exist (expected the supernet.pt of 'ednas search')")
    obj = load_torch_file(path, "supernet file")
    if obj.get("kind") != "ednas-supernet" or obj.get("format") != SUPERNET_FORMAT:
        raise CheckpointError(f"supernet file '{path}' is not an ednas supernet of format {SUPERNET_FORMAT}")
    net = build_supernet(obj["space"], obj["num_classes"], kind=obj["supernet"])
    try:
        net.load_state_dict(obj["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"supernet file '{path}': weights do not match its space ({str(e).splitlines()[0][:200]})") from e
    return net.eval(), [dict(p) for p in obj["picks"]]
