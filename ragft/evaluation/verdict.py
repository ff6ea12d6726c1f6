"""The verdict: one sentence a reader can act on, from the arms' scores and the paired CIs.

It is computed once, by the evaluate stage, and stored in metrics/metrics.json (``verdict``) with the
metric and the confidence level it speaks of; the reports and `ragft summary` show it from there.
A difference whose CI spans 0 is called "no significant difference".
"""

from __future__ import annotations

import math

from ragft.arms import RAG, TRAINED, Arm, label, method_words

METRIC_WORDS = {"exact_match": "EM", "match": "match", "f1": "F1"}  # how the verdict says each metric
RECIPE_WORDS = {"finetuned": "fine-tuning on the documents", "raft": "RAFT fine-tuning"}


def _points(a: float, b: float) -> float:
    """a - b in percentage points (scores are fractions), at the precision the reports show."""
    return round(100.0 * (a - b), 1)


def paired(differences: dict | None, a: str, b: str) -> dict | None:
    """The paired difference a − b of factorial.compare_arms, looked up either way round."""
    differences = differences or {}
    if f"{a} vs {b}" in differences:
        return differences[f"{a} vs {b}"]
    c = differences.get(f"{b} vs {a}")
    if not c:
        return None
    neg = lambda v: None if v is None else -v
    return {**c, "diff": neg(c["diff"]), "ci_low": neg(c["ci_high"]), "ci_high": neg(c["ci_low"])}


class _Sentences:
    """The verdict's phrases, at one confidence level."""

    def __init__(self, differences: dict | None, confidence: float, metric: str):
        self.differences, self.level, self.unit = differences, f"{100 * confidence:g}%", METRIC_WORDS.get(metric, metric)

    def ci(self, a: str, b: str) -> str:
        """' (95% CI lo to hi)' of the paired difference a − b."""
        c = paired(self.differences, a, b)
        if not c or c["ci_low"] is None or math.isnan(c["ci_low"]):
            return ""
        return f" ({self.level} CI {100 * c['ci_low']:.1f} to {100 * c['ci_high']:.1f})"

    def spans_zero(self, a: str, b: str) -> bool:
        c = paired(self.differences, a, b)
        return bool(c and c["ci_low"] is not None and c["ci_low"] <= 0 <= c["ci_high"])

    def phrase(self, score: dict, a: str, b: str, tie: str, ahead: str, behind: str) -> str:
        """The sentence for a − b: ``tie`` when its CI spans 0 (or it is 0), ``ahead`` when a is ahead,
        ``behind`` when b is; each a template of {d} (points) and {ci} (the CI of the leader's lead)."""
        d = _points(score[a], score[b])
        if self.spans_zero(a, b) or d == 0:
            return tie.format(d=f"{d:+.1f}", ci=self.ci(a, b), unit=self.unit)
        if d > 0:
            return ahead.format(d=f"{d:.1f}", ci=self.ci(a, b), unit=self.unit)
        return behind.format(d=f"{-d:.1f}", ci=self.ci(b, a), unit=self.unit)


def verdict(arms: dict[str, dict], differences: dict | None = None, confidence: float = 0.95,
            metric: str = "exact_match", methods: dict[str, str] | None = None) -> dict:
    """``{"text", "metric", "confidence", "best_arms", "best_score"}`` from metrics.json's arms and differences;
    ``methods``: fine-tuned model → its finetune.method (lora | full), for the words."""
    score = {arm: m.get(metric) for arm, m in arms.items() if m.get(metric) is not None}
    say = _Sentences(differences, confidence, metric)
    out = {"metric": metric, "confidence": confidence, "best_arms": [], "best_score": None}
    if not score:
        return {**out, "text": f"No arm has a {say.unit} score."}
    parts = []
    finetuned_closed = Arm("finetuned", "none").name
    if RAG in score and finetuned_closed in score:
        tuning = method_words((methods or {}).get("finetuned", "lora"))["tuning"]
        rag, ft = "RAG (base + retrieved)", f"{tuning} (finetuned, closed-book)"
        parts.append("On this corpus, " + say.phrase(
            score, RAG, finetuned_closed, tie=f"{rag} and {ft}: no significant difference ({{d}} {{unit}} points{{ci}})",
            ahead=f"{rag} beats {ft} by {{d}} {{unit}} points{{ci}}", behind=f"{ft} beats {rag} by {{d}} {{unit}} points{{ci}}"))
    for model in TRAINED:
        both, name = Arm(model, "retrieved").name, RECIPE_WORDS[model]
        if both in score and RAG in score:
            parts.append(say.phrase(score, both, RAG, tie=f"{name} on top of RAG: no significant difference ({{d}} points{{ci}})",
                                    ahead=f"{name} added {{d}} points on top of RAG{{ci}}",
                                    behind=f"{name} on top of RAG lost {{d}} points{{ci}}"))
    best = max(score.values())
    leaders = sorted(arm for arm, v in score.items() if _points(v, best) == 0)
    names = [f"{arm} ({label(arm, methods)})" for arm in leaders]
    if len(leaders) == 1:
        best_sentence = f"Best arm: {names[0]}, {say.unit} {100 * best:.1f}%."
    elif len(leaders) == len(score):
        best_sentence = f"All arms tie at {say.unit} {100 * best:.1f}%."
    else:
        best_sentence = f"Best arms (tied): {', '.join(names[:-1])} and {names[-1]}, {say.unit} {100 * best:.1f}%."
    lead = "; ".join(parts)
    text = f"{lead}. {best_sentence}" if lead else best_sentence
    return {**out, "text": text, "best_arms": leaders, "best_score": best}
