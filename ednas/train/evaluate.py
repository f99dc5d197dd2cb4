"""Evaluate a model file on a split: ``ednas eval``.

Writes top-1/top-5 (percent) to JSON and, on request, the raw predictions
(``scores``: N x C logits, ``targets``: N labels) to an ``.npz`` so that
anyone can recompute the metrics.  On multi-label data (Pascal VOC) the
JSON holds ``map`` (area under the precision-recall curve), ``map_voc07``
(11-point) and the per-class ``ap`` / ``ap_voc07`` (percent), and the
``.npz`` the scores, ``targets`` as multi-hot rows (N x C, 1 where the
class is present) and ``difficult`` (N x C, True where the class appears
only as difficult objects: left out of that class's AP, as VOC does), plus
``classes``.  Accepts the ``model.pt`` of ``ednas train``
and ONNX files (run with ONNX Runtime).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ednas._perf import set_threads, tune_malloc
from ednas.data import check_input_shape, load_data, make_loader
from ednas.errors import CheckpointError, ConfigError, DataError
from ednas.io import atomic_write_json
from ednas.metrics import task_metrics
from ednas.nn.files import load_model, load_model_file
from ednas.runtime import ort_session, score_onnx
from ednas.train.metrics import scores_and_targets

__all__ = ["EvalConfig", "run_eval", "predict"]


@dataclass
class EvalConfig:
    #: model.pt written by 'ednas train' (or an .onnx file)
    model: str
    #: data set (default: the one the model was trained on)
    data: Optional[str] = None
    #: split to evaluate: train, val or test
    split: str = "test"
    #: write the metrics here (JSON)
    json: Optional[str] = None
    #: write scores (N x C logits) and targets (labels, or multi-hot rows and difficult flags) here (.npz)
    predictions: Optional[str] = None
    #: images per batch
    batch_size: int = 256
    #: intra-op threads (0: all cores; an .onnx then runs at the threads its export.json records, else 1)
    threads: int = 0
    #: data loader workers (folder data)
    workers: int = 2


def predict(model_path: str, data, split: str, batch_size: int = 256, workers: int = 2, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N x C) and targets of a model file (``.pt`` or ``.onnx``) on a split.

    An ``.onnx`` runs through :func:`ednas.runtime.score_onnx`, in a session
    of ``threads`` intra-op threads with full graph optimisation: the options
    ``ednas export`` scores with.
    """
    import torch

    loader = make_loader(data, split, batch_size, False, workers=workers)
    if str(model_path).endswith(".onnx"):
        sess = ort_session(model_path, threads)
        shape = sess.get_inputs()[0].shape
        if len(shape) == 4 and all(isinstance(d, int) for d in shape[1:]) and shape[2] == shape[3]:
            check_input_shape(data, shape[2], shape[1], what="evaluation data", model=str(model_path))
        return score_onnx(sess, loader)

    model, _ = load_model(model_path)
    model = model.to(memory_format=torch.channels_last)
    return scores_and_targets(model, loader)


def run_eval(cfg: EvalConfig) -> dict:
    tune_malloc()
    set_threads(cfg.threads)
    if cfg.split not in ("train", "val", "test"):
        raise ConfigError(f"--split must be train, val or test, got '{cfg.split}'")
    path = Path(cfg.model)
    if not path.is_file():
        raise CheckpointError(f"model file '{path}' does not exist")
    data_spec, input_size, ort_threads = cfg.data, None, cfg.threads or 1
    if str(path).endswith(".onnx"):
        side = path.with_name("export.json")  # written by 'ednas export': data spec, input size, threads
        if side.is_file():
            import json

            record = json.loads(side.read_text())
            data_spec = data_spec or record.get("data")
            input_size = (record.get("input_shape") or [None])[-1]
            ort_threads = cfg.threads or int(record.get("threads") or 1)  # the session options export scored with
        if data_spec is None:
            raise ConfigError(f"--data is needed to evaluate '{path}' (no export.json beside it names the data)")
    else:
        meta = load_model_file(path)
        data_spec = data_spec or meta.get("data") or "digits"
        input_size = meta.get("input_size")
    data = load_data(data_spec, input_size=input_size)  # folder data at the model's size
    scores, targets = predict(str(path), data, cfg.split, cfg.batch_size, cfg.workers, ort_threads)
    if scores.shape[1] != data.num_classes:
        raise DataError(f"model '{path}' has {scores.shape[1]} outputs but data '{data.spec}' has {data.num_classes} classes")
    m = task_metrics(scores, targets, data.multilabel, data.classes)
    result = {"top1": m["top1"], "top5": m["top5"], "n": int(len(targets)), "split": cfg.split, "data": data.spec, "model": str(path)}
    if data.multilabel:
        result.update(task="multilabel", **{k: m[k] for k in ("map", "map_voc07", "ap", "ap_voc07")})
    if cfg.json:
        atomic_write_json(cfg.json, result)
    if cfg.predictions:
        p = Path(cfg.predictions)
        p.parent.mkdir(parents=True, exist_ok=True)
        if data.multilabel:
            np.savez(p, scores=scores, targets=(targets > 0).astype(np.int8), difficult=targets < 0, classes=np.array(data.classes))
        else:
            np.savez(p, scores=scores, targets=targets)
    return result
