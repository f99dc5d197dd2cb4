"""Latency of networks on a target: the lookup table of eq. 11 and E[LAT].

* :mod:`.ops`: operator descriptors and their versioned table keys;
* :mod:`.table`: the table file (format, versions, metadata, clear errors);
* :mod:`.measure`: host measurement (ONNX Runtime, PyTorch) and end to end,
  on :mod:`ednas.runtime` (whose :mod:`~ednas.runtime.board` is the
  standalone ONNX Runtime measuring code, on the host and on a board);
* :mod:`.targets`: analytic profiles (tda2x, tda4vm, roofline), operator support;
* :mod:`.build`: a table for a space from any target;
* :mod:`.model`: :class:`LatencyModel`, E[LAT] differentiable in alpha;
* :mod:`.validate`: the fitted constant and end-to-end validation;
* :mod:`.script`: the kit ``ednas lut script`` writes for a board.
"""

from ednas.latency.build import build_table
from ednas.latency.measure import measure_latency
from ednas.latency.model import LatencyModel
from ednas.latency.ops import KEY_VERSION, Op, arch_ops, space_ops
from ednas.latency.table import FORMAT_VERSION, LatencyTable, load_table
from ednas.latency.targets import Profile, load_profile, profile_names, unsupported_layers
from ednas.latency.validate import fit_constant, sample_picks, validate_table

__all__ = [
    "FORMAT_VERSION",
    "KEY_VERSION",
    "LatencyModel",
    "LatencyTable",
    "Op",
    "Profile",
    "arch_ops",
    "build_table",
    "fit_constant",
    "load_profile",
    "load_table",
    "measure_latency",
    "profile_names",
    "sample_picks",
    "space_ops",
    "unsupported_layers",
    "validate_table",
]
