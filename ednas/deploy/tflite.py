"""``ednas export --format tflite``: LiteRT files beside (or instead of) the ONNX ones, checked the same way.

The fused deploy network becomes ``model.tflite`` (fp32) and, with
``--quant int8``, ``model_int8.tflite`` (full integer: int8 weights per
output channel, activations, input and output; calibrated on the same
training images as the ONNX path), converted by litert-torch
(:func:`ednas.runtime.litert.export_tflite`).  Each file is checked as the
ONNX ones are: the fp32 file against the trained PyTorch network on real
images (max |diff| within ``diff_tol * max(1, max|logit|)``, else the
export fails), top-1 of both files on the evaluation split through the
ai-edge-litert interpreter, the int8 file's drop and agreement, and their
batch-1 latency in LiteRT (XNNPACK, ``--threads``), timed interleaved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ednas.errors import ConfigError
from ednas.metrics import task_metrics, top1
from ednas.runtime import Timing, interleaved
from ednas.runtime.litert import TFLiteModel, export_tflite, score_tflite, versions

__all__ = ["FORMATS", "parse_formats", "check_tflite_settings", "export_tflite_files"]

FORMATS = ("onnx", "tflite")


def parse_formats(value: str, flag: str = "--format") -> list[str]:
    """``onnx``, ``tflite`` or ``onnx,tflite`` as a list in that order (one line naming the flag otherwise)."""
    parts = [p.strip().lower() for p in str(value).split(",") if p.strip()]
    bad = [p for p in parts if p not in FORMATS]
    if not parts or bad or len(set(parts)) != len(parts):
        raise ConfigError(f"{flag} must be onnx, tflite or onnx,tflite, got '{value}'")
    return [f for f in FORMATS if f in parts]


def check_tflite_settings(quant: str, pow2: bool, mixed: bool, weight_bits, name) -> None:
    """What the LiteRT path cannot write, refused before any work (one line naming the flag)."""
    if quant not in ("none", "int8"):
        raise ConfigError(f"{name('quant')} {quant}: LiteRT files are fp32 or full-integer int8 (give --quant int8 or none, "
                          f"or --format onnx for 16 bit)")
    if pow2:
        raise ConfigError(f"{name('pow2')}: power-of-two scales are TIDL's; LiteRT int8 uses free scales (drop --pow2, or --format onnx)")
    if mixed:
        raise ConfigError(f"{name('mixed_precision')}: LiteRT int8 here is int8 throughout (drop it, or --format onnx)")
    if weight_bits not in (None, 8):
        raise ConfigError(f"{name('weight_bits')} {weight_bits}: LiteRT int8 has 8-bit weights")


def export_tflite_files(model, deploy, out: Path, size: int, channels: int, data, split: str, limit: int, compare_x: np.ndarray,
                        calib: np.ndarray | None, per_channel: bool, diff_tol: float, timing: Timing, loader_fn) -> dict:
    """Write and check the LiteRT files; returns export.json's ``tflite`` entry.

    Args:
        model: the trained (unfused) network, the reference of the fp32 check.
        deploy: its fused deploy form, the network converted.
        compare_x: the images of the fp32 check (N x C x H x W).
        calib: calibration images for int8 (None: fp32 only).
        loader_fn: ``(data, split) -> batches`` of the evaluation split.
    """
    import torch

    out = Path(out)
    fp32 = export_tflite(deploy, out / "model.tflite", size, channels)
    m32 = TFLiteModel(fp32["file"], timing.threads)
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(compare_x)).numpy()
    got = m32.run(compare_x)
    diff, scale = float(np.abs(got - ref).max()), float(np.abs(ref).max())
    entry = {
        "file": fp32["file"], "file_int8": None, "input_layout": fp32["input_layout"], "input_shape": fp32["input_shape"],
        "max_abs_diff": diff, "max_abs_logit": scale, "diff_images": int(len(compare_x)),
        "diff_ok": diff <= diff_tol * max(1.0, scale), "diff_tol": diff_tol,
        "against": "trained PyTorch network (unfused), LiteRT fp32",
    }
    ml = data.multilabel
    scores, labels = score_tflite(m32, loader_fn(data, split), limit=limit)
    s32 = task_metrics(scores, labels, True, data.classes)["map"] if ml else top1(scores, labels)  # the one tie rule
    entry.update({"map_fp32" if ml else "top1_fp32": s32, "n_eval": int(len(labels)), "bytes_fp32": fp32["bytes"]})
    runners = {"fp32": m32.runner()}
    if calib is not None:
        q = export_tflite(deploy, out / "model_int8.tflite", size, channels, quant="int8", calib=calib, per_channel=per_channel)
        m8 = TFLiteModel(q["file"], timing.threads)
        qs, _ = score_tflite(m8, loader_fn(data, split), limit=limit)
        s8 = task_metrics(qs, labels, True, data.classes)["map"] if ml else top1(qs, labels)
        same = (qs > 0) == (scores > 0) if ml else qs.argmax(1) == scores.argmax(1)
        entry.update({"file_int8": q["file"], "map_int8" if ml else "top1_int8": s8,
                      "drop": None if s32 is None or s8 is None else s32 - s8,
                      "agreement": float(same.mean() * 100.0) if len(same) else None, "per_channel": q["per_channel"], "bytes_int8": q["bytes"],
                      "input_dtype_int8": m8.dtype})
        runners["int8"] = m8.runner()
    lat = interleaved(runners, timing.warmup, timing.repeats, timing.rounds, timing.min_time_s, stat=timing.stat, **timing.adaptive())
    entry.update({
        "latency_ms_fp32": lat["fp32"]["ms"],
        "latency_ms_int8": lat["int8"]["ms"] if "int8" in lat else None,
        "speedup": lat["fp32"]["ms"] / lat["int8"]["ms"] if "int8" in lat and lat["int8"]["ms"] else None,
        "latency": {k: v for k, v in lat.items()},
        "how": f"ai-edge-litert interpreter, XNNPACK, {timing.threads} thread(s), batch 1; {timing.stat} of runs, median over "
               f"{timing.rounds} interleaved rounds",
        "versions": versions(),
    })
    return entry  # the caller writes export.json, then fails the export when diff_ok is false
