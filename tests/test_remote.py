"""The board in the loop: the measurement server (a real process on localhost), remote targets, their errors.

The server is the kit that ``ednas lut script`` writes (``measure_ops.py
serve``, its package ``ednas_board/`` beside it), run with ``ednas`` and ``torch``
made unimportable, pinned to one core and with graph optimisation
``basic``: a different "device" from the host, speaking only through the
protocol.  No test asserts a timing, except the slow one's MAPE and
Spearman, which the issue asks for.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ednas.arch.spec import load_arch
from ednas.cli import main
from ednas.latency.measure import reference_spec
from ednas.latency.ops import space_ops
from ednas.latency.script import write_script
from ednas.latency.table import load_table
from ednas.runtime import board, remote

SPACE = "stem_k11_m1_c8_s1 | ir_k3.7_e2.6_c16_d1.3 | ir_k3.7_e2.6_c32_s2_d1.3 | head_c64"
FAST = ["--repeats", "5", "--rounds", "1", "--warmup", "1", "--fit-archs", "2", "--no-progress"]
N_OPS = len(space_ops(load_arch(SPACE)[0], 32, 10, "f32"))
OP = "dw_i16x16x16_o16_k3_s1_g16_e1_f32"

_LAUNCH = (
    "import os, runpy, sys\n"
    "sys.modules['ednas'] = None; sys.modules['torch'] = None  # the kit runs without them\n"
    "if hasattr(os, 'sched_setaffinity'): os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core\n"
    "kit = sys.argv[1]; sys.path.insert(0, kit)\n"
    "sys.argv = ['measure_ops.py', 'serve'] + sys.argv[2:]\n"
    "runpy.run_path(os.path.join(kit, 'measure_ops.py'), run_name='__main__')\n"
)


class ServerProcess:
    """The kit's server in its own process; ``start`` waits for its 'listening on' line."""

    def __init__(self, kit: Path, token_file: Path):
        self.kit, self.token_file, self.proc, self.port = kit, token_file, None, None

    def start(self, port: int = 0) -> ServerProcess:
        env = dict(os.environ, OMP_NUM_THREADS="1")
        args = [sys.executable, "-c", _LAUNCH, str(self.kit), "--port", str(port), "--token-file", str(self.token_file), "--optimization", "basic",
                "--quiet"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        lines, deadline = [], time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("listening on"):
                self.port = int(line.split()[2].rsplit(":", 1)[1])
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # keep the pipe drained
                return self
        self.stop()
        raise RuntimeError("the server did not start:\n" + "".join(lines))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def target(self) -> str:
        return f"remote:127.0.0.1:{self.port}"

    @classmethod
    def running(cls, kit: Path, tmp_path_factory):
        """A fixture's body: the server of ``kit`` with a fresh token file, stopped after the tests."""
        s = cls(kit, tmp_path_factory.mktemp("tok") / "server.token").start()
        try:
            yield s
        finally:
            s.stop()

    def use_token(self, monkeypatch, retries: str = "1") -> None:
        """The host's environment for this server: its token, few retries, a short backoff."""
        monkeypatch.setenv("EDNAS_REMOTE_TOKEN", remote.read_token(self.token_file))
        monkeypatch.setenv("EDNAS_REMOTE_RETRIES", retries)
        monkeypatch.setenv("EDNAS_REMOTE_BACKOFF_S", "0.05")

    def client(self, **kw) -> remote.Client:
        return remote.Client("127.0.0.1", self.port, remote.read_token(self.token_file), **{"retries": 0, **kw})


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("kit")
    write_script(d, load_arch(SPACE)[0], 32, 10, fit_archs=0, validate_archs=0)
    return d


@pytest.fixture(scope="module")
def server(kit, tmp_path_factory):
    yield from ServerProcess.running(kit, tmp_path_factory)


@pytest.fixture
def token_env(server, monkeypatch):
    server.use_token(monkeypatch)


def _raw(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, json.loads(r.read().decode())
    finally:
        conn.close()


def _signed(server, method, path, body=b"", now=None, nonce=None, extra=None):
    h = remote.sign(remote.read_token(server.token_file), method, path, body, now=now, nonce=nonce)
    return _raw(server.port, method, path, body, {**h, "Content-Length": str(len(body)), **(extra or {})})


def _one_line_exit_2(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ednas: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# ---------------------------------------------------------------------------
# the server, its kit and what it says it is


def test_kit_server_runs_without_torch_or_ednas_and_describes_the_device(server):
    info = server.client().info()
    assert info["protocol"] == remote.PROTOCOL
    assert info["session"]["graph_optimization"] == "basic"
    assert info["tools"]["onnxruntime"] and "CPUExecutionProvider" in info["providers"]
    assert info["machine"] == board.machine()  # the same host, seen from the server process
    if hasattr(os, "sched_setaffinity"):
        assert info["cpus_usable"] == 1


def test_server_times_operators_with_the_board_code(server):
    e = server.client().measure_ops([OP], repeats=3, rounds=2, warmup=1)[OP]
    assert e["rounds"] >= 2 and e["n"] >= 3 and e["ms"] >= 0 and "rel" not in e
    ref = reference_spec(load_arch(SPACE)[0], 32, 10)["ops"]
    e = server.client().measure_ops([OP], repeats=3, rounds=1, warmup=1, reference=ref)[OP]
    assert {"rel", "ref_ms", "raw_ms"} <= set(e)


def test_server_times_networks_fp32_and_int8_with_a_reference(server):
    keys = reference_spec(load_arch(SPACE)[0], 32, 10)["ops"]
    net = board.build_network(keys)
    q = board.build_network([k.replace("_f32", "_i8") for k in keys])  # an int8 QDQ network
    res = server.client().time_networks({"f32": (net[0], net[1]), "int8": (q[0], None)}, repeats=3, rounds=2, warmup=1, min_time_s=0.0,
                                        reference=(net[0], net[1], 1.0))
    assert res["f32"]["n"] >= 6 and 2 <= len(res["int8"]["rounds_ms"]) <= 6  # adaptive rounds: up to 3 x rounds
    assert res[board.REFERENCE]["table_ms"] == 1.0 and res["f32"]["scaled_ms"] is not None


def test_ednas_lut_serve_starts_a_server_with_a_token_file_it_makes(tmp_path):
    tok = tmp_path / "new.token"
    proc = subprocess.Popen([sys.executable, "-m", "ednas.cli", "lut", "serve", "--port", "0", "--token-file", str(tok), "--no-access-log"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert lines[0].startswith(f"token file: {tok}") and lines[1].startswith("listening on http://127.0.0.1:"), lines
        assert tok.stat().st_mode & 0o777 == 0o600
        port = int(lines[1].split()[2].rsplit(":", 1)[1])
        assert remote.Client("127.0.0.1", port, remote.read_token(tok), retries=0).health()["ok"] is True
    finally:
        proc.kill()
        proc.wait(10)


def test_a_token_file_others_may_read_is_refused_by_server_and_host(tmp_path, kit, capsys, monkeypatch):
    tok = tmp_path / "t"
    tok.write_text("x" * 64)
    tok.chmod(0o644)
    r = subprocess.run([sys.executable, "-c", _LAUNCH, str(kit), "--port", "0", "--token-file", str(tok)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "chmod 600" in r.stderr and "listening" not in r.stdout
    monkeypatch.delenv("EDNAS_REMOTE_TOKEN", raising=False)
    err = _one_line_exit_2(capsys, ["lut", "validate", "--lut", str(tmp_path / "x.json"), "--target", "remote:127.0.0.1:9",
                                    "--remote-token-file", str(tok)])
    assert "chmod 600" in err or "does not exist" in err


def test_ensure_token_makes_a_0600_file_once_and_reads_it_back(tmp_path):
    path = tmp_path / "d" / "remote.token"
    token, where, created = remote.ensure_token(str(path))
    assert created and where == str(path) and len(token) == 64 and path.stat().st_mode & 0o777 == 0o600
    assert remote.ensure_token(str(path)) == (token, str(path), False)


# ---------------------------------------------------------------------------
# remote:HOST:PORT targets


def test_lut_build_remote_records_the_device_and_is_usable_as_file_without_it(server, token_env, tmp_path, capsys):
    out = tmp_path / "lut.json"
    assert main(["lut", "build", "--target", server.target, "--space", SPACE, "--input-size", "32", "--out", str(out), *FAST]) == 0
    t = load_table(out)
    assert t.target == server.target and len(t.entries) == N_OPS
    assert t.meta["device"]["machine"] == server.client().info()["machine"]
    assert t.meta["device"]["session"]["graph_optimization"] == "basic" == t.meta["measurement"]["graph_optimization"]
    assert t.meta["reference"]["ms"] > 0 and all("rel" in e for e in t.entries.values())
    assert t.meta["constant"]["measured_ms"] and len(t.meta["constant"]["fitted_on"]) == 2
    capsys.readouterr()
    before = server.client().health()["stats"]["requests"]
    # as file: the table stands alone: no request reaches the device, the device's constant is kept
    assert main(["lut", "build", "--target", f"file:{out}", "--space", SPACE, "--input-size", "32", "--out", str(tmp_path / "f.json"),
                 "--no-progress"]) == 0
    f = load_table(tmp_path / "f.json")
    assert f.constant_ms == t.constant_ms and f.meta["device"] == t.meta["device"] and f.entries.keys() == t.entries.keys()
    assert server.client().health()["stats"]["requests"] == before + 1  # this health check only


def test_lut_validate_remote_times_the_validation_networks_on_the_device(server, token_env, tmp_path):
    out = tmp_path / "lut.json"
    assert main(["lut", "build", "--target", server.target, "--space", SPACE, "--input-size", "32", "--out", str(out), *FAST]) == 0
    timed = server.client().health()["stats"]["networks_timed"]
    js = tmp_path / "v.json"
    assert main(["lut", "validate", "--lut", str(out), "--target", server.target, "--archs", "4", "--rounds", "2", "--repeats", "3",
                 "--json", str(js), "--no-progress"]) == 0
    v = json.loads(js.read_text())
    assert v["n"] == 4 and v["device"]["target"] == server.target and "on the device" in v["measured_with"]
    assert v["reference"]["used"] is True  # the table was measured on the server's kind of machine
    # the 4 validation networks and the 2 fit networks (drift) were timed by the server
    assert server.client().health()["stats"]["networks_timed"] == timed + 4 + 2


def _entries(path: Path) -> int:
    try:
        return len(json.loads(path.read_text()).get("entries", {}))
    except (OSError, ValueError):
        return 0


def _build_cmd(target: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "ednas.cli", "lut", "build", "--target", target, "--space", SPACE, "--input-size", "32", "--out", str(out),
            *FAST]


def _kill_when(server: ServerProcess, out: Path, n: int, build: subprocess.Popen) -> int:
    deadline = time.time() + 300
    while _entries(out) < n and build.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    server.stop()
    time.sleep(0.3)  # the write of an entry answered before the kill lands
    return _entries(out)


def _client_env(srv, retries: int, backoff_s: float) -> dict:
    """The host's environment for a build against ``srv``: its token, the client's retries and backoff, one thread."""
    return dict(os.environ, EDNAS_REMOTE_TOKEN=remote.read_token(srv.token_file), EDNAS_REMOTE_RETRIES=str(retries),
                EDNAS_REMOTE_BACKOFF_S=str(backoff_s), OMP_NUM_THREADS="1")


def test_remote_build_killed_server_exit_2_then_rerun_measures_only_the_missing(kit, tmp_path):
    srv = ServerProcess(kit, tmp_path / "tok").start()
    env = _client_env(srv, retries=1, backoff_s=0.05)
    out = tmp_path / "lut.json"
    try:
        build = subprocess.Popen(_build_cmd(srv.target, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        kept = _kill_when(srv, out, 3, build)
        _, err = build.communicate(timeout=120)
        assert build.returncode == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "cannot reach the measurement server" in lines[0], err
        assert 3 <= kept < N_OPS and _entries(out) == kept
        srv.start()  # another port: the same device, so the table resumes
        r = subprocess.run(_build_cmd(srv.target, out), capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr
        assert srv.client().health()["stats"]["ops_measured"] == N_OPS - kept
        assert _entries(out) == N_OPS
    finally:
        srv.stop()


def test_remote_build_retries_a_dropped_connection_and_goes_on(kit, tmp_path):
    srv = ServerProcess(kit, tmp_path / "tok").start()
    env = _client_env(srv, retries=8, backoff_s=0.25)
    out = tmp_path / "lut.json"
    try:
        build = subprocess.Popen(_build_cmd(srv.target, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        kept = _kill_when(srv, out, 3, build)
        assert build.poll() is None, "the build ended before the server was killed"
        srv.start(srv.port)  # back on the same port while the client backs off
        _, err = build.communicate(timeout=600)
        assert build.returncode == 0, err
        assert srv.client().health()["stats"]["ops_measured"] == N_OPS - kept
        assert _entries(out) == N_OPS
    finally:
        srv.stop()


# ---------------------------------------------------------------------------
# bad input: one line and exit 2 on the host, a 4xx from the server, and the server goes on


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("target", ["remote:", "remote:host", "remote:host:0", "remote:host:99999", "remote:a b:1", "remote:[zz]:1"])
def test_malformed_remote_target_is_one_line_exit_2(target, tmp_path, capsys):
    err = _one_line_exit_2(capsys, ["lut", "build", "--target", target, "--space", SPACE, "--input-size", "32", "--out", str(tmp_path / "l.json")])
    assert "remote:HOST:PORT" in err


def test_unreachable_host_is_one_line_exit_2(token_env, tmp_path, capsys):
    err = _one_line_exit_2(capsys, ["lut", "build", "--target", f"remote:127.0.0.1:{_free_port()}", "--space", SPACE, "--input-size", "32",
                                    "--out", str(tmp_path / "l.json")])
    assert "cannot reach the measurement server" in err and not (tmp_path / "l.json").exists()


def test_wrong_token_is_one_line_exit_2_and_the_server_goes_on(server, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("EDNAS_REMOTE_TOKEN", "0" * 64)
    err = _one_line_exit_2(capsys, ["lut", "build", "--target", server.target, "--space", SPACE, "--input-size", "32", "--out",
                                    str(tmp_path / "l.json")])
    assert "401" in err and "token" in err
    assert server.client().health()["ok"] is True


def test_missing_token_is_one_line_exit_2(server, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("EDNAS_REMOTE_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no default token file either
    err = _one_line_exit_2(capsys, ["lut", "build", "--target", server.target, "--space", SPACE, "--input-size", "32", "--out",
                                    str(tmp_path / "l.json")])
    assert "EDNAS_REMOTE_TOKEN" in err


def test_stale_timestamp_is_401_and_the_server_goes_on(server):
    status, obj = _signed(server, "GET", "/health", now=time.time() - 3600)
    assert status == 401 and "stale" in obj["error"]
    assert _signed(server, "GET", "/health")[0] == 200


def test_replayed_nonce_is_401_and_the_server_goes_on(server):
    nonce = os.urandom(16).hex()
    assert _signed(server, "GET", "/health", nonce=nonce)[0] == 200
    status, obj = _signed(server, "GET", "/health", nonce=nonce)
    assert status == 401 and "replayed" in obj["error"]
    assert _signed(server, "GET", "/health")[0] == 200


def test_unsigned_and_tampered_requests_are_401(server):
    assert _raw(server.port, "GET", "/info")[0] == 401
    body = json.dumps({"keys": [OP], "repeats": 1, "rounds": 1}).encode()
    h = remote.sign(remote.read_token(server.token_file), "POST", "/ops", body)
    tampered = body.replace(b'"repeats": 1', b'"repeats": 9')
    status, obj = _raw(server.port, "POST", "/ops", tampered, dict(h, **{"Content-Length": str(len(tampered))}))
    assert status == 401 and "signature" in obj["error"]
    h = remote.sign(remote.read_token(server.token_file), "GET", "/health", b"")
    assert _raw(server.port, "GET", "/info", b"", h)[0] == 401  # signed for another path


def test_malformed_json_and_bad_fields_are_400_and_the_server_goes_on(server):
    for body in (b"{not json", b"[1, 2]", json.dumps({"keys": "x"}).encode(), json.dumps({"keys": [OP], "threads": 0}).encode(),
                 json.dumps({"keys": ["conv_i0x0x0_o1_k1_s0_g1_e1_f32"]}).encode(), json.dumps({"keys": ["nope"]}).encode()):
        status, obj = _signed(server, "POST", "/ops", body)
        assert status == 400 and obj["error"], (body, obj)
    assert _signed(server, "POST", "/nowhere", b"{}")[0] == 404
    assert _signed(server, "GET", "/ops")[0] == 405
    assert server.client().health()["ok"] is True


def test_oversized_body_is_413_before_it_is_read(server):
    # a Content-Length above the limit and no body at all: the answer comes without waiting for the bytes
    status, obj = _signed(server, "POST", "/ops", b"", extra={"Content-Length": str(remote.MAX_JSON_BYTES + 1)})
    assert status == 413 and "limit" in obj["error"]
    status, _ = _signed(server, "POST", "/networks", b"", extra={"Content-Length": str(remote.MAX_BODY_BYTES + 1)})
    assert status == 413
    assert server.client().health()["ok"] is True


def test_an_onnx_that_does_not_load_is_400_and_the_host_says_so_in_one_line(server, token_env, tmp_path, capsys):
    with pytest.raises(remote.RemoteError) as e:
        server.client().time_networks({"broken": (b"\x08\x07not a model", None)}, repeats=1, rounds=1)
    assert e.value.status == 400 and "cannot be loaded by ONNX Runtime" in str(e.value)
    assert server.client().health()["ok"] is True
    from ednas.errors import DeviceError
    from ednas.latency.remote import connect

    with pytest.raises(DeviceError, match="cannot be loaded by ONNX Runtime"):
        connect(server.target).time_onnx({"broken": b"garbage"}, __import__("ednas.runtime", fromlist=["Timing"]).Timing(rounds=1, repeats=1))


def test_a_second_measurement_while_one_runs_is_503_busy(server):
    long = threading.Thread(target=lambda: server.client().measure_ops([OP], repeats=30000, rounds=1, warmup=0), daemon=True)
    long.start()
    deadline = time.time() + 30
    while not server.client().health()["busy"] and time.time() < deadline:
        time.sleep(0.01)
    with pytest.raises(remote.RemoteError) as e:
        server.client().measure_ops([OP], repeats=1, rounds=1)
    assert e.value.status == 503 and "busy" in str(e.value) and e.value.retryable
    long.join(120)
    assert server.client().health()["busy"] is False


def test_client_retries_until_the_server_comes_up(kit, tmp_path):
    port = _free_port()
    srv = ServerProcess(kit, tmp_path / "tok")
    remote.ensure_token(str(srv.token_file))
    c = remote.Client("127.0.0.1", port, remote.read_token(srv.token_file), retries=8, backoff_s=0.25)
    got = {}
    t = threading.Thread(target=lambda: got.update(c.health()), daemon=True)
    t.start()
    time.sleep(0.3)
    try:
        srv.start(port)
        t.join(120)
        assert got.get("ok") is True
    finally:
        srv.stop()


@pytest.mark.slow
def test_remote_cifar_table_validates_on_the_device(kit, tmp_path, monkeypatch):
    """The issue's acceptance: the full cifar space's table built on the server and checked there: MAPE <= 10 %, Spearman >= 0.95."""
    srv = ServerProcess(kit, tmp_path / "tok").start()
    monkeypatch.setenv("EDNAS_REMOTE_TOKEN", remote.read_token(srv.token_file))
    try:
        out, js = tmp_path / "cifar.json", tmp_path / "v.json"
        assert main(["lut", "build", "--target", srv.target, "--space", "cifar", "--out", str(out), "--no-progress"]) == 0
        assert main(["lut", "validate", "--lut", str(out), "--target", srv.target, "--json", str(js), "--no-progress"]) == 0
        v = json.loads(js.read_text())
        assert v["n"] == 30 and v["mape"] <= 10 and v["spearman"] >= 0.95, (v["mape"], v["spearman"])
    finally:
        srv.stop()


RUN_SPACE = "stem_k11_m1_c8_s1 | ir_k3.5.7_e2_c16_s2 | ir_k3.5.7_e2_c16_skip | head_c32"


def test_ednas_run_remote_checks_the_budget_with_the_devices_figure(server, token_env, tmp_path, monkeypatch):
    monkeypatch.setenv("EDNAS_REMOTE_TOKEN", "0" * 64)  # a wrong token: the run must sign with --remote-token-file's at every contact
    out = tmp_path / "run"
    argv = ["run", "--out", str(out), "--data", "synthetic:classes=4,n=128,size=32", "--target", server.target, "--space", RUN_SPACE,
            "--remote-token-file", str(server.token_file),
            "--search-epochs", "1", "--warmup-epochs", "0", "--train-epochs", "1", "--batch-size", "16", "--baselines", "none",
            "--lut-check", "2", "--latency.cache", str(tmp_path / "cache"), "--timing.rounds", "2", "--timing.repeats", "5", "--no-progress"]
    assert main(argv) == 0
    s = json.loads((out / "summary.json").read_text())
    d = s["deployed"]
    assert s["latency_measured_on"] == d["where"] == f"the device {server.target}"
    assert d["device"]["session"]["graph_optimization"] == "basic"  # the server's own description: it timed the file
    assert d["file"].endswith("int8.onnx") and s["latency_dtype"] == "i8"
    assert s["latency_ms_measured"] == (d["scaled_ms"] if d["scaled_ms"] is not None else d["raw_ms"]) and d["reference"]["used"]
    check = next(c for c in s["verdict"]["checks"] if c["check"] == "measured")
    assert check["measured_on"] == d["where"] and check["measured_ms"] == s["latency_ms_measured"]
    assert s["lut_check"]["check_n"] == 2  # the table was checked on the device too
    lut = load_table(out / "lut" / "lut.json")
    assert lut.target == server.target and lut.dtype == "i8" and lut.meta["device"]["machine"] == d["device"]["machine"]
    assert f"timed on the device {server.target}" in (out / "report.md").read_text()


def test_ednas_search_signs_with_its_remote_token_file_flag(server, token_env, tmp_path, capsys):
    """The environment holds the right token; a --remote-token-file with another one must be the one used (and refused), in one line."""
    other = tmp_path / "other.token"
    remote.ensure_token(str(other))
    assert main(["search", "--out", str(tmp_path / "s"), "--data", "synthetic:classes=4,n=64,size=32", "--target", server.target,
                 "--space", RUN_SPACE, "--epochs", "1", "--warmup-epochs", "0", "--lut-cache", str(tmp_path / "cache"), "--no-progress",
                 "--remote-token-file", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.splitlines()[-1].startswith("ednas: error: "), err  # after the stage's own log line
    assert "bad signature" in err.splitlines()[-1], err


def test_the_token_file_flag_wins_over_the_environment_which_wins_over_the_default(tmp_path, monkeypatch):
    from ednas.latency.remote import host_token

    flag, default = tmp_path / "flag.token", tmp_path / "ednas" / "remote.token"
    remote.ensure_token(str(flag))
    remote.ensure_token(str(default))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("EDNAS_REMOTE_TOKEN", "e" * 64)
    assert host_token(str(flag)) == remote.read_token(flag)
    assert host_token() == "e" * 64
    monkeypatch.delenv("EDNAS_REMOTE_TOKEN")
    assert host_token() == remote.read_token(default)


def test_ednas_profile_remote_times_the_network_on_the_device(server, token_env, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDNAS_REMOTE_TOKEN", "0" * 64)  # a wrong token: profile must sign with --remote-token-file's
    timed = server.client().health()["stats"]["networks_timed"]
    js = tmp_path / "p.json"
    assert main(["profile", "--model", RUN_SPACE, "--input-size", "32", "--target", server.target, "--rounds", "2", "--json", str(js),
                 "--no-table", "--remote-token-file", str(server.token_file)]) == 0
    p = json.loads(js.read_text())
    assert p["latency_measured_how"].startswith(f"ONNX Runtime fp32 on the device {server.target}") and p["latency_ms_measured"] > 0
    assert p["device"]["session"]["graph_optimization"] == "basic"
    assert server.client().health()["stats"]["networks_timed"] == timed + 1


_PY38_CHECK = (
    "import json, subprocess, sys, secrets, threading\n"
    "kit = sys.argv[1]; sys.path.insert(0, kit)\n"
    "from ednas_board import client, server\n"
    "tok = secrets.token_hex(32)\n"
    "srv = server.make_server('127.0.0.1', 0, tok, quiet=True)\n"
    "threading.Thread(target=srv.serve_forever, daemon=True).start()\n"
    "c = client.Client('127.0.0.1', srv.server_address[1], tok, retries=0)\n"
    "assert c.health()['ok'] is True\n"
    "key = sys.argv[2]\n"
    "e = c.measure_ops([key], repeats=2, rounds=1, warmup=1)[key]\n"
    "assert e['ms'] >= 0 and e['n'] >= 2, e\n"
    "try:\n"
    "    c.request('POST', '/ops', {'keys': 'x'})\n"
    "except client.RemoteError as err:\n"
    "    assert err.status == 400\n"
    "else:\n"
    "    raise AssertionError('a malformed request was answered')\n"
    "r = subprocess.run([sys.executable, kit + '/measure_ops.py', '--out', kit + '/t38.json', '--repeats', '2', '--rounds', '1', '--warmup', '1',\n"
    "                    '--no-networks'], capture_output=True, text=True)\n"
    "assert r.returncode == 0, r.stderr\n"
    "t = json.load(open(kit + '/t38.json'))\n"
    "assert set(t['entries']) == set(json.load(open(kit + '/ops.json'))['ops']), sorted(t['entries'])[:3]\n"
    "print('ok', sys.version_info[:2])\n"
)


def _python38_with_the_kits_packages():
    """A Python 3.8 that has numpy, onnx and onnxruntime (``EDNAS_PY38``, ``python3.8`` on PATH, pyenv, /work/py38), or None."""
    import glob
    import shutil

    candidates = [os.environ.get("EDNAS_PY38"), shutil.which("python3.8")] + sorted(
        glob.glob(os.path.expanduser(os.environ.get("PYENV_ROOT", "~/.pyenv")) + "/versions/3.8*/bin/python3.8"))
    probe = "import sys, numpy, onnx, onnxruntime; print(sys.version_info[:2])"
    for c in candidates:
        if c and os.path.exists(c) and subprocess.run([c, "-c", probe], capture_output=True, text=True).stdout.strip() == "(3, 8)":
            return c
    return None


def test_the_kit_runs_on_python_3_8_measures_and_serves(tmp_path):
    """The kit promises Python 3.8+ (with numpy, onnx, onnxruntime): there it measures ops.json and serves signed requests."""
    py = _python38_with_the_kits_packages()
    if py is None:
        pytest.skip("no Python 3.8 with numpy, onnx and onnxruntime here (set EDNAS_PY38 to one)")
    space = "stem_k11_m1_c8_s1 | ir_k3_e2_c16 | head_c32"
    write_script(tmp_path, load_arch(space)[0], 16, 10, fit_archs=0, validate_archs=0)
    key = json.loads((tmp_path / "ops.json").read_text())["ops"][1]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([py, "-c", _PY38_CHECK, str(tmp_path), key], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0 and r.stdout.startswith("ok (3, 8)"), r.stderr[-3000:]


def test_the_kit_imports_nothing_but_the_standard_library_numpy_onnx_onnxruntime_ai_edge_litert_and_openvino(kit):
    """Every file of the kit parses as Python 3.8 and imports only the standard library, numpy, onnx, onnxruntime (its ONNX
    runtime), ai_edge_litert (its LiteRT runtime, litert_rt.py alone), openvino (its OpenVINO runtime, openvino_rt.py alone) and
    itself."""
    import ast

    allowed = set(sys.stdlib_module_names) | {"numpy", "onnx", "onnxruntime", "ai_edge_litert", "openvino"}
    files = sorted((kit / "ednas_board").glob("*.py")) + [kit / "measure_ops.py"]
    assert {f.name for f in files} >= {"graphs.py", "timing.py", "server.py", "cli.py", "litert_rt.py", "openvino_rt.py", "measure_ops.py"}
    seen = set()
    for f in files:
        tree = ast.parse(f.read_text(), str(f), feature_version=(3, 8))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for n in names:
                top = n.split(".")[0]
                seen.add(top)
                assert top in allowed or top == "ednas_board", f"{f.name} imports {n}"
                assert top != "ai_edge_litert" or f.name == "litert_rt.py", f"{f.name} imports {n}: only litert_rt.py may"
                assert top != "openvino" or f.name == "openvino_rt.py", f"{f.name} imports {n}: only openvino_rt.py may"
    assert {"numpy", "onnx", "onnxruntime"} <= seen  # the check sees the kit's real imports


def test_networks_over_the_body_limit_go_in_several_requests_each_under_it_and_each_with_the_reference(monkeypatch):
    """A validation set whose ONNX files together pass the server's limit is timed in several requests, none refused for size."""
    monkeypatch.setattr(board.protocol, "MAX_BODY_BYTES", 200_000)
    sent = []

    def request(method, path, payload=None, retries=None):
        body = json.dumps(payload).encode()
        assert len(body) <= remote.body_limit(path), len(body)
        sent.append(payload)
        return {"results": {**{n: {"ms": 1.0} for n in payload["models"]}, "reference": {"ms": 2.0}}}

    client = remote.Client("127.0.0.1", 1, "t" * 32)
    monkeypatch.setattr(client, "request", request)
    models = {f"net{i}": (os.urandom(30_000), None) for i in range(12)}  # 40 kB of base64 each: 480 kB in all
    out = client.time_networks(models, reference=(b"ref" * 100, None, 0.5))
    assert len(sent) > 1
    assert all(p["reference"] is not None and p["reference"]["ms"] == 0.5 for p in sent)
    assert sorted(n for p in sent for n in p["models"]) == sorted(models)  # each network in exactly one request
    assert set(out) == set(models) | {"reference"}


def test_a_request_over_the_limit_is_refused_on_the_host_before_anything_is_sent(monkeypatch):
    """One network larger than the limit: a clear 413 error naming the sizes, not a broken pipe retried as 'cannot reach'."""
    monkeypatch.setattr(board.protocol, "MAX_BODY_BYTES", 10_000)
    client = remote.Client("127.0.0.1", 1, "t" * 32, retries=0)  # port 1: a connection attempt would fail with 'cannot reach'
    with pytest.raises(remote.RemoteError) as e:
        client.time_networks({"big": (os.urandom(20_000), None)})
    assert e.value.status == 413 and "over the server's limit of 10000 bytes" in str(e.value)
