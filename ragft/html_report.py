"""reports/report.html: the experiment's results as one self-contained page, readable from disk.

Figures are embedded as base64 PNG data URIs (also written to reports/plots/*.png for MLflow), CSS is
inline, no JavaScript. The page is well-formed XML as well as HTML5, and deterministic (no timestamps;
PNGs without version metadata). Every string from the corpus, the questions, a model or a config goes
through ``html.escape``: a document holding ``<script>`` renders as text.

``load_context`` reads the pipeline's files into an ``HtmlReportContext`` of plain data;
``render_html`` turns a context into the page; ``write_report`` writes the page and its PNGs.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragft import paths, plots

log = logging.getLogger(__name__)

HTML_REPORT = paths.REPORTS / "report.html"
PLOTS_DIR = paths.REPORTS / "plots"
HEADLINE = (("exact_match", "exact match"), ("f1", "token F1"))
RAGAS = (
    ("string_similarity", "string similarity"),
    ("rouge", "ROUGE-L"),
    ("context_precision", "context precision"),
    ("context_recall", "context recall"),
)
JUDGE_LABELS = {
    "faithfulness": "faithfulness",
    "answer_relevancy": "answer relevancy",
    "context_precision": "context precision",
    "factual_correctness": "factual correctness",
}
CHUNK_CHARS = 1200  # an example's context chunk is cut here


@dataclass
class HtmlReportContext:
    """Everything the page shows, as plain data. Optional pieces left empty are skipped."""

    verdict: str  # plain text (ragft.report.verdict)
    arms: dict[str, dict]  # metrics.json "arms": arm → metrics (+ "<metric>_ci")
    labels: dict[str, str] = field(default_factory=dict)  # arm → what it is, in words
    differences: dict[str, dict] = field(default_factory=dict)  # metrics.json "differences"
    effects: dict[str, dict] = field(default_factory=dict)  # metrics.json "effects"
    confidence: float = 0.95
    retrieval: dict = field(default_factory=dict)  # metrics/retrieval.json
    recall_at_k: list[tuple[float, float]] = field(default_factory=list)
    questions: list[dict] = field(default_factory=list)
    # ^ eval order: {qid, attribute, question, gold_answer, doc_ids, answers: {arm: {answer, exact_match, f1}}}
    contexts: dict[str, dict[str, list[dict]]] = field(
        default_factory=dict
    )  # context → qid → [{chunk_id, doc_id, text}]
    loss_curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # model → (step, loss)
    finetune: dict[str, dict] = field(default_factory=dict)  # model → its training metrics
    index: dict = field(default_factory=dict)  # metrics/index.json
    timings: dict[str, dict] = field(default_factory=dict)  # arm → timings.json
    judge: dict | None = None  # ragft.judge.judge_arms(...)
    examples: int = 5
    title: str = "RAG or fine-tuning? Results"
    generator: str = ""  # plain text
    notes: list[str] = field(default_factory=list)  # plain-text paragraphs shown under the verdict


# --------------------------------------------------------------------------- loading


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _read_curve(path: Path, x: str, y: str) -> list[tuple[float, float]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return [
            (float(r[x]), float(r[y]))
            for r in csv.DictReader(fh)
            if r.get(x) not in (None, "") and r.get(y) not in (None, "")
        ]


def _float(v: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def read_per_question(path: Path) -> list[dict]:
    """reports/per_question.csv → question rows with each arm's answer (``<arm>.answer`` or ``<arm>:answer``)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        arm_cols: dict[str, dict[str, str]] = {}
        for col in reader.fieldnames or []:
            m = re.fullmatch(r"(.+)[.:](answer|exact_match|f1)", col)
            if m:
                arm_cols.setdefault(m.group(1), {})[m.group(2)] = col
        rows = []
        for r in reader:
            answers = {
                arm: {
                    "answer": r.get(cols.get("answer", ""), "") or "",
                    "exact_match": _float(r.get(cols.get("exact_match", ""))),
                    "f1": _float(r.get(cols.get("f1", ""))),
                }
                for arm, cols in arm_cols.items()
            }
            rows.append(
                {
                    "qid": r.get("qid", ""),
                    "attribute": r.get("attribute", "") or "",
                    "question": r.get("question", ""),
                    "gold_answer": r.get("gold_answer", ""),
                    "answers": answers,
                }
            )
    return rows


def _first(*candidates: Path) -> Path:
    return next((p for p in candidates if p.exists()), candidates[0])


def load_context(
    root: str | Path = ".",
    *,
    verdict: str,
    labels: dict[str, str] | None = None,
    trained: list[str] | None = None,
    loss_curves: dict[str, str | Path] | None = None,
    finetune_metrics: dict[str, str | Path] | None = None,
    judge: dict | None = None,
    examples: int = 5,
    generator: str = "",
    notes: list[str] | None = None,
) -> HtmlReportContext:
    """Read the pipeline's outputs under ``root`` (missing optional files are skipped).

    Reads metrics/metrics.json (``{"arms", "differences", "effects", "bootstrap"}``, or a flat
    arm → metrics mapping), reports/per_question.csv, metrics/retrieval.json, plots/recall_at_k.csv,
    metrics/index.json, data/predictions/<arm>/timings.json, data/contexts/<context>.jsonl,
    data/prepared/qa_eval.jsonl (gold doc ids), and per fine-tuned model (``trained``, default: every
    models/<m>/train_metrics.json) its training metrics and loss curve: models/<m>/train_metrics.json
    and models/<m>/loss.csv, else metrics/finetune/<m>.json and plots/finetune_loss/<m>.csv, unless
    given explicitly in ``finetune_metrics`` / ``loss_curves``.
    """
    root = Path(root)
    doc = _read_json(root / paths.EVAL_METRICS)
    if doc is None:
        raise FileNotFoundError(f"{root / paths.EVAL_METRICS}: not found. Run `dvc repro evaluate` first.")
    arms = doc.get("arms", doc) if isinstance(doc, dict) else {}
    arms = {a: arms[a] for a in plots.arm_order([a for a, m in arms.items() if isinstance(m, dict)])}
    confidence = (doc.get("bootstrap") or {}).get("confidence", 0.95) if "arms" in doc else 0.95

    if trained is None:
        trained = sorted(p.parent.name for p in (root / paths.MODELS).glob(f"*/{paths.TRAIN_METRICS}"))
    curves = {m: Path(p) for m, p in (loss_curves or {}).items()}
    metric_files = {m: Path(p) for m, p in (finetune_metrics or {}).items()}
    for m in trained:
        curves.setdefault(m, _first(root / paths.model_dir(m) / paths.TRAIN_CURVE, root / paths.train_curve(m)))
        metric_files.setdefault(
            m, _first(root / paths.model_dir(m) / paths.TRAIN_METRICS, root / paths.finetune_metrics(m))
        )

    retrieval = _read_json(root / paths.RETRIEVAL_METRICS) or {}
    recall = _read_curve(root / paths.RECALL_AT_K_PLOT, "k", "recall") or sorted(
        (float(k.split("@", 1)[1]), v)
        for k, v in retrieval.items()
        if k.startswith("recall@") and isinstance(v, (int, float))
    )
    questions = read_per_question(root / paths.PER_QUESTION)
    gold_docs = {str(q.get("qid")): [str(d) for d in q.get("doc_ids") or []] for q in _read_jsonl(root / paths.QA_EVAL)}
    for q in questions:
        q["doc_ids"] = gold_docs.get(str(q["qid"]), [])
    contexts = {}
    for ctx in sorted({plots.split_arm(a)[1] for a in arms} - {"none"}):
        rows = _read_jsonl(root / paths.context_file(ctx))
        if rows:
            contexts[ctx] = {str(r["qid"]): r.get("chunks", []) for r in rows}
    timings = {a: t for a in arms if (t := _read_json(root / paths.PREDICTIONS / a / paths.TIMINGS))}

    return HtmlReportContext(
        verdict=verdict,
        arms=arms,
        labels=dict(labels or {}),
        differences=doc.get("differences", {}) if "arms" in doc else {},
        effects=doc.get("effects", {}) if "arms" in doc else {},
        confidence=confidence,
        retrieval=retrieval,
        recall_at_k=recall,
        questions=questions,
        contexts=contexts,
        loss_curves={m: c for m, p in curves.items() if (c := _read_curve(p, "step", "loss"))},
        finetune={m: d for m, p in metric_files.items() if (d := _read_json(p))},
        index=_read_json(root / paths.INDEX_METRICS) or {},
        timings=timings,
        judge=judge,
        examples=examples,
        generator=generator,
        notes=list(notes or []),
    )


# --------------------------------------------------------------------------- figures


def _attribute_table(ctx: HtmlReportContext) -> tuple[list[str], list[str], list[list[float]], list[int]]:
    arms = [a for a in ctx.arms if any(a in q["answers"] for q in ctx.questions)]
    attrs = sorted({q["attribute"] for q in ctx.questions})
    if not arms or attrs in ([], [""]):
        return [], [], [], []
    em, counts = [], []
    for attr in attrs:
        qs = [q for q in ctx.questions if q["attribute"] == attr]
        counts.append(len(qs))
        row = []
        for a in arms:
            vals = [
                q["answers"][a]["exact_match"]
                for q in qs
                if a in q["answers"] and not math.isnan(q["answers"][a]["exact_match"])
            ]
            row.append(sum(vals) / len(vals) if vals else math.nan)
        em.append(row)
    return [a or "(none)" for a in attrs], arms, em, counts


def _cost_points(ctx: HtmlReportContext) -> list[dict]:
    out = []
    for arm, m in ctx.arms.items():
        t = ctx.timings.get(arm, {})
        tokens = m.get("mean_prompt_tokens", t.get("mean_prompt_tokens"))
        out.append(
            {
                "arm": arm,
                "exact_match": m.get("exact_match"),
                "prompt_tokens": tokens,
                "latency": t.get("mean_latency_seconds"),
                "questions_per_second": t.get("questions_per_second"),
            }
        )
    return out


def make_figures(ctx: HtmlReportContext) -> dict[str, bytes]:
    """name → PNG bytes, for the figures there is data for (names are the reports/plots/<name>.png files)."""
    ndcg = sorted(
        (float(k.split("@", 1)[1]), v)
        for k, v in ctx.retrieval.items()
        if k.startswith("ndcg@") and isinstance(v, (int, float))
    )
    attrs, attr_arms, attr_em, attr_n = _attribute_table(ctx)
    figures = {
        "metrics_by_arm": plots.render(plots.metric_bars, ctx.arms, HEADLINE, "Answer quality by arm", ctx.confidence),
        "ragas_by_arm": plots.render(
            plots.metric_bars, ctx.arms, RAGAS, "ragas metrics (no LLM) by arm", ctx.confidence
        ),
        "effects": plots.render(plots.effects_forest, ctx.effects, ctx.confidence),
        "recall_at_k": plots.render(plots.recall_curve, ctx.recall_at_k, {"nDCG@k": ndcg} if ndcg else None),
        "em_by_attribute": plots.render(plots.attribute_heatmap, attrs, attr_arms, attr_em, attr_n),
        "finetune_loss": plots.render(plots.loss_curves, ctx.loss_curves),
        "cost_quality": plots.render(plots.cost_quality, _cost_points(ctx)),
    }
    return {k: v for k, v in figures.items() if v is not None}


# --------------------------------------------------------------------------- HTML helpers


def e(text: Any) -> str:
    """Escape anything for HTML text or attribute values."""
    return html.escape(str(text), quote=True)


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt(v: Any, digits: int = 1, scale: float = 1.0) -> str:
    if _nan(v):
        return "NaN"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return e(v)
    if isinstance(v, int) and scale == 1.0:
        return f"{v:,}"
    return f"{v * scale:,.{digits}f}"


def pct(v: Any, digits: int = 1) -> str:
    return fmt(v, digits, 100.0)


def _ci(ci: Any) -> str:
    if not (isinstance(ci, (list, tuple)) and len(ci) == 2) or any(_nan(c) for c in ci):
        return ""
    return f' <span class="ci">[{pct(ci[0])}, {pct(ci[1])}]</span>'


def _table(header: list[str], rows: list[list[str]], numeric_from: int = 1, cls: str = "") -> str:
    """Cells are already-escaped HTML; columns from ``numeric_from`` on are right-aligned."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i >= numeric_from else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(figures: dict[str, bytes], name: str, caption: str) -> str:
    if name not in figures:
        return ""
    data = base64.b64encode(figures[name]).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{e(caption)}"/>'
        f"<figcaption>{e(caption)}</figcaption></figure>"
    )


def _label(ctx: HtmlReportContext, arm: str) -> str:
    return ctx.labels.get(arm, "")


# --------------------------------------------------------------------------- sections


def _arms_section(ctx: HtmlReportContext, figures: dict[str, bytes]) -> str:
    ragas_cols = [(k, lab) for k, lab in RAGAS if any(k in m for m in ctx.arms.values())]
    rows = []
    for arm, m in ctx.arms.items():
        rows.append(
            [
                f"<code>{e(arm)}</code>",
                e(_label(ctx, arm)),
                pct(m.get("exact_match")) + _ci(m.get("exact_match_ci")),
                pct(m.get("f1")) + _ci(m.get("f1_ci")),
                *[pct(m[k]) if k in m else "–" for k, _ in ragas_cols],  # their CIs: in the figure
                fmt(m.get("mean_prompt_tokens")),
                fmt(m.get("n")),
            ]
        )
    level = f"{100 * ctx.confidence:g}%"
    header = ["arm", "what", "EM (%)", "F1 (%)", *[f"{lab} (%)" for _, lab in ragas_cols], "prompt tokens", "n"]
    return (
        '<section id="arms"><h2>All arms</h2>'
        + _table(header, rows, numeric_from=2)
        + f'<p class="note">Brackets: {level} percentile bootstrap CI over questions (for the other metrics: '
        "in the figure below). EM and F1: SQuAD v1.1 "
        "normalisation. ragas metrics need no LLM; context precision/recall compare the chunks in the prompt "
        "with the gold document's chunks. NaN: undefined for every question; –: not applicable.</p>"
        + _figure(figures, "metrics_by_arm", f"Exact match and F1 by arm ({level} CI)")
        + _figure(figures, "ragas_by_arm", "ragas' non-LLM metrics by arm")
        + "</section>"
    )


def _differences_section(ctx: HtmlReportContext, figures: dict[str, bytes]) -> str:
    if not ctx.differences and not ctx.effects:
        return ""
    out = ['<section id="differences"><h2>Are the differences real?</h2>']
    out.append(_figure(figures, "effects", "Effects of the factorial design, in EM points"))
    if ctx.effects:
        rows = [
            [
                e(model),
                e(plots.EFFECT_LABELS.get(name, name)),
                f"<code>{e(x.get('contrast', ''))}</code>",
                fmt(100 * x["estimate"] if not _nan(x.get("estimate")) else None, 1),
                f"{pct(x.get('ci_low'))} to {pct(x.get('ci_high'))}",
                "yes" if x.get("significant") else "no",
            ]
            for model, name, x in plots.effect_rows(ctx.effects)
        ]
        out.append(_table(["model", "effect", "contrast", "EM points", "CI", "CI excludes 0"], rows, numeric_from=3))
    if ctx.differences:
        rows = []
        for key, d in ctx.differences.items():
            sig = d.get("significant")
            rows.append(
                [
                    e(f"{d.get('a', key)} − {d.get('b', '')}"),
                    pct(d.get("diff")),
                    f"{pct(d.get('ci_low'))} to {pct(d.get('ci_high'))}",
                    fmt(d.get("p_value"), 3),
                    '<span class="yes">yes</span>' if sig else "no",
                ]
            )
        out.append(
            "<details><summary>Every paired difference (EM points)</summary>"
            + _table(["difference", "EM points", "CI", "McNemar p", "CI excludes 0"], rows)
            + "</details>"
        )
    out.append(
        '<p class="note">Paired over the same questions: a percentile bootstrap of the difference '
        "(resampling questions, seeded) and McNemar's exact test. A CI that spans 0 means this eval set "
        "cannot tell the arms apart.</p></section>"
    )
    return "".join(out)


def _natural(key: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def _retrieval_section(ctx: HtmlReportContext, figures: dict[str, bytes]) -> str:
    if not ctx.retrieval and not ctx.recall_at_k:
        return ""
    at_k: dict[str, dict[str, Any]] = {}
    other = []
    for key, v in sorted(ctx.retrieval.items(), key=lambda kv: _natural(kv[0])):
        name, _, k = key.partition("@")
        if k:
            at_k.setdefault(k, {})[name] = v
        elif isinstance(v, (int, float)) or v is None:
            other.append([e(key), fmt(v, 3)])
    names = sorted({n for row in at_k.values() for n in row}, key=lambda n: (n != "recall", n))
    by_k = [
        [e(k), *[fmt(row.get(n), 3) for n in names]] for k, row in sorted(at_k.items(), key=lambda kv: _natural(kv[0]))
    ]
    tables = (_table(["k", *[e(n) + "@k" for n in names]], by_k, cls="compact") if by_k else "") + (
        _table(["metric", "value"], other, cls="compact") if other else ""
    )
    return (
        '<section id="retrieval"><h2>Retrieval</h2><div class="row">'
        + _figure(figures, "recall_at_k", "Recall@k and nDCG@k against k (a gold document's chunk among the top k)")
        + f"<div>{tables}</div></div></section>"
    )


def _attribute_section(ctx: HtmlReportContext, figures: dict[str, bytes]) -> str:
    attrs, arms, em, counts = _attribute_table(ctx)
    if not attrs:
        return ""
    rows = [[e(a), fmt(n), *[pct(v, 0) for v in r]] for a, n, r in zip(attrs, counts, em)]
    return (
        '<section id="attributes"><h2>Exact match by question type</h2>'
        + _figure(figures, "em_by_attribute", "EM (%) by question attribute and arm")
        + "<details><summary>As a table</summary>"
        + _table(["attribute", "n", *[f"<code>{e(a)}</code>" for a in arms]], rows)
        + "</details></section>"
    )


TRAIN_KEYS = (
    ("train_seconds", "training time (s)", 1),
    ("train_loss", "final training loss", 3),
    ("n_examples", "training examples", 0),
    ("trainable_params", "trainable parameters", 0),
    ("epochs", "epochs", 0),
)


def _finetune_section(ctx: HtmlReportContext, figures: dict[str, bytes]) -> str:
    if not ctx.finetune and not ctx.loss_curves:
        return ""
    models = sorted(set(ctx.finetune) | set(ctx.loss_curves))
    keys = [(k, lab, d) for k, lab, d in TRAIN_KEYS if any(k in ctx.finetune.get(m, {}) for m in models)]
    rows = [
        [e(lab), *[fmt(ctx.finetune.get(m, {}).get(k), d) if k in ctx.finetune.get(m, {}) else "–" for m in models]]
        for k, lab, d in keys
    ]
    table = _table(["", *[e(m) for m in models]], rows, cls="compact") if rows else ""
    return (
        '<section id="finetuning"><h2>Fine-tuning</h2><div class="row">'
        + _figure(figures, "finetune_loss", "Training loss per fine-tuned model")
        + table
        + "</div></section>"
    )


def _costs_section(ctx: HtmlReportContext, figures: dict[str, bytes]) -> str:
    one_off = [
        [f"fine-tuning <code>{e(m)}</code> (s)", fmt(d.get("train_seconds"), 1)]
        for m, d in sorted(ctx.finetune.items())
    ]
    if ctx.index:
        size = ctx.index.get("index_bytes")
        mib = f' <span class="ci">({size / 2**20:.2f} MiB)</span>' if isinstance(size, int) else ""
        one_off += [
            ["index size (bytes)", fmt(size) + mib],
            ["index build (s)", fmt(ctx.index.get("build_seconds"), 2)],
        ]
    rows = [
        [
            f"<code>{e(p['arm'])}</code>",
            pct(p["exact_match"]),
            fmt(p["prompt_tokens"], 1),
            fmt(None if _nan(p["latency"]) else 1000 * p["latency"], 2),
            fmt(p["questions_per_second"], 1),
        ]
        for p in _cost_points(ctx)
    ]
    return (
        '<section id="costs"><h2>Cost and quality</h2>'
        + _figure(figures, "cost_quality", "EM against prompt length and latency, one point per arm")
        + '<div class="row">'
        + _table(["arm", "EM (%)", "prompt tokens", "latency (ms/question)", "questions/s"], rows)
        + (_table(["one-off cost", "value"], one_off, cls="compact") if one_off else "")
        + '</div><p class="note">Latency per question = a batch\'s wall time / its size; times vary from run '
        "to run, unlike every other number here.</p></section>"
    )


def _judge_section(ctx: HtmlReportContext) -> str:
    if not ctx.judge or not ctx.judge.get("arms"):
        return ""
    s = ctx.judge.get("settings", {})
    metrics = [m for m in s.get("metrics", JUDGE_LABELS) if any(f"judge_{m}" in r for r in ctx.judge["arms"].values())]
    rows = []
    for arm, r in ctx.judge["arms"].items():
        cells = []
        for m in metrics:
            if f"judge_{m}" not in r:
                cells.append("–")
                continue
            nan = r.get(f"judge_{m}_nan", 0)
            extra = f' <span class="ci">({nan} NaN of {r.get(f"judge_{m}_n", "?")})</span>' if nan else ""
            cells.append(pct(r[f"judge_{m}"]) + extra)
        rows.append([f"<code>{e(arm)}</code>", *cells])
    settings = ", ".join(
        f"{k}: <code>{e(s[k])}</code>"
        for k in ("model", "base_url", "prompt_version", "temperature", "ragas_version", "embeddings")
        if k in s
    )
    return (
        '<section id="judge"><h2>LLM judge (ragas)</h2>'
        + _table(["arm", *[e(JUDGE_LABELS.get(m, m)) + " (%)" for m in metrics]], rows)
        + f'<p class="note">Judge: {settings}. A judgement the judge could not give is NaN, counted and left out '
        "of the mean (never 0). LLM judgements vary between runs and judges; compare arms judged together."
        "</p></section>"
    )


def pick_examples(ctx: HtmlReportContext) -> list[dict]:
    """Questions the arms disagree on come first (they show what differs), in eval order."""

    def disagree(q):
        return len({a["exact_match"] for a in q["answers"].values() if not math.isnan(a["exact_match"])}) > 1

    picked = [q for q in ctx.questions if disagree(q)] + [q for q in ctx.questions if not disagree(q)]
    return picked[: max(0, ctx.examples)]


def _chunks_html(chunks: list[dict], gold: set[str]) -> str:
    items = []
    for c in chunks:
        text = str(c.get("text", ""))
        short = text[:CHUNK_CHARS] + ("…" if len(text) > CHUNK_CHARS else "")
        badge = ' <span class="gold">gold</span>' if str(c.get("doc_id")) in gold else ""
        items.append(
            f'<li><span class="cid">{e(c.get("chunk_id", ""))}</span>{badge}<blockquote>{e(short)}</blockquote></li>'
        )
    return '<ol class="chunks">' + "".join(items) + "</ol>" if items else '<p class="note">(no chunks)</p>'


def _answer_cell(a: dict) -> str:
    mark = '<span class="ok">✓</span>' if a["exact_match"] == 1.0 else '<span class="bad">✗</span>'
    text = e(a["answer"]) if a["answer"] else '<span class="note">(empty)</span>'
    return f'{mark} {text} <span class="ci">F1 {fmt(a["f1"], 2)}</span>'


def _answers_grid(ctx: HtmlReportContext, answers: dict[str, dict]) -> str:
    """Each arm's answer, as models (rows) × contexts (columns): the experiment's own layout."""
    arms = [a for a in ctx.arms if a in answers] + [a for a in answers if a not in ctx.arms]
    models = plots._order([plots.split_arm(a)[0] for a in arms], list(plots.MODEL_MARKERS))
    contexts = plots._order([plots.split_arm(a)[1] for a in arms], list(plots.CONTEXT_COLOURS))
    rows = [
        [
            f"<code>{e(m)}</code>",
            *[_answer_cell(answers[f"{m}-{c}"]) if f"{m}-{c}" in answers else "–" for c in contexts],
        ]
        for m in models
    ]
    return _table(
        ["model \\ context", *[f"<code>{e(c)}</code>" for c in contexts]], rows, numeric_from=99, cls="answers"
    )


def _examples_section(ctx: HtmlReportContext) -> str:
    picked = pick_examples(ctx)
    if not picked:
        return ""
    out = ['<section id="examples"><h2>Examples</h2><p class="note">Questions the arms disagree on first.</p>']
    for n, q in enumerate(picked, 1):
        attr = f' <span class="attr">{e(q["attribute"])}</span>' if q["attribute"] else ""
        out.append(
            f'<div class="example"><h3>{n}. {e(q["question"])}{attr}</h3>'
            f'<p>Gold answer: <strong>{e(q["gold_answer"])}</strong> <span class="cid">{e(q["qid"])}</span></p>'
        )
        out.append(_answers_grid(ctx, q["answers"]))
        gold = set(q.get("doc_ids") or [])
        for kind in plots._order(list(ctx.contexts), list(plots.CONTEXT_COLOURS)):
            by_qid = ctx.contexts[kind]
            if q["qid"] in by_qid:
                chunks = by_qid[q["qid"]]
                opened = ' open="open"' if kind == "retrieved" else ""
                out.append(
                    f"<details{opened}><summary>context <code>{e(kind)}</code>: {len(chunks)} chunk(s)</summary>"
                    + _chunks_html(chunks, gold)
                    + "</details>"
                )
        out.append("</div>")
    out.append("</section>")
    return "".join(out)


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d1d1f;margin:0;background:#f6f7f9;line-height:1.45}
main{max-width:1160px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:1.6em;margin:.2em 0 .4em}h2{font-size:1.25em;margin:1.8em 0 .6em;padding-bottom:.2em;border-bottom:1px solid #e3e5e8}
h3{font-size:1.02em;margin:.2em 0 .4em}
nav{font-size:.9em;margin:.4em 0 1em}nav a{margin-right:1em;color:#0a58ca;text-decoration:none}
.verdict{background:#eef6ff;border-left:5px solid #0072B2;padding:12px 16px;font-size:1.08em;margin:0 0 .8em}
.notes p{background:#fff8e6;border-left:5px solid #E69F00;padding:8px 14px;margin:.4em 0;font-size:.92em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}th,td{padding:4px 9px;border-bottom:1px solid #e6e8eb;vertical-align:top;text-align:left}
th{background:#f1f3f5;font-weight:600}tbody tr:nth-child(even){background:#fafbfc}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.compact{font-size:.85em}
.ci{color:#6b7280;font-size:.9em}.note{color:#555;font-size:.88em}.yes{color:#0b7a3b;font-weight:600}
figure{margin:.8em 0}figure img{max-width:100%;height:auto;border:1px solid #eceef1}figcaption{font-size:.85em;color:#555}
.row{display:flex;flex-wrap:wrap;gap:28px;align-items:flex-start}.row figure{flex:0 1 auto;margin-top:.6em}
td:first-child code,th:first-child,.ci{white-space:nowrap}#arms td:nth-child(2){min-width:11em}table.answers{table-layout:fixed;width:100%}table.answers td:first-child,table.answers th:first-child{width:9em}
details{margin:.4em 0}summary{cursor:pointer;color:#0a58ca;font-size:.9em}
.example{border:1px solid #e3e5e8;border-radius:6px;padding:10px 14px;margin:12px 0}
.attr{font-size:.75em;background:#eef0f3;border-radius:4px;padding:1px 6px;color:#444;font-weight:normal}
.cid{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.8em;color:#6b7280}
.gold{font-size:.75em;background:#009E73;color:#fff;border-radius:4px;padding:0 5px}
.ok{color:#0b7a3b;font-weight:700}.bad{color:#b42318;font-weight:700}
ol.chunks{padding-left:1.4em;margin:.3em 0}blockquote{margin:.2em 0 .6em;padding:4px 10px;border-left:3px solid #d0d4d9;background:#fafbfc;font-size:.88em;white-space:pre-wrap}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
footer{margin-top:2em;font-size:.8em;color:#777}
"""


def render_html(ctx: HtmlReportContext, figures: dict[str, bytes] | None = None) -> str:
    """The page for ``ctx`` (figures: ``make_figures(ctx)`` unless given). Deterministic."""
    figures = make_figures(ctx) if figures is None else figures
    n = max((m.get("n", 0) or 0 for m in ctx.arms.values()), default=0)
    sections = [
        ("arms", "Arms", _arms_section(ctx, figures)),
        ("differences", "Differences", _differences_section(ctx, figures)),
        ("retrieval", "Retrieval", _retrieval_section(ctx, figures)),
        ("attributes", "By question type", _attribute_section(ctx, figures)),
        ("finetuning", "Fine-tuning", _finetune_section(ctx, figures)),
        ("costs", "Cost", _costs_section(ctx, figures)),
        ("judge", "LLM judge", _judge_section(ctx)),
        ("examples", "Examples", _examples_section(ctx)),
    ]
    nav = "".join(f'<a href="#{sid}">{e(name)}</a>' for sid, name, body in sections if body)
    facts = []
    if ctx.generator:
        facts.append(f"Generator: {e(ctx.generator)}.")
    if n:
        facts.append(f"Eval questions: {n:,} (one question is {100 / n:.2g} EM points).")
    notes = "".join(f"<p>{e(p)}</p>" for p in ctx.notes)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/>'
        f"<title>{e(ctx.title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{e(ctx.title)}</h1>"
        f'<div class="verdict"><strong>Verdict:</strong> {e(ctx.verdict)}</div>'
        + (f'<p class="note">{" ".join(facts)}</p>' if facts else "")
        + (f'<div class="notes">{notes}</div>' if notes else "")
        + f"<nav>{nav}</nav>"
        + "".join(body for _, _, body in sections)
        + "<footer>Generated by ragft from metrics/metrics.json, reports/per_question.csv and the pipeline's other "
        "outputs; the figures are also in reports/plots/.</footer>"
        "</main></body></html>\n"
    )


def write_report(
    ctx: HtmlReportContext, html_path: str | Path = HTML_REPORT, plots_dir: str | Path = PLOTS_DIR
) -> list[Path]:
    """Write the page and its figures (plots_dir/<name>.png, replaced as a whole); return every file
    written (the page last), e.g. for MLflow."""
    from ragft.io import atomic_dir, atomic_file

    figures = make_figures(ctx)
    plots_dir = Path(plots_dir)
    with atomic_dir(plots_dir) as tmp:
        for name, png in sorted(figures.items()):
            (tmp / f"{name}.png").write_bytes(png)
    with atomic_file(html_path) as fh:
        fh.write(render_html(ctx, figures))
    log.info("wrote %s with %d figures (%s)", html_path, len(figures), ", ".join(sorted(figures)))
    return [plots_dir / f"{name}.png" for name in sorted(figures)] + [Path(html_path)]
