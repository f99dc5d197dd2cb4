"""The project's own errors, one class per kind of mistake.

A user's mistake (a bad flag, a missing file, a malformed arch string, a table
that lacks an operator) raises a subclass of :class:`EdnasError` with a
message that names the thing and what was expected, and keeps the exception
that revealed it as its ``__cause__`` (``raise ... from err``).  The command
line turns any of them into one line on stderr and exit status 2, never a
traceback from deep inside torch; ``--debug`` shows the traceback with its
cause.  A library caller can catch the kind it can handle.
"""

from __future__ import annotations

__all__ = [
    "ArchError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DeviceError",
    "DiskError",
    "EdnasError",
    "ExportError",
    "LatencyTableError",
    "TrainingError",
]


class EdnasError(Exception):
    """An error caused by the user's input, with a message meant for them."""


class ConfigError(EdnasError):
    """A setting: unknown key, wrong type, out of range, or in conflict with another."""


class DataError(EdnasError):
    """A data spec or the files behind it (missing, malformed, too small)."""


class ArchError(EdnasError):
    """An architecture or search-space spec, or an arch file."""


class DeviceError(EdnasError):
    """A remote device (``--target remote:HOST:PORT``): unreachable, refusing the token, or answering with an error."""


class LatencyTableError(EdnasError):
    """A latency table or target profile: missing, malformed, incompatible or incomplete."""


class CheckpointError(EdnasError):
    """A model file, supernet file or checkpoint: missing, corrupt, or written with other settings."""


class ExportError(EdnasError):
    """Export and quantization: ONNX Runtime disagrees, data of the wrong shape, bad options."""


class DiskError(EdnasError):
    """An output that cannot be written: no permission, a read-only file system, a full disk.

    Raised by :mod:`ednas.io`, whose writes are atomic: when it is raised,
    the file being written was left as it was before (or absent), never half
    written.
    """


class TrainingError(EdnasError):
    """Training or search cannot go on (for example, too many non-finite steps in a row)."""
