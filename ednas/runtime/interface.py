"""One runtime interface: what ednas needs of a runtime that runs and times its networks.

A :class:`Runtime` loads a model (its bytes or a file, in the runtime's
``format``), runs a batch through it, makes a *runner* of it (a callable
that runs it once on a fixed random input: what the shared loops time) and
describes itself; from these the base class gives every runtime the same

* operator entries (:meth:`Runtime.measure_ops`): the kit's sandwich models
  (:func:`ednas.runtime.board.plan`) in the runtime's format, timed by
  the one :func:`ednas.runtime.board.measure_ops`, in units of the table's
  reference network;
* end-to-end timings (:meth:`Runtime.time_files`): the one interleaved loop
  (:func:`ednas.runtime.board.interleaved`) beside the reference network;
* files to deploy or send to a device (:meth:`Runtime.files`,
  :meth:`Runtime.reference`): the fused networks (and the table's reference
  network) written in the runtime's format and precision.

Two formats exist: ``onnx`` (:class:`OnnxFormat`: the kit's ONNX graphs,
torch's ONNX export and ednas's one quantizer, QDQ) and ``tflite``
(litert-torch conversion, :mod:`ednas.runtime.litert`).  A runtime that
reads ONNX is one file: a subclass of :class:`OnnxFormat` with ``load``,
``runner`` and ``versions``, registered in :data:`RUNTIMES`.

===========  =================  ======  ============================
runtime      host target        format  file
===========  =================  ======  ============================
onnxruntime  ``host-ort``       onnx    :mod:`ednas.runtime.ort`
litert       ``host-litert``    tflite  :mod:`ednas.runtime.litert`
openvino     ``host-openvino``  onnx    :mod:`ednas.runtime.openvino`
===========  =================  ======  ============================
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable

import numpy as np

from ednas.errors import ConfigError
from ednas.runtime import board
from ednas.runtime.session import score_batches
from ednas.runtime.timing import Reference, Timing

__all__ = ["RUNTIMES", "TARGETS", "OnnxFormat", "Runtime", "get_runtime", "runtime_names", "runtime_of_target", "table_runtime"]

#: runtime name -> "module:class" (imported on use: a runtime's package is an optional extra)
RUNTIMES = {
    "onnxruntime": "ednas.runtime.ort:OrtRuntime",
    "litert": "ednas.runtime.litert:LitertRuntime",
    "openvino": "ednas.runtime.openvino:OpenVinoRuntime",
}
#: host target -> runtime name
TARGETS = {"host-ort": "onnxruntime", "host-litert": "litert", "host-openvino": "openvino"}


class Runtime:
    """A runtime (see the module docstring).  Subclasses set the class attributes and implement the abstract methods."""

    #: what a table's ``measurement.runtime`` records
    name: str = ""
    #: the ``--target`` that builds tables with it on this host
    target: str = ""
    #: the model files it loads: ``onnx`` or ``tflite``
    format: str = ""
    #: operator dtypes its tables measure
    dtypes: tuple = ("f32",)
    #: how to install it (None: always installed)
    extra: str | None = None
    #: one line for people (reports, errors)
    title: str = ""
    #: what a table records as its graph optimisation / session settings
    optimization: str = ""

    # -- what each runtime implements ------------------------------------------------
    def available(self) -> bool:
        """Whether its package imports."""
        raise NotImplementedError

    def versions(self) -> dict:
        """``{package: version}`` of what runs the models (for records)."""
        raise NotImplementedError

    def load(self, model, threads: int = 1):
        """The model (bytes or a path, in :attr:`format`) loaded to run (the runtime's own object)."""
        raise NotImplementedError

    def run(self, loaded, x: np.ndarray) -> np.ndarray:
        """The first output of ``loaded`` (:meth:`load`) for the float32 batch ``x`` (N x C x H x W)."""
        raise NotImplementedError

    def runner(self, model, threads: int = 1, shape: list | None = None) -> Callable[[], object]:
        """A callable that runs ``model`` (bytes or a path) once on a fixed random input (``shape``, or the model's own)."""
        raise NotImplementedError

    def op_runners(self, ids: list[str], threads: int = 1, quant: dict | None = None) -> dict:
        """``{model id: runner}`` of the sandwich models of :func:`ednas.runtime.board.plan`, in this runtime's format."""
        raise NotImplementedError

    def files(self, models: dict, quant: dict | None = None) -> dict:
        """``{name: model bytes}`` of ``{name: (fused torch module, NCHW input shape)}`` in this format and precision (``quant``)."""
        raise NotImplementedError

    def reference_file(self, keys: tuple, quant: dict | None = None) -> tuple[bytes, list]:
        """``(model bytes, input shape)`` of a reference network given as its operator keys, in the table's precision."""
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------
    def require(self) -> None:
        """One :class:`~ednas.errors.ConfigError` line, saying how to install it, when it is not installed."""
        if not self.available():
            raise ConfigError(f"target {self.target} times with {self.title} and needs its extra: {self.extra}")

    def check_dtype(self, dtype: str) -> None:
        if dtype not in self.dtypes:
            raise ConfigError(f"{self.title} measures {' and '.join(self.dtypes)} operators (target {self.target}, or a device running it); "
                              f"--dtype must be one of them, got {dtype}")

    def describe(self) -> dict:
        """What a table's ``measurement`` records of the runtime."""
        return {"runtime": self.name, "graph_optimization": self.optimization, self.name: self.versions()}

    def reference(self, keys: Iterable[str], ms: float | None, quant: dict | None = None) -> Reference:
        """The table's reference network (keys, time when built, precision) as a :class:`~ednas.runtime.Reference` of this runtime."""
        data, shape = _reference_file(self, tuple(keys), _freeze(quant))
        return Reference(data, ms, tuple(shape), format=self.format)

    def measure_ops(self, keys: Iterable[str], threads: int = 1, warmup: int = 10, repeats: int = 100, rounds: int = 5,
                    on_entry: Callable[[str, dict], None] | None = None, reference: Reference | None = None, stat: str = "median",
                    quant: dict | None = None, chunk: int = 48, min_time_s: float = 0.02, group: int = board.OPS_PER_REFERENCE) -> dict:
        """``{key: entry}`` of each operator (:func:`ednas.runtime.board.measure_ops` on this runtime's runners).

        The models of ``chunk`` operators at a time are loaded together and
        freed after; ``on_entry(key, entry)`` runs after each operator's
        group (the builder saves the table there: an interrupted build keeps
        what it measured); ``reference``: the table's reference network,
        timed between the rounds of every ``group`` operators; ``min_time_s``:
        the shortest timed batch.
        """
        keys = list(keys)
        ref = self.runner(reference.onnx, threads, list(reference.shape) if reference.shape else None) if reference is not None else None
        out = {}
        for start in range(0, len(keys), chunk):
            part = keys[start : start + chunk]
            ids = list(dict.fromkeys(mid for k in part for mid, _ in board.plan(k)))
            cache = self.op_runners(ids, threads, quant)
            out.update(board.measure_ops(part, threads, warmup, repeats, rounds, min_time_s=min_time_s, cache=cache, reference=ref, stat=stat,
                                         group=group, on_entry=on_entry))
        return out

    def time_files(self, files: dict, timing: Timing | None = None, progress: Callable | None = None,
                   reference: Reference | None = None) -> dict:
        """End-to-end ms of ``{name: model bytes or path}`` (or ``(bytes, shape)``), interleaved beside ``reference``.

        :func:`ednas.runtime.board.interleaved`'s result (``scaled_ms``: at
        the table's speed, when the reference carries the table's time).
        """
        timing = timing or Timing()
        timing.check()
        runners = {}
        for name, f in files.items():
            data, shape = f if isinstance(f, tuple) else (f, None)
            runners[name] = self.runner(data, timing.threads, shape)
        ref = None
        if reference is not None:
            if reference.format not in (None, self.format):
                raise ConfigError(f"{self.title} cannot time a {reference.format} reference network")
            ref = self.runner(reference.onnx, timing.threads, list(reference.shape) if reference.shape else None)
        return board.interleaved(runners, timing.warmup, timing.repeats, timing.rounds, timing.min_time_s, progress, reference=ref,
                                 ref_ms=None if reference is None else reference.ms, stat=timing.stat, **timing.adaptive())

    def time_modules(self, models: dict, input_size: int, timing: Timing | None = None, progress: Callable | None = None,
                     reference: Reference | None = None, quant: dict | None = None) -> dict:
        """End-to-end ms of ``{name: fused torch module}`` (image input of ``input_size``), written by :meth:`files` and timed by
        :meth:`time_files`."""
        files = self.files(image_inputs(models, input_size), quant)
        return self.time_files(files, timing, progress, reference)

    def score(self, model, batches: Iterable, threads: int = 1, limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Scores (N x C) and labels of ``model`` (bytes or a path) over ``(x, y)`` batches (``limit`` images at most; 0: all)."""
        loaded = self.load(model, threads)
        return score_batches(lambda x: self.run(loaded, x), batches, limit)


def _freeze(quant: dict | None):
    return None if not quant else tuple(sorted(quant.items()))


@functools.lru_cache(maxsize=8)
def _reference_file(rt: Runtime, keys: tuple, quant: tuple | None):
    # converting a reference network takes seconds in some runtimes: once per (runtime, network, precision)
    return rt.reference_file(keys, dict(quant) if quant else None)


def image_inputs(models: dict, input_size: int) -> dict:
    """``{name: (module, NCHW input shape)}`` of ``{name: torch module}`` whose first convolution reads the image."""
    import torch.nn as nn

    out = {}
    for name, m in models.items():
        conv = next(c for c in m.modules() if isinstance(c, nn.Conv2d))
        out[name] = (m, [1, conv.in_channels, input_size, input_size])
    return out


class OnnxFormat(Runtime):
    """A runtime that reads ONNX: the kit's graphs (float or QDQ), torch's ONNX export and ednas's quantizer write its files."""

    format = "onnx"

    def op_runners(self, ids, threads=1, quant=None):
        out = {}
        for mid in ids:
            data, shape = board.build(mid, quant)
            out[mid] = self.runner(data, threads, shape)
        return out

    def files(self, models, quant=None):
        from ednas.runtime.serialize import onnx_bytes

        out = {}
        for i, (name, (m, shape)) in enumerate(models.items()):
            data = onnx_bytes(m.eval(), shape[-1], in_channels=shape[1])
            out[name] = quantize_onnx_bytes(data, shape, quant, seed=i) if quant else data
        return out

    def reference_file(self, keys, quant=None):
        data, shape = board.build_network(list(keys), quant=quant)
        return data, list(shape)


def quant_settings(scheme: dict | None):
    """The :class:`~ednas.runtime.quantize.QuantSettings` of a table's fixed-point scheme (None: float)."""
    if not scheme:
        return None
    from ednas.runtime.quantize import QuantSettings

    return QuantSettings(bits=int(scheme["bits"]), weight_bits=int(scheme.get("weight_bits") or scheme["bits"]),
                         pow2=bool(scheme.get("pow2")), per_channel=bool(scheme.get("per_channel", True)))


def quantize_onnx_bytes(data: bytes, shape, quant: dict, calib_images: int = 16, seed: int = 0) -> bytes:
    """``data`` quantized by ednas's one quantizer in the scheme ``quant``, calibrated on random images in [-1, 1] of ``shape``."""
    from ednas.runtime.quantize import quantize_bytes

    images = np.random.default_rng(seed).uniform(-1, 1, (calib_images, *list(shape)[1:])).astype(np.float32)
    return quantize_bytes(data, images, quant_settings(quant))


@functools.lru_cache(maxsize=None)
def get_runtime(name: str) -> Runtime:
    """The :class:`Runtime` called ``name`` (``onnxruntime``, ``litert``, ``openvino``); importing it needs no optional package."""
    if name not in RUNTIMES:
        raise ConfigError(f"runtime '{name}' is unknown; known: {', '.join(RUNTIMES)}")
    module, _, cls = RUNTIMES[name].partition(":")
    return getattr(importlib.import_module(module), cls)()


def runtime_names() -> list[str]:
    return list(RUNTIMES)


def runtime_of_target(target: str) -> Runtime | None:
    """The runtime a host target (``host-ort``, ``host-litert``, ``host-openvino``) times with; None for any other target."""
    name = TARGETS.get(str(target))
    return get_runtime(name) if name else None


def table_runtime(table) -> Runtime | None:
    """The runtime a latency table was measured with (its ``measurement.runtime``), when it is one of :data:`RUNTIMES`."""
    name = str((table.meta.get("measurement") or {}).get("runtime", ""))
    return get_runtime(name) if name in RUNTIMES else None
