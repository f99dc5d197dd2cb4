"""The kit's command line: ``measure_ops.py`` (measure the operators of ops.json into a table) and ``measure_ops.py serve``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .graphs import FORMAT, FORMAT_VERSION, KEY_VERSION, build_network
from .timing import STATISTICS, interleaved, machine, measure_networks, measure_op, rescale, runner, tools


def _write_json(path, obj):
    tmp = "%s.tmp%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic: an interrupted run leaves the previous file whole


def main(argv=None, kit_dir=None):
    """``measure_ops.py [serve] ...``; ``kit_dir``: the kit's folder, where ``--ops`` is looked for by default (else the current one)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["serve"]:  # the measurement server (server.py): ednas drives this device over the network
        from .server import serve_main

        return serve_main(argv[1:], kit_dir=kit_dir)
    p = argparse.ArgumentParser(description="Measure ednas latency-table operators with ONNX Runtime, OpenVINO or LiteRT, as ops.json says "
                                            "(or: %(prog)s serve --help).")
    p.add_argument("--ops", default=os.path.join(kit_dir or ".", "ops.json"), help="operator list written by 'ednas lut script'")
    p.add_argument("--out", default="lut_board.json", help="output table (rerun to resume: measured entries are kept)")
    p.add_argument("--target", default=None, help="target name recorded in the table (default: from ops.json)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--stat", default=None, choices=STATISTICS, help="statistic of the runs of one timing (default: ops.json's)")
    p.add_argument("--no-networks", action="store_true", help="skip the end-to-end networks")
    p.add_argument("--runtime", default=None, choices=("onnxruntime", "openvino", "litert"),
                   help="what times the models (default: ops.json's; an ONNX kit's graphs run in onnxruntime or openvino)")
    args = p.parse_args(argv)
    with open(args.ops) as f:
        spec = json.load(f)
    if spec.get("key_version") != KEY_VERSION:
        sys.exit("error: %s has key version %r; this script reads version %d" % (args.ops, spec.get("key_version"), KEY_VERSION))
    dtype = spec.get("dtype", "f32")
    quant = spec.get("quant") if dtype != "f32" else None
    stat = args.stat or spec.get("statistic") or "median"
    ref_spec = spec.get("reference")
    rt = args.runtime or spec.get("runtime", "onnxruntime")
    litert = rt == "litert"
    if (spec.get("runtime") == "litert") != litert:
        sys.exit("error: %s is a %s kit; --runtime %s cannot time it (LiteRT times the models the host converted, the others the "
                 "kit's ONNX graphs)" % (args.ops, spec.get("runtime", "onnxruntime"), rt))
    models = None
    if litert:  # the host converted every model to .tflite (litert_rt.py): time those, build none
        from . import litert_rt

        where = kit_dir or os.path.dirname(os.path.abspath(args.ops))
        index = litert_rt.read_index(where)
        if index is None:
            sys.exit("error: %s asks for LiteRT but %s has no %s (write the kit with 'ednas lut script --runtime litert')"
                     % (args.ops, where, litert_rt.INDEX))
        models = litert_rt.runners(where, index, args.threads)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "key_version": KEY_VERSION,
        "target": args.target or spec.get("target", "board"),
        "input_size": spec["input_size"],
        "num_classes": spec.get("num_classes"),
        "space": spec.get("space"),
        "dtype": dtype,
        "policy": "fallback",
        "measurement": {
            "runtime": rt,
            "method": "sandwich",
            "threads": args.threads,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "rounds": args.rounds,
            "max_rounds": 3 * args.rounds,
            "rel_tol": 0.02,
            "stat": stat,
            "statistic": "median over rounds of (%s of repeats) differences%s" % (stat, ", in units of the reference network" if ref_spec else ""),
            "graph_optimization": {"litert": "XNNPACK (the interpreter's default delegate), channels last",
                                   "openvino": "OpenVINO CPU plugin: LATENCY hint, 1 stream, INFERENCE_NUM_THREADS = threads"}.get(rt, "all"),
            "script": "measure_ops.py",
        },
        "tools": tools(rt),
        "machine": machine(),
    }
    if quant:
        header["quant"] = quant
    table = dict(header, entries={}, networks={})
    if os.path.exists(args.out):
        with open(args.out) as f:
            old = json.load(f)
        same = all(old.get(k) == header.get(k) for k in ("input_size", "key_version", "target", "dtype", "quant")) and all(
            old.get("measurement", {}).get(k, "onnxruntime" if k == "runtime" else None) == header["measurement"][k]
            for k in ("threads", "stat", "runtime"))
        if not same:
            sys.exit("error: %s was measured with other settings (target, input size, dtype, quantization, threads, statistic or runtime); "
                     "use another --out" % args.out)
        table["entries"], table["networks"] = old.get("entries", {}), old.get("networks", {})
    reference = ref_model = None
    if ref_spec:
        if litert:
            reference = models["reference"]
        else:
            ref_model = build_network(ref_spec["ops"], quant=quant)
            reference = runner(ref_model[0], args.threads, ref_model[1], rt)
        table["reference"] = dict(ref_spec, ms=rescale(table["entries"]))
    todo = [k for k in spec["ops"] if k not in table["entries"]]
    cache = models if litert else {}
    t0 = time.time()
    for i, key in enumerate(todo):
        table["entries"][key] = measure_op(key, args.threads, args.warmup, args.repeats, args.rounds, cache=cache, quant=quant, reference=reference, stat=stat,
                                           runtime="onnxruntime" if litert else rt)
        if ref_spec:
            table["reference"]["ms"] = rescale(table["entries"])
        _write_json(args.out, table)
        print("[%d/%d] %-55s %.4f ms  (%.0f s)" % (i + 1, len(todo), key, table["entries"][key]["ms"], time.time() - t0), flush=True)
        if not litert and len(cache) > 64:  # sessions hold weights; keep memory bounded on small boards
            cache.clear()
    nets = [n for n in spec.get("networks", []) if n["name"] not in table["networks"]]
    if nets and not args.no_networks:
        print("timing %d networks end to end ..." % len(nets), flush=True)
        ref_ms = table.get("reference", {}).get("ms")
        if litert:
            res = interleaved({n["name"]: models[n["name"]] for n in nets}, args.warmup, max(args.repeats // 2, 10), args.rounds, 0.05,
                              reference=reference, ref_ms=ref_ms, stat=stat)
        else:
            built = {n["name"]: build_network(n["ops"], quant=quant) for n in nets}
            res = measure_networks(built, args.threads, args.warmup, max(args.repeats // 2, 10), args.rounds, stat=stat,
                                   reference=ref_model, ref_ms=ref_ms, runtime=rt)
        for n in nets:
            table["networks"][n["name"]] = dict(res[n["name"]], role=n.get("role", "fit"), arch=n.get("arch"), ops=n["ops"])
        _write_json(args.out, table)
    print("wrote %s: %d operators, %d networks" % (args.out, len(table["entries"]), len(table["networks"])))
    return 0

