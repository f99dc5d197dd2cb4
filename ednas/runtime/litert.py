"""LiteRT (TFLite) files: conversion from PyTorch with litert-torch, and the ai-edge-litert interpreter (XNNPACK).

Needs the ``litert`` extra (``pip install -e ".[litert]"``: ``litert-torch``
and ``ai-edge-litert``); without it every entry point raises one line
(:class:`~ednas.errors.ConfigError`) saying how to install it.

Conversion (:func:`export_tflite`).  The fused deploy network is wrapped to
take channels-last input (``litert_torch.to_channel_last_io``: an image
``1 x H x W x C``, as cameras and TFLite's own tools give it, so the file
starts without a transpose) and converted by ``litert_torch.convert``:

* ``fp32``: the float network;
* ``int8``: full integer, through PyTorch 2 export quantization (PT2E:
  ``torch.export``, ``prepare_pt2e`` with litert-torch's
  ``PT2EQuantizer``, symmetric int8 weights per output channel (or per
  tensor), int8 activations calibrated by running the calibration images
  through the observers, ``convert_pt2e``), so weights, activations, the
  input and the output are int8 and the interpreter runs XNNPACK's integer
  kernels; :class:`TFLiteModel` quantizes the float input with the file's
  own scale and zero point and dequantizes the logits.

Running (:class:`TFLiteModel`, :func:`score_tflite`): the ai-edge-litert
``Interpreter`` with ``num_threads`` and its default XNNPACK delegate, batch
1, one image at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ednas.errors import ConfigError, ExportError

__all__ = ["EXTRA", "LitertRuntime", "TFLiteModel", "available", "convert_signatures", "export_tflite", "score_tflite", "signature_runners", "versions"]

#: how to install what this module needs
EXTRA = "pip install -e '.[litert]' (litert-torch and ai-edge-litert)"


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(f"LiteRT (.tflite) needs the litert extra: {EXTRA}; {module} cannot be imported ({err})") from None


def available() -> bool:
    """Whether the litert extra is installed (both the converter and the interpreter import)."""
    try:
        _need("ai_edge_litert.interpreter")
        _need("litert_torch")
    except ConfigError:
        return False
    return True


def versions() -> dict:
    """The versions of the LiteRT packages (for records)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("litert-torch", "ai-edge-litert", "torchao"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


# ---------------------------------------------------------------------------
# conversion


def _quiet_convert(fn):
    """Run a litert-torch conversion with its progress lines and absl logging kept out of the user's terminal."""
    import contextlib
    import io
    import logging

    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            return fn()
    except Exception as err:
        lines = [ln for ln in (str(err) or type(err).__name__).splitlines() if ln.strip()]
        raise ExportError(f"litert-torch could not convert the network: {lines[0][:300] if lines else type(err).__name__}") from err
    finally:
        absl.setLevel(level)


def _quantizer(per_channel: bool = True):
    """litert-torch's PT2E quantizer: symmetric int8 weights (per output channel or per tensor), int8 activations."""
    from litert_torch.quantize import pt2e_quantizer

    return pt2e_quantizer.PT2EQuantizer().set_global(pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=bool(per_channel)))


def _quant_config(quantizer):
    from litert_torch.quantize.quant_config import QuantConfig

    return QuantConfig(pt2e_quantizer=quantizer)


def _pt2e(module, sample: tuple, calib: Iterable, quantizer):
    """``module`` quantized by PT2E: exported, observed on each calibration input of ``calib``, converted (full integer)."""
    import torch
    from torchao.quantization.pt2e import quantize_pt2e

    m = quantize_pt2e.prepare_pt2e(torch.export.export(module, sample).module(), quantizer)
    with torch.no_grad():
        for x in calib:
            m(x)
    return quantize_pt2e.convert_pt2e(m, fold_quantize=False)


def export_tflite(model, path, input_size: int, in_channels: int = 3, quant: str = "none", calib: np.ndarray | None = None,
                  per_channel: bool = True) -> dict:
    """Convert ``model`` (an eval-mode torch module, NCHW input) to a ``.tflite`` file at ``path`` (written atomically).

    Args:
        quant: ``none`` (fp32) or ``int8`` (full integer: int8 weights,
            activations, input and output).
        calib: calibration images for ``int8`` (N x C x H x W float32, as the
            network expects them).
        per_channel: one int8 weight scale per output channel (else one per tensor).
    Returns:
        ``{"file", "quant", "per_channel", "input_layout", "input_shape", "bytes"}``.
    """
    import torch

    litert = _need("litert_torch")
    if quant not in ("none", "int8"):
        raise ConfigError(f"LiteRT export quantizes to none or int8, got '{quant}'")
    if quant == "int8" and (calib is None or len(calib) == 0):
        raise ConfigError("int8 LiteRT export needs calibration images")
    model = model.eval()
    wrapped = litert.to_channel_last_io(model, args=[0]).eval()
    sample = (torch.zeros(1, input_size, input_size, in_channels),)

    def nhwc(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 2, 3, 1)))

    def convert():
        if quant == "none":
            with torch.no_grad():
                return litert.convert(wrapped, sample)
        quantizer = _quantizer(per_channel)
        m = _pt2e(wrapped, sample, (nhwc(calib[i : i + 1]) for i in range(len(calib))), quantizer)
        return litert.convert(m, sample, quant_config=_quant_config(quantizer))

    edge = _quiet_convert(convert)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    _quiet_convert(lambda: edge.export(str(tmp)))
    tmp.replace(path)  # atomic: an interrupted export leaves no half file under the real name
    return {"file": str(path), "quant": quant, "per_channel": bool(per_channel) if quant == "int8" else None, "input_layout": "NHWC",
            "input_shape": [1, input_size, input_size, in_channels], "bytes": path.stat().st_size}


# ---------------------------------------------------------------------------
# running


class TFLiteModel:
    """A ``.tflite`` file (path or bytes) in the ai-edge-litert interpreter: ``threads`` threads, XNNPACK, batch 1.

    :meth:`run` takes float images N x C x H x W (as every ednas loader gives
    them) and returns float logits N x classes: it transposes to the file's
    layout (channels last when the file's input is ``1 x H x W x C``),
    quantizes an int8 input with the file's scale and zero point, runs one
    image at a time and dequantizes an int8 output.
    """

    def __init__(self, model, threads: int = 1):
        tfl = _need("ai_edge_litert.interpreter")
        is_path = isinstance(model, (str, Path))
        if is_path and not Path(model).is_file():
            raise ExportError(f"LiteRT model '{model}' does not exist")
        where = f"'{model}'" if is_path else "(in memory)"
        try:
            kw = {"model_path": str(model)} if is_path else {"model_content": bytes(model)}
            self.interpreter = tfl.Interpreter(num_threads=int(threads), **kw)
            self.interpreter.allocate_tensors()
        except Exception as err:  # the interpreter raises ValueError/RuntimeError for a file it cannot read
            raise ExportError(f"LiteRT model {where} cannot be loaded: {str(err).splitlines()[0][:300] if str(err) else type(err).__name__}") from err
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        shape = [int(d) for d in self.input["shape"]]
        if len(shape) != 4:
            raise ExportError(f"LiteRT model {where}: expected one image input (4 dimensions), got shape {shape}")
        self.shape = shape
        self.layout = "NHWC" if shape[1] == shape[2] and shape[3] != shape[2] else "NCHW"
        self.threads = int(threads)

    @property
    def dtype(self) -> str:
        return np.dtype(self.input["dtype"]).name

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of the input image."""
        s = self.shape
        return (s[3], s[1], s[2]) if self.layout == "NHWC" else (s[1], s[2], s[3])

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        from ednas.runtime.board.litert_rt import quantize

        return quantize(x, self.input)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if np.dtype(self.output["dtype"]) == np.float32:
            return y.astype(np.float32)
        scale, zero = self.output["quantization"]
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)

    def run(self, x) -> np.ndarray:
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        x = np.asarray(x, np.float32)
        if self.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        it, out = self.interpreter, []
        for i in range(len(x)):
            it.set_tensor(self.input["index"], self._quantize(np.ascontiguousarray(x[i : i + 1])))
            it.invoke()
            out.append(self._dequantize(it.get_tensor(self.output["index"])).reshape(1, -1))
        return np.concatenate(out) if out else np.zeros((0, int(np.prod(self.output["shape"][1:]))), np.float32)

    def runner(self):
        """A callable that runs the file once on a fixed random input (for :func:`ednas.runtime.interleaved`)."""
        x = np.random.default_rng(0).uniform(-1, 1, self.shape).astype(np.float32)
        self.interpreter.set_tensor(self.input["index"], self._quantize(x))
        invoke = self.interpreter.invoke

        def run():
            invoke()

        return run


def score_tflite(model, batches: Iterable, threads: int = 1, limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N x C float32) and targets of a ``.tflite`` over ``batches`` (see :func:`ednas.runtime.score_onnx`)."""
    m = model if isinstance(model, TFLiteModel) else TFLiteModel(model, threads)
    scores, targets, seen = [], [], 0
    for x, y in batches:
        if limit and seen >= limit:
            break
        x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
        y = y.detach().cpu().numpy() if hasattr(y, "detach") else np.asarray(y)
        if limit:
            x, y = x[: limit - seen], y[: limit - seen]
        scores.append(m.run(x))
        targets.append(y)
        seen += len(y)
    if not scores:
        return np.zeros((0, int(np.prod(m.output["shape"][1:]))), np.float32), np.zeros((0,), np.int64)
    return np.concatenate(scores).astype(np.float32), np.concatenate(targets)


# ---------------------------------------------------------------------------
# many small models at once: the latency table's operator graphs and networks


def convert_signatures(models: dict, chunk: int = 32, seed: int = 0, quant: dict | None = None, calib_inputs: int = 8):
    """Convert ``{name: (module, input shape)}`` a chunk at a time: yields ``(tflite bytes, {signature key: name})`` per file.

    A rank-4 input shape is NCHW and the module is wrapped to take it
    channels last (as :func:`export_tflite` writes files); a rank-2 one is
    taken as it is.  Converting many signatures at once costs about a third
    of converting each alone.

    ``quant`` (a fixed-point scheme, :func:`ednas.runtime.board.quant_scheme`
    of ``i8``): each module is quantized full integer as
    :func:`export_tflite` does (PT2E, int8 weights per channel unless the
    scheme says per tensor, int8 activations, input and output), calibrated
    on ``calib_inputs`` random inputs in [-1, 1].  Only 8-bit, not
    power-of-two, schemes: LiteRT has no other.
    """
    import os
    import tempfile

    import torch

    litert = _need("litert_torch")
    quantizer = None
    if quant:
        if int(quant.get("bits", 8)) != 8 or int(quant.get("weight_bits") or 8) != 8 or quant.get("pow2"):
            raise ConfigError(f"LiteRT runs int8 (8-bit weights and activations, scales not restricted to powers of two); got the scheme {quant}")
        quantizer = _quantizer(quant.get("per_channel", True))
    names = list(models)
    rng = np.random.default_rng(seed)
    for start in range(0, len(names), max(1, chunk)):
        part = names[start : start + chunk]
        conv = None
        for i, name in enumerate(part):
            module, shape = models[name]
            module = module.eval()
            if len(shape) == 4:
                module = litert.to_channel_last_io(module, args=[0]).eval()
                shape = (shape[0], shape[2], shape[3], shape[1])
            args = (torch.zeros(tuple(shape)),)
            if quantizer is not None:
                calib = [torch.from_numpy(rng.uniform(-1, 1, tuple(shape)).astype(np.float32)) for _ in range(calib_inputs)]
                module = _quiet_convert(lambda module=module, args=args, calib=calib: _pt2e(module, args, calib, quantizer))
            key = f"m{i}"
            conv = litert.signature(key, module, args) if conv is None else conv.signature(key, module, args)

        def convert(conv=conv):
            with torch.no_grad():
                return conv.convert(quant_config=_quant_config(quantizer)) if quantizer is not None else conv.convert()

        edge = _quiet_convert(convert)
        fd, tmp = tempfile.mkstemp(suffix=".tflite")
        os.close(fd)
        try:
            _quiet_convert(lambda edge=edge, tmp=tmp: edge.export(tmp))
            with open(tmp, "rb") as f:
                content = f.read()
        finally:
            os.unlink(tmp)
        yield content, {f"m{i}": name for i, name in enumerate(part)}


def signature_runners(models: dict, threads: int = 1, chunk: int = 32, seed: int = 0, quant: dict | None = None,
                      calib_inputs: int = 8) -> dict:
    """``{name: runner}`` for ``{name: (module, input shape)}``, converted by :func:`convert_signatures` (``quant``: int8).

    Each runner invokes its signature on a fixed random input in [-1, 1]
    (int8 for a quantized model), as the board kit's LiteRT runtime does
    (:func:`ednas.runtime.board.litert_rt.signature_runners`: XNNPACK, no
    allocation per call).
    """
    from ednas.runtime.board import litert_rt

    _need("ai_edge_litert.interpreter")
    rng = np.random.default_rng(seed)
    out = {}
    for content, names in convert_signatures(models, chunk, seed, quant, calib_inputs):
        out.update(litert_rt.signature_runners(content, names, threads, rng))
    return out


# ---------------------------------------------------------------------------
# the runtime interface (ednas.runtime.interface)


from ednas.runtime.interface import Runtime  # noqa: E402


class LitertRuntime(Runtime):
    """``host-litert``: the ai-edge-litert interpreter (XNNPACK), models converted by litert-torch (:mod:`ednas.runtime.tflite_graphs`).

    Operators and networks are the kit's graphs written as torch modules and
    converted (many models as the signatures of one file), quantized full
    integer by PT2E for an ``i8`` table; LiteRT has no 16-bit mode.
    """

    name = "litert"
    target = "host-litert"
    format = "tflite"
    dtypes = ("f32", "i8")
    extra = EXTRA
    title = "LiteRT (ai-edge-litert, XNNPACK)"
    optimization = "XNNPACK (the interpreter's default delegate), channels last"

    def available(self) -> bool:
        return available()

    def versions(self) -> dict:
        return versions()

    def load(self, model, threads=1):
        return TFLiteModel(model, threads)

    def run(self, loaded, x) -> np.ndarray:
        return loaded.run(x)

    def runner(self, model, threads=1, shape=None):
        from ednas.runtime.board import litert_rt

        data = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
        return litert_rt.model_runner(data, threads)

    def op_runners(self, ids, threads=1, quant=None):
        from ednas.runtime.tflite_graphs import model_module

        return signature_runners({mid: model_module(mid) for mid in ids}, threads, quant=quant)

    def files(self, models, quant=None):
        out = {}
        for content, names in convert_signatures(models, chunk=1, quant=quant):
            (name,) = names.values()
            out[name] = content
        return out

    def reference_file(self, keys, quant=None):
        from ednas.runtime.tflite_graphs import network_module

        module, shape = network_module(list(keys))
        return self.files({"reference": (module, shape)}, quant)["reference"], shape
