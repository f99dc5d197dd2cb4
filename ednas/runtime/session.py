"""ONNX Runtime sessions and scoring: the one session builder and the one ONNX scorer.

:func:`ort_session` is :func:`ednas.runtime.board.session` (the options the
latency table is measured with: intra-op ``threads``, one inter-op thread,
sequential, ``ORT_ENABLE_ALL`` by default) with ednas's errors: a missing
file or a model ONNX Runtime cannot load is an
:class:`~ednas.errors.ExportError` naming the file.

:func:`score_onnx` runs a model over any iterable of ``(x, y)`` batches and
returns the logits and labels; a model exported with a fixed batch (1, as
deployed) runs image by image.  ``ednas eval`` of an ``.onnx`` and
``ednas export`` both score through it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ednas.errors import ConfigError, ExportError
from ednas.runtime import board

__all__ = ["OPTIMIZATIONS", "ort_session", "run_batched", "score_batches", "score_onnx"]

OPTIMIZATIONS = board.OPTIMIZATIONS


def ort_session(model, threads: int = 1, optimization: str = "all", profile_prefix: str | None = None):
    """An ONNX Runtime CPU session for an ``.onnx`` path or serialised bytes.

    Args:
        model: a path (``str`` or ``Path``) or the model's bytes.
        threads: intra-op threads (0: ONNX Runtime's default, all cores).
        optimization: graph optimisation level: ``all`` (deployment and the
            latency table), ``extended``, ``basic`` or ``none``.
        profile_prefix: turn on ONNX Runtime's profiler, writing files that
            start with this prefix (``session.end_profiling()``).

    Raises:
        ExportError: the file does not exist, or ONNX Runtime cannot load
            the model (the message names the file and ORT's reason).
        ConfigError: an unknown optimisation level.
    """
    if optimization not in OPTIMIZATIONS:
        raise ConfigError(f"ONNX Runtime optimisation level '{optimization}' is unknown; expected one of {', '.join(OPTIMIZATIONS)}")
    is_path = isinstance(model, (str, Path))
    if is_path and not Path(model).is_file():
        raise ExportError(f"ONNX model '{model}' does not exist")
    try:
        return board.session(str(model) if is_path else model, threads, optimization, profile_prefix)
    except Exception as err:  # ORT raises its own exception types for bad files
        where = f"'{model}'" if is_path else "(in memory)"
        raise ExportError(f"ONNX model {where} cannot be loaded by ONNX Runtime: {str(err).splitlines()[0][:300]}") from err


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor; runtime stays importable without touching torch here
        x = x.detach().cpu().contiguous().numpy()
    return np.asarray(x)


def run_batched(sess, x: np.ndarray) -> np.ndarray:
    """Logits of ``sess`` for ``x`` (N x C x H x W); a model with a fixed batch runs that many images at a time."""
    inp = sess.get_inputs()[0]
    fixed = inp.shape[0] if isinstance(inp.shape[0], int) else None
    x = np.ascontiguousarray(_numpy(x), dtype=np.float32)
    if fixed is not None and fixed != len(x):
        return np.concatenate([sess.run(None, {inp.name: x[i : i + fixed]})[0] for i in range(0, len(x), fixed)])
    return sess.run(None, {inp.name: x})[0]


def score_onnx(model, batches: Iterable, threads: int = 1, limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N x C float32) and targets of an ONNX model over ``batches``.

    Args:
        model: an ONNX Runtime session, or a path / bytes opened with
            :func:`ort_session` (``threads``, ``ORT_ENABLE_ALL``).
        batches: any iterable of ``(x, y)``: tensors or arrays, ``x``
            N x C x H x W (normalised as the model expects), ``y`` N labels.
        threads: intra-op threads when ``model`` is not a session.
        limit: stop after this many images (0: all).

    Returns:
        ``(scores, targets)``, in the order of ``batches``.
    """
    sess = model if hasattr(model, "run") else ort_session(model, threads)
    width = sess.get_outputs()[0].shape[-1]
    return score_batches(lambda x: run_batched(sess, x), batches, limit, width if isinstance(width, int) else 0)


def score_batches(predict, batches: Iterable, limit: int = 0, width: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N x C float32) and targets of ``predict`` (a float batch N x C x H x W -> scores) over ``(x, y)`` batches.

    The one scoring loop of every runtime (:func:`score_onnx`,
    :meth:`ednas.runtime.interface.Runtime.score`): tensors or arrays in,
    the first ``limit`` images (0: all), ``width`` columns when there are none.
    """
    scores, targets, seen = [], [], 0
    for x, y in batches:
        if limit and seen >= limit:
            break
        x, y = _numpy(x), _numpy(y)
        if limit:
            x, y = x[: limit - seen], y[: limit - seen]
        scores.append(np.asarray(predict(x), dtype=np.float32))
        targets.append(y)
        seen += len(y)
    if not scores:
        return np.zeros((0, width), np.float32), np.zeros((0,), np.int64)
    return np.concatenate(scores).astype(np.float32), np.concatenate(targets)
