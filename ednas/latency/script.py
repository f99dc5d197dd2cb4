"""``ednas lut script``: the standalone measuring kit for a board (eq. 11 on the target).

Writes, into ``DIR``:

* ``ednas_board/``: a verbatim copy of the package :mod:`ednas.runtime.board`
  (Python 3.8+, numpy, onnxruntime and onnx; no ednas, no torch): the
  graphs, the timing, the measurement server and the command line;
* ``measure_ops.py``: the kit's command (:data:`LAUNCHER`): measures the
  operators, or serves (``python3 measure_ops.py serve``) so that the host
  measures with ``--target remote:HOST:PORT`` instead of the round trip;
* ``ops.json``: every operator key the space needs, and the networks to
  time end to end (``fit`` ones for the table's constant, ``validate`` ones
  to check the table), each as its arch string and operator chain;
* ``README.txt``: the round trip.

With ``runtime="litert"`` (``ednas lut script --runtime litert``), for
boards that ship LiteRT rather than ONNX Runtime, this host also converts
every model the board will time (each operator's sandwich and context
pairs, the reference network, the fit and validation networks: the models
``host-litert`` times, quantized full integer for ``i8``) into
``models/litert_NNN.tflite`` (48 models as the signatures of each file),
listed in ``litert_models.json``; ``ops.json`` says ``"runtime":
"litert"`` and the kit times those files with ai-edge-litert
(:mod:`ednas.runtime.board.litert_rt`; the board needs numpy and
ai-edge-litert only).

On the board: ``python3 measure_ops.py --ops ops.json --out lut_board.json``
(resumable).  Back on the host: ``ednas lut build --target
file:lut_board.json --space SPACE --input N --out lut.json`` and
``ednas lut validate --lut lut.json``.
"""

from __future__ import annotations

from pathlib import Path

from ednas.arch.spec import ArchSpec
from ednas.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ednas.latency.measure import reference_spec
from ednas.latency.ops import KEY_VERSION, arch_ops, space_ops
from ednas.latency.validate import sample_picks
from ednas.runtime import Timing, board

__all__ = ["LAUNCHER", "KIT_PACKAGE", "write_script"]

#: the folder the kit's package is copied to
KIT_PACKAGE = "ednas_board"

#: ``DIR/measure_ops.py``: runs the package beside it (``python3 -m ednas_board`` does the same from ``DIR``)
LAUNCHER = '''#!/usr/bin/env python3
"""ednas's measuring kit: measure the operators of ops.json, or serve this device's measurements.

    python3 measure_ops.py --ops ops.json --out lut_board.json --threads 1
    python3 measure_ops.py serve --port 8765

The code is the package ednas_board/ beside this file (a copy of
ednas.runtime.board): Python 3.8+, numpy, onnxruntime and onnx.
"""
import os
import sys

KIT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, KIT)

from ednas_board.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(kit_dir=KIT))
'''

_ORT_BOARD = """On the board (Python 3.8+, numpy, onnxruntime, onnx; no ednas, no torch):

    pip install numpy onnxruntime onnx
"""
_LITERT_BOARD = """On the board (Python 3.8+, numpy, ai-edge-litert; no onnxruntime, onnx, ednas or torch):
the host converted every model into models/*.tflite (litert_models.json);
the kit times them with the LiteRT interpreter (XNNPACK):

    pip install numpy ai-edge-litert
"""

_OPENVINO_BOARD = """On the board (Python 3.8+, numpy, onnx, openvino; no onnxruntime, ednas or torch):
the kit builds its ONNX models and times them in OpenVINO's CPU plugin:

    pip install numpy onnx openvino
"""

_README = """ednas latency measuring kit
==========================

space : {space}
input : {input_size} x {input_size}, {num_classes} classes
ops   : {n_ops} operators; {n_fit} fit + {n_val} validate networks
dtype : {dtype}{quant}

{board}
    python3 measure_ops.py --ops ops.json --out lut_board.json --threads 1

It prints one line per operator and rewrites lut_board.json after each, so
an interrupted run resumes where it stopped.  --threads must be the number
of threads you will deploy with.  Then it times the networks end to end.
It writes every model it times itself (float, or quantized QDQ graphs with
the scales and zero points ONNX Runtime's quantize_static would choose), and
times a fixed reference network between the rounds, so the table is in one
speed of the board even when the board's speed changes while it measures.

Back on the host:

    ednas lut build --target file:lut_board.json --space "{space}" --input {input_size} --num-classes {num_classes} --out lut.json
    ednas lut validate --lut lut.json --json lut_validation.json

Or keep the board in the loop (no copying back and forth; docs/board.md):

    python3 measure_ops.py serve --port 8765     # prints its token file; copy the token to the host
    # on the host, with an SSH tunnel (ssh -N -L 8765:127.0.0.1:8765 BOARD):
    EDNAS_REMOTE_TOKEN=... ednas lut build --target remote:localhost:8765 --space "{space}" --input {input_size} --out lut.json

The first checks that every operator of the space is there and fits the
per-network constant on the 'fit' networks; the second compares the table
with the 'validate' networks timed on the board (MAPE, Spearman, plot).
"""


def write_script(
    out_dir,
    space: ArchSpec,
    input_size: int,
    num_classes: int,
    target: str = "board",
    fit_archs: int = 5,
    validate_archs: int = 30,
    fit_seed: int = 1234,
    seed: int = 0,
    dtype: str = "f32",
    quant: dict | None = None,
    stat: str | None = None,
    runtime: str = "onnxruntime",
) -> dict:
    """Write the kit (see the module docstring); returns what was written.

    ``dtype`` ``i8`` or ``i16``: the board builds and times the quantized
    operator models (QDQ, the fixed-point options ``quant`` as
    :func:`ednas.latency.build_table`'s) and quantized networks itself.
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fit = sample_picks(space, fit_archs, fit_seed) if fit_archs else []
    val = sample_picks(space, validate_archs, seed, exclude=fit) if validate_archs else []
    networks = []
    for role, group in (("fit", fit), ("validate", val)):
        for i, picks in enumerate(group):
            arch = space.with_picks(picks, branches=False)
            networks.append({"name": f"{role}-{i}", "role": role, "arch": arch.format(), "ops": [op.key for op in arch_ops(arch, input_size, num_classes, dtype)]})
    ops = [op.key for op in space_ops(space, input_size, num_classes, dtype)]
    spec = {
        "format": "ednas-ops",
        "key_version": KEY_VERSION,
        "target": target,
        "space": space.format(),
        "input_size": input_size,
        "num_classes": num_classes,
        "dtype": dtype,
        "statistic": stat or Timing().stat,
        "reference": reference_spec(space, input_size, num_classes, dtype),
        "ops": ops,
        "networks": networks,
    }
    if dtype != "f32":
        spec["quant"] = board.quant_scheme(dtype, **(quant or {}))
    extra = {}
    if runtime != "onnxruntime":
        spec["runtime"] = runtime
    if runtime == "litert":
        extra = _litert_models(out, ops, spec["reference"]["ops"], networks, spec.get("quant"))
    atomic_write_json(out / "ops.json", spec)
    pkg = out / KIT_PACKAGE
    pkg.mkdir(exist_ok=True)
    for src in sorted(Path(board.__file__).parent.glob("*.py")):
        atomic_write_text(pkg / src.name, src.read_text())
    atomic_write_text(out / "measure_ops.py", LAUNCHER)
    readme = _README.format(space=space.format(), input_size=input_size, num_classes=num_classes, n_ops=len(ops), n_fit=len(fit), n_val=len(val),
                            dtype=dtype, quant=f" ({spec['quant']})" if spec.get("quant") else "",
                            board={"litert": _LITERT_BOARD, "openvino": _OPENVINO_BOARD}.get(runtime, _ORT_BOARD))
    atomic_write_text(out / "README.txt", readme)
    return {
        "out": str(out),
        "script": str(out / "measure_ops.py"),
        "ops_file": str(out / "ops.json"),
        "n_ops": len(ops),
        "n_fit_networks": len(fit),
        "n_validate_networks": len(val),
        "dtype": dtype,
        "runtime": runtime,
        **extra,
        "run_on_board": "python3 measure_ops.py --ops ops.json --out lut_board.json --threads 1",
    }


#: models per .tflite file of a LiteRT kit
LITERT_CHUNK = 48


def _litert_models(out: Path, ops: list[str], reference: list[str], networks: list[dict], quant: dict | None) -> dict:
    """Convert every model a LiteRT board times into ``models/litert_NNN.tflite`` and list them in ``litert_models.json``."""
    import time

    from ednas.runtime.board import litert_rt
    from ednas.runtime.litert import convert_signatures
    from ednas.runtime.tflite_graphs import model_module, network_module

    t0 = time.time()
    models = {mid: model_module(mid) for mid in dict.fromkeys(mid for key in ops for mid, _ in board.plan(key))}
    models["reference"] = network_module(reference)
    for n in networks:
        models[n["name"]] = network_module(n["ops"])
    (out / "models").mkdir(exist_ok=True)
    files = []
    for i, (content, names) in enumerate(convert_signatures(models, chunk=LITERT_CHUNK, quant=quant)):
        rel = f"models/litert_{i:03d}.tflite"
        atomic_write_bytes(out / rel, content)
        files.append({"file": rel, "signatures": names})
    atomic_write_json(out / litert_rt.INDEX, {"format": litert_rt.INDEX_FORMAT, "quant": quant, "files": files})
    return {"litert_models": len(models), "litert_files": len(files), "convert_s": round(time.time() - t0, 1)}
