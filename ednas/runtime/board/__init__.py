"""The measuring kit: the operators of eq. 11 and whole networks timed with ONNX Runtime, on this host or on a board.

A small package free of ednas and torch (Python 3.8+, numpy, onnxruntime
and onnx; the standard library's HTTP server for the server):

* :mod:`.graphs`: operator keys, the sandwich plans and the ONNX models
  (float or QDQ), written with the ``onnx`` package's helpers;
* :mod:`.timing`: ONNX Runtime sessions, timings, interleaved rounds, the
  reference network;
* :mod:`.protocol`, :mod:`.server`, :mod:`.client`: the measurement server
  and its signed requests (the board in the loop);
* :mod:`.cli`: the command line (``measure_ops.py``, ``measure_ops.py serve``).

``ednas lut script --out DIR`` copies the package whole to
``DIR/ednas_board/`` beside a small ``DIR/measure_ops.py`` that runs it and
``DIR/ops.json``; ednas imports it as ``ednas.runtime.board`` (``ednas lut
build --target host-ort``, ``ednas lut serve``, and every ONNX Runtime
session and end-to-end timing of ednas: :func:`session`,
:func:`interleaved`), so the host and a board measure with the same code,
the same graphs and the same session options.

Usage on a board::

    python3 measure_ops.py --ops ops.json --out lut_board.json --threads 1
    # copy lut_board.json back, then on the host:
    ednas lut build --target file:lut_board.json --space SPACE --input N --out lut.json

or, with the board in the loop (docs/board.md)::

    python3 measure_ops.py serve --port 8765          # on the board: prints its token file
    ednas lut build --target remote:localhost:8765 ...  # on the host, over an SSH tunnel

Method (see docs/latency.md).  A tiny model timed alone pays costs that a
network does not: the ``session.run`` call and, on x86, ONNX Runtime's NCHWc
layout reorders at the model boundary (inside a network, consecutive convs
stay in the blocked layout).  So each operator is timed *in context*, between
two channel-wise 1 x 1 depthwise convolutions ``P`` (a "sandwich")::

    S   = time(X -> P_in -> op -> P_out)
    B_s = time(X -> P -> P)            on a tensor of shape s
    LAT(op) = S - B_in / 2 - B_out / 2

which removes the call overhead, the boundary reorders and the two ``P``s
exactly when reordering in and out cost the same, and keeps the operator's
input and output in the layout the runtime picks inside a network.  The
residual add, which ONNX Runtime fuses into the preceding convolution, is
the marginal cost ``time(P, P, Add, P) - time(P, P, P)``.  Each round times
every model of one operator back to back (``repeats`` runs after
``warmup``, median), the differences are taken per round, and the entry is
the median over ``rounds`` (more rounds, up to 3x, while the estimate is
still noisy): slow drifts of the machine cancel within a round.

Whole networks (``networks`` in ops.json: chains of operator keys) are built
from the same operator graphs and timed end to end in interleaved rounds;
ednas fits the table's per-network constant on the ``fit`` ones and checks
the table against the ``validate`` ones.

Fixed point.  Keys of dtype ``i8`` or ``i16`` are measured as the quantized
(QDQ) graphs ONNX Runtime's ``quantize_static`` writes for ednas's settings,
with the scales and zero points it would choose (see "fixed point" below),
so ONNX Runtime runs the same integer kernels as in a deployed file.

The reference network.  ops.json may name a fixed network (``reference``: a
chain of keys); it is timed before every round of every operator and after
the last, and each operator is recorded in units of it (``rel``), so a board
(or host) that changes speed while it measures still gives a table at one
speed (:func:`~.timing.rescale`); networks are timed beside it too
(:func:`~.timing.interleaved`).

Models are written with the ``onnx`` package's helpers (opset 13, IR
version 7; opset 21 for 16-bit QDQ); the weights are random, seeded by each
model's id (:mod:`.graphs`).
"""


from .cli import main
from .graphs import (
    FORMAT,
    FORMAT_VERSION,
    IR_VERSION,
    KEY_VERSION,
    OPSET,
    QUANT_DTYPES,
    build,
    build_network,
    parse_key,
    plan,
    quant_scheme,
)
from .timing import (
    OPS_PER_REFERENCE,
    OPTIMIZATIONS,
    REFERENCE,
    REL_TOL,
    STATISTICS,
    feed,
    interleaved,
    machine,
    measure_networks,
    measure_op,
    measure_ops,
    rescale,
    runner,
    session,
    time_runs,
    tools,
)

__all__ = [
    "FORMAT", "FORMAT_VERSION", "IR_VERSION", "KEY_VERSION", "OPSET", "OPS_PER_REFERENCE", "QUANT_DTYPES", "OPTIMIZATIONS", "REFERENCE", "REL_TOL", "STATISTICS",
    "build", "build_network", "feed", "interleaved", "machine", "main", "measure_networks", "measure_op", "measure_ops", "parse_key", "plan",
    "quant_scheme", "rescale", "runner", "session", "time_runs", "tools",
]
