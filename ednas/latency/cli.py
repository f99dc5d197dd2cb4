"""``ednas lut build | validate | script | serve``: thin commands over :mod:`ednas.latency`.

Each takes its resolved settings dataclass and returns a dict (printed as
JSON by ``ednas.cli``).  The latency model they build and check is eq. 11.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional

from ednas.arch.spec import load_arch
from ednas.errors import ConfigError
from ednas.io import atomic_write_json, check_writable_dir, check_writable_file
from ednas.latency.build import TABLE_MIN_TIME_S, TABLE_ROUNDS, build_table
from ednas.latency.model import LatencyModel
from ednas.latency.ops import dtype_name
from ednas.latency.remote import connect
from ednas.latency.script import write_script
from ednas.latency.table import load_table
from ednas.latency.validate import scatter_plot, validate_table
from ednas.runtime import board
from ednas.runtime import remote as remote_kit

__all__ = ["LutBuildConfig", "LutValidateConfig", "LutScriptConfig", "LutServeConfig", "lut_build", "lut_validate", "lut_script", "lut_serve"]


def _space(value: str, input_size: Optional[int]):
    spec, size = load_arch(value)
    size = input_size or size
    if not size:
        raise ConfigError(f"--input-size is required: the space '{value}' does not name an input size")
    if size < 8:
        raise ConfigError(f"--input-size {size}: the input side must be at least 8")
    return spec, int(size)


@dataclass
class LutBuildConfig:
    ALIASES: ClassVar[dict] = {"input": "input_size"}  # the flag's earlier name

    #: output table (JSON); an existing one with the same settings is resumed/extended
    out: str
    #: host-ort, host-openvino, host-litert, host-torch, tda2x, tda4vm, roofline, roofline:PATH.yaml, file:PATH (board table) or
    #: remote:HOST:PORT (a device's measurement server)
    target: str = "host-ort"
    #: preset name, space string or arch file
    space: str = "cifar"
    #: network input side (default: the preset's)
    input_size: Optional[int] = None
    #: classifier outputs (the classifier's key holds it)
    num_classes: int = 10
    #: operator dtype in the keys: f32, f16, i16, i8 (default: f32 on the host, the profile's otherwise); host-ort measures f32, i8 and i16
    dtype: Optional[str] = None
    #: i8/i16 on host-ort: TIDL-style power-of-two scales, per tensor (as 'ednas export --pow2')
    pow2: bool = False
    #: i8/i16 on host-ort: one weight scale per output channel (as 'ednas export --per-channel'; off with --pow2)
    per_channel: bool = True
    #: i8/i16 on host-ort: weight width 8 or 16 (default: the dtype's)
    weight_bits: Optional[int] = None
    #: statistic of one timed batch: median, min, p10, p20, p25 (default: the timing default)
    stat: Optional[str] = None
    #: intra-op threads for measuring (keep it what you deploy with)
    threads: int = 1
    #: untimed runs before each timed batch
    warmup: int = 10
    #: timed runs per round (at least; tiny models run for min_time_s)
    repeats: int = 100
    #: rounds (more, up to 3x, while an entry's rounds disagree); the entry is the median over rounds
    rounds: int = TABLE_ROUNDS
    #: the shortest timed batch of an operator's models, in seconds (host runtimes; a device's server uses its own)
    min_time_s: float = TABLE_MIN_TIME_S
    #: sampled networks the per-network constant is fitted on (0: none)
    fit_archs: int = 5
    #: seed of the fit networks (validation uses another seed and excludes them)
    fit_seed: int = 1234
    #: mask or fallback for unsupported candidates (default: the profile's)
    policy: Optional[str] = None
    #: show a progress bar
    progress: bool = True
    #: remote:HOST:PORT: the server's token file (default: EDNAS_REMOTE_TOKEN, else ~/.config/ednas/remote.token)
    remote_token_file: Optional[str] = None

    def check(self, name) -> None:
        for key, low in (("num_classes", 1), ("threads", 1), ("warmup", 0), ("repeats", 1), ("rounds", 1), ("fit_archs", 0)):
            if getattr(self, key) < low:
                raise ConfigError(f"{name(key)} must be >= {low}, got {getattr(self, key)}")
        if not 0 < self.min_time_s <= 10:
            raise ConfigError(f"{name('min_time_s')} must be in (0, 10] seconds, got {self.min_time_s}")


def _quant(cfg) -> dict | None:
    """The fixed-point options of a command (None: the defaults); ``cfg.dtype`` is normalised (``int8`` -> ``i8``)."""
    cfg.dtype = dtype_name(cfg.dtype)
    if cfg.pow2 and cfg.dtype not in board.QUANT_DTYPES:
        raise ConfigError(f"--pow2 needs a fixed-point --dtype ({', '.join(board.QUANT_DTYPES)}), got {cfg.dtype or 'f32'}")
    if cfg.weight_bits not in (None, 8, 16):
        raise ConfigError(f"--weight-bits must be 8 or 16, got {cfg.weight_bits}")
    if cfg.stat is not None and cfg.stat not in board.STATISTICS:
        raise ConfigError(f"--stat must be one of {', '.join(board.STATISTICS)}, got {cfg.stat!r}")
    return {"per_channel": cfg.per_channel, "pow2": cfg.pow2, "weight_bits": cfg.weight_bits} if cfg.dtype in board.QUANT_DTYPES else None


def lut_build(cfg: LutBuildConfig) -> dict:
    check_writable_file(cfg.out, "--out")
    space, size = _space(cfg.space, cfg.input_size)
    t = build_table(
        cfg.target, space, size, cfg.num_classes, out=cfg.out, dtype=cfg.dtype, threads=cfg.threads, warmup=cfg.warmup,
        repeats=cfg.repeats, rounds=cfg.rounds, fit_archs=cfg.fit_archs, fit_seed=cfg.fit_seed, policy=cfg.policy, progress=cfg.progress,
        quant=_quant(cfg), stat=cfg.stat, remote_token_file=cfg.remote_token_file, min_time_s=cfg.min_time_s,
    )

    lm = LatencyModel(space, size, cfg.num_classes, t)
    unsupported = sum(1 for e in t.entries.values() if not e.get("supported", True))
    return {
        "out": cfg.out,
        "target": t.target,
        "input_size": size,
        "dtype": t.dtype,
        "entries": len(t.entries),
        "unsupported_entries": unsupported,
        "policy": t.policy,
        "constant_ms": t.constant_ms,
        "reference_ms": (t.meta.get("reference") or {}).get("ms"),
        "min_ms": round(lm.min_ms, 6),
        "max_ms": round(lm.max_ms, 6),
        **({"device": (t.meta["device"].get("machine") or {})} if t.meta.get("device") else {}),
    }


@dataclass
class LutValidateConfig:
    #: the table to check (built by 'ednas lut build')
    lut: str
    #: number of sampled architectures (30 or more for a meaningful MAPE and Spearman)
    archs: int = 30
    #: result JSON (default: LUT_validation.json beside the table)
    json: Optional[str] = None
    #: scatter plot PNG (default: the JSON path with .png)
    plot: Optional[str] = None
    #: seed of the sampled architectures (the fit ones are excluded)
    seed: int = 0
    #: stratified (spans the space's latency range) or uniform
    sampling: str = "stratified"
    #: the space (default: the one the table names)
    space: Optional[str] = None
    #: classifier outputs (default: the table's)
    num_classes: Optional[int] = None
    #: intra-op threads (default: the table's)
    threads: Optional[int] = None
    #: untimed runs before each timed batch
    warmup: int = 10
    #: timed runs per network per round (at least; runs continue for 20 ms, Timing.min_time_s)
    repeats: int = 20
    #: interleaved rounds over all networks (many short rounds: drifts of a shared machine cancel); the value is the median over rounds
    rounds: int = 15
    #: time the table's reference network alongside and compare at the table's speed (raw figures are kept beside)
    scale: bool = True
    #: show a progress bar
    progress: bool = True
    #: remote:HOST:PORT: time the validation networks on that device (default: here for host tables, the board's own timings for file: tables)
    target: Optional[str] = None
    #: remote:HOST:PORT: the server's token file (default: EDNAS_REMOTE_TOKEN, else ~/.config/ednas/remote.token)
    remote_token_file: Optional[str] = None


def lut_validate(cfg: LutValidateConfig) -> dict:
    from tqdm import tqdm

    if cfg.archs < 2:
        raise ConfigError(f"--archs {cfg.archs}: need at least 2 architectures (30 for the acceptance check)")
    if cfg.target is not None and not cfg.target.startswith("remote:"):
        raise ConfigError(f"--target of 'ednas lut validate' is a remote:HOST:PORT device, got '{cfg.target}'")
    table = load_table(cfg.lut)
    space = load_arch(cfg.space)[0] if cfg.space else None
    device = connect(cfg.target, cfg.remote_token_file) if cfg.target else None
    for flag, f in (("--json", cfg.json), ("--plot", cfg.plot)):
        if f:
            check_writable_file(f, flag)
    n_fit = len((table.meta.get("constant") or {}).get("picks") or [])  # re-timed for the drift check
    bar = tqdm(total=(cfg.archs + n_fit) * cfg.rounds, desc="end-to-end", unit="net", disable=not cfg.progress, leave=False)
    res = validate_table(
        table, space, cfg.archs, cfg.seed, cfg.sampling, cfg.threads, cfg.warmup, cfg.repeats, cfg.rounds, cfg.num_classes,
        progress=lambda name, r: bar.update(1), scale=cfg.scale, device=device,
    )
    bar.close()
    js = Path(cfg.json) if cfg.json else Path(cfg.lut).with_name(Path(cfg.lut).stem + "_validation.json")
    png = Path(cfg.plot) if cfg.plot else js.with_suffix(".png")
    res["plot"] = str(png)
    atomic_write_json(js, res)
    scatter_plot(res, png)
    return {"json": str(js), "plot": str(png), "n": res["n"], "dtype": res["dtype"], "mape": res["mape"], "spearman": res["spearman"],
            "mape_raw": res["mape_raw"], "spearman_raw": res["spearman_raw"], "reference_ratio": res["reference"].get("ratio"), "drift": res["drift"]}


@dataclass
class LutScriptConfig:
    ALIASES: ClassVar[dict] = {"input": "input_size"}  # the flag's earlier name

    #: output directory (measure_ops.py, ops.json, README.txt)
    out: str
    #: preset name, space string or arch file
    space: str = "cifar"
    #: network input side (default: the preset's)
    input_size: Optional[int] = None
    #: classifier outputs
    num_classes: int = 10
    #: target name recorded in the board's table
    target: str = "board"
    #: operator precision measured on the board: f32, i8 or i16 (fixed point: QDQ graphs as 'ednas export' writes them)
    dtype: str = "f32"
    #: i8/i16: TIDL-style power-of-two scales, per tensor
    pow2: bool = False
    #: i8/i16: one weight scale per output channel (off with --pow2)
    per_channel: bool = True
    #: i8/i16: weight width 8 or 16 (default: the dtype's)
    weight_bits: Optional[int] = None
    #: statistic of one timed batch on the board: median, min, p10, p20, p25 (default: the timing default)
    stat: Optional[str] = None
    #: networks timed end to end on the board for the per-network constant
    fit_archs: int = 5
    #: networks timed end to end on the board to validate the table
    validate_archs: int = 30
    #: seed of the fit networks
    fit_seed: int = 1234
    #: seed of the validation networks
    seed: int = 0
    #: the board's runtime: onnxruntime or openvino (the kit builds its ONNX models and times them in that runtime) or litert
    #: (this host converts every model to .tflite with litert-torch and the kit times them with ai-edge-litert; needs the litert
    #: extra here)
    runtime: str = "onnxruntime"


def lut_script(cfg: LutScriptConfig) -> dict:
    check_writable_dir(cfg.out, "--out")
    cfg.dtype = dtype_name(cfg.dtype)
    if cfg.runtime not in ("onnxruntime", "litert", "openvino"):
        raise ConfigError(f"--runtime must be onnxruntime, openvino or litert, got {cfg.runtime}")
    if cfg.runtime == "openvino" and cfg.dtype not in ("f32", "i8"):
        raise ConfigError(f"--runtime openvino measures f32 or i8 (OpenVINO has no 16-bit integer kernels), got --dtype {cfg.dtype}")
    if cfg.runtime == "litert":
        from ednas.runtime.litert import EXTRA, available

        if cfg.dtype not in ("f32", "i8") or cfg.pow2 or cfg.weight_bits not in (None, 8):
            raise ConfigError(f"--runtime litert measures f32 or i8 (8-bit weights, scales not restricted to powers of two), "
                              f"got --dtype {cfg.dtype}{' --pow2' if cfg.pow2 else ''}"
                              f"{f' --weight-bits {cfg.weight_bits}' if cfg.weight_bits not in (None, 8) else ''}")
        if not available():
            raise ConfigError(f"--runtime litert converts the kit's models here and needs the litert extra: {EXTRA}")
    elif cfg.dtype != "f32" and cfg.dtype not in board.QUANT_DTYPES:
        raise ConfigError(f"--dtype must be f32 or one of {', '.join(board.QUANT_DTYPES)} (what ONNX Runtime runs on a board), got {cfg.dtype}")
    space, size = _space(cfg.space, cfg.input_size)
    return write_script(cfg.out, space, size, cfg.num_classes, cfg.target, cfg.fit_archs, cfg.validate_archs, cfg.fit_seed, cfg.seed,
                        dtype=cfg.dtype, quant=_quant(cfg), stat=cfg.stat, runtime=cfg.runtime)


@dataclass
class LutServeConfig:
    #: address to bind (default 127.0.0.1: reach it over an SSH tunnel; another address exposes it to the network)
    host: str = "127.0.0.1"
    #: TCP port (0: a free one, printed)
    port: int = remote_kit.DEFAULT_PORT
    #: token file (made with mode 0600 when missing; default ~/.config/ednas/remote.token); one readable by others is refused
    token_file: Optional[str] = None
    #: ONNX Runtime graph optimisation level of every session (all: as deployed)
    optimization: str = "all"
    #: one line per request on stderr
    access_log: bool = True

    def check(self, name) -> None:
        if not 0 <= self.port < 65536:
            raise ConfigError(f"{name('port')} must be in [0, 65535], got {self.port}")
        if self.optimization not in board.OPTIMIZATIONS:
            raise ConfigError(f"{name('optimization')} must be one of {', '.join(board.OPTIMIZATIONS)}, got {self.optimization!r}")


def lut_serve(cfg: LutServeConfig) -> None:
    """The measurement server of :mod:`ednas.runtime.remote` on this machine, until interrupted."""
    try:
        token, path, created = remote_kit.ensure_token(cfg.token_file)
    except remote_kit.TokenError as err:
        raise ConfigError(str(err)) from err
    try:
        srv = remote_kit.make_server(cfg.host, cfg.port, token, cfg.optimization, quiet=not cfg.access_log)
    except OSError as err:
        raise ConfigError(f"cannot listen on {cfg.host}:{cfg.port}: {err.strerror or err}") from err
    host, port = srv.server_address[:2]
    print(f"token file: {path}" + (" (new; copy it to the host, keep it mode 0600)" if created else ""), flush=True)
    print(f"listening on http://{host}:{port} (protocol {remote_kit.PROTOCOL}, graph optimisation {cfg.optimization})", flush=True)
    try:
        srv.serve_forever()
    finally:
        srv.server_close()
