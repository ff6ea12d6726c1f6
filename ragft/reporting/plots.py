"""The report's figures, from plain data (no pipeline files read here), as PNG bytes.

matplotlib's object-oriented API (``Figure`` without pyplot, as matplotlib documents for web servers):
no global figure state, no GUI backend. PNGs are written without the "Software" metadata matplotlib
adds by default, so the same data gives the same bytes. Fractions in [0, 1] are shown as percentages.
Arms are named ``<model>-<context>`` (ragft.arms).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from ragft.arms import CONTEXTS, MODELS, Arm, contexts_of, models_of, ordered

# Colour encodes the context, marker the model (colour-blind safe, Okabe-Ito), in every figure; names
# and order come from the experiment's vocabulary (ragft.arms), unknown ones get the extras in turn.
CONTEXT_COLOURS = dict(zip(CONTEXTS, ("#999999", "#0072B2", "#009E73", "#E69F00", "#CC79A7")))
EXTRA_COLOURS = ("#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")
MODEL_MARKERS = dict(zip(MODELS, ("o", "s", "^")))
MODEL_COLOURS = dict(zip(MODELS, ("#000000", "#CC79A7", "#D55E00")))  # lines per model (loss curves)
EXTRA_MARKERS = ("D", "v", "P", "X", "*")
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.axisbelow": True,
}
DPI = 110


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _colour(context: str, contexts: Sequence[str]) -> str:
    if context in CONTEXT_COLOURS:
        return CONTEXT_COLOURS[context]
    extra = [c for c in contexts if c not in CONTEXT_COLOURS]
    return EXTRA_COLOURS[extra.index(context) % len(EXTRA_COLOURS)] if context in extra else "#000000"


def _marker(model: str, models: Sequence[str]) -> str:
    if model in MODEL_MARKERS:
        return MODEL_MARKERS[model]
    extra = [m for m in models if m not in MODEL_MARKERS]
    return EXTRA_MARKERS[extra.index(model) % len(EXTRA_MARKERS)] if model in extra else "o"


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def to_png(fig) -> bytes:
    """The figure as PNG bytes, without metadata that would differ between matplotlib versions/runs."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def render(make, *args, **kwargs) -> bytes | None:
    """``make(*args)`` under the report's style, as PNG bytes (None when it has nothing to draw)."""
    import matplotlib

    with matplotlib.rc_context(STYLE):
        fig = make(*args, **kwargs)
        return None if fig is None else to_png(fig)


# --------------------------------------------------------------------------- figures


def metric_bars(arms: dict[str, dict], metrics: Sequence[tuple[str, str]], title: str = "", confidence: float = 0.95):
    """One panel per metric: models on the x axis, one bar per context, the CI (``<metric>_ci``) as
    error bars. ``metrics``: (key, label) pairs; panels where no arm has the metric are dropped."""
    metrics = [(k, lab) for k, lab in metrics if any(not _nan(m.get(k)) for m in arms.values())]
    if not metrics or not arms:
        return None
    models, contexts = models_of(arms), contexts_of(arms)
    fig = _figure(min(4.2 * len(metrics), 11), 3.4)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    width = 0.8 / len(contexts)
    for ax, (key, label) in zip(axes, metrics):
        for j, ctx in enumerate(contexts):
            xs, ys, lo, hi = [], [], [], []
            for i, model in enumerate(models):
                m = arms.get(Arm(model, ctx).name)
                if m is None or _nan(m.get(key)):
                    continue
                v = 100 * m[key]
                ci = m.get(f"{key}_ci")
                has_ci = isinstance(ci, (list, tuple)) and len(ci) == 2 and not any(_nan(c) for c in ci)
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(v)
                lo.append(max(0.0, v - 100 * ci[0]) if has_ci else 0.0)
                hi.append(max(0.0, 100 * ci[1] - v) if has_ci else 0.0)
            if xs:
                ax.bar(
                    xs,
                    ys,
                    width * 0.92,
                    color=_colour(ctx, contexts),
                    label=ctx,
                    yerr=[lo, hi],
                    error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "#333333"},
                )
        ax.set_xticks(range(len(models)), models)
        ax.set_ylim(0, 105)
        ax.set_ylabel(f"{label} (%)")
        ax.set_title(label)
        ax.grid(axis="x", visible=False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="context", loc="outside right upper", frameon=False)
    if title:
        fig.suptitle(title + f" — error bars: {100 * confidence:g}% CI (clustered)")
    return fig


def effects_forest(rows: Sequence[dict], confidence: float = 0.95, metric: str = "EM"):
    """The factorial effects (the report model's effect rows: model, label, estimate, CI, significant) in
    points of ``metric``, one row each; filled markers where the CI excludes 0."""
    if not rows:
        return None
    models = ordered([r["model"] for r in rows], MODELS)
    fig = _figure(8.5, 0.9 + 0.32 * len(rows))
    ax = fig.subplots()
    for y, e in enumerate(rows):
        model = e["model"]
        est = 100 * e["estimate"]
        lo, hi = e.get("ci_low"), e.get("ci_high")
        colour = "#0072B2" if e.get("significant") else "#999999"
        if not (_nan(lo) or _nan(hi)):
            ax.plot([100 * lo, 100 * hi], [y, y], color=colour, linewidth=2, solid_capstyle="butt")
        ax.plot(
            [est],
            [y],
            marker=_marker(model, models),
            markersize=7,
            color=colour,
            markerfacecolor=colour if e.get("significant") else "white",
        )
    ax.axvline(0, color="#333333", linewidth=0.8)
    lo, hi = ax.get_xlim()
    ax.set_xlim(min(lo, -5.0), max(hi, 5.0))  # all-zero effects would otherwise get a ±0.05-point axis
    for y in range(1, len(rows)):
        if rows[y]["model"] != rows[y - 1]["model"]:  # a rule between models
            ax.axhline(y - 0.5, color="#cccccc", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [f"{e['model']}: {e['label']}" for e in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric} points (estimate and {100 * confidence:g}% paired clustered CI; filled/blue: CI excludes 0)")
    ax.grid(axis="y", visible=False)
    return fig


def recall_curve(points: Sequence[tuple[float, float]], extra: dict[str, Sequence[tuple[float, float]]] | None = None):
    """recall@k against k (and any ``extra`` curves, e.g. nDCG@k)."""
    if not points:
        return None
    fig = _figure(5.2, 3.2)
    ax = fig.subplots()
    curves = {"recall@k": points, **(extra or {})}
    for (name, pts), marker, style in zip(curves.items(), ("o", "s", "^", "D"), ("-", "--", ":", "-.")):
        pts = sorted(pts)
        ax.plot([k for k, _ in pts], [100 * v for _, v in pts], marker=marker, linestyle=style, label=name)
    ks = sorted({k for pts in curves.values() for k, _ in pts})
    ax.set_xscale("log" if ks[-1] / max(ks[0], 1) > 20 else "linear")
    ax.set_xticks(ks, [str(int(k)) if float(k).is_integer() else str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("k (chunks retrieved)")
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.legend(frameon=False, loc="lower right")
    return fig


def attribute_heatmap(
    attributes: Sequence[str], arms: Sequence[str], em: Sequence[Sequence[float]], counts: Sequence[int],
    metric: str = "EM",
):
    """``metric`` (%) per question attribute (rows) and arm (columns), each cell annotated."""
    if not attributes or not arms:
        return None
    import numpy as np

    data = np.array([[math.nan if _nan(v) else 100 * v for v in row] for row in em], dtype=float)
    fig = _figure(max(4.5, 1.5 + 0.75 * len(arms)), 1.2 + 0.32 * len(attributes))
    ax = fig.subplots()
    image = ax.imshow(data, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for i in range(len(attributes)):
        for j in range(len(arms)):
            v = data[i, j]
            ax.text(
                j,
                i,
                "–" if math.isnan(v) else f"{v:.0f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if not math.isnan(v) and v > 60 else "white",
            )
    ax.set_xticks(range(len(arms)), arms, rotation=35, ha="right")
    ax.set_yticks(range(len(attributes)), [f"{a} (n={n})" for a, n in zip(attributes, counts)])
    ax.grid(False)
    fig.colorbar(image, ax=ax, label=f"{metric} (%)", shrink=0.8)
    return fig


def loss_curves(curves: dict[str, Sequence[tuple[float, float]]],
                validation: dict[str, Sequence[tuple[float, float]]] | None = None):
    """Training loss against step, one line per fine-tuned model; with finetune.validation, its held-out
    loss as a dashed line in the same colour."""
    curves = {m: sorted(p) for m, p in curves.items() if p}
    if not curves:
        return None
    models = ordered(list(curves), MODELS)
    fig = _figure(5.6, 3.2)
    ax = fig.subplots()
    for m in models:
        pts = curves[m]
        ax.plot(
            [s for s, _ in pts],
            [v for _, v in pts],
            label=m,
            marker=_marker(m, models),
            markersize=3,
            color=MODEL_COLOURS.get(m),
            markevery=max(1, len(pts) // 12),
        )
        held = sorted((validation or {}).get(m) or [])
        if held:
            ax.plot([s for s, _ in held], [v for _, v in held], linestyle="--", color=MODEL_COLOURS.get(m),
                    label=f"{m} (validation)")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss (dashed: validation)" if validation and any(validation.values()) else "training loss")
    ax.legend(frameon=False, title="model")
    return fig


def cost_quality(points: Sequence[dict], metric: str = "EM"):
    """The primary metric against mean prompt tokens and against latency per question, one point per arm
    (``points``: {arm, score, prompt_tokens, latency})."""
    panels = [
        (k, lab)
        for k, lab in (("prompt_tokens", "mean prompt tokens per question"), ("latency", "latency per question (ms)"))
        if any(not _nan(p.get(k)) for p in points)
    ]
    points = [p for p in points if not _nan(p.get("score"))]
    if not panels or not points:
        return None
    models, contexts = models_of(p["arm"] for p in points), contexts_of(p["arm"] for p in points)
    fig = _figure(4.4 * len(panels) + 1.6, 3.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, label) in zip(axes, panels):
        for p in points:
            if _nan(p.get(key)):
                continue
            model, ctx = Arm.parse(p["arm"]).model, Arm.parse(p["arm"]).context
            x = 1000 * p[key] if key == "latency" else p[key]
            ax.scatter(
                [x],
                [100 * p["score"]],
                s=45,
                color=_colour(ctx, contexts),
                marker=_marker(model, models),
                edgecolors="#333333",
                linewidths=0.5,
                zorder=3,
            )
        ax.set_xlabel(label)
        ax.set_ylabel(f"{metric} (%)")
        ax.set_ylim(-3, 105)
        ax.margins(x=0.15)
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], linestyle="", marker="s", markersize=7, color=_colour(c, contexts), label=c) for c in contexts
    ]
    handles += [
        Line2D(
            [],
            [],
            linestyle="",
            marker=_marker(m, models),
            markersize=6,
            color="#333333",
            markerfacecolor="white",
            label=m,
        )
        for m in models
    ]
    fig.legend(handles=handles, loc="outside right upper", frameon=False, title="context / model")
    return fig


def grouped_bars(categories: Sequence[str], series: Sequence[tuple[str, Sequence[float], Sequence[Sequence[float]]]],
                 ylabel: str, title: str = ""):
    """One group of bars per category (an arm), one bar per series (an experiment or a setting), each with
    its error bars ([below, above] per category): the comparison across experiments."""
    if not categories or not series:
        return None
    import numpy as np

    x = np.arange(len(categories))
    width = 0.8 / len(series)
    fig = _figure(max(6.0, 0.9 * len(categories) * max(1.0, len(series) / 2) + 2), 4.5)
    ax = fig.subplots()
    for i, (label, heights, err) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, heights, width, yerr=err, capsize=2, label=label)
    ax.set_xticks(x, categories, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 105)
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", ncol=min(len(series), 3))
    return fig


ROBUSTNESS_COLOURS = {"top_k": "#0072B2", "shuffled": "#56B4E9", "gold": "#009E73", "random": "#F0E442",
                      "hard": "#E69F00", "no_gold": "#D55E00"}
ROBUSTNESS_GROUPS = {"top_k": "retrieved top k", "shuffled": "top k, shuffled", "gold": "gold only",
                     "random": "gold + random distractors", "hard": "gold + hard distractors",
                     "no_gold": "retrieved, gold removed"}


def robustness_bars(model: str, conditions: Sequence[dict], by_condition: dict[str, dict], metric: str = "EM",
                    confidence: float = 0.95):
    """One model's primary metric in each robustness condition (bars coloured by kind, with CIs)."""
    shown = [c for c in conditions if c["name"] in by_condition and not _nan(by_condition[c["name"]]["estimate"])]
    if not shown:
        return None
    fig = _figure(max(6.5, 0.45 * len(shown) + 2.5), 3.6)
    ax = fig.subplots()
    seen = set()
    for i, c in enumerate(shown):
        s = by_condition[c["name"]]
        est, lo, hi = (100 * s[k] for k in ("estimate", "ci_low", "ci_high"))
        group = c["group"]
        ax.bar(i, est, 0.75, color=ROBUSTNESS_COLOURS.get(group, "#999999"), edgecolor="#333333", linewidth=0.4,
               yerr=[[max(est - lo, 0)], [max(hi - est, 0)]], capsize=2,
               label=None if group in seen else ROBUSTNESS_GROUPS.get(group, group))
        seen.add(group)
        ax.text(i, 1.5, f"{est:.0f}", ha="center", va="bottom", fontsize=7, color="#000000")
    ax.set_xticks(range(len(shown)), [c["label"] for c in shown], rotation=35, ha="right")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_ylim(0, 128)                                   # room above the bars for the legend
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(f"{model}: {metric} as retrieval degrades ({round(confidence * 100)}% CI)")
    ax.legend(fontsize="small", ncol=3, loc="upper center", frameon=False)
    return fig


def search_history(record: dict):
    """`ragft tune`: each trial's dev objective (failed trials left out), the best so far, the default's as a line."""
    done = [(t["number"], t["objective"]) for t in record["trials"] if t.get("objective") is not None]
    if not done:
        return None
    fig = _figure(6.4, 3.6)
    ax = fig.subplots()
    xs, ys = zip(*done, strict=True)
    best, running = [], -math.inf
    for y in ys:
        running = max(running, y)
        best.append(running)
    ax.plot(xs, ys, "o", label="trial (dev)")
    ax.step(xs, best, where="post", label="best so far (dev)")
    default = record["default"].get("objective")
    if default is not None:
        ax.axhline(default, linestyle="--", color="grey", label="default (dev)")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{record['objective']} (points)")
    ax.set_title(f"tune {record['name']}")
    ax.legend(fontsize="small")
    return fig


def knob_effects(record: dict):
    """`ragft injection`: each setting's closed-book score after fine-tuning (CI bars), the reference's as a
    band, the base model's closed-book score as a line: what each knob does to knowledge injection. Above each
    bar, the published direction (↓ lower, ↑ higher, = same) and what this run saw; the bar's colour says it
    (green: matches, red: contradicts, light blue: not resolved or no published direction)."""
    rows = [r for r in record["settings"] if r.get("injected")]
    if not rows:
        return None
    fig = _figure(max(5.0, 1.2 + 0.9 * len(rows)), 3.8)
    ax = fig.subplots()
    xs = list(range(len(rows)))
    est = [100 * r["injected"]["estimate"] for r in rows]
    low = [100 * (r["injected"]["estimate"] - (r["injected"]["ci_low"] or r["injected"]["estimate"])) for r in rows]
    high = [100 * ((r["injected"]["ci_high"] or r["injected"]["estimate"]) - r["injected"]["estimate"]) for r in rows]
    seen = [str(r.get("direction") or "") for r in rows]
    colours = ["grey" if i == 0 else "tab:green" if d == "matches" else "tab:red" if d.startswith("contradicts")
               else "lightsteelblue" for i, d in enumerate(seen)]
    ax.bar(xs, est, yerr=[low, high], capsize=4, color=colours)
    arrows = {"lower": "↓", "higher": "↑", "same": "="}
    for x, r, d, top in zip(xs, rows, seen, (e + h for e, h in zip(est, high))):
        if x and r.get("expect"):
            ax.annotate(f"{arrows[r['expect']]} {d.split(' (')[0]}", (x, top), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize="x-small")
    ref = rows[0]["injected"]
    if ref.get("ci_low") is not None:
        ax.axhspan(100 * ref["ci_low"], 100 * ref["ci_high"], color="grey", alpha=0.15, label="reference CI")
    base = rows[0].get("base_closed_book")
    if base:
        ax.axhline(100 * base["estimate"], linestyle="--", color="black", label="base model, closed-book")
    ax.set_xticks(xs, [r["name"] for r in rows], rotation=30, ha="right")
    ax.set_ylabel(f"{record['arm']} {record['metric']} (%)")
    ax.set_xlabel("above each bar: the published direction against the reference, and what this run saw",
                  fontsize="x-small")
    ax.set_title(f"injection {record['name']}")
    ax.legend(fontsize="small")
    return fig


def crossover(record: dict):
    """`ragft crossover`: RAG and long context against the corpus's size (the long-context prompt's tokens): the
    primary metric with CI bars (left), cost per 1,000 queries (right; long context also with prompt caching)."""
    rows = [r for r in record["rows"] if r.get("rag") and r.get("long")]
    if not rows:
        return None
    xs = [r["long"]["prompt_tokens"] or r["people"] for r in rows]
    fig = _figure(9.5, 3.6)
    quality, cost = fig.subplots(1, 2)
    for key, label, colour in (("rag", "RAG (base + retrieved)", CONTEXT_COLOURS["retrieved"]),
                               ("long", "long context (whole corpus)", CONTEXT_COLOURS["long_context"])):
        est = [100 * (r[key]["estimate"] or 0) for r in rows]
        lo = [max(0.0, e - 100 * (r[key]["ci_low"] if r[key]["ci_low"] is not None else r[key]["estimate"] or 0))
              for e, r in zip(est, rows)]
        hi = [max(0.0, 100 * (r[key]["ci_high"] if r[key]["ci_high"] is not None else r[key]["estimate"] or 0) - e)
              for e, r in zip(est, rows)]
        quality.errorbar(xs, est, yerr=[lo, hi], marker="o", capsize=3, color=colour, label=label)
        cost.plot(xs, [r[key]["cost_per_1k"] for r in rows], marker="o", color=colour, label=label)
    cached = [r["long"].get("cached_cost_per_1k") for r in rows]
    if any(c is not None for c in cached):
        cost.plot(xs, cached, marker="o", linestyle="--", color=CONTEXT_COLOURS["long_context"],
                  label="long context, prompt caching")
    for ax in (quality, cost):
        ax.set_xlabel("corpus in the prompt (tokens)")
        ax.legend(fontsize="x-small")
    quality.set_ylabel(f"{rows[0].get('metric', 'match')} (%)")
    cost.set_ylabel("USD per 1,000 queries")
    fig.suptitle("Where RAG overtakes long context")
    return fig
