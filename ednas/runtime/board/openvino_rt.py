"""The kit's OpenVINO runtime: the kit's ONNX models (float or QDQ) compiled by OpenVINO's CPU plugin.

OpenVINO reads the very ONNX files the kit writes (:mod:`.graphs`; the QDQ
ones become its low-precision kernels), so an OpenVINO board times the same
graphs as an ONNX Runtime one: only the runner differs.  Each model is
compiled for the ``CPU`` device with ``INFERENCE_NUM_THREADS`` = the
threads asked for, ``NUM_STREAMS`` 1, the ``LATENCY`` performance hint
(batch 1, as deployed) and ``INFERENCE_PRECISION_HINT`` f32 (the float
file's precision on every CPU: the plugin runs bf16 by default where the
CPU has it), fed a fixed random input in [-1, 1].  Needs
``pip install openvino`` (and numpy; no torch, no ONNX Runtime).
"""

from __future__ import annotations

import os

import numpy as np

_CORE = None


def _core():
    global _CORE
    if _CORE is None:
        try:
            import openvino as ov
        except ImportError as err:
            raise SystemExit("error: this kit times with OpenVINO and needs it (pip install openvino): %s" % err) from None
        _CORE = ov.Core()
    return _CORE


def config(threads=1):
    """The compile settings of every model (what a table records)."""
    # f32: on a CPU with AVX512_BF16 or AMX (a Zen 4, a Sapphire Rapids) the plugin's default is bf16, which would time
    # (and score) another network than the float file; the QDQ models' int8 kernels are not affected
    return {"INFERENCE_NUM_THREADS": int(threads), "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}


def compile_model(model, threads=1):
    """An OpenVINO compiled model of an ONNX model (its bytes or a path) on the CPU plugin, with :func:`config`."""
    core = _core()
    if isinstance(model, (str, os.PathLike)):
        m = core.read_model(os.fspath(model))
    else:
        m = core.read_model(model=bytes(model), weights=b"")
    return core.compile_model(m, "CPU", config(threads))


def _shape(compiled, shape):
    if shape is not None:
        return [int(d) for d in shape]
    ps = compiled.input(0).get_partial_shape()
    return [d.get_length() if d.is_static else 1 for d in ps]


def runner(model, threads=1, shape=None, seed=0):
    """A runner (a callable without arguments) of an ONNX model in OpenVINO on a fixed random input of ``shape`` (or its own)."""
    import openvino as ov

    compiled = compile_model(model, threads)
    x = np.random.default_rng(seed).uniform(-1, 1, _shape(compiled, shape)).astype(np.float32)
    req = compiled.create_infer_request()
    req.set_input_tensor(ov.Tensor(x))
    req.infer()  # first call: allocations
    infer = req.infer
    return lambda keep=(compiled, x): infer()


def run(compiled, x):
    """Outputs (the first) of a compiled model for a batch ``x`` (N x C x H x W float32); a fixed batch runs that many at a time."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    ps = compiled.input(0).get_partial_shape()
    fixed = ps[0].get_length() if ps[0].is_static else None
    req = compiled.create_infer_request()
    if fixed is not None and fixed != len(x):
        return np.concatenate([np.array(req.infer([x[i : i + fixed]])[0]) for i in range(0, len(x), fixed)])
    return np.array(req.infer([x])[0])


def version():
    try:
        import openvino as ov

        return ov.get_version().split("-")[0]
    except Exception:  # noqa: BLE001 - a version is a record, never a reason to fail
        return None
