"""The searched supernet on disk, for weight inheritance (``ednas train --inherit``).

``supernet.pt`` holds only tensors and plain values: the space, the supernet
kind, the number of classes, the input size, the final picks (after the
budget fit) and the state dict (weights and alphas).
"""

from __future__ import annotations

from pathlib import Path

from ednas.errors import CheckpointError
from ednas.io import atomic_save

__all__ = ["save_supernet", "load_supernet"]

FORMAT = 1


def save_supernet(path, net, picks, input_size: int, data=None) -> Path:
    obj = {
        "kind": "ednas-supernet",
        "format": FORMAT,
        "space": net.space.format(),
        "supernet": net.kind,
        "num_classes": int(net.num_classes),
        "input_size": int(input_size),
        "picks": [dict(p) for p in picks],
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
        "data": getattr(data, "spec", None),
    }
    return atomic_save(obj, path)


def load_supernet(path):
    """``(supernet, picks)`` from a ``supernet.pt``."""
    import torch

    from ednas.nn.build import build_supernet

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"supernet file '{path}' does not exist (expected the supernet.pt of 'ednas search')")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"supernet file '{path}' is corrupt ({type(e).__name__})") from e
    if not isinstance(obj, dict) or obj.get("kind") != "ednas-supernet" or obj.get("format") != FORMAT:
        raise CheckpointError(f"supernet file '{path}' is not an ednas supernet of format {FORMAT}")
    net = build_supernet(obj["space"], obj["num_classes"], kind=obj["supernet"])
    try:
        net.load_state_dict(obj["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"supernet file '{path}': weights do not match its space ({str(e).splitlines()[0][:200]})") from e
    return net.eval(), [dict(p) for p in obj["picks"]]
