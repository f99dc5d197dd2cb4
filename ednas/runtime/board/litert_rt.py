"""The kit's LiteRT runtime: the models the host converted (``.tflite``), timed with the ai-edge-litert interpreter (XNNPACK).

A board without ONNX Runtime (most embedded Arm Linux images ship LiteRT)
cannot build the kit's models itself: converting needs PyTorch.  So for
``ednas lut script --runtime litert`` the host converts every model the
board will time (each operator's sandwich and context pairs of
:func:`.graphs.plan`, the reference network, the fit and validation
networks) into a few ``.tflite`` files, many models as the signatures of
one file, and lists them in ``litert_models.json``::

    {"format": "ednas-litert-models", "files": [{"file": "models/litert_000.tflite",
      "signatures": {"m0": "sw:dw_i32x32x16_..._f32", "m1": "pair:16x32x32", ...}}, ...]}

:func:`runners` opens each file once (``num_threads`` threads, XNNPACK, the
interpreter's default delegate) and gives a runner per model id: a callable
that invokes its signature on a fixed random input in [-1, 1] (quantized
with the input's own scale and zero point when the model is int8), without
allocation or copies per call.  The timing itself is the kit's
(:func:`.timing.measure_op`, :func:`.timing.interleaved`): only where the
runners come from differs.  Needs ``pip install ai-edge-litert`` (numpy; no
onnx, no onnxruntime).
"""

from __future__ import annotations

import json
import os

import numpy as np

INDEX = "litert_models.json"
INDEX_FORMAT = "ednas-litert-models"


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter
    except ImportError as err:
        raise SystemExit("error: this kit times LiteRT models and needs ai-edge-litert (pip install ai-edge-litert): %s" % err) from None
    return interpreter


def quantize(x, detail):
    """Float ``x`` as the input ``detail`` (an interpreter's input details) takes it: itself when float, else quantized with the
    input's own scale and zero point (rounded, clipped to the integer type)."""
    dt = np.dtype(detail["dtype"])
    if dt == np.float32:
        return np.asarray(x, np.float32)
    scale, zero = (detail.get("quantization") or (1.0, 0))[:2]
    info = np.iinfo(dt)
    return np.clip(np.round(x / (scale or 1.0)) + zero, info.min, info.max).astype(dt)


def random_input(detail, rng):
    """A fixed random input in [-1, 1] for a signature input, quantized with its own scale and zero point when it is integer."""
    shape = tuple(int(d) for d in detail["shape"])
    return quantize(rng.uniform(-1, 1, shape).astype(np.float32), detail)


def signature_runners(content, names, threads=1, rng=None):
    """``{name: runner}`` of one ``.tflite`` (bytes) whose signature ``key`` holds the model ``names[key]``."""
    tfl = _interpreter_module()
    rng = np.random.default_rng(0) if rng is None else rng
    interp = tfl.Interpreter(model_content=bytes(content), num_threads=int(threads))
    out = {}
    for key, name in names.items():
        r = interp.get_signature_runner(key)
        (inp_name, detail), = r.get_input_details().items()
        x = random_input(detail, rng)
        r(**{inp_name: x})  # allocates the signature's tensors and sets its input once
        wrapper, index = getattr(r, "_interpreter_wrapper", None), getattr(r, "_subgraph_index", None)
        # each runner holds its interpreter (and so the model's bytes) alive
        if wrapper is not None and index is not None:  # invoke alone: no resize, allocation or copies per call
            out[name] = (lambda w=wrapper, k=index, keep=interp: w.Invoke(k))
        else:
            out[name] = (lambda r=r, n=inp_name, x=x, keep=interp: r(**{n: x}))
    return out


def model_runner(content, threads=1, seed=0):
    """A runner of a whole ``.tflite`` (bytes) as ``ednas export`` writes it: its first signature, or its first input."""
    tfl = _interpreter_module()
    rng = np.random.default_rng(seed)
    interp = tfl.Interpreter(model_content=bytes(content), num_threads=int(threads))
    sigs = list(interp.get_signature_list())
    if sigs:
        return signature_runners(content, {sigs[0]: "model"}, threads, rng)["model"]
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    interp.set_tensor(detail["index"], random_input(detail, rng))
    invoke = interp.invoke
    return lambda: invoke()


def read_kit(kit_dir):
    """``(index, ops spec)`` of a LiteRT kit's folder (its litert_models.json and ops.json); exits with one line when it is not one."""
    index = read_index(kit_dir)
    if index is None:
        raise SystemExit("error: %s has no %s: serve LiteRT from a kit written by 'ednas lut script --runtime litert'" % (kit_dir, INDEX))
    with open(os.path.join(kit_dir, "ops.json")) as f:
        spec = json.load(f)
    return index, spec


def read_index(kit_dir):
    """The kit's ``litert_models.json`` (None when the kit has none: an ONNX Runtime kit)."""
    path = os.path.join(kit_dir, INDEX)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        index = json.load(f)
    if index.get("format") != INDEX_FORMAT:
        raise SystemExit("error: %s is not an ednas LiteRT model list (format %r)" % (path, index.get("format")))
    return index


def runners(kit_dir, index, threads=1, seed=0):
    """``{model id or network name: runner}`` of every model the host converted for this kit."""
    rng = np.random.default_rng(seed)
    out = {}
    for entry in index["files"]:
        with open(os.path.join(kit_dir, entry["file"]), "rb") as f:
            content = f.read()
        out.update(signature_runners(content, entry["signatures"], threads, rng))
    return out


def version():
    try:
        from importlib.metadata import version as v

        return v("ai-edge-litert")
    except Exception:  # noqa: BLE001 - a version is a record, never a reason to fail
        return None
