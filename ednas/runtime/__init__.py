"""Running exported networks: ONNX serialisation, ONNX Runtime sessions, scoring and timing.

The bottom layer of ednas beside ``config``, ``errors`` and ``io``: it
imports only the standard library, numpy, onnx, onnxruntime, torch (and the
optional runtimes' packages: ai-edge-litert, litert-torch, openvino) and
``ednas.errors`` / ``ednas.io``, never another ednas package.

=====================  =====================================================
module                 what
=====================  =====================================================
:mod:`.board`          the measuring kit, a package free of ednas and torch
                       (copied whole to a board by ``ednas lut script``):
                       the one session builder, the one timing loop
                       (:func:`interleaved`), operator and network
                       measuring, the measurement server and its client
                       (``measure_ops.py serve``)
:mod:`.remote`         the kit's server and client under one name for the
                       host (``--target remote:HOST:PORT``)
:mod:`.session`        :func:`ort_session` (board's builder plus clear
                       errors), :func:`score_onnx`
:mod:`.timing`         :class:`Timing`, :func:`time_onnx`, :func:`time_torch`
:mod:`.serialize`      :func:`onnx_bytes`, :func:`export_onnx` (torch -> ONNX)
:mod:`.interface`      the one runtime interface (:class:`~.interface.Runtime`:
                       load, run, runner, describe; shared operator entries,
                       reference network and end-to-end timing) and its
                       registry; one file per runtime: :mod:`.ort`
                       (``host-ort``), :mod:`.litert` (``host-litert``, with
                       :mod:`.tflite_graphs`), :mod:`.openvino`
                       (``host-openvino``)
:mod:`.quantize`       ORT's static quantization with ednas's settings (QDQ,
                       8/16 bit, per channel, power of two; :mod:`.pow2`):
                       the one quantizer of ``ednas export`` and the latency
                       table (imported on use: ``ednas.runtime.quantize``)
=====================  =====================================================
"""

from ednas.runtime.board import interleaved, time_runs
from ednas.runtime.serialize import export_onnx, onnx_bytes
from ednas.runtime.session import OPTIMIZATIONS, ort_session, run_batched, score_onnx
from ednas.runtime.timing import (
    Reference,
    Timing,
    channels_last,
    time_onnx,
    time_torch,
    torch_threads,
)

__all__ = [
    "OPTIMIZATIONS",
    "Reference",
    "Timing",
    "channels_last",
    "export_onnx",
    "interleaved",
    "onnx_bytes",
    "ort_session",
    "run_batched",
    "score_onnx",
    "time_onnx",
    "time_runs",
    "time_torch",
    "torch_threads",
]
