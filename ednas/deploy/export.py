"""``ednas export``: from a trained ``model.pt`` to files a device runs, with proof.

The steps, each checked:

1. load ``model.pt`` (missing, corrupt or arch/weights mismatch: a one-line
   :class:`~ednas.errors.EdnasError` naming the file);
2. fuse to the deploy form (eq. 1-2: BN and ACNet branches folded into one
   conv with bias per layer) and export ONNX (opset 17 by default, fixed
   input size, batch 1 or ``--dynamic-batch``), ``onnx.checker``;
3. run ONNX Runtime on a batch of real images and compare with the trained
   (unfused) PyTorch network: ``max_abs_diff`` must stay within
   ``diff_tol * max(1, max|logit|)``, else the export fails;
4. quantize (``--quant int8|int16``, ``--pow2``, ``--mixed-precision``; see
   :mod:`ednas.deploy.quantize`) on calibration images of the training split
   (``--calib-data`` to use another data set of the same shape);
5. measure top-1 of the fp32 and the quantized ONNX on the test split through
   ONNX Runtime (:func:`ednas.runtime.score_onnx`), and their host latency
   at batch 1 (``--threads``, 1 by default; timed interleaved,
   :func:`ednas.runtime.time_onnx`).  On multi-label data (Pascal VOC) the
   score is mAP instead of top-1: ``map_fp32``, ``map_quant`` (and
   ``drop`` in mAP points; ``top1_*`` are ``None``), and ``agreement`` is
   the share of (image, class) decisions (logit > 0) the quantized model
   makes as the fp32 one does.

Outputs in ``--out``: ``model.onnx``, ``model_<quant>.onnx`` (e.g.
``model_int8.onnx``, ``model_int8_pow2.onnx``), ``export.json`` (the record;
its ``data`` lets ``ednas eval --model OUT/model.onnx`` run without
``--data``) and ``config.yaml``.  Both ONNX files carry the arch, input
normalisation and class names in their metadata.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ednas._perf import tune_malloc
from ednas.config import config_dict
from ednas.data import DataSet, check_input_shape, load_data, make_loader
from ednas.deploy.calibration import CalibrationReader, calibration_images, with_normalisation
from ednas.deploy.measure import compare_latency, onnx_scores, top1
from ednas.deploy.quantize import QuantSettings, quantize_onnx
from ednas.deploy.tflite import check_tflite_settings, export_tflite_files, parse_formats
from ednas.errors import ConfigError, DataError, EdnasError, ExportError
from ednas.io import _atomic, atomic_write_json
from ednas.metrics import task_metrics
from ednas.nn import fuse
from ednas.nn.files import load_model
from ednas.runtime import Reference, Timing, export_onnx, ort_session, run_batched, torch_threads

__all__ = ["ExportConfig", "export_model", "QUANT_MODES"]

QUANT_MODES = ("none", "int8", "int16")


@dataclass
class ExportConfig:
    """Fusion, ONNX export, the check against PyTorch, and quantization."""

    #: quantization: none, int8 or int16 (activation width)
    quant: str = "int8"
    #: TIDL/TDA4VM fixed point: per-tensor, symmetric, power-of-two scales
    pow2: bool = False
    #: first and last layers in 16 bit (weights and features), the rest at --quant
    mixed_precision: bool = False
    #: weight width 8 or 16 (none: the --quant width)
    weight_bits: Optional[int] = None
    #: one weight scale per output channel (ORT CPU, newer TI parts; off with --pow2)
    per_channel: bool = True
    #: calibration data spec, training split (none: the model's own data)
    calib_data: Optional[str] = None
    #: calibration images drawn from the training split (0: all)
    calib_images: int = 256
    #: calibration method: minmax, entropy or percentile
    calib_method: str = "minmax"
    #: split for the accuracy check: test, val or train
    split: str = "test"
    #: evaluate on at most this many images (0: the whole split)
    eval_images: int = 0
    #: export with a symbolic batch dimension (default: fixed batch 1)
    dynamic_batch: bool = False
    #: ONNX opset (>= 17; 16-bit quantization raises it to 21)
    opset: int = 17
    #: images compared between PyTorch and ONNX Runtime
    compare_images: int = 32
    #: allowed |ORT - PyTorch| relative to max(1, max|logit|)
    diff_tol: float = 1e-4
    #: files to write: onnx, tflite (LiteRT fp32 and full-integer int8; needs the litert extra) or onnx,tflite
    format: str = "onnx"
    #: also score and time the .onnx files in OpenVINO when it is installed (export.json's "openvino")
    openvino: bool = True

    def check(self, name) -> None:
        if self.quant not in QUANT_MODES:
            raise ConfigError(f"{name('quant')} must be one of {', '.join(QUANT_MODES)}, got '{self.quant}'")
        if self.split not in ("train", "val", "test"):
            raise ConfigError(f"{name('split')} must be train, val or test, got '{self.split}'")
        if self.opset < 17:
            raise ConfigError(f"{name('opset')} must be >= 17, got {self.opset}")
        if self.quant == "none" and (self.pow2 or self.mixed_precision):
            raise ConfigError(f"{name('pow2')} and {name('mixed_precision')} need {name('quant')} int8 or int16, got none")
        if self.compare_images < 1:
            raise ConfigError(f"{name('compare_images')} must be >= 1, got {self.compare_images}")
        if self.weight_bits not in (None, 8, 16):
            raise ConfigError(f"{name('weight_bits')} must be 8 or 16, got {self.weight_bits}")
        if self.calib_images < 0 or self.eval_images < 0:
            raise ConfigError(f"{name('calib_images')} and {name('eval_images')} must be >= 0")
        if not self.diff_tol > 0:
            raise ConfigError(f"{name('diff_tol')} must be > 0, got {self.diff_tol}")
        if "tflite" in parse_formats(self.format, name("format")):
            check_tflite_settings(self.quant, self.pow2, self.mixed_precision, self.weight_bits, name)
            from ednas.runtime.litert import EXTRA, available

            if not available():  # before any work
                raise ConfigError(f"{name('format')} {self.format} needs the litert extra: {EXTRA}")


def _in_channels(model) -> int:
    """Image channels: the input of the stem's first convolution (depth-aware or plain conv stem)."""
    import torch.nn as nn

    return int(next(m for m in model.stem.modules() if isinstance(m, nn.Conv2d)).in_channels)


def _load_data(spec: str, meta: dict, what: str, flag: str):
    """Load a data spec for the model: folder data at the model's input size, the model's normalisation."""

    try:
        data = load_data(spec, input_size=int(meta["input_size"]))
    except EdnasError as e:
        raise DataError(f"{what} ({flag} '{spec}'): {e}") from e
    return with_normalisation(data, meta.get("mean"), meta.get("std"))


def _set_metadata(path: Path, props: dict) -> None:
    """Add ``props`` to the ONNX file's metadata (rewritten atomically)."""
    import onnx

    proto = onnx.load(str(path))
    existing = {p.key: p.value for p in proto.metadata_props}
    existing.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in props.items()})
    onnx.helper.set_model_props(proto, existing)
    data = proto.SerializeToString()
    _atomic(path, lambda f: f.write(data))


def _compare_with_torch(model, sess, x: np.ndarray) -> dict:
    """Max |ORT - PyTorch| over ``x``, the PyTorch side being the trained (unfused) network."""
    import torch

    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)).numpy()
    got = run_batched(sess, x)
    diff = float(np.abs(got - ref).max())
    scale = float(np.abs(ref).max())
    return {"max_abs_diff": diff, "max_abs_logit": scale, "rel_diff": diff / max(scale, 1e-12), "diff_images": int(len(x))}


def export_model(cfg: ExportConfig, model_path, out, *, data: DataSet | None = None, data_spec: str | None = None,
                 timing: Timing | None = None, seed: int = 0, reference: Reference | None = None) -> dict:
    """Export the trained ``model_path`` into ``out`` (see the module docstring); returns the export.json record.

    Args:
        data: the data set to check accuracy on (the run's, already loaded);
            default: ``data_spec``, else the one the model was trained on.
        timing: how fp32 and quantized files are timed (threads, rounds, ...).
        seed: seed of the calibration draw.
        reference: a latency table's reference network: timed alongside
            the files, which also get their latency at the table's speed
            (``latency_ms_fp32_scaled``, ``latency_ms_quant_scaled``).
    """
    timing = timing or Timing()
    if timing.threads < 1:
        raise ConfigError(f"--threads must be >= 1 (timings need a deliberate thread count), got {timing.threads}")
    t0 = time.time()
    tune_malloc()
    with torch_threads(timing.threads):  # timed with the timing's threads; the caller's count is put back (ednas run trains after)
        return _export(cfg, model_path, out, data, data_spec, timing, seed, reference, t0)


def _export(cfg: ExportConfig, model_path, out, data, data_spec, timing: Timing, seed: int, reference, t0: float) -> dict:
    import onnx
    import onnxruntime
    import torch

    model, meta = load_model(model_path)
    size, channels = int(meta["input_size"]), _in_channels(model)

    # data first: a wrong data set should fail before minutes of work
    data_spec = data.spec if data is not None else (data_spec or meta.get("data"))
    if not data_spec:
        raise DataError(f"model file '{model_path}' names no data set; pass --data")
    data = with_normalisation(data, meta.get("mean"), meta.get("std")) if data is not None else _load_data(data_spec, meta, "evaluation data", "--data")
    check_input_shape(data, size, channels, what="evaluation data")
    if data.num_classes != int(meta["num_classes"]):
        raise DataError(f"evaluation data '{data.spec}' has {data.num_classes} classes but model '{model_path}' has {meta['num_classes']} outputs")
    settings = None
    if cfg.quant != "none":
        settings = QuantSettings(
            bits=int(cfg.quant[3:]), weight_bits=cfg.weight_bits, pow2=cfg.pow2, per_channel=cfg.per_channel,
            mixed=cfg.mixed_precision, calib_method=cfg.calib_method,
        )
        calib_spec = cfg.calib_data or data_spec
        calib = data if calib_spec == data_spec else _load_data(calib_spec, meta, "calibration data", "--calib-data")
        check_input_shape(calib, size, channels, what="calibration data")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    formats = parse_formats(cfg.format)
    deploy = fuse(model)
    x = next(iter(_compare_loader(data, cfg)))[0].contiguous().numpy()
    images = calibration_images(calib, cfg.calib_images, seed=seed) if settings is not None else None
    check = {"diff_ok": True}
    if "onnx" in formats:
        # 2. fuse and export
        fp32_path = export_onnx(deploy, out / "model.onnx", size, batch=1, dynamic_batch=cfg.dynamic_batch, opset=cfg.opset, in_channels=channels)
        props = {
            "ednas.arch": meta["arch"],
            "ednas.input_size": str(size),
            "ednas.mean": list(meta.get("mean") or data.mean),
            "ednas.std": list(meta.get("std") or data.std),
            "ednas.classes": list(meta.get("classes") or data.classes),
            "ednas.input_layout": "NCHW float32, RGB scaled to [0, 1] then (x - mean) / std",
        }
        _set_metadata(fp32_path, {**props, "ednas.quant": "none"})

        # 3. ONNX Runtime against the trained PyTorch network, on real images
        sess = ort_session(fp32_path, timing.threads)
        check = _compare_with_torch(model, sess, x)
        check["diff_ok"] = check["max_abs_diff"] <= cfg.diff_tol * max(1.0, check["max_abs_logit"])

        # 4. quantize
        quant_path, quant_info, calib_n = None, None, 0
        if settings is not None:
            calib_n = int(len(images))
            quant_path = out / f"model_{settings.name}.onnx"
            quant_info = quantize_onnx(fp32_path, quant_path, CalibrationReader(images, "input", 1), settings)
            _set_metadata(quant_path, {**props, "ednas.quant": settings.name})
            if settings.pow2 and not quant_info["all_scales_pow2"]:  # a guard: pow2 mode must hold for every scale
                raise ExportError(f"'{quant_path}': not every quantization scale is a power of two")

        # 5. accuracy and latency through ONNX Runtime
        scores, labels = onnx_scores(sess, data, cfg.split, limit=cfg.eval_images)
        rec_quant: dict = {"top1_quant": None, "drop": None, "agreement": None, "max_abs_diff_quant": None}
        ml = data.multilabel
        score_fp32 = task_metrics(scores, labels, True, data.classes)["map"] if ml else top1(scores, labels)
        if ml:
            rec_quant["map_quant"] = None
        models = {"fp32": fp32_path}
        if quant_path is not None:
            qscores, _ = onnx_scores(ort_session(quant_path, timing.threads), data, cfg.split, limit=cfg.eval_images)
            score_q = task_metrics(qscores, labels, True, data.classes)["map"] if ml else top1(qscores, labels)
            same = (qscores > 0) == (scores > 0) if ml else qscores.argmax(1) == scores.argmax(1)
            rec_quant = {
                "top1_quant": None if ml else score_q,
                "drop": None if score_fp32 is None or score_q is None else score_fp32 - score_q,
                "agreement": float(same.mean() * 100.0),
                "max_abs_diff_quant": float(np.abs(qscores - scores).max()),
                **({"map_quant": score_q} if ml else {}),
            }
            models["quant"] = quant_path
        lat = compare_latency(models, timing=timing, reference=reference)
        ov = None
        if cfg.openvino:  # the same files in OpenVINO, when installed: its scores against ORT's, its latency
            from ednas.deploy.openvino import check_in_openvino

            ov = check_in_openvino(models, data, lambda: make_loader(data, cfg.split, 256, False), cfg.eval_images, timing,
                                   {"fp32": scores, **({"quant": qscores} if quant_path is not None else {})}, labels)

        record = {
            "max_abs_diff": check["max_abs_diff"],
            "top1_fp32": None if ml else score_fp32,
            **{k: rec_quant[k] for k in ("top1_quant", "drop")},
            **({"task": "multilabel", "map_fp32": score_fp32, "map_quant": rec_quant["map_quant"]} if ml else {}),
            "latency_ms_fp32": lat["fp32"]["median_ms"],
            "latency_ms_quant": lat["quant"]["median_ms"] if "quant" in lat else None,
            "speedup": lat["fp32"]["median_ms"] / lat["quant"]["median_ms"] if "quant" in lat else None,
            "latency_ms_fp32_scaled": lat["fp32"].get("scaled_ms"),
            "latency_ms_quant_scaled": lat["quant"].get("scaled_ms") if "quant" in lat else None,
            "reference": lat.get("reference"),
            "openvino": ov,
            "threads": timing.threads,
            "agreement": rec_quant["agreement"],
            "max_abs_diff_quant": rec_quant["max_abs_diff_quant"],
            "check": {**check, "diff_tol": cfg.diff_tol, "against": "trained PyTorch network (unfused), ONNX Runtime fp32"},
            "data": data.spec,
            "split": cfg.split,
            "n_eval": int(len(labels)),
            "quant": cfg.quant,
            "quant_settings": quant_info,
            "calib_data": (cfg.calib_data or data_spec) if settings is not None else None,
            "calib_split": "train" if settings is not None else None,
            "calib_images": calib_n,
            "calib_seed": seed if settings is not None else None,
            "onnx": str(fp32_path),
            "onnx_quant": str(quant_path) if quant_path is not None else None,
            "opset": max(o.version for o in onnx.load(str(fp32_path)).opset_import if o.domain in ("", "ai.onnx")),
            "opset_quant": quant_info["opset"] if quant_info else None,
            "dynamic_batch": cfg.dynamic_batch,
            "input_name": "input",
            "output_name": "logits",
            "input_shape": ["batch" if cfg.dynamic_batch else 1, channels, size, size],
            "mean": props["ednas.mean"],
            "std": props["ednas.std"],
            "classes": props["ednas.classes"],
            "arch": meta["arch"],
            "source_model": str(model_path),
            "latency": {**{k: v for k, v in lat.items()}, "batch": 1, "how": "ONNX Runtime CPU, sequential, inter-op 1, ORT_ENABLE_ALL; median of round medians, models interleaved"},
            "versions": {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__, "torch": torch.__version__, "python": platform.python_version()},
            "host": platform.machine(),
            "config": {**config_dict(cfg), "timing": config_dict(timing), "seed": seed},
            "wall_s": time.time() - t0,
        }
    else:  # LiteRT only: the record keeps its keys, filled from the LiteRT files below
        record = _tflite_only_record(cfg, data, meta, model_path, size, channels, timing, seed, images, data_spec, t0)
    if "tflite" in formats:
        entry = export_tflite_files(model, deploy, out, size, channels, data, cfg.split, cfg.eval_images, x,
                                    images if settings is not None else None, cfg.per_channel, cfg.diff_tol, timing,
                                    lambda d, split: make_loader(d, split, 256, False))
        record["tflite"] = entry
        if "onnx" not in formats:
            ml = data.multilabel
            record.update(max_abs_diff=entry["max_abs_diff"], top1_fp32=None if ml else entry.get("top1_fp32"),
                          top1_quant=None if ml else entry.get("top1_int8"), drop=entry.get("drop"), agreement=entry.get("agreement"),
                          latency_ms_fp32=entry["latency_ms_fp32"], latency_ms_quant=entry["latency_ms_int8"], speedup=entry["speedup"],
                          n_eval=entry["n_eval"])
            if ml:
                record.update(map_fp32=entry.get("map_fp32"), map_quant=entry.get("map_int8"))
    record["formats"] = formats
    record["wall_s"] = time.time() - t0
    atomic_write_json(out / "export.json", record)
    if "tflite" in record and not record["tflite"]["diff_ok"]:
        t = record["tflite"]
        raise ExportError(f"'{t['file']}': LiteRT differs from PyTorch by {t['max_abs_diff']:.3g} "
                          f"(allowed {cfg.diff_tol:g} x max(1, max|logit| {t['max_abs_logit']:.3g})); see '{out / 'export.json'}'")
    if not check["diff_ok"]:
        raise ExportError(
            f"'{fp32_path}': ONNX Runtime differs from PyTorch by {check['max_abs_diff']:.3g} "
            f"(allowed {cfg.diff_tol:g} x max(1, max|logit| {check['max_abs_logit']:.3g})); see '{out / 'export.json'}'"
        )
    return record


def _tflite_only_record(cfg: ExportConfig, data, meta: dict, model_path, size: int, channels: int, timing: Timing, seed: int,
                        images, data_spec: str, t0: float) -> dict:
    """export.json's keys for ``--format tflite`` alone: the ONNX ones empty, the scores filled from the LiteRT files by the caller."""
    ml = data.multilabel
    return {
        "max_abs_diff": None, "top1_fp32": None, "top1_quant": None, "drop": None,
        **({"task": "multilabel", "map_fp32": None, "map_quant": None} if ml else {}),
        "latency_ms_fp32": None, "latency_ms_quant": None, "speedup": None, "latency_ms_fp32_scaled": None, "latency_ms_quant_scaled": None,
        "openvino": None,
        "reference": None, "threads": timing.threads, "agreement": None, "max_abs_diff_quant": None, "check": None,
        "data": data.spec, "split": cfg.split, "n_eval": None, "quant": cfg.quant, "quant_settings": None,
        "calib_data": (cfg.calib_data or data_spec) if images is not None else None, "calib_split": "train" if images is not None else None,
        "calib_images": int(len(images)) if images is not None else 0, "calib_seed": seed if images is not None else None,
        "onnx": None, "onnx_quant": None, "opset": None, "opset_quant": None, "dynamic_batch": False,
        "input_name": None, "output_name": None, "input_shape": [1, channels, size, size],  # the network's; tflite.input_shape is the file's
        "mean": list(meta.get("mean") or data.mean), "std": list(meta.get("std") or data.std), "classes": list(meta.get("classes") or data.classes),
        "arch": meta["arch"], "source_model": str(model_path), "latency": None,
        "versions": {"torch": _torch_version(), "python": platform.python_version()}, "host": platform.machine(),
        "config": {**config_dict(cfg), "timing": config_dict(timing), "seed": seed}, "wall_s": time.time() - t0,
    }


def _torch_version() -> str:
    import torch

    return torch.__version__


def _compare_loader(data, cfg: ExportConfig):
    return make_loader(data, cfg.split, cfg.compare_images, False)
