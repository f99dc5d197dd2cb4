"""``ednas run``: one command from data and target to a deployable network and a report.

Stages, each in its own sub-folder of ``--out``, each skipped when its
outputs are complete (an interrupted run resumes, and the search and training
stages resume inside themselves from their last epoch):

=============  ====================================================================
``lut/``       the latency table of the space on the target (``lut.json``), and a
               quick end-to-end check of it on host targets and on a remote
               device (``validation.json``)
``search/``    Algorithm 1 under the budget (arch.yaml, search.json, ...)
``train/``     the derived network trained from scratch (model.pt, metrics.json)
``export/``    fused ONNX, checked against PyTorch, int8 (export.json)
``device/``    ``remote:HOST:PORT`` only: the deployed file timed on the device, the
               figure the budget is checked against (``latency_ms_measured``)
``confirm/``   only where the deployed file timed over 1.05 x the budget: timed twice
               more, the median of the three is the figure checked
``baselines/`` reference networks trained the same way and priced as the deployed file is (report)
``report``     ``summary.json``, ``report.html``, ``report.md`` in ``--out``
=============  ====================================================================

Each stage runs through :func:`ednas.stage.run_stage`: it is complete when
its ``stage.json`` records the same settings; when the settings of a stage
change, its old folder is kept as ``<stage>.old-N`` (nothing already written
is lost) and it runs again, and so does every later stage, whose settings
include what the earlier one produced.  A stage that was interrupted
resumes from its checkpoints when the settings are the same
(``stage_started.json`` records them); with other settings its partial folder
is kept aside the same way.

Settings (:class:`RunConfig`) are one tree: a section per stage holds that
stage's own settings class (``--search.lr``, ``--train.epochs``,
``--export.quant``, ...); the flat flags of earlier versions
(``--search-epochs``, ``--train-epochs``, ``--batch-size``, ...) stand for
them.  The data set is loaded once and the latency table measured at most
once (:class:`ednas.context.RunContext`), and every check that needs no
measurement runs before the first stage.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ednas import __version__
from ednas._perf import set_threads, tune_malloc
from ednas.arch.spec import parse_arch
from ednas.config import config_dict, given, save_config
from ednas.context import RunContext
from ednas.data import DataConfig
from ednas.deploy.export import ExportConfig, export_model
from ednas.deploy.measure import compare_latency
from ednas.device import DeviceConfig, resolve_hardware
from ednas.errors import ConfigError
from ednas.io import atomic_write_json
from ednas.latency.config import QUANT_DTYPE, LatencyConfig, table_precision
from ednas.latency.measure import table_reference
from ednas.latency.ops import dtype_name
from ednas.latency.remote import connect, is_remote
from ednas.latency.table import load_table
from ednas.latency.validate import scatter_plot, validate_table
from ednas.report.baselines import BaselinesConfig, baseline_names, run_baselines
from ednas.report.report import write_report
from ednas.report.verdict import CONFIRM_REPEATS, MEASURED_TOLERANCE, confirm_timing, deployed_ms, over_line, verdict
from ednas.runtime import Timing, board
from ednas.runtime.interface import TARGETS, runtime_of_target, table_runtime
from ednas.search.algorithm import SearchConfig, search
from ednas.stage import StageResult, run_stage
from ednas.train.trainer import TrainConfig, train

__all__ = ["RunConfig", "run", "run_cli", "STAGES"]

log = logging.getLogger(__name__)

STAGES = ("lut", "search", "train", "export", "baselines", "report")


@dataclass(kw_only=True)
class RunConfig:
    """``ednas run``: every stage's settings, one section each."""

    #: output directory (one sub-folder per stage, summary.json, report.html, report.md)
    out: str
    data: DataConfig = field(default_factory=DataConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    timing: Timing = field(default_factory=Timing)
    search: SearchConfig = field(default_factory=SearchConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    hardware: DeviceConfig = field(default_factory=DeviceConfig)
    #: sampled networks for the LUT check on host targets (0: skip)
    lut_check: int = 12
    #: random seed (weights, batches, Gumbel noise, calibration draw; not the data split)
    seed: int = 0
    #: intra-op threads for training and search (0: all cores); latencies use --timing.threads
    threads: int = 0
    #: progress bars (default: only when stderr is a terminal)
    progress: bool | None = None
    #: write TensorBoard scalars of the search and the training
    tensorboard: bool = True

    EXAMPLE: ClassVar[str] = """\
  # run.yaml: ednas run --config run.yaml --out runs/c10   (flags override the file)
  data:
    spec: cifar10:/data/cifar-10-batches-py
    split_seed: 0
  latency:
    target: host-ort
    budget_frac: 0.4
  search:
    epochs: 30
    loss: budget
    lr: 0.05
    tau0: 1.0
  train:
    epochs: 60
    lr: 0.2
  export:
    quant: int8
    pow2: true
  baselines: mobilenetv2,mnasnet
  seed: 1
"""

    # the flat flags of ednas run before it had sections
    ALIASES: ClassVar[dict] = {
        "input_size": "data.input_size",
        "workers": "data.workers",
        "target": "latency.target",
        "latency_dtype": "latency.dtype",
        "budget_ms": "latency.budget_ms",
        "budget_frac": "latency.budget_frac",
        "lut_cache": "latency.cache",
        "remote_token_file": "latency.remote_token_file",
        "space": "search.space",
        "search_epochs": "search.epochs",
        "warmup_epochs": "search.arch_warmup_epochs",
        "paths": "search.paths",
        "train_epochs": "train.epochs",
        "batch_size": ("search.batch_size", "train.batch_size"),
        "quant": "export.quant",
        "pow2": "export.pow2",
        "device": "hardware.device",
        "amp": "hardware.amp",
    }

    def check(self, name) -> None:
        if self.lut_check < 0:
            raise ConfigError(f"{name('lut_check')} must be >= 0, got {self.lut_check}")
        if self.threads < 0:
            raise ConfigError(f"{name('threads')} must be >= 0, got {self.threads}")
        if self.latency.target == "host-litert" and self.export.quant not in ("none", "int8"):
            raise ConfigError(f"{name('latency.target')} host-litert deploys a .tflite in float32 or full-integer int8, "
                              f"so {name('export.quant')} must be none or int8, got {self.export.quant}")
        if self.latency.target == "host-openvino" and self.export.quant not in ("none", "int8"):
            raise ConfigError(f"{name('latency.target')} host-openvino runs float32 or int8 (OpenVINO has no 16-bit integer kernels), "
                              f"so {name('export.quant')} must be none or int8, got {self.export.quant}")
        deployed, dtype = QUANT_DTYPE.get(self.export.quant), dtype_name(self.latency.dtype)
        if dtype in ("i8", "i16") and dtype != deployed:
            raise ConfigError(f"{name('latency.dtype')} {self.latency.dtype} prices a {dtype} network, but {name('export.quant')} "
                              f"{self.export.quant} deploys {deployed}; give matching settings (or {name('latency.dtype')} f32)")


def run(cfg: RunConfig) -> dict:
    """The whole pipeline (see the module docstring). Returns the summary."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("ednas run is one process; under torchrun run its stages: ednas search and ednas train (docs/distributed.md)")
    tune_malloc()
    hw = resolve_hardware(cfg.hardware)
    set_threads(cfg.threads)
    t_start = time.time()
    e = cfg.export
    dtype, qopts = table_precision(cfg.latency, e.quant, e.pow2, e.per_channel, e.weight_bits)
    ctx = RunContext(data=cfg.data, space=cfg.search.space, latency=cfg.latency, timing=cfg.timing,
                     timing_threads_given=given(cfg, "timing.threads"), seed=cfg.seed, progress=cfg.progress,
                     out=cfg.out, needs_space=True, table_dtype=dtype, table_quant=qopts)
    out = ctx.out
    save_config(cfg, out)
    ctx.fit_space()  # a --budget-ms outside the space's range: its widths scaled first (the table below is the scaled space's)
    data, space = ctx.data, ctx.space
    times: dict[str, dict] = {}

    def stage(name: str, settings: dict, fn) -> StageResult:
        st = run_stage(out / name, settings, fn, name=name)
        times[name] = {"wall_s": st.wall_s, "skipped": st.skipped}
        return st

    base = {"data": data.spec, "split_seed": cfg.data.split_seed, "space": space.format(), "input_size": data.input_size}
    if not data.in_memory:  # images read from files: their augmentation decides the results too
        base["jitter"] = list(data.jitter)

    # 1. latency table (measured at most once, cached across runs) and its check on host targets
    def lut_stage(d: Path) -> dict:
        table = ctx.table
        table.save(d / "lut.json")
        res = {"lut": str(d / "lut.json"), "target": table.target, "entries": len(table.entries)}
        if cfg.lut_check and (table.is_host or is_remote(cfg.latency.target)):  # a remote table is checked on its device
            device = connect(cfg.latency.target, cfg.latency.remote_token_file) if is_remote(cfg.latency.target) else None
            # a table this run has just measured: its fit networks are not timed again (their drift since the build would be noise)
            v = validate_table(table, space, cfg.lut_check, 0, "stratified", num_classes=data.num_classes, timing=ctx.timing, device=device,
                               drift=not ctx.table_is_new())
            v["plot"] = str(d / "validation.png")
            atomic_write_json(d / "validation.json", v)
            scatter_plot(v, d / "validation.png")
            res.update(check_n=v["n"], check_mape=v["mape"], check_spearman=v["spearman"], check_mape_raw=v["mape_raw"],
                       check_spearman_raw=v["spearman_raw"], check_drift=v["drift"], check_reference_ratio=v["reference"].get("ratio"))
        return res

    lut = stage("lut", {**base, "target": cfg.latency.target, "num_classes": data.num_classes, "lut_check": cfg.lut_check,
                        "dtype": dtype, "quant": qopts}, lut_stage)
    ctx.use_table(load_table(out / "lut" / "lut.json", input_size=data.input_size))
    budget = ctx.budget()
    timing = ctx.timing

    # 2. search (it does not time its derived network unless told to: the export stage times the deployed file, the
    #    same network trained, beside the table's reference network; once is enough)
    search_cfg = cfg.search if given(cfg, "search.measure") else dataclasses.replace(cfg.search, measure=False)

    def search_stage(d: Path) -> dict:
        r = search(search_cfg, d, data=data, latency=ctx.latency_model(), budget=budget, space=space, timing=timing,
                   seed=cfg.seed, progress=cfg.progress, tensorboard=cfg.tensorboard, resume=True, hardware=hw)
        return {k: r[k] for k in ("arch", "predicted_latency_ms", "measured_latency_ms", "budget_ms", "lambda", "steps", "wall_s", "fit_changes",
                                  "argmax_arch", "latency_ms_argmax", "argmax_in_band", "width_mult")}

    srch = stage("search", {**base, "search": config_dict(cfg.search), "seed": cfg.seed, "budget_ms": budget.ms,
                            "timing": config_dict(timing), "lut": lut.fingerprint}, search_stage)

    # 3. the derived network, trained from scratch
    def train_stage(d: Path) -> dict:
        m = train(cfg.train, d, arch=parse_arch(srch.result["arch"]), data=data, seed=cfg.seed, progress=cfg.progress,
                  tensorboard=cfg.tensorboard, resume=True, hardware=hw)
        keys = ("top1", "top5", "val_loss", "epochs", "params", "macs", "wall_s") + (("map", "map_voc07", "ap", "ap_voc07") if data.multilabel else ())
        return {k: m[k] for k in keys}

    trn = stage("train", {**base, "train": config_dict(cfg.train), "seed": cfg.seed, "arch": srch.result["arch"],
                          "after": srch.fingerprint}, train_stage)

    # 4. export: fuse, ONNX, quantize, measure (and the LiteRT file on host-litert or a LiteRT device: the one deployed there)
    table_rt = table_runtime(ctx.table)
    litert = table_rt is not None and table_rt.name == "litert"
    # a runtime other than ONNX Runtime on this host (host-litert, host-openvino): the budget is checked in it
    other_host = cfg.latency.target in TARGETS and cfg.latency.target != "host-ort"
    export_cfg = dataclasses.replace(cfg.export, format="onnx,tflite") if litert and "tflite" not in cfg.export.format else cfg.export

    def export_stage(d: Path) -> dict:
        # the files are timed beside the table's reference network (same kind of host), so their latency is also
        # given at the speed the table was built at, the speed the budget is in
        return export_model(export_cfg, out / "train" / "model.pt", d, data=data, timing=timing, seed=cfg.seed,
                            reference=None if other_host or litert else table_reference(ctx.table)[0])

    exp = stage("export", {"export": config_dict(export_cfg), "timing": config_dict(timing), "seed": cfg.seed,
                           "trained": trn.result, "after": trn.fingerprint}, export_stage)

    # 4b. on a device in the loop (remote:HOST:PORT), or in the table's runtime on this host (host-litert, host-openvino):
    #     the deployed file timed where the budget must hold, beside the table's reference network
    time_there = None
    if is_remote(cfg.latency.target):
        time_there = lambda: _time_on_device(cfg.latency.target, exp.result, ctx.table, timing, cfg.latency.remote_token_file)  # noqa: E731
    elif other_host:
        time_there = lambda: _time_in_runtime(runtime_of_target(cfg.latency.target), exp.result, ctx.table, timing)  # noqa: E731
    dev = None
    if time_there is not None:
        dev = stage("device", {"target": cfg.latency.target, "timing": config_dict(timing), "after": exp.fingerprint}, lambda d: time_there())

    # 4c. a deployed file timed over the line (MEASURED_TOLERANCE x the budget) is timed twice more where it was timed, and
    #     the median of the three is the figure checked (verdict.confirm_timing: a shared machine's transient slow moment
    #     must not fail a file that meets its budget); the stage runs only then, so most runs have no confirm/ folder
    first = dev.result if dev is not None else _deployed(cfg, exp.result, ctx.table)
    deployed = first
    if (dev is not None or cfg.latency.target in ("host-ort", "host-torch")) and over_line(first, budget.ms):
        retime = time_there or (lambda: _time_here(first, ctx.table, timing))
        deployed = stage("confirm", {"after": (dev or exp).fingerprint, "budget_ms": budget.ms, "timing": config_dict(timing),
                                     "repeats": CONFIRM_REPEATS}, lambda d: confirm_timing(first, budget.ms, retime)).result

    # 5. baselines for the report, trained with the derived network's recipe and epochs, and priced as the deployed
    #    file is: in the table's precision (quantized by ednas's quantizer), beside the table's reference network, once
    names = baseline_names(cfg.baselines.names)

    def baselines_stage(d: Path) -> dict:
        return {"baselines": run_baselines(data, d, names, cfg.train, target=cfg.latency.target, timing=timing, seed=cfg.seed,
                                           width=cfg.baselines.width, budget_ms=budget.ms, progress=cfg.progress, hardware=hw,
                                           table=ctx.table, export=cfg.export, space=space)}

    stage("baselines", {**base, "names": names, "width": cfg.baselines.width, "train": config_dict(cfg.train),
                        "target": cfg.latency.target, "timing": config_dict(timing), "seed": cfg.seed, "budget_ms": budget.ms,
                        "lut": lut.fingerprint, "export": config_dict(cfg.export)},
          baselines_stage)

    # 6. summary and report
    summary = _summary(cfg, data, out, srch.result, trn.result, exp.result, times, t_start, lut.result, ctx.table,
                       dev.result if dev is not None else None, deployed)
    atomic_write_json(out / "summary.json", summary)
    t = time.time()
    html, md = write_report(out, summary)
    times["report"] = {"wall_s": time.time() - t, "skipped": False}
    summary["stages"] = times
    summary["wall_s"] = time.time() - t_start
    atomic_write_json(out / "summary.json", summary)
    write_report(out, summary)  # the final times in the report too
    _print_summary(summary, html, md)
    return summary


def _deployed(cfg: RunConfig, exp: dict, table) -> dict:
    """The file the budget is for (the table's precision) and its measured latency, raw and at the table's speed."""
    quant_file = table.dtype in ("i8", "i16") and exp.get("onnx_quant")
    key = "quant" if quant_file else "fp32"
    ref = table_reference(table)
    return {
        "file": exp.get("onnx_quant") if quant_file else exp.get("onnx"),
        "precision": table.dtype,
        "raw_ms": exp.get(f"latency_ms_{key}"),
        "scaled_ms": exp.get(f"latency_ms_{key}_scaled"),
        "reference": exp.get("reference") or {"used": False, "why": ref[1]},
    }


def _time_here(deployed: dict, table, timing: Timing) -> dict:
    """The deployed file timed again on this host in ONNX Runtime beside the table's reference network, as the export stage timed it."""
    ref, why = table_reference(table)
    lat = compare_latency({"model": deployed["file"]}, timing=timing, reference=ref)
    m = lat["model"]
    return {**deployed, "raw_ms": m["median_ms"], "scaled_ms": m.get("scaled_ms"), "reference": lat.get("reference") or {"used": False, "why": why}}


def _time_on_device(target: str, exp: dict, table, timing: Timing, token_file: str | None = None) -> dict:
    """The deployed file (the table's precision) timed on the device of ``remote:HOST:PORT``, beside the table's reference network
    (a LiteRT kit's server: the deployed ``.tflite``)."""
    device = connect(target, token_file)
    ref, why = table_reference(table, device)
    fmt = "tflite" if device.runtime == "litert" else "onnx"
    path = _deployed_file(fmt, exp, table)
    r = device.time_files({"model": Path(path).read_bytes()}, timing, reference=ref, fmt=fmt)
    return _timed(r, ref, why, path, table, f"the device {target}", device=device.describe())


def _timed(r: dict, ref, why: str, path: str, table, where: str, **extra) -> dict:
    m = r["model"]
    reference = {"used": False, "why": why}
    if ref is not None:
        reference = {"used": True, "table_ms": r[board.REFERENCE]["table_ms"], "now_ms": r[board.REFERENCE]["ms"], "ratio": r[board.REFERENCE]["ratio"]}
    return {"file": path, "precision": table.dtype, "raw_ms": m["ms"], "scaled_ms": m.get("scaled_ms"), "spread_ms": m["spread_ms"],
            "reference": reference, "where": where, **extra}


def _deployed_file(fmt: str, exp: dict, table) -> str:
    """The exported file of the table's precision in ``fmt``: the ``.onnx`` (quantized for a fixed-point table) or the ``.tflite``
    (int8 for an ``i8`` table)."""
    if fmt == "onnx":
        quant_file = table.dtype in ("i8", "i16") and exp.get("onnx_quant")
        return exp.get("onnx_quant") if quant_file else exp.get("onnx")
    tfl = exp["tflite"]
    path = tfl.get("file_int8") if table.dtype == "i8" else tfl["file"]
    if not path:
        raise ConfigError(f"the {table.dtype} table prices the int8 .tflite, but the export wrote none (export.quant int8 writes it)")
    return path


def _time_in_runtime(rt, exp: dict, table, timing: Timing) -> dict:
    """The deployed file (the table's precision) timed on this host in the table's runtime (``host-litert``: the ``.tflite``;
    ``host-openvino``: the ``.onnx``), beside the table's reference network."""
    path = _deployed_file(rt.format, exp, table)
    ref, why = table_reference(table)
    r = rt.time_files({"model": path}, timing, reference=ref)
    name, _, detail = rt.title.partition(" (")
    return _timed(r, ref, why, path, table, f"{name} on this host" + (f" ({detail}" if detail else ""))


def _summary(cfg: RunConfig, data, out: Path, srch: dict, trn: dict, exp: dict, times: dict, t_start: float, lut: dict, table,
             on_device: dict | None = None, deployed: dict | None = None) -> dict:
    host_ms = exp.get("latency_ms_fp32")  # the fused fp32 ONNX on the host running ednas
    on_host = str(cfg.latency.target) in ("host-ort", "host-torch")
    budget = srch["budget_ms"]
    deployed = deployed or on_device or _deployed(cfg, exp, table)  # ``deployed``: the timing confirmed where it was over the line
    # the file the budget is for, at the table's speed when its reference network was timed beside it
    at_table = deployed_ms(deployed)
    timed = on_host or on_device is not None  # an analytic or board target is neither this host nor a device in the loop
    measured = at_table if timed else None
    summary = {
        "data": data.spec,
        "target": cfg.latency.target,
        "budget_ms": budget,
        # the width multiplier the space was scaled by to reach the budget (1: the space as given)
        "width_mult": srch.get("width_mult", 1.0),
        "latency_dtype": table.dtype,
        "arch": srch["arch"],
        "params": trn["params"],
        "macs": trn["macs"],  # conv + linear, counted by the training stage on the deploy form
        "top1": trn["top1"],
        "top5": trn["top5"],
        "top1_int8": exp.get("top1_quant"),
        "int8_drop": exp.get("drop"),
        **_multilabel(data, trn, exp),
        "latency_ms_predicted": srch["predicted_latency_ms"],
        # the search's own argmax network, before the budget fit (fit_changes: how many choices the fit moved)
        "latency_ms_argmax": srch.get("latency_ms_argmax"),
        "argmax_in_band": srch.get("argmax_in_band"),
        "latency_ms_measured": measured,
        "latency_ms_measured_raw": deployed["raw_ms"] if timed else None,
        "latency_measured_on": deployed["where"] if on_device is not None else "this host" if on_host else None,
        "latency_ms_host_fp32": host_ms,
        "latency_ms_host_int8": exp.get("latency_ms_quant"),
        "deployed": deployed,
        "within_budget_measured": (measured <= MEASURED_TOLERANCE * budget) if measured is not None else None,
        "onnx_max_abs_diff": exp.get("max_abs_diff"),
        "lut_check": {k: lut.get(k) for k in ("check_n", "check_mape", "check_spearman", "check_mape_raw", "check_spearman_raw", "check_drift",
                                              "check_reference_ratio") if k in lut},
        "search_wall_s": srch["wall_s"],
        "fit_changes": len(srch.get("fit_changes") or []),
        "wall_s": time.time() - t_start,
        "stages": dict(times),
        "ednas": __version__,
        "out": str(out),
    }
    if cfg.export.mixed_precision and table.dtype in ("i8", "i16"):
        summary["latency_note"] = "the table prices every layer at 8 bit; --mixed-precision's 16-bit first and last layers are not in it"
    summary["verdict"] = verdict(summary, lut)
    return summary


def _multilabel(data, trn: dict, exp: dict) -> dict:
    """The summary keys of multi-label data: mAP (area and VOC07 11-point), its int8 value, per-class AP (percent)."""
    if not data.multilabel:
        return {}
    return {"task": "multilabel", "map": trn.get("map"), "map_voc07": trn.get("map_voc07"), "map_int8": exp.get("map_quant"),
            "ap": trn.get("ap"), "ap_voc07": trn.get("ap_voc07")}


def _fmt(v, nd=4):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{nd}g}"
    return str(v)


def _print_summary(s: dict, html: Path, md: Path) -> None:
    lines = [
        "",
        "ednas run: summary",
        f"  data            {s['data']}",
        f"  target          {s['target']}",
        f"  architecture    {s['arch']}",
        f"  params / MACs   {s['params']:,} / {s['macs']:,}",
        (f"  mAP (test)      {_fmt(s['map'])} %   (VOC07 11-point {_fmt(s['map_voc07'])} %)   int8: {_fmt(s['map_int8'])} %"
         if s.get("task") == "multilabel" else f"  top-1 (test)    {_fmt(s['top1'])} %   int8: {_fmt(s['top1_int8'])} %"),
        f"  latency (ms)    predicted {_fmt(s['latency_ms_predicted'])}  measured {_fmt(s['latency_ms_measured'])}  budget {_fmt(s['budget_ms'])}"
        f" ({s.get('latency_dtype')})"
        + ("" if s["latency_ms_measured"] is not None else f"  (on {s['target']}; this host: {_fmt(s['latency_ms_host_fp32'])})"),
        f"  this host (ms)  fp32 {_fmt(s['latency_ms_host_fp32'])}  int8 {_fmt(s['latency_ms_host_int8'])}  (raw)",
        f"  search argmax   {_fmt(s.get('latency_ms_argmax'))} ms predicted before the budget fit, which changed {s.get('fit_changes', 0)} choice(s)",
        f"  ONNX vs torch   max abs diff {_fmt(s['onnx_max_abs_diff'])}",
        "  stages (s)      " + "  ".join(f"{k} {v['wall_s']:.0f}{'*' if v.get('skipped') else ''}" for k, v in s["stages"].items()),
        f"  wall            {s['wall_s']:.0f} s   (* = already complete, skipped)",
        f"  report          {html}",
        f"                  {md}",
        "",
    ]
    log.info("\n".join(lines))
    for f in (s.get("verdict") or {}).get("failures", []):
        log.warning("WARNING: %s (%s). %s", f["what"], f["why"], f["advice"])


def run_cli(cfg: RunConfig) -> dict:
    """``ednas run``: the pipeline; returns where the summary and the report are, and the headline numbers."""
    s = run(cfg)
    out = Path(cfg.out)
    return {"summary": str(out / "summary.json"), "report_html": str(out / "report.html"), "report_md": str(out / "report.md"),
            "top1": s["top1"], "top1_int8": s["top1_int8"], **({"map": s["map"], "map_int8": s["map_int8"]} if "map" in s else {}),
            "latency_ms_predicted": s["latency_ms_predicted"],
            "latency_ms_measured": s["latency_ms_measured"], "budget_ms": s["budget_ms"], "latency_dtype": s["latency_dtype"],
            "verdict_ok": s["verdict"]["ok"], "wall_s": s["wall_s"]}
