"""Benchmark: a latency table built over ``remote:HOST:PORT`` against the same table built locally.

The "board" is this machine: ``ednas lut serve`` in its own process on
127.0.0.1, with the host's settings (graph optimisation ``all``, the same
thread count), so the two tables time the same operators on the same CPU and
differ only by the transport: signed HTTP requests, one per operator, the
ONNX of every validation network sent as base64.  For each of ``local``
(``--target host-ort``) and ``remote`` the script records

* the wall time of ``ednas lut build`` (the build's cost, requests included);
* ``ednas lut validate`` of that table on the same target (the validation
  networks timed where the table was measured): MAPE and Spearman, scaled
  and raw;

and the median ratio of the two tables' entries (the same operators: a
transport that changed the measurements would move it away from 1).
Order: local build, remote build, then the two validations, one after the
other.

    python benchmarks/remote_lut.py [--space cifar] [--dtype f32]

Writes ``results/remote_lut.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, write_result  # noqa: E402


def ednas(*args: str, env=None) -> float:
    t = time.time()
    subprocess.run([sys.executable, "-m", "ednas.cli", *args], check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    return time.time() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="cifar")
    ap.add_argument("--dtype", default="f32")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        token = d / "token"
        srv = subprocess.Popen([sys.executable, "-m", "ednas.cli", "lut", "serve", "--port", "0", "--token-file", str(token),
                                "--no-access-log"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            port = None
            for line in srv.stdout:  # the server prints the address it bound
                if "127.0.0.1:" in line:
                    port = int(line.split("127.0.0.1:")[1].split()[0].strip(".,;)'\""))
                    break
            if port is None:
                raise SystemExit("the server did not say its port")
            env = dict(os.environ, EDNAS_REMOTE_TOKEN=token.read_text().strip())
            common = ["--space", a.space, "--dtype", a.dtype, "--no-progress"]
            out, walls, val = {}, {}, {}
            for name, target in (("local", "host-ort"), ("remote", f"remote:127.0.0.1:{port}")):
                out[name] = d / f"{name}.json"
                walls[name] = ednas("lut", "build", "--target", target, "--out", str(out[name]), *common, env=env)
            for name, target in (("local", "host-ort"), ("remote", f"remote:127.0.0.1:{port}")):
                js = d / f"{name}_validate.json"
                where = ["--target", target] if name == "remote" else []  # a local table is validated on its own target
                ednas("lut", "validate", "--lut", str(out[name]), *where, "--json", str(js), "--no-progress", env=env)
                v = json.loads(js.read_text())
                val[name] = {k: v.get(k) for k in ("n", "mape", "spearman", "mape_raw", "spearman_raw", "drift")}
                val[name]["reference_ratio"] = (v.get("reference") or {}).get("ratio")
            tables = {n: json.loads(p.read_text()) for n, p in out.items()}
        finally:
            srv.terminate()
            srv.wait(timeout=30)
    ent = {n: t["entries"] for n, t in tables.items()}
    ratios = [ent["remote"][k]["ms"] / ent["local"][k]["ms"] for k in ent["local"] if k in ent["remote"] and ent["local"][k]["ms"] > 0]
    write_result("remote_lut", {
        "space": a.space, "dtype": a.dtype, "entries": {n: len(e) for n, e in ent.items()},
        "build_wall_s": walls, "remote_over_local_build": walls["remote"] / walls["local"],
        "validate": val, "device": tables["remote"].get("device"),
        "entry_ratio_remote_over_local": {"median": statistics.median(ratios), "p10": statistics.quantiles(ratios, n=10)[0],
                                          "p90": statistics.quantiles(ratios, n=10)[-1], "n": len(ratios)},
    })


if __name__ == "__main__":
    main()
