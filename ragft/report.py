"""reports/comparison.md: the verdict first, then the evidence (every arm, retrieval, costs, EM by
question attribute, examples).

Every string that comes from the corpus, the questions, the model or its manifest goes through
``escape_md``: a document holding ``<script>`` or a table pipe must render as text, not as HTML or as
a broken table.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from typing import Any

RAG, FINETUNED, BOTH, BASE = "base-retrieved", "finetuned-none", "finetuned-retrieved", "base-none"
ARM_LABELS = {
    BASE: "base, closed-book",
    RAG: "RAG: base + retrieved",
    FINETUNED: "LoRA fine-tuning: finetuned, closed-book",
    BOTH: "both: finetuned + retrieved",
}
VERDICT_PREFIX = "**Verdict:** "
EXAMPLE_CONTEXT_CHARS = 400


def escape_md(text: Any) -> str:
    """``text`` as inert Markdown on one line: HTML escaped, Markdown punctuation backslash-escaped."""
    text = html.escape(str(text), quote=False)
    text = re.sub(r"([\\`*_\[\]|#~])", r"\\\1", text)
    return " ".join(text.split())  # a newline would end a table row


def _fmt(value: Any, digits: int = 3, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return escape_md(value)
    if isinstance(value, int) and scale == 1.0:
        return f"{value:,}"
    return f"{value * scale:.{digits}f}"


def _points(a: float, b: float) -> float:
    """a - b in percentage points (EM is a fraction), at the precision the report shows."""
    return round(100.0 * (a - b), 1)


def _ci(comparisons: dict | None, a: str, b: str, sign: int = 1) -> str:
    """' (95% CI lo to hi)' of the paired difference (sign -1: of b - a), flagged when it spans 0."""
    c = (comparisons or {}).get(f"{a} vs {b}")
    if not c or c["ci_low"] is None or math.isnan(c["ci_low"]):
        return ""
    lo, hi = sorted((sign * 100 * c["ci_low"], sign * 100 * c["ci_high"]))
    noise = ": within noise" if lo <= 0 <= hi else ""
    return f" (95% CI {lo:.1f} to {hi:.1f}{noise})"


def verdict(metrics: dict[str, dict], comparisons: dict | None = None) -> str:
    """One sentence a reader can act on, computed from the arms' exact match (and, when given, the
    paired confidence intervals of evaluation.compare_arms)."""
    em = {arm: m.get("exact_match") for arm, m in metrics.items() if m.get("exact_match") is not None}
    parts = []
    if RAG in em and FINETUNED in em:
        d = _points(em[RAG], em[FINETUNED])
        rag, ft = "RAG (base + retrieved)", "LoRA fine-tuning (finetuned, closed-book)"
        if d > 0:
            parts.append(f"On this corpus, {rag} beats {ft} by {d:.1f} EM points{_ci(comparisons, RAG, FINETUNED)}")
        elif d < 0:
            parts.append(
                f"On this corpus, {ft} beats {rag} by {-d:.1f} EM points{_ci(comparisons, RAG, FINETUNED, -1)}"
            )
        else:
            parts.append(f"On this corpus, {rag} and {ft} show no difference in EM ({100 * em[RAG]:.1f}%)")
    if BOTH in em and RAG in em:
        d = _points(em[BOTH], em[RAG])
        if d > 0:
            parts.append(f"fine-tuning added {d:.1f} points on top of RAG{_ci(comparisons, BOTH, RAG)}")
        elif d < 0:
            parts.append(f"fine-tuning on top of RAG lost {-d:.1f} points{_ci(comparisons, BOTH, RAG, -1)}")
        else:
            parts.append("fine-tuning made no difference on top of RAG")
    if not em:
        return "No arm has an exact-match score."
    best = max(em.values())
    leaders = sorted(arm for arm, v in em.items() if _points(v, best) == 0)
    names = [f"{arm} ({ARM_LABELS.get(arm, arm)})" for arm in leaders]
    if len(leaders) == 1:
        best_sentence = f"Best arm: {names[0]}, EM {100 * best:.1f}%."
    elif len(leaders) == len(em):
        best_sentence = f"All arms tie at EM {100 * best:.1f}%."
    else:
        best_sentence = f"Best arms (tied): {', '.join(names[:-1])} and {names[-1]}, EM {100 * best:.1f}%."
    lead = "; ".join(parts)
    return f"{lead}. {best_sentence}" if lead else best_sentence


@dataclass
class ReportInputs:
    """Everything the report shows; the evaluate stage gathers it from the pipeline's outputs."""

    metrics: dict[str, dict]  # metrics.json
    qa: list[dict]  # eval questions, in order
    per_question: dict[str, list[dict]]  # arm → rows {answer, exact_match, f1} in qa order
    predictions: dict[str, dict[str, dict]]  # arm → qid → prediction row (chunk_ids)
    chunk_text: dict[str, str]
    retrieval: dict = field(default_factory=dict)
    index: dict = field(default_factory=dict)
    finetune: dict = field(default_factory=dict)
    timings: dict[str, dict] = field(default_factory=dict)
    base_model: dict = field(default_factory=dict)
    comparisons: dict[str, dict] = field(default_factory=dict)  # evaluation.compare_arms
    examples: int = 5


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _natural(key: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def testbed_note(base_model: dict) -> list[str]:
    if not base_model.get("testbed"):
        return []
    name = escape_md(base_model.get("name", "scratch"))
    return [
        (
            f"> **Note:** the generator here ({name}) is the scratch model: a small GPT-2 pretrained in this repo "
            "as a **testbed, not a real LLM**. These numbers show how the arms compare on a model that has never "
            "seen these documents; they are not the conclusions a real LLM would give. To run the same experiment "
            "with a real model: `dvc exp run -S experiment=real_model` on a machine with Hugging Face hub access (ragft runs "
            "offline by default; set `HF_HUB_OFFLINE=0 TRANSFORMERS_OFFLINE=0` for that run)."
        ),
        "",
    ]


def _arms_section(inp: ReportInputs) -> list[str]:
    rows = []
    for arm, m in inp.metrics.items():
        ragas = [
            _fmt(m[k]) if k in m else "–" for k in ("string_similarity", "rouge", "context_precision", "context_recall")
        ]
        rows.append(
            [
                escape_md(arm),
                escape_md(ARM_LABELS.get(arm, arm)),
                _fmt(m.get("exact_match"), 1, 100),
                _fmt(m.get("f1"), 1, 100),
                *ragas,
                _fmt(m.get("n")),
            ]
        )
    header = [
        "arm",
        "what",
        "EM (%)",
        "F1 (%)",
        "string similarity",
        "ROUGE-L",
        "context precision",
        "context recall",
        "n",
    ]
    return [
        "## All arms",
        "",
        *_table(header, rows),
        "",
        (
            "EM and F1: SQuAD v1.1 normalisation. String similarity (Levenshtein), ROUGE-L and context "
            "precision/recall (retrieved chunks against the gold documents' chunks): ragas, no LLM. "
            "NaN: undefined for every question; –: not applicable (no context) or not computed (eval.ragas=false)."
        ),
        "",
    ]


def _comparisons_section(inp: ReportInputs) -> list[str]:
    if not inp.comparisons:
        return []
    rows = [
        [
            escape_md(f"{c['a']} − {c['b']}"),
            _fmt(c["diff"], 1, 100),
            f"{_fmt(c['ci_low'], 1, 100)} to {_fmt(c['ci_high'], 1, 100)}",
            _fmt(c["only_a"]),
            _fmt(c["only_b"]),
            _fmt(c["p_value"], 3),
        ]
        for c in inp.comparisons.values()
    ]
    header = ["difference", "EM points", "95% CI", "only first right", "only second right", "McNemar p"]
    return [
        "## Are the differences real?",
        "",
        *_table(header, rows),
        "",
        (
            "Paired over the same questions: a percentile bootstrap of the EM difference (resampling questions, "
            "seeded) and McNemar's exact test on the questions one arm gets right and the other wrong. "
            "A CI that spans 0 means this eval set cannot tell the arms apart."
        ),
        "",
    ]


def _retrieval_section(inp: ReportInputs) -> list[str]:
    if not inp.retrieval:
        return []
    flat = _flatten(inp.retrieval)
    rows = [[escape_md(k), _fmt(v)] for k, v in sorted(flat.items(), key=lambda kv: _natural(kv[0]))]
    return ["## Retrieval", "", *_table(["metric", "value"], rows), ""]


def _costs_section(inp: ReportInputs) -> list[str]:
    fixed = [
        ["fine-tuning time (s)", _fmt(inp.finetune.get("train_seconds"), 1)],
        ["index size (bytes)", _fmt(inp.index.get("index_bytes"))],
        ["index build time (s)", _fmt(inp.index.get("build_seconds"), 2)],
    ]
    per_arm = []
    for arm, m in inp.metrics.items():
        t = inp.timings.get(arm, {})
        per_arm.append(
            [
                escape_md(arm),
                _fmt(m.get("mean_prompt_tokens"), 1),
                _fmt(t.get("mean_latency_seconds"), 4),
                _fmt(t.get("questions_per_second"), 1),
            ]
        )
    return [
        "## Costs",
        "",
        *_table(["one-off cost", "value"], fixed),
        "",
        *_table(["arm", "mean prompt tokens", "latency (s/question)", "questions/s"], per_arm),
        "",
        (
            "Latency per question = a batch's wall time / its size (questions are answered in batches); "
            "times vary from run to run, unlike every other number here."
        ),
        "",
    ]


def _attribute_section(inp: ReportInputs) -> list[str]:
    attrs = sorted({q.get("attribute") or "" for q in inp.qa})
    if attrs == [""]:
        return []
    arms = list(inp.per_question)
    rows = []
    for attr in attrs:
        idx = [i for i, q in enumerate(inp.qa) if (q.get("attribute") or "") == attr]
        cells = [_fmt(sum(inp.per_question[a][i]["exact_match"] for i in idx) / len(idx), 1, 100) for a in arms]
        rows.append([escape_md(attr or "(none)"), str(len(idx)), *cells])
    return [
        "## Exact match (%) by question attribute",
        "",
        *_table(["attribute", "n", *map(escape_md, arms)], rows),
        "",
    ]


def pick_examples(inp: ReportInputs) -> list[int]:
    """Questions the arms disagree on come first (they show what differs), in eval order."""
    arms = list(inp.per_question)
    disagree = [i for i in range(len(inp.qa)) if len({inp.per_question[a][i]["exact_match"] for a in arms}) > 1]
    rest = [i for i in range(len(inp.qa)) if i not in set(disagree)]
    return (disagree + rest)[: max(0, inp.examples)]


def _examples_section(inp: ReportInputs) -> list[str]:
    picked = pick_examples(inp)
    if not picked:
        return []
    from ragft.evaluation import gold_answers

    ctx_arm = next((a for a in (RAG, BOTH) if a in inp.predictions), None)
    ctx_arm = ctx_arm or next((a for a in inp.predictions if not a.endswith("-none")), None)
    out = ["## Examples", ""]
    for n, i in enumerate(picked, 1):
        q = inp.qa[i]
        out += [
            f"**{n}. {escape_md(q['question'])}**",
            "",
            f"Gold answer: {escape_md(' / '.join(gold_answers(q['answer'])))}",
            "",
        ]
        rows = [
            [
                escape_md(a),
                escape_md(inp.per_question[a][i]["answer"]) or "(empty)",
                "✓" if inp.per_question[a][i]["exact_match"] else "✗",
            ]
            for a in inp.per_question
        ]
        out += [*_table(["arm", "answer", "EM"], rows), ""]
        if ctx_arm:
            chunk_ids = inp.predictions[ctx_arm][q["qid"]].get("chunk_ids", [])
            out.append(f"Retrieved context ({escape_md(ctx_arm)}):")
            out.append("")
            for cid in chunk_ids:
                text = inp.chunk_text.get(cid, "")
                short = text[:EXAMPLE_CONTEXT_CHARS] + ("…" if len(text) > EXAMPLE_CONTEXT_CHARS else "")
                out.append(f"> {escape_md(cid)}: {escape_md(short)}")
                out.append(">")
            if out[-1] == ">":
                out.pop()
            out.append("")
    return out


def _generator(manifest: dict) -> str:
    """'name (source, N M parameters)' from the base model's manifest."""
    if not manifest:
        return "?"
    details = [escape_md(manifest.get("source", "?"))]
    if isinstance(manifest.get("parameters"), int):
        details.append(f"{manifest['parameters'] / 1e6:.1f} M parameters")
    return f"{escape_md(manifest.get('name', '?'))} ({', '.join(details)})"


def render_report(inp: ReportInputs) -> str:
    n = max((m.get("n", 0) for m in inp.metrics.values()), default=0)
    model = inp.base_model
    generator = _generator(model)
    lines = [
        "# RAG or fine-tuning? Results",
        "",
        VERDICT_PREFIX + escape_md(verdict(inp.metrics, inp.comparisons)),
        "",
        f"Generator: {generator}. Eval questions: {n}"
        + (f" (one question is {100 / n:.1f} EM points: small differences may be noise)." if n else "."),
        "",
        *testbed_note(model),
        *_arms_section(inp),
        *_comparisons_section(inp),
        *_retrieval_section(inp),
        *_costs_section(inp),
        *_attribute_section(inp),
        *_examples_section(inp),
    ]
    return "\n".join(lines).rstrip() + "\n"


def read_verdict(report_text: str) -> str | None:
    """The verdict line of a rendered report, as plain text (for the CLI summary)."""
    for line in report_text.splitlines():
        if line.startswith(VERDICT_PREFIX):
            return html.unescape(re.sub(r"\\(.)", r"\1", line[len(VERDICT_PREFIX) :]))
    return None
