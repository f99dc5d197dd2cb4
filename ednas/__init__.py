"""ednas: latency-aware differentiable architecture search for embedded targets (E-DNAS).

The public API is what ``__all__`` lists; everything with a leading underscore,
and every name not listed, may move.
"""

from ednas.arch.spec import ArchSpec, format_arch, load_arch, parse_arch, preset
from ednas.errors import EdnasError
from ednas.nn import Supernet, build_model, build_supernet, fuse, fuse_supernet, inherit_weights

__version__ = "0.1.0"

__all__ = [
    "ArchSpec",
    "EdnasError",
    "Supernet",
    "__version__",
    "build_model",
    "build_supernet",
    "format_arch",
    "fuse",
    "fuse_supernet",
    "inherit_weights",
    "load_arch",
    "parse_arch",
    "preset",
]
