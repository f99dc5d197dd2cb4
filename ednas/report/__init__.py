"""Reports: profile a network, train baselines, write the run's report.

* :mod:`.macs`: our own MAC counter (forward hooks on conv and linear layers);
* :mod:`.profile`: ``ednas profile`` (params, MACs, predicted and measured
  latency, per-layer table);
* :mod:`.baselines`: width-scaled timm/torchvision baselines, trained with the
  derived network's recipe and timed on the same target;
* :mod:`.figures`: the report's matplotlib figures;
* :mod:`.report`: ``report.html`` (self-contained) and ``report.md``.

Heavy imports (timm, matplotlib, onnxruntime) happen inside the functions, so
importing this package is cheap.
"""

from ednas.report.baselines import BASELINES, DEFAULT_BASELINES, adapt_strides, build_baseline, default_width, load_baselines, run_baselines
from ednas.report.macs import LayerCount, count_macs
from ednas.report.profile import ProfileConfig, analytic_latency, load_network, measure_onnx_ms, profile_model, run_profile
from ednas.report.report import fmt, write_report

__all__ = [
    "BASELINES",
    "DEFAULT_BASELINES",
    "LayerCount",
    "ProfileConfig",
    "adapt_strides",
    "analytic_latency",
    "build_baseline",
    "count_macs",
    "default_width",
    "fmt",
    "load_baselines",
    "load_network",
    "measure_onnx_ms",
    "profile_model",
    "run_baselines",
    "run_profile",
    "write_report",
]
