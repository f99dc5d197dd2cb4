"""Reports: profile a network, train baselines, write the run's report.

* :mod:`.profile`: ``ednas profile`` (params, MACs, predicted and measured
  latency, per-layer table);
* :mod:`.baselines`: width-scaled timm/torchvision baselines, trained with the
  derived network's recipe and timed on the same target;
* :mod:`.figures`: the report's matplotlib figures;
* :mod:`.report`: ``report.html`` (self-contained) and ``report.md``;
* :mod:`.verdict`: whether a run met its latency targets (the report's warning).

MACs are counted by :mod:`ednas.nn.macs` (forward hooks on conv and linear
layers); networks are timed by :mod:`ednas.runtime`.  Heavy imports (timm,
matplotlib, onnxruntime) happen inside the functions, so importing this
package is cheap.
"""

from ednas.report.baselines import (
    BASELINES,
    DEFAULT_BASELINES,
    FIXED_BASELINES,
    adapt_strides,
    build_baseline,
    default_width,
    load_baselines,
    match_width,
    run_baselines,
)
from ednas.report.profile import ProfileConfig, analytic_latency, load_network, measure_onnx_ms, profile_model, run_profile
from ednas.report.report import fmt, write_report

__all__ = [
    "BASELINES",
    "DEFAULT_BASELINES",
    "FIXED_BASELINES",
    "ProfileConfig",
    "adapt_strides",
    "analytic_latency",
    "build_baseline",
    "default_width",
    "fmt",
    "load_baselines",
    "load_network",
    "match_width",
    "measure_onnx_ms",
    "profile_model",
    "run_baselines",
    "run_profile",
    "write_report",
]
