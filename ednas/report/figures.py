"""The report's figures, each drawn from plain data and returned as PNG bytes.

One function per figure; none reads files (``report.py`` does) and none
knows about HTML.  Everything uses matplotlib's Agg backend, so no display is
needed.  The figures:

* :func:`network_diagram`: the derived network, one box per layer; box width
  and colour by kernel size, skipped layers dashed, layers the budget fit
  changed outlined in red, and (when the latency table is there) each layer's
  predicted latency as a bar underneath;
* :func:`alpha_heatmap`: the probability of every candidate of every choice
  per search epoch (alpha over time);
* :func:`search_curves`: CE, E[LAT] with the budget, lambda, tau and the
  argmax network's validation top-1 per epoch;
* :func:`accuracy_latency`: top-1 against latency, derived network beside
  the baselines (every network in the precision the budget is for, and the
  derived network's other precision as a second, labelled point; the axis
  label says which and how it was measured), with the budget line, the Pareto front (:func:`pareto_front`)
  and labels placed where they overlap nothing (:func:`place_labels`);
* :func:`lut_scatter`: the table's predictions against end-to-end measurements;
* :func:`quant_bars`: fp32 against int8 top-1 and latency;
* :func:`deployed_latency`: fp32 and quantized latency side by side with
  the budget line, marked with the precision the budget is for;
* :func:`training_curves`: the derived network's training loss and
  validation top-1.
"""

from __future__ import annotations

import functools
import io
import math
from collections import OrderedDict
from typing import Callable, Sequence

__all__ = [
    "KERNEL_COLOURS",
    "accuracy_latency",
    "alpha_heatmap",
    "deployed_latency",
    "lut_scatter",
    "network_diagram",
    "pareto_front",
    "place_labels",
    "quant_bars",
    "search_curves",
    "training_curves",
]

#: one colour per depthwise kernel size, shared by the diagram and its legend
KERNEL_COLOURS = {1: "#d9d9d9", 3: "#9ecae1", 5: "#4292c6", 7: "#08519c", 9: "#08306b", 11: "#7f2704", 13: "#a63603", 15: "#d94801", 17: "#f16913"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: figures already drawn in this process, by function and arguments (:func:`_drawn`); at most :data:`DRAWN_KEPT`
_DRAWN: "OrderedDict[str, bytes]" = OrderedDict()
DRAWN_KEPT = 32


def _drawn(fn: Callable[..., bytes]) -> Callable[..., bytes]:
    """``fn`` drawn once per distinct arguments in a process.

    ``ednas run`` writes its report twice (the second time with the report's
    own time in it), and no figure depends on the stage times: the second
    write reuses the PNG bytes (about 2 s of matplotlib).  The key is the
    arguments' ``repr`` (plain lists, dicts and numbers; a float's ``repr`` is
    exact), so different data always draws again.
    """

    @functools.wraps(fn)
    def draw(*args, **kwargs) -> bytes:
        key = f"{fn.__name__}{args!r}{sorted(kwargs.items())!r}"
        png = _DRAWN.get(key)
        if png is None:
            png = _DRAWN[key] = fn(*args, **kwargs)
            while len(_DRAWN) > DRAWN_KEPT:
                _DRAWN.popitem(last=False)
        return png

    return draw


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    _plt().close(fig)
    return buf.getvalue()


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---------------------------------------------------------------------------


@_drawn
def network_diagram(stem_kernel: int, layers: Sequence[dict], head: str = "head", layer_ms: Sequence[float | None] | None = None, fixed_ms: dict | None = None) -> bytes:
    """The derived network drawn as a row of boxes.

    Args:
        stem_kernel: the stem's depthwise kernel.
        layers: one dict per searchable layer (``arch.yaml``'s ``layers``):
            ``kernel``, ``expansion``, ``skip``, ``stride``, ``cout``,
            ``changed_by_fit`` (and ``fit_from`` for the annotation).
        head: the head's label.
        layer_ms: predicted ms per layer (``None`` where unknown), drawn as bars.
        fixed_ms: ``{"stem": ms, "head": ms}`` for the bars of the fixed parts.
    """
    plt = _plt()
    from matplotlib.patches import Patch, Rectangle

    n = len(layers) + 2
    has_ms = layer_ms is not None and any(_finite(v) for v in layer_ms)
    fig, axes = plt.subplots(2 if has_ms else 1, 1, figsize=(max(8.0, 0.75 * n + 1.5), 4.6 if has_ms else 3.0), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 2]} if has_ms else None)
    ax = axes[0][0]
    kmax = max([stem_kernel] + [int(l.get("kernel") or 3) for l in layers])
    labels = []

    def box(x, k, text, skip=False, changed=False, colour=None):
        w = 0.3 + 0.6 * (k / kmax)  # width grows with the kernel
        h = w
        face = "white" if skip else (colour or KERNEL_COLOURS.get(k, "#6baed6"))
        ax.add_patch(Rectangle((x - w / 2, 0.5 - h / 2), w, h, facecolor=face, edgecolor="red" if changed else ("0.5" if skip else "black"),
                               linewidth=2.2 if changed else 1.0, linestyle="--" if skip else "-"))
        ax.text(x, 0.5, text, ha="center", va="center", fontsize=7, color="black" if skip or k <= 3 else "white")

    box(0, stem_kernel, f"stem\n{stem_kernel}x{stem_kernel}")
    labels.append("stem")
    for i, l in enumerate(layers, start=1):
        k = int(l.get("kernel") or 3)
        skip = bool(l.get("skip"))
        changed = bool(l.get("changed_by_fit"))
        text = "skip" if skip else f"{k}x{k}\ne{l.get('expansion', '')}"
        box(i, k, text, skip, changed)
        sub = f"L{l.get('index', i - 1)}"
        if l.get("stride", 1) != 1:
            sub += f" s{l['stride']}"
        ax.text(i, -0.02, f"{sub}\nc{l.get('cout', '')}", ha="center", va="top", fontsize=6.5)
        if changed and l.get("fit_from") is not None:
            ax.text(i, 1.03, f"fit {l['fit_from']}", ha="center", va="bottom", fontsize=6.5, color="red")
        labels.append(sub)
    ax.add_patch(Rectangle((n - 1 - 0.35, 0.15), 0.7, 0.7, facecolor="0.85", edgecolor="black"))
    ax.text(n - 1, 0.5, head, ha="center", va="center", fontsize=7)
    labels.append("head")
    ax.set_xlim(-0.7, n - 0.3)
    ax.set_ylim(-0.35, 1.2)
    ax.axis("off")
    ks = sorted({int(l.get("kernel") or 3) for l in layers if not l.get("skip")} | {stem_kernel})
    handles = [Patch(facecolor=KERNEL_COLOURS.get(k, "#6baed6"), edgecolor="black", label=f"{k}x{k}") for k in ks]
    handles.append(Patch(facecolor="white", edgecolor="0.5", linestyle="--", label="skipped"))
    handles.append(Patch(facecolor="white", edgecolor="red", linewidth=2, label="changed by the budget fit"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(handles), fontsize=7, frameon=False)
    ax.set_title("Chosen kernel per layer (box size and colour: kernel)", fontsize=10)
    if has_ms:
        bx = axes[1][0]
        vals = [(fixed_ms or {}).get("stem")] + list(layer_ms) + [(fixed_ms or {}).get("head")]
        xs = list(range(n))
        bx.bar(xs, [v if _finite(v) else 0 for v in vals], color="tab:orange", width=0.6)
        bx.set_xticks(xs)
        bx.set_xticklabels(labels, fontsize=6.5, rotation=0)
        bx.set_xlim(-0.7, n - 0.3)
        bx.set_ylabel("predicted ms", fontsize=8)
        bx.tick_params(axis="y", labelsize=7)
        bx.set_title("Predicted latency per layer (latency table, eq. 11)", fontsize=9)
    fig.tight_layout()
    return _png(fig)


@_drawn
def alpha_heatmap(names: Sequence[str], candidates: dict, epochs: Sequence[dict]) -> bytes:
    """Probability of every candidate of every choice (rows) per epoch (columns).

    Args:
        names: the choices in order (``L3.kernel``, ...).
        candidates: choice name -> candidate labels.
        epochs: per epoch, choice name -> probabilities.
    """
    plt = _plt()
    import numpy as np

    rows, labels, bounds = [], [], []
    for name in names:
        cands = candidates.get(name) or [str(i) for i in range(len(epochs[0].get(name, [])))]
        for ci, c in enumerate(cands):
            rows.append([float(e.get(name, [math.nan] * len(cands))[ci]) for e in epochs])
            labels.append(f"{name} = {c}")
        bounds.append(len(rows))
    data = np.array(rows) if rows else np.zeros((1, max(len(epochs), 1)))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * data.shape[1] + 4), max(3.0, 0.17 * data.shape[0] + 1.2)))
    im = ax.imshow(data, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=6)
    step = max(1, data.shape[1] // 15)
    ax.set_xticks(range(0, data.shape[1], step))
    ax.set_xticklabels([str(i + 1) for i in range(0, data.shape[1], step)], fontsize=7)
    ax.set_xlabel("search epoch", fontsize=8)
    for b in bounds[:-1]:
        ax.axhline(b - 0.5, color="white", lw=0.8)
    cb = fig.colorbar(im, ax=ax, fraction=0.04)
    cb.set_label("probability softmax(alpha)", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    ax.set_title("Architecture probabilities over the search", fontsize=10)
    fig.tight_layout()
    return _png(fig)


@_drawn
def search_curves(history: Sequence[dict], budget_ms: float | None = None) -> bytes:
    """CE, E[LAT], lambda, tau and validation top-1 per search epoch."""
    plt = _plt()

    ep = [h.get("epoch", i + 1) for i, h in enumerate(history)]

    def series(key):
        return [h.get(key) if _finite(h.get(key)) else math.nan for h in history]

    fig, axes = plt.subplots(1, 5, figsize=(15, 3.0))
    ax = axes[0]
    ax.plot(ep, series("ce_weight"), marker="o", ms=3, label="CE, weight split")
    ax.plot(ep, series("ce_arch"), marker="s", ms=3, label="CE, arch split")
    ax.set_title("cross-entropy", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(ep, series("E_lat_ms"), marker="o", ms=3, label="E[LAT] (softmax)")
    ax.plot(ep, series("argmax_lat_ms"), marker="s", ms=3, label="argmax network")
    if _finite(budget_ms):
        ax.axhline(budget_ms, color="red", ls="--", lw=1, label="budget")
    ax.set_title("latency (ms)", fontsize=9)
    ax.legend(fontsize=7)
    axes[2].plot(ep, series("lam"), marker="o", ms=3, color="tab:purple")
    axes[2].set_title("lambda", fontsize=9)
    axes[3].plot(ep, series("tau"), marker="o", ms=3, color="tab:green")
    axes[3].set_title("tau (Gumbel temperature)", fontsize=9)
    mapped = any(_finite(h.get("val_map")) for h in history)  # multi-label data: mAP instead of top-1
    axes[4].plot(ep, series("val_map" if mapped else "val_top1"), marker="o", ms=3, color="tab:brown")
    axes[4].set_title(f"val {'mAP' if mapped else 'top-1'} of the argmax net (%)", fontsize=9)
    from matplotlib.ticker import MaxNLocator

    for a in axes:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.set_xlabel("epoch", fontsize=8)
        a.tick_params(labelsize=7)
        a.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def pareto_front(points: Sequence[dict]) -> list[int]:
    """Indices of the points no other point beats: lower ``latency_ms`` with ``top1`` at least as high.

    Points without both numbers are left out; the front is returned from the
    fastest to the slowest point (its top-1 rises along it).
    """
    have = [i for i, p in enumerate(points) if _finite(p.get("latency_ms")) and _finite(p.get("top1"))]
    have.sort(key=lambda i: (points[i]["latency_ms"], -points[i]["top1"]))
    front, best = [], -math.inf
    for i in have:
        if points[i]["top1"] > best:
            front.append(i)
            best = points[i]["top1"]
    return front


def place_labels(ax, xy: Sequence[tuple[float, float]], labels: Sequence[str], fontsize: float = 7.0, pad_px: float = 2.0) -> list:
    """Annotate every point with its label where the label overlaps no other label, no marker and stays inside the axes.

    Greedy: points are labelled from the top left, each at the first free spot
    of rings of positions around it (right, left, diagonals, above, below,
    then further out with a leader line); the legend and texts already in
    the axes count as taken.  A label that finds no free spot
    takes the first position (it will overlap).  Call it after everything
    that sets the axis limits has been drawn.

    Returns:
        The display-space bounding box of every label, in ``labels`` order.
    """
    import numpy as np
    from matplotlib.transforms import Bbox

    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax.set_xlim(ax.get_xlim())  # freeze the limits: the annotations must not move the points
    ax.set_ylim(ax.get_ylim())
    axbox = ax.get_window_extent(renderer)
    pts = ax.transData.transform(np.asarray(xy, dtype=float).reshape(-1, 2)) if len(xy) else np.zeros((0, 2))
    px_per_pt = fig.dpi / 72.0
    taken = [Bbox.from_bounds(x - 4 * px_per_pt, y - 4 * px_per_pt, 8 * px_per_pt, 8 * px_per_pt) for x, y in pts]
    taken += [a.get_window_extent(renderer) for a in [ax.get_legend(), *ax.texts] if a is not None]  # legend, budget text
    sizes = []
    for text in labels:
        t = ax.text(0, 0, text, fontsize=fontsize)
        bb = t.get_window_extent(renderer)
        sizes.append((bb.width + 2 * pad_px, bb.height + 2 * pad_px))
        t.remove()
    # directions in offset points: right, left, up-right, down-right, up-left, down-left, up, down
    directions = [(1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1), (0, 1.4), (0, -1.4)]
    order = sorted(range(len(labels)), key=lambda i: (-pts[i][1], pts[i][0]))
    boxes: list = [None] * len(labels)
    for i in order:
        (x, y), (w, h) = pts[i], sizes[i]
        chosen = None
        for ring in range(1, 9):
            r = 6.0 * ring
            for dx, dy in directions:
                ox, oy = dx * r * px_per_pt, dy * r * px_per_pt
                x0 = x + ox if dx > 0 else (x + ox - w if dx < 0 else x - w / 2)
                y0 = y + oy - h / 2
                bb = Bbox.from_bounds(x0, y0, w, h)
                inside = axbox.x0 <= bb.x0 and bb.x1 <= axbox.x1 and axbox.y0 <= bb.y0 and bb.y1 <= axbox.y1
                if inside and not any(bb.overlaps(o) for o in taken):
                    chosen = (bb, dx, dx * r, dy * r, ring)
                    break
            if chosen:
                break
        if chosen is None:
            bb = Bbox.from_bounds(x + 6 * px_per_pt, y - h / 2, w, h)
            chosen = (bb, 1, 6.0, 0.0, 1)
        bb, dx, ox, oy, ring = chosen
        ha = "left" if dx > 0 else ("right" if dx < 0 else "center")
        ax.annotate(labels[i], xy[i], xytext=(ox + (pad_px / px_per_pt) * (1 if dx > 0 else -1 if dx < 0 else 0), oy),
                    textcoords="offset points", ha=ha, va="center", fontsize=fontsize,
                    arrowprops=dict(arrowstyle="-", lw=0.5, color="0.5", shrinkA=0, shrinkB=3) if ring > 1 else None)
        taken.append(bb)
        boxes[i] = bb
    return boxes


_KIND_STYLE = {"derived": dict(marker="*", s=220, color="red", zorder=5),
               "derived-other": dict(marker="*", s=150, facecolor="white", edgecolor="red", zorder=5),
               "int8": dict(marker="*", s=150, facecolor="white", edgecolor="red", zorder=5),
               "baseline": dict(marker="o", s=50, color="tab:blue", zorder=4)}

#: kinds in another precision than the rest of the figure: drawn, but not on the Pareto front
_OTHER_PRECISION = ("derived-other", "int8")


@_drawn
def accuracy_latency(points: Sequence[dict], budget_ms: float | None = None, xlabel: str = "latency (ms)", ylabel: str = "test top-1 (%)",
                     title: str = "Accuracy against latency", budgets: Sequence[float] = ()) -> bytes:
    """Accuracy (top-1, or mAP on multi-label data) against latency, with the Pareto front and labels that do not overlap.

    Args:
        points: ``{"label", "latency_ms", "top1", "kind"}``; kind ``derived``
            (the derived network in the precision the budget is for: a filled
            star), ``derived-other`` (its other precision: a hollow star;
            ``int8`` is the same), and ``baseline`` have fixed styles, any other kind gets
            a colour of its own and a legend entry; points without both
            numbers are left out (``top1`` holds whichever score ``ylabel`` names).
            The Pareto front is drawn among the points in the figure's
            precision (``derived-other`` and ``int8`` points are left out of it).
        budget_ms: drawn as a vertical line.
        xlabel: the x axis label (the target, the precision every point is in and how it was measured).
        title: the figure's title.
        budgets: more budgets, drawn as lighter vertical lines.
    """
    plt = _plt()

    pts = [p for p in points if _finite(p.get("latency_ms")) and _finite(p.get("top1"))]
    fig, ax = plt.subplots(figsize=(8, 5))
    cycle = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["tab:blue"])
    other: dict[str, dict] = {}
    for p in pts:
        kind = p.get("kind", "baseline")
        style = _KIND_STYLE.get(kind)
        if style is None:
            if kind not in other:
                other[kind] = dict(marker="osD^v<>ph"[len(other) % 9], s=45, color=cycle[(len(other) + 1) % len(cycle)], zorder=4, label=kind)
            style = dict(other[kind])
            if any(q is not p and q.get("kind") == kind for q in pts[: pts.index(p)]):
                style.pop("label")
        ax.scatter([p["latency_ms"]], [p["top1"]], **style)
    same = [p for p in pts if p.get("kind") not in _OTHER_PRECISION]  # the front is drawn among networks in one precision
    front = pareto_front(same)
    if len(front) > 1:
        ax.step([same[i]["latency_ms"] for i in front], [same[i]["top1"] for i in front], where="post", color="0.4", lw=1, ls=":",
                zorder=2, label="Pareto front")
    for b in budgets:
        if _finite(b):
            ax.axvline(b, color="red", ls=":", lw=0.8, alpha=0.5)
    if _finite(budget_ms):
        ax.axvline(budget_ms, color="red", ls="--", lw=1)
        ax.text(budget_ms, ax.get_ylim()[0], " budget", color="red", fontsize=7, va="bottom")
    ax.margins(x=0.12, y=0.12)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    if len(other) > 4:  # many kinds: the legend beside the axes, where it hides no point
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    elif other or len(front) > 1:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    place_labels(ax, [(p["latency_ms"], p["top1"]) for p in pts], [str(p.get("label", "")) for p in pts])
    return _png(fig)


@_drawn
def lut_scatter(pairs: Sequence[dict], mape: float | None, spearman: float | None, derived: tuple[float, float] | None = None) -> bytes:
    """Predicted (table) against measured (end to end) ms; ``derived`` = (measured, predicted)."""
    plt = _plt()

    pred = [p["predicted_ms"] for p in pairs if _finite(p.get("predicted_ms")) and _finite(p.get("measured_ms"))]
    meas = [p["measured_ms"] for p in pairs if _finite(p.get("predicted_ms")) and _finite(p.get("measured_ms"))]
    fig, ax = plt.subplots(figsize=(5, 5))
    allv = pred + meas + (list(derived) if derived and all(_finite(v) for v in derived) else [])
    lo, hi = (min(allv), max(allv)) if allv else (0.0, 1.0)
    pad = (hi - lo) * 0.05 or max(hi, 1e-3) * 0.05
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", lw=1, label="y = x")
    ax.scatter(meas, pred, s=16, color="tab:blue", label=f"{len(pred)} sampled networks")
    if derived and all(_finite(v) for v in derived):
        ax.scatter([derived[0]], [derived[1]], marker="*", s=180, color="red", label="derived network", zorder=5)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("measured end to end (ms)", fontsize=9)
    ax.set_ylabel("predicted by the table (ms)", fontsize=9)
    t = "Latency table: predicted vs measured"
    if _finite(mape) and _finite(spearman):
        t += f"\nMAPE {mape:.3g} %, Spearman {spearman:.3g}"
    ax.set_title(t, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


@_drawn
def quant_bars(top1: tuple[float | None, float | None], latency: tuple[float | None, float | None], quant_label: str = "int8",
               score_label: str = "test top-1 (%)") -> bytes:
    """Two panels: test top-1 (or mAP, ``score_label``) and latency, fp32 beside the quantized model."""
    plt = _plt()

    fig, axes = plt.subplots(1, 2, figsize=(7, 3))
    for ax, vals, title in ((axes[0], top1, score_label), (axes[1], latency, "latency (ms)")):
        xs = ["fp32", quant_label]
        ys = [v if _finite(v) else 0.0 for v in vals]
        bars = ax.bar(xs, ys, color=["tab:blue", "tab:orange"], width=0.55)
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{v:.4g}" if _finite(v) else "n/a", ha="center", va="bottom", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.margins(y=0.15)
    fig.suptitle("ONNX Runtime: fp32 against the quantized model", fontsize=10)
    fig.tight_layout()
    return _png(fig)


@_drawn
def training_curves(history: Sequence[dict]) -> bytes:
    """Training loss and validation top-1 (mAP on multi-label data) per epoch of the derived network."""
    plt = _plt()

    ep = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(ep, [h.get("train_loss", math.nan) for h in history], marker="o", ms=3, color="tab:blue", label="train loss")
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylabel("train loss", fontsize=8, color="tab:blue")
    bx = ax.twinx()
    key, name = ("val_map", "val mAP") if any(_finite(h.get("val_map")) for h in history) else ("val_top1", "val top-1")
    bx.plot(ep, [h.get(key) if _finite(h.get(key)) else math.nan for h in history], marker="s", ms=3, color="tab:red", label=name)
    bx.set_ylabel(f"{name} (%)", fontsize=8, color="tab:red")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Training the derived network", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


@_drawn
def deployed_latency(bars: Sequence[dict], budget_ms: float | None, budget_label: str = "budget", tolerance: float = 1.05) -> bytes:
    """Measured latency of each deployed file side by side, the budget line and its tolerance.

    Args:
        bars: ``{"label", "ms", "predicted_ms" (or None), "budget": bool}``
            per file; the one the budget is for is drawn with a thick edge
            and, when given, its predicted latency as a black tick.
        budget_ms: the budget (dashed line); ``tolerance`` x budget dotted.
    """
    plt = _plt()

    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    xs = [b["label"] for b in bars]
    ys = [b["ms"] if _finite(b.get("ms")) else 0.0 for b in bars]
    colours = ["tab:blue" if "fp32" in b["label"] else "tab:orange" for b in bars]
    drawn = ax.bar(xs, ys, color=colours, width=0.55, edgecolor="black", linewidth=[2.0 if b.get("budget") else 0.0 for b in bars])
    for rect, b in zip(drawn, bars):
        v = b.get("ms")
        ax.text(rect.get_x() + rect.get_width() / 2, rect.get_height(), f"{v:.4g} ms" if _finite(v) else "n/a", ha="center", va="bottom", fontsize=8)
        if _finite(b.get("predicted_ms")):
            cx = rect.get_x() + rect.get_width() / 2
            ax.plot([cx - rect.get_width() / 2, cx + rect.get_width() / 2], [b["predicted_ms"]] * 2, color="black", lw=2)
            ax.text(rect.get_x() + rect.get_width(), b["predicted_ms"], " predicted", va="center", fontsize=7)
    if _finite(budget_ms):
        ax.axhline(budget_ms, color="tab:red", ls="--", lw=1.2, label=f"{budget_label} {budget_ms:.4g} ms")
        ax.axhline(tolerance * budget_ms, color="tab:red", ls=":", lw=1.0, label=f"{tolerance:g} x budget")
        ax.legend(fontsize=7, loc="upper left")
    ax.set_ylabel("latency (ms)", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.margins(y=0.2)
    ax.set_title("Deployed files on this host (outlined: the one the budget is for)", fontsize=9)
    fig.tight_layout()
    return _png(fig)
