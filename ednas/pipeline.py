"""``ednas run``: one command from data and target to a deployable network and a report.

Stages, each in its own sub-folder of ``--out``, each skipped when its
outputs are complete (an interrupted run resumes, and the search and training
stages resume inside themselves from their last epoch):

=============  ====================================================================
``lut/``       the latency table of the space on the target (``lut.json``), and a
               quick end-to-end check of it on host targets (``validation.json``)
``search/``    Algorithm 1 under the budget (arch.yaml, search.json, ...)
``train/``     the derived network trained from scratch (model.pt, metrics.json)
``export/``    fused ONNX, checked against PyTorch, int8 (export.json)
``baselines/`` reference networks trained and measured the same way (report)
``report``     ``summary.json``, ``report.html``, ``report.md`` in ``--out``
=============  ====================================================================

A stage is complete when its ``stage.json`` exists and records the same
settings; when the settings of a stage change, its old folder is kept as
``<stage>.old-N`` (nothing already written is lost) and the stage and every
later one run again.  A stage that was interrupted resumes from its
checkpoints when the settings are the same (``stage_started.json`` records
them); with other settings its partial folder is kept aside the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ednas import __version__
from ednas._perf import set_threads, tune_malloc
from ednas.config import config_dict, resolve_config, save_config
from ednas.errors import ArchError, EdnasError
from ednas.io import atomic_write_json, read_json

__all__ = ["RunConfig", "run", "run_cli", "STAGES"]

log = logging.getLogger(__name__)

STAGES = ("lut", "search", "train", "export", "baselines", "report")


@dataclass
class RunConfig:
    #: output directory (one sub-folder per stage, summary.json, report.html, report.md)
    out: str
    #: data set: digits, cifar10:DIR, cifar100:DIR, folder:DIR
    data: str = "digits"
    #: latency target: host-ort, host-torch, tda2x, tda4vm, roofline:FILE.yaml, file:TABLE.json
    target: str = "host-ort"
    #: latency budget in ms
    budget_ms: Optional[float] = None
    #: budget as a fraction from the space's smallest (0) to largest (1) network (default 0.5)
    budget_frac: Optional[float] = None
    #: search space: a preset, space string or file (default: cifar for inputs <= 64 px, else imagenet)
    space: Optional[str] = None
    #: search epochs (warm-up included)
    search_epochs: int = 20
    #: search epochs that train weights only
    warmup_epochs: int = 5
    #: feedback paths of the search
    paths: int = 2
    #: training epochs of the derived network
    train_epochs: int = 10
    #: images per batch
    batch_size: int = 64
    #: quantization of the export: none, int8, int16
    quant: str = "int8"
    #: TIDL-style power-of-two scales
    pow2: bool = False
    #: baseline networks for the report: default, none, or a comma-separated list
    baselines: str = "default"
    #: sampled networks for the report's LUT check on host targets (0: skip)
    lut_check: int = 12
    #: input size for folder data
    input_size: Optional[int] = None
    #: directory for cached latency tables (default ~/.cache/ednas/lut)
    lut_cache: Optional[str] = None
    #: random seed
    seed: int = 0
    #: intra-op threads for training (0: all cores); latency is measured at the table's threads
    threads: int = 0
    #: data loader workers (folder data)
    workers: int = 2
    #: show progress bars
    progress: bool = True


def _fingerprint(d: dict) -> str:
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Stages:
    """Runs stages in order; skips a complete one; reruns a stage and its successors when settings change."""

    def __init__(self, out: Path, progress: bool):
        self.out, self.progress = out, progress
        self.rerun_rest = False
        self.times: dict[str, dict] = {}

    def dir(self, name: str) -> Path:
        return self.out / name

    def _keep_aside(self, name: str, why: str) -> None:
        d = self.dir(name)
        n = 1
        while (self.out / f"{name}.old-{n}").exists():
            n += 1
        d.rename(self.out / f"{name}.old-{n}")
        _say(f"[{name}] {why}; the previous outputs are kept in {name}.old-{n}")

    def run(self, name: str, settings: dict, fn: Callable[[Path], dict]) -> dict:
        d = self.dir(name)
        marker, started = d / "stage.json", d / "stage_started.json"
        fp = _fingerprint(settings)
        if marker.is_file() and not self.rerun_rest:
            done = read_json(marker)
            if done.get("fingerprint") == fp:
                self.times[name] = {"wall_s": done.get("wall_s", 0.0), "skipped": True}
                _say(f"[{name}] complete, skipped ({d})")
                return done.get("result", {})
        if marker.is_file():  # settings changed (or an earlier stage re-ran): keep the old folder
            self._keep_aside(name, "settings changed")
        elif started.is_file() and read_json(started).get("fingerprint") != fp:
            # interrupted with other settings: its checkpoints cannot be resumed
            self._keep_aside(name, "interrupted with other settings")
        d.mkdir(parents=True, exist_ok=True)
        if started.is_file():
            _say(f"[{name}] resuming ...")
        else:
            atomic_write_json(started, {"stage": name, "fingerprint": fp, "settings": settings})
            _say(f"[{name}] running ...")
        t = time.time()
        result = fn(d)
        wall = time.time() - t
        atomic_write_json(marker, {"stage": name, "fingerprint": fp, "settings": settings, "wall_s": wall, "result": result})
        self.times[name] = {"wall_s": wall, "skipped": False}
        self.rerun_rest = True  # later stages consumed this stage's old outputs
        _say(f"[{name}] done in {wall:.1f} s")
        return result


def _say(msg: str) -> None:
    log.info(msg)


def run(cfg: RunConfig) -> dict:
    """The whole pipeline (see the module docstring). Returns the summary."""
    from ednas.arch.spec import load_arch
    from ednas.data import load_data

    tune_malloc()
    set_threads(cfg.threads)
    t_start = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out)
    data = load_data(cfg.data, seed=cfg.seed, input_size=cfg.input_size)
    space_ref = cfg.space or ("cifar" if data.input_size <= 64 else "imagenet")
    space, _ = load_arch(space_ref)
    if space.is_fixed:
        raise ArchError(f"--space '{space_ref}' has no choices to search")
    stages = _Stages(out, cfg.progress)
    base = {"data": data.spec, "space": space.format(), "input_size": data.input_size, "seed": cfg.seed}

    # 1. latency table --------------------------------------------------------
    lut_settings = {**base, "target": cfg.target, "num_classes": data.num_classes, "lut_check": cfg.lut_check}

    def lut_stage(d: Path) -> dict:
        from ednas.latency import build_table

        table = build_table(cfg.target, space, data.input_size, data.num_classes, out=d / "lut.json", progress=cfg.progress)
        res = {"lut": str(d / "lut.json"), "target": table.target, "entries": len(table.entries)}
        if cfg.lut_check and table.target in ("host-ort", "host-torch"):
            from ednas.latency.validate import scatter_plot, validate_table

            v = validate_table(table, space, cfg.lut_check, 0, "stratified", None, 10, 30, 5, data.num_classes)
            v["plot"] = str(d / "validation.png")
            atomic_write_json(d / "validation.json", v)
            scatter_plot(v, d / "validation.png")
            res.update(check_n=v["n"], check_mape=v["mape"], check_spearman=v["spearman"])
        return res

    lut = stages.run("lut", lut_settings, lut_stage)
    lut_path = str(out / "lut" / "lut.json")

    # 2. search ----------------------------------------------------------------
    from ednas.search.algorithm import SearchConfig, search

    scfg = resolve_config(SearchConfig, dict(
        out=str(out / "search"), space=space.format(), data=cfg.data, target=lut_path, budget_ms=cfg.budget_ms,
        budget_frac=cfg.budget_frac, epochs=cfg.search_epochs, warmup_epochs=cfg.warmup_epochs, paths=cfg.paths,
        batch_size=cfg.batch_size, input_size=cfg.input_size, seed=cfg.seed, threads=cfg.threads, workers=cfg.workers,
        resume=True, progress=cfg.progress))
    s_settings = {k: v for k, v in config_dict(scfg).items() if k not in ("out", "resume", "progress", "threads", "workers", "tensorboard")}

    def search_stage(d: Path) -> dict:
        r = search(scfg, data=data)
        return {k: r[k] for k in ("arch", "predicted_latency_ms", "measured_latency_ms", "budget_ms", "lambda", "steps", "wall_s", "fit_changes")}

    srch = stages.run("search", s_settings, search_stage)

    # 3. train the derived network ------------------------------------------------
    from ednas.train.trainer import TrainConfig, train

    tcfg = resolve_config(TrainConfig, dict(
        out=str(out / "train"), arch=str(out / "search" / "arch.yaml"), data=cfg.data, epochs=cfg.train_epochs,
        batch_size=cfg.batch_size, input_size=cfg.input_size, seed=cfg.seed, threads=cfg.threads, workers=cfg.workers,
        resume=True, progress=cfg.progress))
    t_settings = {**{k: v for k, v in config_dict(tcfg).items() if k not in ("out", "resume", "progress", "threads", "workers")}, "arch_text": srch["arch"]}

    def train_stage(d: Path) -> dict:
        m = train(tcfg)
        return {k: m[k] for k in ("top1", "top5", "val_loss", "epochs", "params", "wall_s")}

    trn = stages.run("train", t_settings, train_stage)

    # 4. export: fuse, ONNX, quantize, measure ------------------------------------
    from ednas.deploy.export import ExportConfig, run_export

    ecfg = resolve_config(ExportConfig, dict(model=str(out / "train" / "model.pt"), out=str(out / "export"), quant=cfg.quant,
                                             pow2=cfg.pow2, threads=_lut_threads(lut_path)))
    e_settings = {**{k: v for k, v in config_dict(ecfg).items() if k not in ("out",)}, "trained": trn}

    def export_stage(d: Path) -> dict:
        return run_export(ecfg)

    exp = stages.run("export", e_settings, export_stage)

    # 5. baselines for the report ------------------------------------------------------
    names = _baseline_names(cfg.baselines)
    b_settings = {**base, "names": names, "epochs": cfg.train_epochs, "target": cfg.target, "batch_size": cfg.batch_size}

    def baselines_stage(d: Path) -> dict:
        if not names:
            return {"baselines": []}
        from ednas.report.baselines import run_baselines

        res = run_baselines(cfg.data, d, names=names, epochs=cfg.train_epochs, threads=_lut_threads(lut_path),
                            target=cfg.target, progress=cfg.progress, seed=cfg.seed, batch_size=cfg.batch_size,
                            input_size=cfg.input_size, train_threads=cfg.threads)
        return {"baselines": res}

    stages.run("baselines", b_settings, baselines_stage)

    # 6. summary and report ----------------------------------------------------------------
    summary = _summary(cfg, data, out, srch, trn, exp, stages, t_start, lut)
    atomic_write_json(out / "summary.json", summary)
    t = time.time()
    from ednas.report.report import write_report

    html, md = write_report(out, summary)
    stages.times["report"] = {"wall_s": time.time() - t, "skipped": False}
    summary["stages"] = stages.times
    summary["wall_s"] = time.time() - t_start
    atomic_write_json(out / "summary.json", summary)
    write_report(out, summary)  # the final times in the report too
    _print_summary(summary, html, md)
    return summary


def _lut_threads(lut_path: str) -> int:
    """The thread count the table was measured with, so every latency of the run is taken the same way."""
    from ednas.latency import load_table
    from ednas.search.algorithm import table_threads

    try:
        return table_threads(load_table(lut_path))
    except EdnasError:
        return 1


def _baseline_names(spec: str) -> list[str]:
    if spec in ("none", "", "0"):
        return []
    if spec == "default":
        from ednas.report.baselines import DEFAULT_BASELINES

        return list(DEFAULT_BASELINES)
    return [s.strip() for s in spec.split(",") if s.strip()]


def _summary(cfg, data, out: Path, srch: dict, trn: dict, exp: dict, stages: _Stages, t_start: float, lut: dict) -> dict:
    from ednas.arch.spec import parse_arch
    from ednas.latency.ops import arch_ops

    arch = parse_arch(srch["arch"])
    # conv and linear MACs only, as ednas profile, fvcore and the published figures count them
    macs = int(sum(op.macs for op in arch_ops(arch, data.input_size, data.num_classes) if op.is_conv or op.type == "fc"))
    host_ms = exp.get("latency_ms_fp32")  # the fused fp32 ONNX on this machine
    on_host = str(cfg.target) in ("host-ort", "host-torch")
    measured = host_ms if on_host else None  # an analytic or board target is not this machine
    budget = srch["budget_ms"]
    return {
        "data": data.spec,
        "target": cfg.target,
        "budget_ms": budget,
        "arch": srch["arch"],
        "params": trn["params"],
        "macs": macs,
        "top1": trn["top1"],
        "top5": trn["top5"],
        "top1_int8": exp.get("top1_quant"),
        "int8_drop": exp.get("drop"),
        "latency_ms_predicted": srch["predicted_latency_ms"],
        "latency_ms_measured": measured,
        "latency_ms_host_fp32": host_ms,
        "latency_ms_host_int8": exp.get("latency_ms_quant"),
        "within_budget_measured": (measured <= 1.05 * budget) if measured is not None else None,
        "onnx_max_abs_diff": exp.get("max_abs_diff"),
        "lut_check": {k: lut.get(k) for k in ("check_n", "check_mape", "check_spearman") if k in lut},
        "search_wall_s": srch["wall_s"],
        "fit_changes": len(srch.get("fit_changes") or []),
        "wall_s": time.time() - t_start,
        "stages": dict(stages.times),
        "ednas": __version__,
        "out": str(out),
    }


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
        f"  top-1 (test)    {_fmt(s['top1'])} %   int8: {_fmt(s['top1_int8'])} %",
        f"  latency (ms)    predicted {_fmt(s['latency_ms_predicted'])}  measured {_fmt(s['latency_ms_measured'])}  budget {_fmt(s['budget_ms'])}"
        + ("" if s["latency_ms_measured"] is not None else f"  (on {s['target']}; this host: {_fmt(s['latency_ms_host_fp32'])})"),
        f"  ONNX vs torch   max abs diff {_fmt(s['onnx_max_abs_diff'])}",
        "  stages (s)      " + "  ".join(f"{k} {v['wall_s']:.0f}{'*' if v.get('skipped') else ''}" for k, v in s["stages"].items()),
        f"  wall            {s['wall_s']:.0f} s   (* = already complete, skipped)",
        f"  report          {html}",
        f"                  {md}",
        "",
    ]
    log.info("\n".join(lines))


def run_cli(cfg: RunConfig) -> dict:
    """``ednas run``: the pipeline; prints where the summary and the report are."""
    s = run(cfg)
    out = Path(cfg.out)
    return {"summary": str(out / "summary.json"), "report_html": str(out / "report.html"), "report_md": str(out / "report.md"),
            "top1": s["top1"], "top1_int8": s["top1_int8"], "latency_ms_predicted": s["latency_ms_predicted"],
            "latency_ms_measured": s["latency_ms_measured"], "budget_ms": s["budget_ms"], "wall_s": s["wall_s"]}
