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
   :func:`ednas.runtime.time_onnx`).

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

from ednas._perf import set_threads, tune_malloc
from ednas.config import config_dict, save_config
from ednas.errors import ConfigError, DataError, EdnasError, ExportError
from ednas.io import atomic_write_json

__all__ = ["ExportConfig", "export_model", "run_export", "QUANT_MODES"]

QUANT_MODES = ("none", "int8", "int16")


@dataclass
class ExportConfig:
    #: model.pt written by 'ednas train'
    model: str
    #: output directory (model.onnx, model_<quant>.onnx, export.json, config.yaml)
    out: str
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
    #: evaluation data spec (none: the model's own data)
    data: Optional[str] = None
    #: split for the accuracy check: test, val or train
    split: str = "test"
    #: evaluate on at most this many images (0: the whole split)
    eval_images: int = 0
    #: export with a symbolic batch dimension (default: fixed batch 1)
    dynamic_batch: bool = False
    #: ONNX opset (>= 17; 16-bit quantization raises it to 21)
    opset: int = 17
    #: ONNX Runtime intra-op threads for accuracy and latency
    threads: int = 1
    #: latency: timing rounds (each times every model once, interleaved)
    latency_rounds: int = 5
    #: latency: timed runs per model per round
    latency_runs: int = 50
    #: images compared between PyTorch and ONNX Runtime
    compare_images: int = 32
    #: allowed |ORT - PyTorch| relative to max(1, max|logit|)
    diff_tol: float = 1e-4
    #: seed of the calibration draw
    seed: int = 0


def _check(cfg: ExportConfig) -> None:
    if cfg.quant not in QUANT_MODES:
        raise ConfigError(f"--quant must be one of {', '.join(QUANT_MODES)}, got '{cfg.quant}'")
    if cfg.split not in ("train", "val", "test"):
        raise ConfigError(f"--split must be train, val or test, got '{cfg.split}'")
    if cfg.opset < 17:
        raise ConfigError(f"--opset must be >= 17, got {cfg.opset}")
    if cfg.threads < 1:
        raise ConfigError(f"--threads must be >= 1 (timings need a deliberate thread count), got {cfg.threads}")
    if cfg.quant == "none" and (cfg.pow2 or cfg.mixed_precision):
        raise ConfigError("--pow2 and --mixed-precision need --quant int8 or int16, got --quant none")
    for name in ("latency_rounds", "latency_runs", "compare_images"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")


def _in_channels(model) -> int:
    return int(model.stem.dw.conv.in_channels)


def _load_data(spec: str, meta: dict, what: str, flag: str):
    """Load a data spec for the model: folder data at the model's input size, the model's normalisation."""
    from ednas.data import load_data
    from ednas.deploy.calibration import with_normalisation

    try:
        data = load_data(spec, input_size=int(meta["input_size"]))
    except EdnasError as e:
        raise ExportError(f"{what} ({flag} '{spec}'): {e}") from e
    return with_normalisation(data, meta.get("mean"), meta.get("std"))


def _set_metadata(path: Path, props: dict) -> None:
    """Add ``props`` to the ONNX file's metadata (rewritten atomically)."""
    import onnx

    from ednas.io import _atomic

    proto = onnx.load(str(path))
    existing = {p.key: p.value for p in proto.metadata_props}
    existing.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in props.items()})
    onnx.helper.set_model_props(proto, existing)
    data = proto.SerializeToString()
    _atomic(path, lambda f: f.write(data))


def _compare_with_torch(model, sess, x: np.ndarray) -> dict:
    """Max |ORT - PyTorch| over ``x``, the PyTorch side being the trained (unfused) network."""
    import torch

    from ednas.runtime import run_batched

    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)).numpy()
    got = run_batched(sess, x)
    diff = float(np.abs(got - ref).max())
    scale = float(np.abs(ref).max())
    return {"max_abs_diff": diff, "max_abs_logit": scale, "rel_diff": diff / max(scale, 1e-12), "diff_images": int(len(x))}


def export_model(cfg: ExportConfig) -> dict:
    """Run the export (see the module docstring); returns the export.json record."""
    import onnx
    import onnxruntime
    import torch

    from ednas.deploy.calibration import CalibrationReader, calibration_images, check_input_shape
    from ednas.deploy.measure import compare_latency, onnx_scores, top1
    from ednas.deploy.quantize import QuantSettings, quantize_onnx
    from ednas.nn import fuse
    from ednas.runtime import Timing, export_onnx, ort_session
    from ednas.train.checkpoint import load_model

    t0 = time.time()
    _check(cfg)
    tune_malloc()
    set_threads(cfg.threads)
    model, meta = load_model(cfg.model)
    size, channels = int(meta["input_size"]), _in_channels(model)

    # data first: a wrong data set should fail before minutes of work
    data_spec = cfg.data or meta.get("data")
    if not data_spec:
        raise DataError(f"model file '{cfg.model}' names no data set; pass --data")
    data = _load_data(data_spec, meta, "evaluation data", "--data")
    check_input_shape(data, size, channels, what="evaluation data")
    if data.num_classes != int(meta["num_classes"]):
        raise DataError(f"evaluation data '{data.spec}' has {data.num_classes} classes but model '{cfg.model}' has {meta['num_classes']} outputs")
    settings = None
    if cfg.quant != "none":
        settings = QuantSettings(
            bits=int(cfg.quant[3:]), weight_bits=cfg.weight_bits, pow2=cfg.pow2, per_channel=cfg.per_channel,
            mixed=cfg.mixed_precision, calib_method=cfg.calib_method,
        )
        calib_spec = cfg.calib_data or data_spec
        calib = data if calib_spec == data_spec else _load_data(calib_spec, meta, "calibration data", "--calib-data")
        check_input_shape(calib, size, channels, what="calibration data")

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out)

    # 2. fuse and export
    deploy = fuse(model)
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
    sess = ort_session(fp32_path, cfg.threads)
    x = next(iter(_compare_loader(data, cfg)))[0].contiguous().numpy()
    check = _compare_with_torch(model, sess, x)
    check["diff_ok"] = check["max_abs_diff"] <= cfg.diff_tol * max(1.0, check["max_abs_logit"])

    # 4. quantize
    quant_path, quant_info, calib_n = None, None, 0
    if settings is not None:
        images = calibration_images(calib, cfg.calib_images, seed=cfg.seed)
        calib_n = int(len(images))
        quant_path = out / f"model_{settings.name}.onnx"
        quant_info = quantize_onnx(fp32_path, quant_path, CalibrationReader(images, "input", 1), settings)
        _set_metadata(quant_path, {**props, "ednas.quant": settings.name})
        if settings.pow2 and not quant_info["all_scales_pow2"]:  # a guard: pow2 mode must hold for every scale
            raise ExportError(f"'{quant_path}': not every quantization scale is a power of two")

    # 5. accuracy and latency through ONNX Runtime
    scores, labels = onnx_scores(sess, data, cfg.split, limit=cfg.eval_images)
    rec_quant: dict = {"top1_quant": None, "drop": None, "agreement": None, "max_abs_diff_quant": None}
    models = {"fp32": fp32_path}
    if quant_path is not None:
        qscores, _ = onnx_scores(ort_session(quant_path, cfg.threads), data, cfg.split, limit=cfg.eval_images)
        t1, tq = top1(scores, labels), top1(qscores, labels)
        rec_quant = {
            "top1_quant": tq,
            "drop": t1 - tq,
            "agreement": float((qscores.argmax(1) == scores.argmax(1)).mean() * 100.0),
            "max_abs_diff_quant": float(np.abs(qscores - scores).max()),
        }
        models["quant"] = quant_path
    # exactly --latency-runs runs per model per round, as the flags say
    timing = Timing(threads=cfg.threads, repeats=cfg.latency_runs, rounds=cfg.latency_rounds, min_time_s=0.0)
    lat = compare_latency(models, timing=timing)

    record = {
        "max_abs_diff": check["max_abs_diff"],
        "top1_fp32": top1(scores, labels),
        **{k: rec_quant[k] for k in ("top1_quant", "drop")},
        "latency_ms_fp32": lat["fp32"]["median_ms"],
        "latency_ms_quant": lat["quant"]["median_ms"] if "quant" in lat else None,
        "speedup": lat["fp32"]["median_ms"] / lat["quant"]["median_ms"] if "quant" in lat else None,
        "threads": cfg.threads,
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
        "calib_seed": cfg.seed if settings is not None else None,
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
        "source_model": str(cfg.model),
        "latency": {**{k: v for k, v in lat.items()}, "batch": 1, "how": "ONNX Runtime CPU, sequential, inter-op 1, ORT_ENABLE_ALL; median of round medians, models interleaved"},
        "versions": {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "host": platform.machine(),
        "config": config_dict(cfg),
        "wall_s": time.time() - t0,
    }
    atomic_write_json(out / "export.json", record)
    if not check["diff_ok"]:
        raise ExportError(
            f"'{fp32_path}': ONNX Runtime differs from PyTorch by {check['max_abs_diff']:.3g} "
            f"(allowed {cfg.diff_tol:g} x max(1, max|logit| {check['max_abs_logit']:.3g})); see '{out / 'export.json'}'"
        )
    return record


def _compare_loader(data, cfg: ExportConfig):
    from ednas.data import make_loader

    return make_loader(data, cfg.split, cfg.compare_images, False)


def run_export(cfg: ExportConfig) -> dict:
    """``ednas export``: the headline numbers (the full record is in OUT/export.json)."""
    r = export_model(cfg)
    keys = ("max_abs_diff", "top1_fp32", "top1_quant", "drop", "latency_ms_fp32", "latency_ms_quant", "threads", "onnx", "onnx_quant")
    return {k: r[k] for k in keys}
