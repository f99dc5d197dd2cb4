"""Measured, not assumed: accuracy and host latency of ONNX models through ONNX Runtime.

* :func:`onnx_scores` runs a model over a split of a data set with
  :func:`ednas.runtime.score_onnx` (image by image when the model has a
  fixed batch of 1, as deployed) and returns logits and labels.
* :func:`compare_latency` times several models *interleaved* with
  :func:`ednas.runtime.time_onnx`: round r times every model once, then
  round r + 1, and each model's figure is the median of its round medians.
  On a shared machine timings fall into slow episodes of seconds to half a
  minute; timing the fp32 and the quantized model back to back within each
  round means an episode hits both, and repeating rounds keeps one episode
  from deciding the median.  One thread is the default: it is the steadiest.
"""

from __future__ import annotations

import numpy as np

from ednas.data import DataSet, make_loader
from ednas.runtime import Reference, Timing, board, score_onnx, time_onnx

__all__ = ["compare_latency", "onnx_scores", "top1"]


def onnx_scores(model, data: DataSet, split: str = "test", threads: int = 1, limit: int = 0, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N x classes) and labels of an ONNX model (path or session) on ``split``.

    Args:
        model: an ``.onnx`` path or an ONNX Runtime session.
        data: the data set (normalised as the model expects).
        split: ``train``, ``val`` or ``test``.
        threads: intra-op threads of the session (if a path is given).
        limit: evaluate only the first ``limit`` images (0: all).
        batch_size: images per loader batch.
    """
    return score_onnx(model, make_loader(data, split, batch_size, False), threads, limit)


from ednas.metrics import top1  # noqa: E402 - the one tie rule (re-exported)


def compare_latency(models: dict, threads: int = 1, rounds: int = 5, runs: int = 50, warmup: int = 10, timing: Timing | None = None,
                    reference: Reference | None = None) -> dict:
    """Batch-1 latency of several ONNX models, timed interleaved (see the module docstring).

    Args:
        models: name -> ``.onnx`` path (or serialised bytes).
        threads: ONNX Runtime intra-op threads.
        rounds: rounds; each times every model once.
        runs: timed runs per model per round (after ``warmup`` runs).
        warmup: untimed runs before each timing.
        timing: all of the above at once (wins over them); default
            ``Timing(threads, warmup, runs, rounds, min_time_s=0)``: exactly
            ``runs`` runs per round.
        reference: a latency table's reference network, timed alongside:
            each model also gets ``scaled_ms`` (its time at the table's
            speed) and the result a ``"reference"`` entry (its ratio now /
            at the table's build).

    Returns:
        name -> ``{"median_ms", "round_medians_ms", "min_ms", "threads",
        "rounds", "runs", "n"}``: the median of the round medians, the round
        medians, the fastest run, the settings and the number of timed runs.
    """
    timing = timing or Timing(threads=threads, warmup=warmup, repeats=runs, rounds=rounds, min_time_s=0.0)
    res = time_onnx(models, timing, reference=reference)
    out = {
        name: {
            "median_ms": r["ms"],
            "round_medians_ms": r["rounds_ms"],
            "min_ms": r["min_ms"],
            "threads": int(timing.threads),
            "rounds": len(r["rounds_ms"]),
            "runs": int(timing.repeats),
            "n": r["n"],
            **({"scaled_ms": r["scaled_ms"]} if "scaled_ms" in r else {}),
        }
        for name, r in res.items() if name in models
    }
    if reference is not None:
        ref = res[board.REFERENCE]
        out["reference"] = {"ms": ref["ms"], "table_ms": ref["table_ms"], "ratio": ref["ratio"]}
    return out
