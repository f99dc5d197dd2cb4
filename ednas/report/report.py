"""The run's report: ``report.html`` (one self-contained file) and ``report.md``.

:func:`write_report` reads what the stages of ``ednas run`` left in the run
directory and explains the result (PEERS.md §3 item 8: why this network was
chosen, and how it compares):

==========================  ==================================================
file (under the run dir)    used for
==========================  ==================================================
``lut/lut.json``            table metadata; predicted latency per layer
``lut/validation.json``     predicted vs measured scatter, MAPE, Spearman
                            (``lut/lut_validation.json`` is read as well)
``search/search.json``      CE / E[LAT] / lambda / tau curves, budget, fit
``search/arch.yaml``        the network diagram, per-layer kernel table
``search/alpha_history.json``  alpha over time (heatmap)
``train/metrics.json``      training curves, test top-1
``export/export.json``      fp32 vs quantized top-1 and latency
``baselines/*/result.json`` accuracy vs latency beside baseline networks
``config.yaml``, ``*/config.yaml``  the resolved settings
==========================  ==================================================

On multi-label data (``summary["task"] == "multilabel"``, Pascal VOC) the
accuracy is mAP wherever single-label runs show top-1: the summary line, the
accuracy-against-latency plot and table (baselines included: they report
mAP too), the quantized model and the training section, which also lists
the per-class AP (area under the curve and VOC07 11-point).

Every piece is optional: a missing or unreadable file turns its section into
"not run" (with the file named), never an exception.  Every number of the
``summary`` dict appears in both files, formatted by :func:`fmt`, the one
number format of the report (the tests use it too).  The HTML embeds every
figure as a base64 PNG; the Markdown links the same PNGs, written to
``report_files/``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
import platform
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ednas._run import git_commit
from ednas.arch.spec import parse_arch
from ednas.io import atomic_write_bytes, atomic_write_text
from ednas.latency.model import LatencyModel
from ednas.latency.table import load_table
from ednas.report import figures
from ednas.report.baselines import comparison, load_baselines, precision_name
from ednas.report.verdict import MEASURED_TOLERANCE

__all__ = ["fmt", "flatten", "write_report", "Section", "Card", "summary_card"]


# ---------------------------------------------------------------------------
# numbers


def fmt(v: Any) -> str:
    """The report's one format for a value.

    Integers get thousands separators (``1,234,567``); floats 4 significant
    digits (``98.33``, ``0.1609``), no separators below 1000 and none of
    the fraction above (``1,235``), scientific below 0.001 (``1.23e-06``);
    ``None`` is ``n/a``; booleans ``yes``/``no``; anything else ``str``.
    """
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v == 0:
            return "0"
        a = abs(v)
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 1e-3:
            return f"{v:.4g}"
        return f"{v:.2e}"
    return str(v)


def flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted.key, leaf)`` for every leaf of nested dicts/lists (lists indexed)."""
    out: list[tuple[str, Any]] = []
    if isinstance(d, dict):
        for k, v in d.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(d, (list, tuple)):
        if all(not isinstance(x, (dict, list, tuple)) for x in d) and len(d) <= 8:
            out.append((prefix, ", ".join(fmt(x) for x in d)))
        else:
            for i, v in enumerate(d):
                out += flatten(v, f"{prefix}[{i}]")
    else:
        out.append((prefix, d))
    return out


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ---------------------------------------------------------------------------
# the document model: sections of blocks, rendered twice


@dataclass
class Section:
    """One part of the report; ``ran`` False renders as "not run"."""

    key: str
    title: str
    blocks: list = field(default_factory=list)
    ran: bool = True

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, headers: list[str], rows: list[list[Any]], collapsed: str | None = None) -> None:
        """A table; ``collapsed`` (its one-line summary) folds it away (``<details>``)."""
        self.blocks.append(("table", headers, rows, collapsed))

    def figure(self, name: str, png: bytes, caption: str) -> None:
        self.blocks.append(("figure", name, png, caption))

    def pre(self, text: str, summary: str | None = None) -> None:
        self.blocks.append(("pre", text, summary))

    def not_run(self, why: str) -> "Section":
        self.ran = False
        self.blocks.append(("notrun", why))
        return self

    @property
    def figures(self) -> list[tuple[str, bytes, str]]:
        return [(b[1], b[2], b[3]) for b in self.blocks if b[0] == "figure"]


def _cell_html(v: Any) -> str:
    if _is_num(v):
        return f'<td class="num">{html.escape(fmt(v))}</td>'
    return f"<td>{html.escape(fmt(v))}</td>"


def _html(card: str, sections: list[Section], title: str) -> str:
    parts = []
    for s in sections:
        cls = ' class="notrun"' if not s.ran else (' class="warning"' if s.key == "warning" else "")
        out = [f'<section id="{s.key}"{cls}>', f"<h2>{html.escape(s.title)}</h2>"]
        for b in s.blocks:
            kind = b[0]
            if kind == "p":
                out.append(f"<p>{html.escape(b[1])}</p>")
            elif kind == "notrun":
                out.append(f'<p class="notrun">Not run: {html.escape(b[1])}</p>')
            elif kind == "table":
                head = "".join(f"<th>{html.escape(h)}</th>" for h in b[1])
                rows = "".join("<tr>" + "".join(_cell_html(c) for c in row) + "</tr>" for row in b[2])
                table = f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
                out.append(f"<details><summary>{html.escape(b[3])}</summary>{table}</details>" if b[3] else table)
            elif kind == "figure":
                data = base64.b64encode(b[2]).decode("ascii")
                cap = html.escape(b[3])
                out.append(f'<figure><img alt="{cap}" src="data:image/png;base64,{data}"><figcaption>{cap}</figcaption></figure>')
            elif kind == "pre":
                pre = f"<pre>{html.escape(b[1])}</pre>"
                out.append(f"<details><summary>{html.escape(b[2])}</summary>{pre}</details>" if b[2] else pre)
        out.append("</section>")
        parts.append("\n".join(out))
    nav = " ".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections)
    tpl = string.Template((Path(__file__).parent / "template.html").read_text())
    return tpl.substitute(title=html.escape(title), card=card, nav=nav, body="\n".join(parts))


def _md_cell(v: Any) -> str:
    return fmt(v).replace("|", "\\|").replace("\n", " ")


def _markdown(card: list[str], sections: list[Section], title: str, files_dir: str) -> str:
    out = [f"# {title}", "", *card]
    for s in sections:
        out += [f"## {s.title}", ""]
        for b in s.blocks:
            kind = b[0]
            if kind == "p":
                out += [b[1], ""]
            elif kind == "notrun":
                out += [f"*Not run: {b[1]}*", ""]
            elif kind == "table":
                if b[3]:  # GitHub renders the table inside <details> when blank lines surround it
                    out += [f"<details><summary>{html.escape(b[3])}</summary>", ""]
                out.append("| " + " | ".join(b[1]) + " |")
                out.append("|" + "|".join("---:" if b[2] and _is_num(b[2][0][i]) else "---" for i in range(len(b[1]))) + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b[2]]
                out.append("")
                if b[3]:
                    out += ["</details>", ""]
            elif kind == "figure":
                out += [f"![{b[3]}]({files_dir}/{b[1]}.png)", "", f"*{b[3]}*", ""]
            elif kind == "pre":
                if b[2]:
                    out += [f"**{b[2]}**", ""]
                out += ["```", b[1].rstrip("\n"), "```", ""]
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------
# reading the run directory (every reader returns None when the piece is absent)


class _Run:
    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self.problems: dict[str, str] = {}

    def json(self, rel: str):
        import json

        p = self.dir / rel
        if not p.is_file():
            self.problems[rel] = "missing"
            return None
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError) as e:
            self.problems[rel] = f"unreadable ({type(e).__name__}: {str(e)[:120]})"
            return None

    def yaml(self, rel: str):
        import yaml

        p = self.dir / rel
        if not p.is_file():
            self.problems[rel] = "missing"
            return None
        try:
            return yaml.safe_load(p.read_text())
        except (OSError, yaml.YAMLError) as e:
            self.problems[rel] = f"unreadable ({type(e).__name__})"
            return None

    def text(self, rel: str) -> str | None:
        p = self.dir / rel
        try:
            return p.read_text() if p.is_file() else None
        except OSError:
            return None

    def why(self, rel: str) -> str:
        return f"{rel} is {self.problems.get(rel, 'missing')}"


# ---------------------------------------------------------------------------
# sections


def _warning(run: _Run, summary: dict) -> Section | None:
    """First in the report when the run missed a target (``summary.json``'s ``verdict``): what failed, by how much, what to do."""
    failures = (summary.get("verdict") or {}).get("failures") or []
    if not failures:
        return None
    s = Section("warning", "Warning: " + ("this run missed a target" if len(failures) == 1 else f"this run missed {len(failures)} targets"))
    for f in failures:
        s.p(f"{f.get('what')}: {f.get('by')}. Why: {f.get('why')}. What to do: {f.get('advice')}.")
    s.p("summary.json's 'verdict' holds the same; every figure below is as measured.")
    return s


def _multilabel(summary: dict) -> bool:
    return summary.get("task") == "multilabel"


def _score(summary: dict) -> tuple[str, str, str]:
    """(summary key, its int8 key, label) of the run's accuracy: top-1, or mAP on multi-label data."""
    return ("map", "map_int8", "mAP") if _multilabel(summary) else ("top1", "top1_int8", "top-1")


def _summary(run: _Run, summary: dict) -> Section:
    s = Section("summary", "Summary")
    key, key8, label = _score(summary)
    top1, lat, budget = summary.get(key), summary.get("latency_ms_measured"), summary.get("budget_ms")
    line = f"Derived network on {fmt(summary.get('data'))}, target {fmt(summary.get('target'))}: test {label} {fmt(top1)} %"
    if _multilabel(summary):
        line += f" (VOC07 11-point {fmt(summary.get('map_voc07'))} %)"
    if summary.get(key8) is not None:
        line += f" ({fmt(summary.get(key8))} % quantized)"
    line += f", latency {fmt(lat)} ms measured, {fmt(summary.get('latency_ms_predicted'))} ms predicted, budget {fmt(budget)} ms"
    if summary.get("latency_dtype"):
        line += f" (for the {summary['latency_dtype']} file)"
    if _is_num(lat) and _is_num(budget) and budget > 0:
        line += f" ({fmt(100.0 * lat / budget)} % of it)"
    s.p(line + f"; {fmt(summary.get('params'))} parameters, {fmt(summary.get('macs'))} MACs; whole run {fmt(summary.get('wall_s'))} s.")
    argmax = summary.get("latency_ms_argmax")
    if argmax is not None or summary.get("fit_changes") is not None:
        text = f"The search's own argmax network (before the budget fit): {fmt(argmax)} ms predicted"
        if _is_num(argmax) and _is_num(budget) and budget > 0:
            text += f" ({fmt(100.0 * argmax / budget)} % of the budget)"
        s.p(text + f"; the budget fit changed {fmt(summary.get('fit_changes'))} choice(s).")
    wm = summary.get("width_mult")
    if _is_num(wm) and wm != 1.0:
        s.p(f"The budget lay outside the space's range on this target (or in the top --latency.recentre of it, where the search has no room above), so the "
            f"skeleton's widths were scaled by {fmt(wm)} "
            "(stem and every stage, rounded to multiples of 8; the head, kernels, expansions and depths kept) until it lay well "
            "inside; the search, the table and the network above are the scaled skeleton's.")
    return s


def _keys(run: _Run, summary: dict) -> Section:
    """Last, folded away: every key of ``summary.json`` (the card and the sections above say what they mean)."""
    s = Section("keys", "summary.json")
    rows = [[k, v] for k, v in flatten(summary)]
    s.table(["summary.json key", "value"], rows, collapsed=f"every key of summary.json ({len(rows)})")
    return s


# ---------------------------------------------------------------------------
# the summary card: the answer, above everything else


_RUNTIME = {"onnxruntime": "ONNX Runtime", "torch": "PyTorch", "pytorch": "PyTorch", "litert": "LiteRT", "openvino": "OpenVINO"}


@dataclass
class Card:
    """The report's opening: the network, its accuracy in both precisions, its latency against the budget, the baselines.

    ``verdict`` is ``"met"``, ``"missed"``, ``"not measured"`` (an analytic
    or board target: no timing on this host) or ``"no budget"``;
    ``headline`` says it with the numbers, ``scope`` which file, target
    and runtime the budget is for; ``tiles`` are ``(label, main
    lines, detail)`` for accuracy, latency and the network; ``compare`` the
    derived network's row and the baselines' rows (``compare_headers``);
    ``notes`` anything else the reader must not miss (a missed LUT check).
    """

    context: str
    verdict: str
    headline: str
    scope: str
    tiles: list[tuple[str, list[str], str]]
    compare_headers: list[str]
    compare: list[list]
    arch: str | None
    notes: list[str] = field(default_factory=list)


def _precision(summary: dict) -> str | None:
    return precision_name(summary.get("latency_dtype") or (summary.get("deployed") or {}).get("precision") or None)


def _on_host(summary: dict) -> bool:
    """Whether the target is timed, not priced: this host (``host-*``) or a device in the loop (``remote:``)."""
    t = str(summary.get("target") or "")
    return not t or t.startswith(("host-", "remote:"))


def _budget_for(summary: dict, lut: dict | None) -> str:
    """Which file and runtime the budget is for: ``the int8 file on host-ort, timed in ONNX Runtime (1 thread)``."""
    precision, target = _precision(summary), str(summary.get("target") or "")
    m = (lut or {}).get("measurement") or {}
    runtime = {"host-ort": "onnxruntime", "host-torch": "torch", "host-litert": "litert", "host-openvino": "openvino"}.get(
        target, str(m.get("runtime") or ""))
    if target.startswith("file:"):
        how = "priced by its board table"
    elif (target and not _on_host(summary)) or runtime == "analytic":
        how = "priced by its analytic latency model"
    else:
        how = f"timed in {_RUNTIME.get(runtime, runtime)}" if runtime else ""
        if how and m.get("runtime") == runtime and _is_num(m.get("threads")):
            how += f" ({fmt(m['threads'])} thread{'s' if m['threads'] != 1 else ''})"
    text = f"the {precision} file" if precision else "the network"
    if target:
        text += f" on {target}"
    return text + (f", {how}" if how else "")


def _latency_verdict(summary: dict) -> tuple[str, str]:
    """(verdict, the sentence with its numbers) of the measured latency against the budget."""
    budget, measured, predicted = summary.get("budget_ms"), summary.get("latency_ms_measured"), summary.get("latency_ms_predicted")
    if not (_is_num(budget) and budget > 0):
        return "no budget", "No latency budget recorded"
    if not _is_num(measured):
        text = f"Latency not measured on {summary.get('target')}" if not _on_host(summary) else "Latency not measured (the deployed file was not timed)"
        if _is_num(predicted):
            text += f": {fmt(predicted)} ms predicted against a budget of {fmt(budget)} ms ({fmt(100.0 * predicted / budget)} % of it)"
        return "not measured", text
    check = next((c for c in (summary.get("verdict") or {}).get("checks") or [] if isinstance(c, dict) and c.get("check") == "measured"), None)
    ok = bool(check["ok"]) if check and "ok" in check else measured <= MEASURED_TOLERANCE * budget
    pct = f"{fmt(100.0 * measured / budget)} % of it"
    if str(summary.get("latency_measured_on") or "").startswith("the device"):
        pct += f"; timed on {summary['latency_measured_on']}"
    if ok and measured > budget:
        return "met", f"Latency budget met within the {fmt(round(100 * (MEASURED_TOLERANCE - 1)))} % timing tolerance: {fmt(measured)} ms measured against {fmt(budget)} ms ({pct})"
    if ok:
        return "met", f"Latency budget met: {fmt(measured)} ms measured against {fmt(budget)} ms ({pct})"
    return "missed", f"Latency budget missed: {fmt(measured)} ms measured against {fmt(budget)} ms ({pct})"


def _arch_short(arch: str | None, arch_doc: dict | None) -> str:
    """``7 blocks (2 of 9 skipped); depthwise kernels 3, 5, 7; expansions 1, 4; stem 11x11, head 256 channels``."""
    if not arch:
        return "architecture not recorded"
    try:
        a = parse_arch(arch)
    except Exception as e:  # noqa: BLE001 - the card still shows the string
        return f"architecture string not readable ({type(e).__name__})"
    layers = list(a.layers())
    text = f"{len(layers)} block{'s' if len(layers) != 1 else ''}"
    doc_layers = (arch_doc or {}).get("layers") if isinstance(arch_doc, dict) else None
    if isinstance(doc_layers, list) and doc_layers:
        skipped = sum(1 for l in doc_layers if isinstance(l, dict) and l.get("skip"))
        if skipped:
            text += f" ({skipped} of {len(doc_layers)} skipped)"
    ks = sorted({k for l in layers for k in l.spec.kernels})
    es = sorted({e for l in layers for e in l.spec.expansions})
    if layers:
        text += f"; depthwise kernels {', '.join(map(str, ks))}; expansions {', '.join(map(str, es))}"
    head = f"head {a.head.out} channels" if a.head.out else "no head conv"
    return text + f"; stem {a.stem.kernel}x{a.stem.kernel}, {head}"


def summary_card(summary: dict, baselines: list[dict] | None = None, export: dict | None = None, lut: dict | None = None,
                 arch_doc: dict | None = None) -> Card:
    """The card from the run's summary and (each optional) its baselines, ``export.json``, ``lut.json`` and ``arch.yaml``.

    Nothing is required: a missing number reads ``n/a``, a missing int8
    model ``not run``, a target not timed here ``not measured``, no
    baselines ``none run``.
    """
    summary = summary or {}
    key, key8, label = _score(summary)
    quant = (export or {}).get("quant") or "int8"
    score, score8 = summary.get(key), summary.get(key8)
    unit = lambda v: f"{fmt(v)} %" if _is_num(v) else fmt(v)  # noqa: E731
    acc = [f"{unit(score)} fp32", f"{unit(score8)} {quant}" if score8 is not None else f"{quant}: not run"]
    acc_detail = f"test {label}"
    if _multilabel(summary) and summary.get("map_voc07") is not None:
        acc_detail += f"; VOC07 11-point {fmt(summary['map_voc07'])} % fp32"
    if _is_num(score) and _is_num(score8):
        drop = score - score8
        acc_detail += f"; {quant} {'loses' if drop > 0 else 'gains'} {fmt(abs(drop))} points" if drop else f"; {quant} loses nothing"

    verdict, headline = _latency_verdict(summary)
    budget_for = _budget_for(summary, lut)
    measured, predicted, budget = summary.get("latency_ms_measured"), summary.get("latency_ms_predicted"), summary.get("budget_ms")
    lat = [f"{fmt(measured)} ms measured" if _is_num(measured) else "not measured"]
    lat.append(f"budget {fmt(budget)} ms" if _is_num(budget) else "no budget")
    lat_detail = f"{fmt(predicted)} ms predicted by the latency table"
    if _is_num(measured) and (summary.get("deployed") or {}).get("scaled_ms") is not None:
        lat_detail += "; measured at the table's speed (scaled by its reference network)"
    conf = (summary.get("deployed") or {}).get("confirmation")
    if _is_num(measured) and conf and _is_num(conf.get("first_ms")):
        times = ", ".join(fmt(t) for t in (summary["deployed"].get("timings_ms") or []))
        lat_detail += (f"; the first timing, {fmt(conf['first_ms'])} ms, was over {fmt(conf.get('line_ms'))} ms ({MEASURED_TOLERANCE:g} x the budget), "
                       f"so the file was timed {conf.get('repeats')} more times ({times} ms) and the median is the figure checked")

    net = [f"{fmt(summary.get('params'))} params", f"{fmt(summary.get('macs'))} MACs"]
    tiles = [(f"Accuracy (test {label})", acc, acc_detail), ("Latency", lat, lat_detail),
             ("Network", net, _arch_short(summary.get("arch"), arch_doc))]

    derived_ms, derived_how = (measured, "measured") if _on_host(summary) and _is_num(measured) else (predicted, "predicted")
    within = lambda ms: ("yes" if ms <= budget else "no") if _is_num(ms) and _is_num(budget) and budget > 0 else "n/a"  # noqa: E731
    # both precisions' scores where any network has a quantized one (the budget may be for either file)
    both = score8 is not None or any(b.get(key8) is not None for b in baselines or [])
    headers = ["network", f"{label} fp32 (%)"] + ([f"{label} {quant} (%)"] if both else []) + ["latency (ms)", "within budget", "latency is"]
    rows = [["ednas (derived)", score] + ([score8] if both else []) + [
        derived_ms, within(derived_ms) if derived_how == "predicted" else {"met": "yes", "missed": "no"}.get(verdict, "n/a"),
        f"{derived_how}, {_precision(summary)} file" if _precision(summary) else derived_how]]
    for b in baselines or []:
        name = str(b.get("title") or b.get("name"))
        if b.get("width") is not None:
            name += f" x{fmt(b['width'])}"
        rows.append([name, b.get(key)] + ([b.get(key8)] if both else []) + [b.get("latency_ms"), within(b.get("latency_ms")), b.get("latency_source") or "n/a"])
    notes = []
    if not baselines:
        notes.append("Baselines: none run.")
    failures = [f for f in (summary.get("verdict") or {}).get("failures") or [] if isinstance(f, dict) and f.get("check") != "measured"]
    if failures:
        notes.append("Also missed: " + "; ".join(str(f.get("what")) for f in failures) + " (see the warning below).")
    context = f"data {fmt(summary.get('data'))}, target {fmt(summary.get('target'))}"
    if _is_num(summary.get("wall_s")):
        context += f", whole run {fmt(summary['wall_s'])} s"
    return Card(context, verdict, headline, f"budget for {budget_for}" if verdict != "no budget" else "", tiles, headers, rows,
                summary.get("arch"), notes)


def _card(run: _Run, summary: dict) -> Card:
    """:func:`summary_card` of the run directory (every file optional)."""
    bdir = run.dir / "baselines"
    try:
        baselines = load_baselines(bdir) if bdir.is_dir() else []
    except Exception:  # noqa: BLE001 - the accuracy section says what is wrong with them
        baselines = []
    exp, arch_doc = run.json("export/export.json"), run.yaml("search/arch.yaml")
    lut = run.json("lut/lut.json")
    if isinstance(lut, dict):
        lut = {k: v for k, v in lut.items() if k != "entries"}
    return summary_card(summary, baselines, exp if isinstance(exp, dict) else None, lut if isinstance(lut, dict) else None,
                        arch_doc if isinstance(arch_doc, dict) else None)


_MARK = {"met": "\u2713", "missed": "\u2717", "not measured": "?", "no budget": "?"}


def _card_html(card: Card) -> str:
    e = html.escape
    v = card.verdict.replace(" ", "-")
    out = [f'<section id="card" class="card" data-verdict="{e(card.verdict)}">',
           f'<p class="verdict {v}"><span class="mark">{_MARK.get(card.verdict, "")}</span> {e(card.headline)}'
           + (f' <span class="scope">\u2014 {e(card.scope)}</span>' if card.scope else "") + "</p>", '<div class="tiles">']
    for label, lines, detail in card.tiles:
        slug = label.split()[0].lower()
        out.append(f'<div class="tile" data-tile="{e(slug)}"><div class="label">{e(label)}</div>'
                   + "".join(f'<div class="big">{e(x)}</div>' for x in lines) + f'<div class="detail">{e(detail)}</div></div>')
    out.append("</div>")
    if card.compare:
        head = "".join(f"<th>{e(h)}</th>" for h in card.compare_headers)
        rows = "".join(f'<tr{" class=derived" if i == 0 else ""}>' + "".join(_cell_html(c) for c in row) + "</tr>" for i, row in enumerate(card.compare))
        out.append(f'<table class="compare"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>')
    for n in card.notes:
        out.append(f'<p class="note">{e(n)}</p>')
    if card.arch:
        out.append(f'<p class="arch">arch: <code>{e(card.arch)}</code></p>')
    out.append(f'<p class="context">{e(card.context)}</p>')
    out.append("</section>")
    return "\n".join(out)


def _card_markdown(card: Card) -> list[str]:
    out = [f"**{_MARK.get(card.verdict, '')} {card.headline}**" + (f" \u2014 {card.scope}" if card.scope else ""), ""]
    for label, lines, detail in card.tiles:
        out.append(f"- **{label}**: {', '.join(lines)} \u2014 {detail}")
    out.append("")
    if card.compare:
        num = [any(_is_num(row[i]) for row in card.compare) for i in range(len(card.compare_headers))]
        out += ["| " + " | ".join(card.compare_headers) + " |", "|" + "|".join("---:" if n else "---" for n in num) + "|"]
        out += ["| " + " | ".join(f"**{_md_cell(c)}**" if i == 0 else _md_cell(c) for c in row) + " |" for i, row in enumerate(card.compare)]
        out.append("")
    out += [x for n in card.notes for x in (n, "")]
    if card.arch:
        out += [f"arch: `{card.arch}`", ""]
    out += [f"*{card.context}*", ""]
    return out


def _layer_ms(run: _Run, doc: dict) -> tuple[list | None, dict | None, str]:
    """Predicted ms per layer of the derived network from ``lut/lut.json`` (None if unavailable)."""
    if not (run.dir / "lut" / "lut.json").is_file():
        return None, None, "lut/lut.json is missing"
    try:
        table = load_table(run.dir / "lut" / "lut.json")
        arch = parse_arch(doc["arch"])
        lm = LatencyModel(arch, int(doc.get("input_size") or table.input_size), int(doc.get("num_classes") or table.num_classes or 10), table)
        rows = lm.breakdown(arch)
    except Exception as e:  # noqa: BLE001 - the figure works without the bars; say why
        return None, None, f"per-layer latency not available ({type(e).__name__}: {str(e)[:160]})"
    fixed = {"stem": rows[0]["ms"], "head": rows[-1]["ms"]}
    kept = iter(r["ms"] for r in rows[1:-1])
    per = [None if l.get("skip") else next(kept, None) for l in doc.get("layers") or []]
    return per, fixed, f"constant {fmt(table.constant_ms)} ms not drawn"


def _architecture(run: _Run, summary: dict) -> Section:
    s = Section("architecture", "Derived architecture")
    doc = run.yaml("search/arch.yaml")
    if not isinstance(doc, dict) or "arch" not in doc:
        if not summary.get("arch"):
            return s.not_run(run.why("search/arch.yaml"))
        doc = _layers_from_arch(summary["arch"])
        s.p(f"search/arch.yaml is {run.problems.get('search/arch.yaml', 'missing')}: drawn from summary.json's arch (no probabilities or fit changes).")
    s.p(f"arch: {doc['arch']}")
    layers = [dict(l) for l in doc.get("layers") or []]
    for ch in doc.get("fit_changes") or []:
        i = ch.get("layer")
        if isinstance(i, int) and 0 <= i < len(layers):
            short = {"kernel": "k", "expansion": "e"}.get(ch.get("kind"), f"{ch.get('kind', '')} ")
            layers[i]["fit_from"] = f"{short}{ch.get('from')}\u2192{ch.get('to')}"
    stem_k, head = _stem_head(doc["arch"])
    per, fixed, note = _layer_ms(run, doc)
    png = figures.network_diagram(stem_k, layers, head, per, fixed)
    s.figure("network", png, "The derived network: one box per layer, size and colour by depthwise kernel; dashed = skipped, red = changed by the budget fit"
             + (f"; bars: predicted ms per layer from lut/lut.json ({note})" if per else f" ({note})"))
    rows = []
    for l in layers:
        probs = (l.get("probs") or {}).get("kernel") or {}
        p_k = probs.get(str(l.get("kernel"))) if probs else None
        rows.append([l.get("index"), l.get("stage"), l.get("stride"), f"{l.get('cin')} -> {l.get('cout')}", l.get("kernel"), l.get("expansion"),
                     bool(l.get("skip")), p_k, bool(l.get("changed_by_fit"))])
    if rows:
        s.table(["layer", "stage", "stride", "channels", "kernel", "expansion", "skipped", "P(kernel) at the end", "changed by fit"], rows)
    changes = doc.get("fit_changes") or []
    if changes:
        s.table(["layer", "choice", "from", "to", "predicted ms after", "why"],
                [[c.get("layer"), c.get("kind"), c.get("from"), c.get("to"), c.get("latency_ms"), c.get("why")] for c in changes])
    elif doc.get("layers"):
        s.p("The argmax network met the budget: the budget fit changed nothing.")
    return s


def _stem_head(arch: str) -> tuple[int, str]:
    try:
        a = parse_arch(arch)
        return a.stem.kernel, f"head\nc{a.head.out}"
    except Exception:  # noqa: BLE001 - a diagram with defaults beats none
        return 11, "head"


def _layers_from_arch(arch: str) -> dict:
    a = parse_arch(arch)
    layers = [{"index": l.index, "stage": l.stage, "stride": l.stride, "cin": l.cin, "cout": l.spec.out, "kernel": l.spec.kernels[0],
               "expansion": l.spec.expansions[0], "skip": False, "changed_by_fit": False} for l in a.layers()]
    return {"arch": arch, "layers": layers, "fit_changes": []}


def _search_measured(res: dict, summary: dict):
    """The derived network's measured latency: the search's own, or in ``ednas run`` (where the search does not time it) the
    deployed file's, the same network trained (timed on this host at export, or on the device of a ``remote:`` target)."""
    if res.get("measured_latency_ms") is not None or summary.get("latency_ms_measured") is None:
        return res.get("measured_latency_ms")
    return f"{fmt(summary['latency_ms_measured'])} (the deployed file, measured on {summary.get('latency_measured_on') or 'the target'})"


def _search(run: _Run, summary: dict) -> Section:
    s = Section("search", "Search")
    res = run.json("search/search.json")
    alpha = run.json("search/alpha_history.json")
    if not isinstance(res, dict):
        if isinstance(alpha, dict) and alpha.get("epochs"):
            s.p(f"{run.why('search/search.json')}; the probabilities below are all there is.")
        else:
            return s.not_run(run.why("search/search.json"))
    if isinstance(res, dict):
        hist = res.get("history") or []
        s.table(["quantity", "value"], [
            ["budget (ms)", res.get("budget_ms")], ["budget fraction", res.get("budget_frac")],
            ["space's smallest network (ms)", res.get("min_ms")], ["space's largest network (ms)", res.get("max_ms")],
            ["argmax network before the budget fit, predicted (ms)", res.get("argmax_latency_ms")],
            ["argmax network in [band_low x B, B]", res.get("argmax_in_band")], ["band_low", res.get("band_low")],
            ["budget-fit changes", res.get("n_fit_changes", len(res.get("fit_changes") or []))],
            ["derived network, predicted (ms)", res.get("predicted_latency_ms")],
            ["derived network, measured (ms)", _search_measured(res, summary)], ["final lambda", res.get("lambda")],
            ["epochs", len(hist)], ["steps", res.get("steps")], ["images seen", res.get("images_seen")],
            ["paths (feedback block)", res.get("paths")], ["path batches", res.get("path_batches")],
            ["mean beta spread (max - min per step)", res.get("beta_spread")], ["update", res.get("update")],
            ["architecture steps", res.get("arch_steps")], ["search wall time (s)", res.get("wall_s")],
        ])
        if hist:
            s.figure("search_curves", figures.search_curves(hist, res.get("budget_ms")),
                     "Per search epoch: cross-entropy on both splits, expected latency E[LAT] under softmax(alpha) and the argmax network's "
                     "predicted latency against the budget, the dual variable lambda, the Gumbel temperature tau, and the argmax network's validation top-1")
        else:
            s.p("search.json has no per-epoch history.")
    if isinstance(alpha, dict) and alpha.get("epochs"):
        s.figure("alpha", figures.alpha_heatmap(alpha.get("names") or sorted(alpha["epochs"][0]), alpha.get("candidates") or {}, alpha["epochs"]),
                 "Alpha over time: softmax(alpha) of every candidate (rows, grouped by choice) after each search epoch (columns)")
    else:
        s.p(f"Alpha over time: {run.why('search/alpha_history.json')}.")
    return s


def _lut(run: _Run, summary: dict) -> Section:
    s = Section("lut", "Latency table")
    lut = run.json("lut/lut.json")
    val = run.json("lut/validation.json")
    if val is None and (run.dir / "lut" / "lut_validation.json").is_file():
        val = run.json("lut/lut_validation.json")
    if not isinstance(lut, dict) and not isinstance(val, dict):
        return s.not_run(run.why("lut/lut.json"))
    if isinstance(lut, dict):
        m = lut.get("measurement") or {}
        c = lut.get("constant") or {}
        s.table(["property", "value"], [
            ["target", lut.get("target")], ["precision", lut.get("dtype")], ["input size", lut.get("input_size")],
            ["entries (operators)", len(lut.get("entries") or {})],
            ["runtime", m.get("runtime")], ["threads", m.get("threads")], ["statistic", m.get("statistic")],
            ["per-network constant (ms)", lut.get("constant_ms")], ["constant fitted on (networks)", len(c.get("fitted_on") or [])],
            ["policy for unsupported candidates", lut.get("policy")], ["machine", (lut.get("machine") or {}).get("cpu")],
            ["created", lut.get("created")],
        ])
    else:
        s.p(run.why("lut/lut.json") + ".")
    if isinstance(val, dict) and val.get("pairs"):
        derived = (summary.get("latency_ms_measured"), summary.get("latency_ms_predicted"))
        s.figure("lut_scatter", figures.lut_scatter(val["pairs"], val.get("mape"), val.get("spearman"), derived),
                 f"Latency table against end-to-end measurement ({val.get('measured_with', 'measured')}); star: the derived network")
        s.table(["check", "value"], [
            ["sampled networks", val.get("n", len(val["pairs"]))], ["MAPE (%)", val.get("mape")], ["Spearman", val.get("spearman")],
            ["max abs error (%)", val.get("max_abs_pct_error")], ["mean error (%)", val.get("mean_pct_error")],
            ["MAPE of the raw timings (%)", val.get("mape_raw")], ["Spearman of the raw timings", val.get("spearman_raw")],
            ["reference network now / at the build (x)", (val.get("reference") or {}).get("ratio")],
            ["drift since the table was built (x)", val.get("drift")],
        ])
    else:
        s.p("Predicted against measured: not run (lut/validation.json is missing).")
    return s


def _accuracy(run: _Run, summary: dict) -> Section:
    s = Section("accuracy", "Accuracy against latency")
    bdir = run.dir / "baselines"
    baselines = load_baselines(bdir) if bdir.is_dir() else []
    key, key8, label = _score(summary)
    # every network in the precision the budget is for, priced as the deployed file is (ednas.report.baselines.comparison)
    cmp = comparison(summary, run.json("export/export.json"), baselines, key, key8)
    points, prec = cmp["points"], cmp["precision"]
    if not baselines:
        s.p(f"Baselines: not run ({'baselines/ is missing' if not bdir.is_dir() else 'no baselines/*/result.json'}).")
    have = [p for p in points if _is_num(p["latency_ms"]) and _is_num(p["top1"])]
    if have:
        s.figure("accuracy_latency", figures.accuracy_latency(points, summary.get("budget_ms"), cmp["xlabel"], f"test {label} (%)", cmp["title"]),
                 cmp["caption"])
    else:
        s.p(f"No network has both a {label} and a latency yet: nothing to plot.")
    macs, macs_note = _derived_macs(run, summary)
    rows = []
    for p in points:
        b = p["baseline"]
        if b is None:
            rows.append([p["label"], summary.get("params"), macs, p["precision"], p["latency_ms"], p["top1"], p["score_fp32"], p["how"], "-"])
            continue
        detail = f"{b.get('source')} {b.get('reference')}, width {fmt(b.get('width'))}"
        if b.get("width_matched_to_ms") is not None:
            detail += (f" (matched to the budget {fmt(b['width_matched_to_ms'])} ms)" if b.get("width_matched")
                       else f" (narrowest tried; over the budget {fmt(b['width_matched_to_ms'])} ms)")
        if b.get("strides_removed_at"):
            detail += f", stride 1 at {', '.join(str(x) for x in b['strides_removed_at'])} px"
        rows.append([f"{b.get('title', b.get('name'))}", b.get("params"), b.get("macs"), p["precision"], p["latency_ms"], p["top1"], p["score_fp32"],
                     p["how"], detail])
    s.table(["network", "params", "MACs", "latency precision", "latency (ms)", f"test {label} (%), plotted", f"test {label} fp32 (%)",
             "latency source", "built from"], rows)
    s.p("MACs count convolutions and linear layers (one multiply-add = one MAC, ednas.nn.macs) in every row" + macs_note + ".")
    if baselines:
        ep = sorted({b.get("epochs") for b in baselines if b.get("epochs") is not None})
        qnote = f"; {prec}: their file made by ednas's quantizer with the export's settings, in ONNX Runtime" if prec in ("int8", "int16") else ""
        s.p(f"Baselines are trained with the derived network's recipe for {', '.join(fmt(e) for e in ep)} epoch(s) on the same data and scored on the same test split "
            f"(fp32 in PyTorch{qnote}) "
            f"and priced once, in {prec}, the way the deployed file is checked against the budget "
            "(ednas.report.baselines explains the width and stride adaptation and the pricing).")
    return s


def _derived_macs(run: _Run, summary: dict) -> tuple[Any, str]:
    """The derived network's MACs, as recorded when it was trained; never recounted here.

    ``summary.json``'s ``macs``, else ``train/metrics.json``'s: both come
    from the counter the baselines are counted with (:mod:`ednas.nn.macs`).
    """
    if _is_num(summary.get("macs")):
        return summary["macs"], ""
    metrics = run.json("train/metrics.json")
    if isinstance(metrics, dict) and _is_num(metrics.get("macs")):
        return metrics["macs"], " (the derived network's from train/metrics.json)"
    return None, " (the derived network's: neither summary.json nor train/metrics.json records its MACs)"


def _quant(run: _Run, summary: dict) -> Section:
    s = Section("quant", "Quantized model")
    exp = run.json("export/export.json")
    if not isinstance(exp, dict):
        return s.not_run(run.why("export/export.json"))
    q = exp.get("quant") or "int8"
    metric, label = ("map", "mAP") if exp.get("task") == "multilabel" else ("top1", "top-1")
    if exp.get(f"{metric}_quant") is not None or exp.get("latency_ms_quant") is not None:
        s.figure("quant", figures.quant_bars((exp.get(f"{metric}_fp32"), exp.get(f"{metric}_quant")), (exp.get("latency_ms_fp32"), exp.get("latency_ms_quant")), q,
                                             f"test {label} (%)"),
                 f"fp32 against {q} through ONNX Runtime ({fmt(exp.get('threads'))} thread(s), batch 1) on the {exp.get('split', 'test')} split")
    fp32, qms = exp.get("latency_ms_fp32_scaled"), exp.get("latency_ms_quant_scaled")
    scaled = fp32 is not None
    if not scaled:
        fp32, qms = exp.get("latency_ms_fp32"), exp.get("latency_ms_quant")
    dtype = summary.get("latency_dtype")
    on_host = not str(summary.get("target") or "").strip() or str(summary.get("target")).startswith("host-")
    if dtype and on_host and (fp32 is not None or qms is not None):
        is_q = dtype in ("i8", "i16")
        bars = [{"label": "fp32", "ms": fp32, "budget": not is_q, "predicted_ms": summary.get("latency_ms_predicted") if not is_q else None}]
        if exp.get("latency_ms_quant") is not None:
            bars.append({"label": q, "ms": qms, "budget": is_q, "predicted_ms": summary.get("latency_ms_predicted") if is_q else None})
        s.figure("deployed_latency", figures.deployed_latency(bars, summary.get("budget_ms"), f"budget (for {dtype})"),
                 f"fp32 and {q} files measured on this host beside the budget, which is for the {dtype} file (the latency table's precision)"
                 + ("; at the speed the table was built at (scaled by its reference network)" if scaled else "; raw timings"))
    s.table(["quantity", "value"], [
        ["quantization", q], [f"{label} fp32 (%)", exp.get(f"{metric}_fp32")], [f"{label} {q} (%)", exp.get(f"{metric}_quant")], ["drop (points)", exp.get("drop")],
        ["agreement with fp32 (%)", exp.get("agreement")], ["latency fp32 (ms)", exp.get("latency_ms_fp32")], [f"latency {q} (ms)", exp.get("latency_ms_quant")],
        ["speed-up", exp.get("speedup")], ["latency fp32 at the table's speed (ms)", exp.get("latency_ms_fp32_scaled")],
        [f"latency {q} at the table's speed (ms)", exp.get("latency_ms_quant_scaled")],
        ["reference network now / at the table's build", (exp.get("reference") or {}).get("ratio")],
        ["ONNX vs PyTorch max abs diff", exp.get("max_abs_diff")], ["calibration images", exp.get("calib_images")],
        ["images evaluated", exp.get("n_eval")], ["opset", exp.get("opset")],
    ])
    return s


def _training(run: _Run, summary: dict) -> Section:
    s = Section("training", "Training the derived network")
    m = run.json("train/metrics.json")
    if not isinstance(m, dict):
        return s.not_run(run.why("train/metrics.json"))
    ml = m.get("task") == "multilabel"
    if m.get("history"):
        s.figure("training", figures.training_curves(m["history"]), f"Training loss and validation {'mAP' if ml else 'top-1'} per epoch")
    scores = ([["test mAP (%)", m.get("map")], ["test mAP, VOC07 11-point (%)", m.get("map_voc07")]] if ml
              else [["test top-1 (%)", m.get("top1")], ["test top-5 (%)", m.get("top5")]])
    s.table(["quantity", "value"], scores + [["epochs", m.get("epochs")], ["parameters", m.get("params")], ["test images", m.get("n_test")],
                                             ["training wall time (s)", m.get("wall_s")]])
    if ml and isinstance(m.get("ap"), dict):
        v07 = m.get("ap_voc07") or {}
        s.table(["class", "AP (%)", "AP, VOC07 11-point (%)"], [[c, a, v07.get(c)] for c, a in m["ap"].items()])
        s.p("AP is the area under the precision-recall curve (scikit-learn's average_precision_score); n/a: no positive test image. "
            "Images where a class appears only as difficult objects are left out of its AP, as in the VOC protocol.")
    return s


def _versions() -> list[list[str]]:
    from importlib import metadata

    rows = [["python", platform.python_version()]]
    for pkg in ("ednas", "torch", "torchvision", "timm", "onnx", "onnxruntime", "numpy", "scikit-learn", "matplotlib"):
        try:
            rows.append([pkg, metadata.version(pkg)])
        except metadata.PackageNotFoundError:
            rows.append([pkg, "not installed"])
    return rows


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _provenance(run: _Run, summary: dict) -> Section:
    s = Section("provenance", "Configuration and provenance")
    stages = summary.get("stages") if isinstance(summary.get("stages"), dict) else {}
    if stages:
        rows = []
        for name, st in stages.items():
            st = st if isinstance(st, dict) else {"wall_s": st}
            extra = ", ".join(f"{k}: {fmt(v)}" for k, v in st.items() if k != "wall_s" and not isinstance(v, (dict, list)))
            rows.append([name, st.get("wall_s"), extra])
        s.table(["stage", "wall time (s)", "details"], rows)
    arch_doc = run.yaml("search/arch.yaml")
    prov = (arch_doc or {}).get("provenance") if isinstance(arch_doc, dict) else None
    commit = summary.get("commit") or (prov or {}).get("commit") or git_commit()
    s.table(["what", "value"], [
        ["commit", commit or "unknown"], ["report written", _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")],
        ["machine", f"{platform.system()} {platform.machine()}, {_cpu()}, {os.cpu_count()} logical CPU(s)"], ["platform", platform.platform()],
        ["run directory", str(run.dir)],
    ])
    s.table(["package", "version"], _versions())
    cfg = run.text("config.yaml")
    if cfg:
        s.pre(cfg, "config.yaml (the run's resolved settings)")
    elif isinstance(summary.get("config"), dict):
        import yaml

        s.pre(yaml.safe_dump(summary["config"], sort_keys=False), "resolved settings (summary.json)")
    else:
        s.p("The run's resolved settings: config.yaml is missing.")
    for stage in ("lut", "search", "train", "export", "baselines"):
        t = run.text(f"{stage}/config.yaml")
        if t:
            s.pre(t, f"{stage}/config.yaml")
    if prov:
        import yaml

        s.pre(yaml.safe_dump(prov, sort_keys=False), "search provenance (search/arch.yaml)")
    return s


SECTIONS: list[Callable[[_Run, dict], Section | None]] = [_warning, _summary, _architecture, _accuracy, _search, _lut, _quant, _training,
                                                           _provenance, _keys]


# ---------------------------------------------------------------------------


def write_report(run_dir, summary: dict) -> tuple[Path, Path]:
    """Write ``run_dir/report.html`` and ``run_dir/report.md`` (figures in ``run_dir/report_files/``).

    Args:
        run_dir: the ``ednas run`` output directory (stage sub-folders, see
            the module docstring).
        summary: the run's summary (``summary.json``'s contents): at least
            ``data``, ``target``, ``budget_ms``, ``arch``, ``params``,
            ``macs``, ``top1``, ``top1_int8``, ``latency_ms_predicted``,
            ``latency_ms_measured``, ``onnx_max_abs_diff``, ``wall_s``,
            ``stages``; missing keys show as ``n/a``.

    Returns:
        ``(html_path, md_path)``.  A missing stage makes a "not run"
        section; a section that fails to render says so and the rest is
        still written.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = dict(summary or {})
    run = _Run(run_dir)
    sections = []
    for build in SECTIONS:
        try:
            sec = build(run, summary)
            if sec is not None:  # a section with nothing to say (no warning) is left out
                sections.append(sec)
        except Exception as e:  # noqa: BLE001 - the report is the last stage; one bad file must not lose the rest
            name = build.__name__.strip("_")
            sections.append(Section(name, name.capitalize()).not_run(f"this section could not be rendered ({type(e).__name__}: {str(e)[:200]})"))
    try:
        card = _card(run, summary)
    except Exception as e:  # noqa: BLE001 - as for a section: say so, write the rest
        card = Card(f"data {fmt(summary.get('data'))}, target {fmt(summary.get('target'))}", "error",
                    f"The summary card could not be rendered ({type(e).__name__}: {str(e)[:200]}); the sections below have the figures.",
                    "", [], [], [], summary.get("arch") if isinstance(summary.get("arch"), str) else None)
    title = f"ednas run report: {run_dir.name}"
    files = run_dir / "report_files"
    files.mkdir(exist_ok=True)
    for old in files.glob("*.png"):  # a figure not drawn this time must not linger
        old.unlink()
    for s in sections:
        for name, png, _ in s.figures:
            atomic_write_bytes(files / f"{name}.png", png)
    html_path = atomic_write_text(run_dir / "report.html", _html(_card_html(card), sections, title))
    md_path = atomic_write_text(run_dir / "report.md", _markdown(_card_markdown(card), sections, title, files.name))
    return html_path, md_path
