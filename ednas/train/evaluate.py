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
and ONNX files (run with ONNX Runtime, or OpenVINO with ``--runtime
openvino``) and LiteRT ``.tflite`` files (run
with the ai-edge-litert interpreter, XNNPACK; the litert extra).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Optional

import numpy as np

from ednas._perf import set_threads, tune_malloc
from ednas.data import check_input_shape, load_data, make_loader
from ednas.data.datasets import SPLITS
from ednas.device import DeviceConfig, Hardware, resolve_hardware
from ednas.errors import CheckpointError, ConfigError, DataError, ExportError
from ednas.io import atomic_write_bytes, atomic_write_json, check_writable_file, read_json
from ednas.metrics import task_metrics
from ednas.nn.files import load_model, load_model_file
from ednas.runtime import ort_session, score_onnx
from ednas.runtime.interface import get_runtime
from ednas.train.metrics import scores_and_targets

__all__ = ["EvalConfig", "run_eval", "predict"]


@dataclass
class EvalConfig:
    FLAT: ClassVar[tuple] = ("hardware",)

    #: model.pt written by 'ednas train' (or an .onnx or .tflite file)
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
    #: where a model.pt runs (an .onnx runs on ONNX Runtime's CPU provider)
    hardware: DeviceConfig = field(default_factory=DeviceConfig)
    #: what runs an .onnx file: onnxruntime, or openvino (its CPU plugin; the openvino extra)
    runtime: str = "onnxruntime"

    def check(self, name) -> None:
        if self.split not in SPLITS:
            raise ConfigError(f"{name('split')} must be train, val or test, got '{self.split}'")
        if self.batch_size < 1:
            raise ConfigError(f"{name('batch_size')} must be >= 1, got {self.batch_size}")
        if self.threads < 0:
            raise ConfigError(f"{name('threads')} must be >= 0, got {self.threads}")
        if self.workers < 0:
            raise ConfigError(f"{name('workers')} must be >= 0, got {self.workers}")
        if self.runtime not in ONNX_RUNTIMES:
            raise ConfigError(f"{name('runtime')} must be one of {', '.join(ONNX_RUNTIMES)}, got '{self.runtime}'")
        if self.runtime != "onnxruntime":
            if not str(self.model).endswith(".onnx"):
                raise ConfigError(f"{name('runtime')} {self.runtime} runs .onnx files; '{self.model}' is not one")
            get_runtime(self.runtime).require()


#: the runtimes that read an .onnx (``ednas eval --runtime``)
ONNX_RUNTIMES = ("onnxruntime", "openvino")


def predict(model_path: str, data, split: str, batch_size: int = 256, workers: int = 2, threads: int = 1,
            hardware: Hardware | None = None, runtime: str = "onnxruntime") -> tuple[np.ndarray, np.ndarray]:
    """Scores (N x C) and targets of a model file (``.pt``, ``.onnx`` or ``.tflite``) on a split.

    An ``.onnx`` runs through :func:`ednas.runtime.score_onnx`, in a session
    of ``threads`` intra-op threads with full graph optimisation: the options
    ``ednas export`` scores with; a ``.tflite`` through
    :func:`ednas.runtime.litert.score_tflite` (XNNPACK, ``threads``).  A
    ``.pt`` runs on ``hardware`` (default: the CPU, fp32).  ``runtime``
    ``openvino``: the ``.onnx`` runs in OpenVINO's CPU plugin instead
    (:class:`ednas.runtime.openvino.OpenVinoRuntime`, ``threads``).
    """
    import torch

    onnx = str(model_path).endswith(".onnx")
    tflite = str(model_path).endswith(".tflite")
    hw = hardware if hardware is not None and not (onnx or tflite) else Hardware.cpu()
    loader = make_loader(data, split, batch_size, False, workers=workers, device=hw.device)
    if tflite:
        from ednas.runtime.litert import TFLiteModel, score_tflite

        m = TFLiteModel(model_path, threads)
        c, h, w = m.image_shape
        if h == w:
            check_input_shape(data, h, c, what="evaluation data", model=str(model_path))
        return score_tflite(m, loader)
    if onnx:
        sess = ort_session(model_path, threads)
        shape = sess.get_inputs()[0].shape
        if len(shape) == 4 and all(isinstance(d, int) for d in shape[1:]) and shape[2] == shape[3]:
            check_input_shape(data, shape[2], shape[1], what="evaluation data", model=str(model_path))
        if runtime != "onnxruntime":  # the same file in another runtime that reads ONNX
            return get_runtime(runtime).score(model_path, loader, threads)
        return score_onnx(sess, loader)

    model, _ = load_model(model_path)
    model = model.to(hw.device, memory_format=torch.channels_last)
    return scores_and_targets(model, loader, hw)


def run_eval(cfg: EvalConfig) -> dict:
    tune_malloc()
    hw = resolve_hardware(cfg.hardware)
    set_threads(cfg.threads)
    path = Path(cfg.model)
    if not path.is_file():
        raise CheckpointError(f"model file '{path}' does not exist")
    for flag, f in (("--json", cfg.json), ("--predictions", cfg.predictions)):
        if f:  # outputs checked before any work
            check_writable_file(f, flag)
    data_spec, input_size, ort_threads = cfg.data, None, cfg.threads or 1
    if str(path).endswith((".onnx", ".tflite")):
        side = path.with_name("export.json")  # written by 'ednas export': data spec, input size, threads
        if side.is_file():
            try:
                record = read_json(side)
            except (OSError, ValueError) as e:
                raise ExportError(f"'{side}' (written by 'ednas export') is not valid JSON ({e}); export again, or remove it "
                                  "and give --data") from e
            if not isinstance(record, dict):
                raise ExportError(f"'{side}' (written by 'ednas export'): expected a JSON object, got {type(record).__name__}")
            data_spec = data_spec or record.get("data")
            input_size = (record.get("input_shape") or [None])[-1]
            ort_threads = cfg.threads or int(record.get("threads") or 1)  # the session options export scored with
        if data_spec is None:
            raise ConfigError(f"--data is needed to evaluate '{path}' (no export.json beside it names the data)")
    else:
        meta = load_model_file(path)
        data_spec = data_spec or meta.get("data") or "digits"
        input_size = meta.get("input_size")
    data = load_data(data_spec, input_size=input_size, splits=(cfg.split,))  # only what the split needs; folder data at the model's size
    scores, targets = predict(str(path), data, cfg.split, cfg.batch_size, cfg.workers, ort_threads, hw, cfg.runtime)
    if scores.shape[1] != data.num_classes:
        raise DataError(f"model '{path}' has {scores.shape[1]} outputs but data '{data.spec}' has {data.num_classes} classes")
    m = task_metrics(scores, targets, data.multilabel, data.classes)
    result = {"top1": m["top1"], "top5": m["top5"], "n": int(len(targets)), "split": cfg.split, "data": data.spec, "model": str(path)}
    if str(path).endswith(".onnx"):
        result["runtime"] = cfg.runtime
    if data.multilabel:
        result.update(task="multilabel", **{k: m[k] for k in ("map", "map_voc07", "ap", "ap_voc07")})
    if cfg.json:
        atomic_write_json(cfg.json, result)
    if cfg.predictions:
        p = Path(cfg.predictions)
        p = p if p.suffix == ".npz" else p.with_name(p.name + ".npz")  # the name np.savez gives a path
        buf = io.BytesIO()
        if data.multilabel:
            np.savez(buf, scores=scores, targets=(targets > 0).astype(np.int8), difficult=targets < 0, classes=np.array(data.classes))
        else:
            np.savez(buf, scores=scores, targets=targets)
        atomic_write_bytes(p, buf.getvalue())
    return result
