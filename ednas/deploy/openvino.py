"""The exported ``.onnx`` files checked in OpenVINO too (``ednas export``, when OpenVINO is installed).

OpenVINO reads the very files ``ednas export`` writes (the fp32 ONNX and
the QDQ quantized one), so an engineer deploying with it learns, from the
same ``export.json``, what it scores and how fast it runs: each file's
top-1 (or mAP) on the evaluation split, its agreement with ONNX Runtime's
predictions and the largest logit difference, and the files timed
interleaved in OpenVINO (:class:`ednas.runtime.openvino.OpenVinoRuntime`:
CPU plugin, the run's threads, the latency hint, batch 1).  Written under
``openvino`` in ``export.json``; ``null`` when OpenVINO is not installed
(the openvino extra) or ``--no-openvino`` is given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ednas.metrics import task_metrics, top1
from ednas.runtime import Timing
from ednas.runtime.interface import get_runtime

__all__ = ["check_in_openvino"]


def check_in_openvino(files: dict, data, batches_fn, limit: int, timing: Timing, ort_scores: dict, labels: np.ndarray) -> dict | None:
    """``export.json``'s ``openvino`` entry, or None without OpenVINO.

    Args:
        files: ``{"fp32": path, "quant": path}`` (``quant`` optional).
        batches_fn: ``() -> (x, y) batches`` of the evaluation split.
        ort_scores: ``{"fp32": scores, "quant": scores}``: ONNX Runtime's on the same images.
        labels: their labels.

    The figures are as timed (an ONNX Runtime table's reference network
    prices ONNX Runtime, not OpenVINO; ``ednas run --target host-openvino``
    checks its budget with an OpenVINO table's reference instead).
    """
    rt = get_runtime("openvino")
    if not rt.available():
        return None
    ml = data.multilabel
    entry: dict = {"files": {k: str(v) for k, v in files.items()}}
    for name, path in files.items():
        scores, y = rt.score(path, batches_fn(), timing.threads, limit)
        ort = ort_scores[name]
        same = (scores > 0) == (ort > 0) if ml else scores.argmax(1) == ort.argmax(1)
        entry[f"map_{name}" if ml else f"top1_{name}"] = task_metrics(scores, y, True, data.classes)["map"] if ml else top1(scores, y)
        entry[f"agreement_{name}"] = float(same.mean() * 100.0) if len(same) else None
        entry[f"max_abs_diff_{name}"] = float(np.abs(scores - ort).max()) if len(ort) else None
    entry["n_eval"] = int(len(labels))
    lat = rt.time_files({k: Path(v) for k, v in files.items()}, timing)
    entry.update({
        "latency_ms_fp32": lat["fp32"]["ms"],
        "latency_ms_quant": lat["quant"]["ms"] if "quant" in lat else None,
        "speedup": lat["fp32"]["ms"] / lat["quant"]["ms"] if "quant" in lat and lat["quant"]["ms"] else None,
        "latency": lat,
        "how": f"OpenVINO CPU plugin, {timing.threads} thread(s), LATENCY hint, 1 stream, batch 1; {timing.stat} of runs, median over "
               f"{timing.rounds} interleaved rounds",
        "against": "ONNX Runtime's scores of the same file on the same images",
        "versions": rt.versions(),
    })
    return entry
