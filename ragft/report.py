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
MODEL_LABELS = {"base": "base", "finetuned": "LoRA on the documents", "raft": "RAFT (LoRA, reading among distractors)"}
CONTEXT_LABELS = {
    "none": "closed-book",
    "retrieved": "retrieved chunks",
    "oracle": "gold document (oracle)",
    "oracle_distractors": "gold + distractors",
}
ARM_LABELS = {
    BASE: "base, closed-book",
    RAG: "RAG: base + retrieved",
    FINETUNED: "LoRA fine-tuning: finetuned, closed-book",
    BOTH: "both: finetuned + retrieved",
}


def arm_label(arm: str) -> str:
    if arm in ARM_LABELS:
        return ARM_LABELS[arm]
    model, _, context = arm.partition("-")
    return f"{MODEL_LABELS.get(model, model)}, {CONTEXT_LABELS.get(context, context)}"
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


def _diff(comparisons: dict | None, a: str, b: str) -> dict | None:
    """The paired difference a − b from evaluation.compare_arms (looked up either way round)."""
    comparisons = comparisons or {}
    if f"{a} vs {b}" in comparisons:
        return comparisons[f"{a} vs {b}"]
    c = comparisons.get(f"{b} vs {a}")
    if not c:
        return None
    neg = lambda v: None if v is None else -v
    return {**c, "diff": neg(c["diff"]), "ci_low": neg(c["ci_high"]), "ci_high": neg(c["ci_low"])}


def _ci(comparisons: dict | None, a: str, b: str, sign: int = 1) -> str:
    """' (95% CI lo to hi)' of the paired difference (sign -1: of b - a)."""
    c = _diff(comparisons, a, b)
    if not c or c["ci_low"] is None or math.isnan(c["ci_low"]):
        return ""
    lo, hi = sorted((sign * 100 * c["ci_low"], sign * 100 * c["ci_high"]))
    return f" (95% CI {lo:.1f} to {hi:.1f})"


def _crosses_zero(comparisons: dict | None, a: str, b: str) -> bool:
    c = _diff(comparisons, a, b)
    return bool(c and c["ci_low"] is not None and c["ci_low"] <= 0 <= c["ci_high"])


def _versus(em: dict, comparisons: dict | None, a: str, b: str, name_a: str, name_b: str) -> str:
    """'a beats b by d EM points (CI)', or 'no significant difference' when the CI spans 0."""
    d = _points(em[a], em[b])
    if _crosses_zero(comparisons, a, b) or d == 0:
        return f"{name_a} and {name_b}: no significant difference ({d:+.1f} EM points{_ci(comparisons, a, b)})"
    if d > 0:
        return f"{name_a} beats {name_b} by {d:.1f} EM points{_ci(comparisons, a, b)}"
    return f"{name_b} beats {name_a} by {-d:.1f} EM points{_ci(comparisons, a, b, -1)}"


def verdict(metrics: dict[str, dict], comparisons: dict | None = None) -> str:
    """One sentence a reader can act on, computed from the arms' exact match and, when given, the
    paired confidence intervals of evaluation.compare_arms (a difference whose CI spans 0 is called
    "no significant difference")."""
    em = {arm: m.get("exact_match") for arm, m in metrics.items() if m.get("exact_match") is not None}
    parts = []
    if RAG in em and FINETUNED in em:
        parts.append("On this corpus, " + _versus(em, comparisons, RAG, FINETUNED, "RAG (base + retrieved)",
                                                 "LoRA fine-tuning (finetuned, closed-book)"))
    for model in ("finetuned", "raft"):
        both = f"{model}-retrieved"
        if both in em and RAG in em:
            name = "fine-tuning on the documents" if model == "finetuned" else "RAFT fine-tuning"
            d = _points(em[both], em[RAG])
            if _crosses_zero(comparisons, both, RAG) or d == 0:
                parts.append(f"{name} on top of RAG: no significant difference ({d:+.1f} points{_ci(comparisons, both, RAG)})")
            elif d > 0:
                parts.append(f"{name} added {d:.1f} points on top of RAG{_ci(comparisons, both, RAG)}")
            else:
                parts.append(f"{name} on top of RAG lost {-d:.1f} points{_ci(comparisons, both, RAG, -1)}")
    if not em:
        return "No arm has an exact-match score."
    best = max(em.values())
    leaders = sorted(arm for arm, v in em.items() if _points(v, best) == 0)
    names = [f"{arm} ({arm_label(arm)})" for arm in leaders]
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
    effects: dict[str, dict] = field(default_factory=dict)  # evaluation.effects
    contamination: dict = field(default_factory=dict)  # evaluate stage: overlap checks
    examples: int = 5
    confidence: float = 0.95


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


TESTBED_NOTE = (
    "the generator here ({name}) is the scratch model: a small GPT-2 pretrained in this repo "
    "as a {strong}testbed, not a real LLM{strong}. These numbers show how the arms compare on a model that has never "
    "seen these documents; they are not the conclusions a real LLM would give. To run the same experiment "
    "with a real model: {code}dvc exp run -S experiment=real_model{code} on a machine with Hugging Face hub access "
    "(ragft runs offline by default; set {code}HF_HUB_OFFLINE=0 TRANSFORMERS_OFFLINE=0{code} for that run)."
)


def testbed_note(base_model: dict) -> list[str]:
    if not base_model.get("testbed"):
        return []
    name = escape_md(base_model.get("name", "scratch"))
    return ["> **Note:** " + TESTBED_NOTE.format(name=name, strong="**", code="`"), ""]


def testbed_text(base_model: dict) -> list[str]:
    """The testbed note as plain text (the HTML report escapes it)."""
    if not base_model.get("testbed"):
        return []
    return ["Note: " + TESTBED_NOTE.format(name=base_model.get("name", "scratch"), strong="", code="")]


def generator_text(manifest: dict) -> str:
    """'name (source, N M parameters)' as plain text."""
    if not manifest:
        return "?"
    details = [str(manifest.get("source", "?"))]
    if isinstance(manifest.get("parameters"), int):
        details.append(f"{manifest['parameters'] / 1e6:.1f} M parameters")
    return f"{manifest.get('name', '?')} ({', '.join(details)})"


def _arms_section(inp: ReportInputs) -> list[str]:
    rows = []
    for arm, m in inp.metrics.items():
        ragas = [
            _fmt(m[k]) if k in m else "–" for k in ("string_similarity", "rouge", "context_precision", "context_recall")
        ]
        rows.append(
            [
                escape_md(arm),
                escape_md(arm_label(arm)),
                _with_ci(m, "exact_match"),
                _with_ci(m, "f1"),
                *ragas,
                _fmt(m.get("n")),
            ]
        )
    header = [
        "arm",
        "what",
        f"EM (%) [{_pct(inp.confidence)} CI]",
        f"F1 (%) [{_pct(inp.confidence)} CI]",
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


def _pct(level: float) -> str:
    return f"{100 * level:g}%"


def _with_ci(m: dict, metric: str) -> str:
    ci = m.get(f"{metric}_ci")
    value = _fmt(m.get(metric), 1, 100)
    if not ci or ci[0] is None:
        return value
    return f"{value} [{_fmt(ci[0], 1, 100)}, {_fmt(ci[1], 1, 100)}]"


EFFECT_LABELS = {
    "finetuning_gain_closed_book": "fine-tuning gain without retrieval",
    "finetuning_gain_with_retrieval": "fine-tuning gain with retrieval",
    "interaction": "interaction (gain with − gain without)",
    "retrieval_gain": "retrieval gain (retrieved − closed-book)",
    "retrieval_gap": "retrieval gap (oracle − retrieved)",
    "distractor_cost": "distractor cost (oracle − oracle + distractors)",
}


def _effects_section(inp: ReportInputs) -> list[str]:
    if not inp.effects:
        return []
    rows = []
    for model, effs in inp.effects.items():
        for name, e in effs.items():
            rows.append(
                [
                    escape_md(model),
                    escape_md(EFFECT_LABELS.get(name, name)),
                    escape_md(e.get("contrast", "")),
                    _fmt(e.get("estimate"), 1, 100),
                    f"{_fmt(e.get('ci_low'), 1, 100)} to {_fmt(e.get('ci_high'), 1, 100)}",
                    "yes" if e.get("significant") else "no significant difference",
                ]
            )
    header = ["model", "effect", "contrast", "EM points", f"{_pct(inp.confidence)} CI", "significant?"]
    return [
        "## Effects",
        "",
        *_table(header, rows),
        "",
        (
            "Each effect is a contrast of arms over the same questions, with a paired bootstrap CI (resampling "
            "questions). The interaction asks whether fine-tuning helps more (or hurts more) when retrieval is on; "
            "the retrieval gap is what a perfect retriever would add; the distractor cost is what plausible wrong "
            "passages beside the right one take away."
        ),
        "",
    ]


def _contamination_section(inp: ReportInputs) -> list[str]:
    if not inp.contamination:
        return []
    rows = [[escape_md(k), escape_md(v)] for k, v in _flatten(inp.contamination).items()]
    return [
        "## Contamination check",
        "",
        *_table(["check", "value"], rows),
        "",
        (
            "Fine-tuning data holding an eval question (exact or near-duplicate, MinHash LSH on word 3-grams) fails "
            "the finetune stage; these counts are 0 by construction when the stage ran. The corpus containing the "
            "answers is expected: that is what RAG retrieves."
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
            _fmt(c.get("f1_diff"), 1, 100),
            _fmt(c["only_a"]),
            _fmt(c["only_b"]),
            _fmt(c["p_value"], 3),
        ]
        for c in inp.comparisons.values()
    ]
    header = [
        "difference", "EM points", f"{_pct(inp.confidence)} CI", "F1 points", "only first right", "only second right",
        "McNemar p",
    ]
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
        [f"fine-tuning time, {escape_md(model)} (s)", _fmt(m.get("train_seconds"), 1)]
        for model, m in sorted(inp.finetune.items())
    ] + [
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
    """'name (source, N M parameters)' from the base model's manifest, Markdown-escaped."""
    return escape_md(generator_text(manifest))


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
        *_effects_section(inp),
        *_comparisons_section(inp),
        *_contamination_section(inp),
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
