"""Measured, not assumed: accuracy and host latency of ONNX models through ONNX Runtime.

* :func:`onnx_scores` runs a session over a split (image by image when the
  model has a fixed batch of 1, as deployed) and returns logits and labels.
* :func:`compare_latency` times several models *interleaved*: round r times
  every model once, then round r + 1, and each model's figure is the median
  of its round medians.  On this kind of VM 2-thread timings fall into slow
  episodes of seconds to half a minute (``../shared/baselines`` section 7);
  timing the fp32 and the quantized model back to back within each round
  means an episode hits both, and repeating rounds keeps one episode from
  deciding the median.  One thread is the default: it is steady here.
"""

from __future__ import annotations

import statistics

import numpy as np

from ednas.data import DataSet, make_loader
from ednas.deploy.onnx_io import ort_session, time_session

__all__ = ["onnx_scores", "run_batched", "top1", "compare_latency"]


def run_batched(sess, x: np.ndarray) -> np.ndarray:
    """Logits of ``sess`` for ``x`` (N x C x H x W), one image at a time if the batch is fixed."""
    inp = sess.get_inputs()[0]
    fixed = inp.shape[0] if isinstance(inp.shape[0], int) else None
    x = np.ascontiguousarray(x, dtype=np.float32)
    if fixed is not None and fixed != len(x):
        return np.concatenate([sess.run(None, {inp.name: x[i : i + fixed]})[0] for i in range(0, len(x), fixed)])
    return sess.run(None, {inp.name: x})[0]


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
    sess = ort_session(model, threads) if not hasattr(model, "run") else model
    scores, labels, seen = [], [], 0
    for x, y in make_loader(data, split, batch_size, False):
        if limit and seen >= limit:
            break
        if limit:
            x, y = x[: limit - seen], y[: limit - seen]
        scores.append(run_batched(sess, x.contiguous().numpy()))
        labels.append(y.numpy())
        seen += len(y)
    return np.concatenate(scores).astype(np.float32), np.concatenate(labels)


from ednas.metrics import top1  # noqa: E402 - the one tie rule (re-exported)


def compare_latency(models: dict, threads: int = 1, rounds: int = 5, runs: int = 50, warmup: int = 10) -> dict:
    """Batch-1 latency of several ONNX models, timed interleaved (see the module docstring).

    Args:
        models: name -> ``.onnx`` path (or serialised bytes).
        threads: ONNX Runtime intra-op threads.
        rounds: rounds; each times every model once.
        runs: timed runs per model per round (after ``warmup`` runs).
        warmup: untimed runs before each timing.

    Returns:
        name -> ``{"median_ms", "round_medians_ms", "min_ms", "threads", "rounds", "runs"}``.
    """
    sessions = {name: ort_session(m, threads) for name, m in models.items()}
    feeds = {}
    for name, sess in sessions.items():
        inp = sess.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        feeds[name] = {inp.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    per: dict[str, list[dict]] = {name: [] for name in sessions}
    for _ in range(max(1, rounds)):
        for name, sess in sessions.items():
            per[name].append(time_session(sess, feeds[name], warmup=warmup, repeats=runs))
    out = {}
    for name, rs in per.items():
        meds = [r["median_ms"] for r in rs]
        out[name] = {
            "median_ms": statistics.median(meds),
            "round_medians_ms": meds,
            "min_ms": min(r["min_ms"] for r in rs),
            "threads": int(threads),
            "rounds": len(rs),
            "runs": int(runs),
        }
    return out
