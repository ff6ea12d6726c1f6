"""The factorial design's statistics: an interval for every arm's metrics, paired differences between arms
(interval + test), and the design's effects as per-question contrasts, all over the same questions and all
resampling the questions' clusters (ragft.evaluation.stats.Resampling: the source document by default).
"""

from __future__ import annotations

import math

from ragft.arms import Arm, Context, Design, ordered
from ragft.evaluation.ragas_metrics import ANSWER_METRICS, CONTEXT_METRICS
from ragft.evaluation.scoring import ArmScores
from ragft.evaluation.stats import Interval, Resampling
from ragft.io import json_safe

PER_QUESTION_METRICS = ("match", "exact_match", "f1", *ANSWER_METRICS, *CONTEXT_METRICS)
BINARY = {"match", "exact_match"}  # right or wrong per question: the discordant pairs are counted
INDEPENDENT = Resampling()  # the default of these functions: every question its own cluster


def _qids(scores: dict[str, ArmScores]) -> list[str]:
    """The questions every arm was scored on, in eval order (the same for every arm: they are paired)."""
    return [r["qid"] for r in next(iter(scores.values())).per_question] if scores else []


def arm_intervals(scores: dict[str, ArmScores], rs: Resampling = INDEPENDENT) -> dict[str, dict[str, Interval]]:
    """arm → metric → the clustered interval of each per-question metric's mean."""
    out: dict[str, dict[str, Interval]] = {}
    for name, arm in scores.items():
        qids = [r["qid"] for r in arm.per_question]
        out[name] = {metric: rs.mean([r[metric] for r in arm.per_question], qids)
                     for metric in PER_QUESTION_METRICS if arm.per_question and metric in arm.per_question[0]}
    return out


def factorial_pairs(arms: list[str], design: Design | None = None) -> list[tuple[str, str]]:
    """The differences worth testing in a models × contexts design: arms sharing a model (what a context
    does) or a context (what a model does, across bases too: the questions are the same), plus "RAG vs
    fine-tuning" (each tuned candidate closed-book against its own base with retrieval). Ordered so the first arm
    is the treatment (later in the factor lists)."""
    design = design or Design.from_json(None, arms)
    parsed = [Arm.parse(a) for a in arms]
    pairs = []
    for i, a in enumerate(parsed):
        for b in parsed[:i]:
            if a.model == b.model or a.context == b.context:
                pairs.append((a.name, b.name))
    for a in parsed:
        rag = design.rag(a.model) if design.is_tuned(a.model) else None
        if a.context == Context.none and rag in arms:
            pairs.append((rag, a.name))
    return pairs


def interval_fields(ci: Interval) -> dict:
    """An interval as metrics.json stores it, with whether it excludes 0."""
    return {**ci.fields(), "significant": bool(not math.isnan(ci.low) and not ci.crosses_zero)}


def _column(scores: dict[str, ArmScores], arm: str, metric: str = "exact_match") -> list[float]:
    return [r[metric] for r in scores[arm].per_question]


def compare_arms(
    scores: dict[str, ArmScores], rs: Resampling = INDEPENDENT, pairs: list[tuple[str, str]] | None = None,
    metric: str = "exact_match", design: Design | None = None,
) -> dict[str, dict]:
    """Paired differences over the same questions: ``metric`` (the primary metric) and F1, each the clustered
    interval of the per-question differences (pairs stay together, so question-to-question variation cancels),
    and the clustered sign-flip test on ``metric`` (``p_value``). A difference is ``significant`` when its
    interval excludes 0. For a right-or-wrong metric, ``only_a`` / ``only_b`` count the discordant questions."""
    pairs = factorial_pairs(list(scores), design) if pairs is None else pairs
    qids = _qids(scores)
    out = {}
    for a, b in pairs:
        if a not in scores or b not in scores:
            continue
        col_a, col_b = _column(scores, a, metric), _column(scores, b, metric)
        diffs = [x - y for x, y in zip(col_a, col_b)]
        primary = interval_fields(rs.mean(diffs, qids))
        f1 = rs.mean([x - y for x, y in zip(_column(scores, a, "f1"), _column(scores, b, "f1"))], qids)
        discordant = ({"only_a": sum(x == 1.0 and y != 1.0 for x, y in zip(col_a, col_b)),
                       "only_b": sum(x != 1.0 and y == 1.0 for x, y in zip(col_a, col_b))} if metric in BINARY
                      else {"only_a": None, "only_b": None})
        out[f"{a} vs {b}"] = {
            "a": a,
            "b": b,
            "metric": metric,
            "diff": primary.pop("estimate"),
            **primary,
            **discordant,
            "p_value": rs.test(diffs, qids),
            "f1_diff": f1.estimate,
            "f1_ci_low": f1.low,
            "f1_ci_high": f1.high,
        }
    return out


# effect name → (what it measures, contrast as {arm template: weight}); {m} is a candidate, {r} the untuned
# candidate on its base (a tuned candidate is measured against its own base)
EFFECTS = {
    "finetuning_gain_closed_book": ("{m}-none − {r}-none", {"{m}-none": 1, "{r}-none": -1}),
    "finetuning_gain_with_retrieval": ("{m}-retrieved − {r}-retrieved", {"{m}-retrieved": 1, "{r}-retrieved": -1}),
    "interaction": (
        "({m}-retrieved − {r}-retrieved) − ({m}-none − {r}-none)",
        {"{m}-retrieved": 1, "{r}-retrieved": -1, "{m}-none": -1, "{r}-none": 1},
    ),
    "retrieval_gain": ("{m}-retrieved − {m}-none", {"{m}-retrieved": 1, "{m}-none": -1}),
    "retrieval_gap": ("{m}-oracle − {m}-retrieved", {"{m}-oracle": 1, "{m}-retrieved": -1}),
    "distractor_cost": ("{m}-oracle − {m}-oracle_distractors", {"{m}-oracle": 1, "{m}-oracle_distractors": -1}),
}


# effect name → what it is, in words (reports and figures); EFFECTS' order is the reports' order
EFFECT_LABELS = {
    "finetuning_gain_closed_book": "fine-tuning gain without retrieval",
    "finetuning_gain_with_retrieval": "fine-tuning gain with retrieval",
    "interaction": "interaction (fine-tuning × retrieval)",
    "retrieval_gain": "retrieval gain (retrieved − closed-book)",
    "retrieval_gap": "retrieval gap (oracle − retrieved)",
    "distractor_cost": "distractor cost (oracle − with distractors)",
}
TUNING_EFFECTS = {"finetuning_gain_closed_book", "finetuning_gain_with_retrieval", "interaction"}  # tuned only


def effects(scores: dict[str, ArmScores], rs: Resampling = INDEPENDENT, metric: str = "exact_match",
            design: Design | None = None) -> dict:
    """model → effect → {estimate, ci_low, ci_high, significant, clusters, design_effect, ..., contrast}: the
    factorial design's effects as per-question contrasts of ``metric``, each with its clustered interval (the
    interaction is a difference-in-differences over the same questions). Effects whose arms were not run are
    left out."""
    design = design or Design.from_json(None, scores)
    qids = _qids(scores)
    out: dict[str, dict] = {}
    for m in ordered((Arm.parse(n).model for n in scores), design.names):
        ref = design.reference(m) if design.is_tuned(m) else None
        for name, (label, weights) in EFFECTS.items():
            if name in TUNING_EFFECTS and ref is None:
                continue
            arms = {t.format(m=m, r=ref): w for t, w in weights.items()}
            if not all(a in scores for a in arms):
                continue
            cols = {a: _column(scores, a, metric) for a in arms}
            contrast = [sum(w * cols[a][i] for a, w in arms.items()) for i in range(len(qids))]
            out.setdefault(m, {})[name] = {**interval_fields(rs.mean(contrast, qids)),
                                           "contrast": label.format(m=m, r=ref)}
    return out


def metrics_table(scores: dict[str, ArmScores], intervals: dict[str, dict[str, Interval]] | None = None,
                  digits: int = 6) -> dict[str, dict]:
    """Per arm: every metric and, where intervals are given, ``<metric>_ci`` [low, high] with the interval's
    ``<metric>_clusters`` and ``<metric>_design_effect``; rounded."""
    out = {}
    for name, s in sorted(scores.items()):
        row = dict(s.metrics)
        for metric, ci in (intervals or {}).get(name, {}).items():
            row[f"{metric}_ci"] = [ci.low, ci.high]
            row[f"{metric}_clusters"] = ci.clusters
            row[f"{metric}_design_effect"] = ci.design_effect
        out[name] = json_safe(row, digits)
    return out


def scored_clusters(scores: dict[str, ArmScores], rs: Resampling) -> int:
    """How many clusters the scored questions fall into."""
    return len(set(rs.clusters(_qids(scores))))


def metrics_document(scores: dict[str, ArmScores], rs: Resampling = INDEPENDENT, extra: dict | None = None,
                     metric: str = "exact_match", design: Design | None = None) -> dict:
    """metrics/metrics.json: arms (with intervals), differences and effects on ``metric`` (the primary metric),
    the resampling design every interval and test follows (``inference``) (+ ``extra``)."""
    return json_safe(
        {
            "arms": metrics_table(scores, arm_intervals(scores, rs)),
            "differences": compare_arms(scores, rs, metric=metric, design=design),
            "effects": effects(scores, rs, metric=metric, design=design),
            "inference": rs.settings(scored_clusters(scores, rs), len(_qids(scores))),
            "primary_metric": metric,
            **(extra or {}),
        }
    )
