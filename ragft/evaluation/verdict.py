"""The verdict: one sentence a reader can act on, from the arms' scores and the paired intervals.

It is computed once, by the evaluate stage, and stored in metrics/metrics.json (``verdict``) with the
metric and the confidence level it speaks of; the reports and `ragft summary` show it from there.
A difference whose interval spans 0 is called "no significant difference". The best arm is chosen among the
arms a user can deploy; an oracle arm (handed the gold document) is named as a ceiling, never as the best.
"""

from __future__ import annotations

import math

from ragft.arms import DEFAULT_CANDIDATES, Arm, Design, method_words

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


def comparisons(arms, design: Design | None = None) -> list[tuple[str, str]]:
    """The paired differences (a − b) the verdict speaks of, among ``arms``: for each candidate tuned on the
    documents (a knowledge recipe, or an adapter trained elsewhere), its base's RAG arm against it closed-book
    (the headline: RAG or fine-tuning?), then each tuned candidate with retrieval against its base's RAG arm (what
    it adds on top of RAG). The planner plans exactly these."""
    names = set(arms)
    design = design or Design.from_json(None, names)
    headline, on_top = [], []
    for c in design.tuned():
        rag = design.rag(c.name)
        if rag not in names:
            continue
        if c.injects_knowledge and Arm(c.name, "none").name in names:
            headline.append((rag, Arm(c.name, "none").name))
        if Arm(c.name, "retrieved").name in names:
            on_top.append((Arm(c.name, "retrieved").name, rag))
    return headline + on_top


def leaders(score: dict[str, float]) -> list[str]:
    """The arms tied at the top score (at the reports' precision), sorted."""
    best = max(score.values())
    return sorted(arm for arm, v in score.items() if _points(v, best) == 0)


def _rag_words(rag: str) -> str:
    model = Arm.parse(rag).model
    return f"RAG ({model} + retrieved)"


def _tuned_words(model: str, design: Design, methods: dict[str, str] | None) -> str:
    """A tuned candidate in the verdict's words: the recipe's (today's names keep theirs), else its label/name."""
    c = design.get(model)
    if c.label:
        return f"{c.label} ({model})"
    if c.recipe and DEFAULT_CANDIDATES.get(model) == c:
        return RECIPE_WORDS[c.recipe]
    if c.recipe:
        return f"{RECIPE_WORDS[c.recipe]} ({model})"
    return f"the adapter {model}"


def verdict(arms: dict[str, dict], differences: dict | None = None, confidence: float = 0.95,
            metric: str = "exact_match", methods: dict[str, str] | None = None, design: dict | None = None,
            candidates: Design | None = None) -> dict:
    """``{"text", "metric", "confidence", "best_arms", "best_score", "ceilings"}`` from metrics.json's arms and
    differences; the best arms are deployable ones, ``ceilings`` the oracle arms' scores. ``methods``: fine-tuned
    model → its finetune.method (lora | full), for the words; ``design``: metrics.json's ``inference`` block (what
    the intervals are over, said once at the end); ``candidates``: the experiment's candidates (today's three when
    not given)."""
    score = {arm: m.get(metric) for arm, m in arms.items() if m.get(metric) is not None}
    say = _Sentences(differences, confidence, metric)
    deployable = {a: v for a, v in score.items() if Arm.parse(a).deployable}
    ceilings = {a: v for a, v in score.items() if a not in deployable}
    out = {"metric": metric, "confidence": confidence, "best_arms": [], "best_score": None, "ceilings": ceilings}
    if not score:
        return {**out, "text": f"No arm has a {say.unit} score."}
    parts = []
    cands = candidates or Design.from_json(None, score)
    for a, b in comparisons(score, cands):
        if Arm.parse(a).context == "retrieved" and not cands.is_tuned(Arm.parse(a).model):  # the headline
            tuned = Arm.parse(b).model
            tuning = method_words((methods or {}).get(tuned, "lora"))["tuning"]
            c = cands.get(tuned)
            if c.kind == "adapter" or c.label:
                tuning = c.label or "the adapter"
            rag, ft = _rag_words(a), f"{tuning} ({tuned}, closed-book)"
            parts.append(("On this corpus, " if not parts else "") + say.phrase(
                score, a, b, tie=f"{rag} and {ft}: no significant difference ({{d}} {{unit}} points{{ci}})",
                ahead=f"{rag} beats {ft} by {{d}} {{unit}} points{{ci}}",
                behind=f"{ft} beats {rag} by {{d}} {{unit}} points{{ci}}"))
        else:
            name = _tuned_words(Arm.parse(a).model, cands, methods)
            parts.append(say.phrase(score, a, b, tie=f"{name} on top of RAG: no significant difference ({{d}} points{{ci}})",
                                    ahead=f"{name} added {{d}} points on top of RAG{{ci}}",
                                    behind=f"{name} on top of RAG lost {{d}} points{{ci}}"))
    if deployable:
        top = leaders(deployable)
        best = deployable[top[0]]
        names = [f"{arm} ({cands.label(arm, (methods or {}).get(Arm.parse(arm).model, 'lora'))})" for arm in top]
        if len(top) == 1:
            best_sentence = f"Best arm: {names[0]}, {say.unit} {100 * best:.1f}%."
        elif len(top) == len(deployable):
            best_sentence = f"All arms tie at {say.unit} {100 * best:.1f}%."
        else:
            best_sentence = f"Best arms (tied): {', '.join(names[:-1])} and {names[-1]}, {say.unit} {100 * best:.1f}%."
        out.update(best_arms=top, best_score=best)
    else:
        best_sentence = "No deployable arm (every arm is handed the gold document)."
    if ceilings:
        top = leaders(ceilings)
        best_sentence += (f" Ceiling with the gold document in the prompt (not deployable): {' and '.join(top)}, "
                          f"{say.unit} {100 * ceilings[top[0]]:.1f}%.")
    if design and design.get("clusters"):
        best_sentence += (f" Intervals are over the {design['clusters']} eval {design['unit']}s "
                          f"({design['questions']} questions).")
    lead = "; ".join(parts)
    text = f"{lead}. {best_sentence}" if lead else best_sentence
    return {**out, "text": text}
