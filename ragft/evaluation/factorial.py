"""The factorial design's statistics: a CI for every arm's metrics, paired differences between arms
(bootstrap CI + McNemar), and the design's effects as per-question contrasts, all over the same questions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ragft.arms import RAG, Arm, Context, Model, models_of
from ragft.evaluation.ragas_metrics import ANSWER_METRICS, CONTEXT_METRICS
from ragft.evaluation.scoring import ArmScores
from ragft.io import json_safe

PER_QUESTION_METRICS = ("match", "exact_match", "f1", *ANSWER_METRICS, *CONTEXT_METRICS)
BINARY = {"match", "exact_match"}  # right or wrong per question: McNemar applies


@dataclass(frozen=True)
class Bootstrap:
    """The settings of every interval (eval.bootstrap_resamples / confidence / seed)."""

    resamples: int = 2000
    level: float = 0.95
    seed: int = 0


def arm_intervals(scores: dict[str, ArmScores], boot: Bootstrap = Bootstrap()) -> dict[str, dict[str, tuple]]:
    """arm → metric → (low, high): a percentile bootstrap CI of each per-question metric's mean."""
    from ragft.evaluation.stats import bootstrap_mean

    out: dict[str, dict[str, tuple]] = {}
    for name, arm in scores.items():
        out[name] = {}
        for metric in PER_QUESTION_METRICS:
            values = [r[metric] for r in arm.per_question if metric in r]
            if values:
                ci = bootstrap_mean(values, resamples=boot.resamples, seed=boot.seed, level=boot.level)
                out[name][metric] = (ci.low, ci.high)
    return out


def factorial_pairs(arms: list[str]) -> list[tuple[str, str]]:
    """The differences worth testing in a models × contexts design: arms sharing a model (what a context
    does) or a context (what a model does), plus "RAG vs fine-tuning" (base-retrieved vs each fine-tuned
    model closed-book). Ordered so the first arm is the treatment (later in the factor lists)."""
    parsed = [Arm.parse(a) for a in arms]
    pairs = []
    for i, a in enumerate(parsed):
        for b in parsed[:i]:
            if a.model == b.model or a.context == b.context:
                pairs.append((a.name, b.name))
    for a in parsed:
        if a.is_tuned and a.context == Context.none and RAG in arms:
            pairs.append((RAG, a.name))
    return pairs


def _interval(values: list[float], boot: Bootstrap) -> dict:
    from ragft.evaluation.stats import bootstrap_mean

    ci = bootstrap_mean(values, resamples=boot.resamples, seed=boot.seed, level=boot.level)
    return {
        "estimate": ci.estimate,
        "ci_low": ci.low,
        "ci_high": ci.high,
        "significant": bool(not math.isnan(ci.low) and not ci.crosses_zero),
    }


def _column(scores: dict[str, ArmScores], arm: str, metric: str = "exact_match") -> list[float]:
    return [r[metric] for r in scores[arm].per_question]


def compare_arms(
    scores: dict[str, ArmScores], boot: Bootstrap = Bootstrap(), pairs: list[tuple[str, str]] | None = None,
    metric: str = "exact_match",
) -> dict[str, dict]:
    """Paired differences over the same questions: ``metric`` (the primary metric) and F1 with bootstrap
    CIs (resampling questions, so question-to-question variation cancels), and McNemar's exact test on
    ``metric`` when it is right-or-wrong per question. A difference is ``significant`` when its CI excludes 0."""
    from ragft.evaluation.stats import mcnemar

    pairs = factorial_pairs(list(scores)) if pairs is None else pairs
    out = {}
    for a, b in pairs:
        if a not in scores or b not in scores:
            continue
        col_a, col_b = _column(scores, a, metric), _column(scores, b, metric)
        primary = _interval([x - y for x, y in zip(col_a, col_b)], boot)
        f1 = _interval([x - y for x, y in zip(_column(scores, a, "f1"), _column(scores, b, "f1"))], boot)
        test = (mcnemar([v == 1.0 for v in col_a], [v == 1.0 for v in col_b]) if metric in BINARY
                else {"only_a": None, "only_b": None, "p_value": None})
        out[f"{a} vs {b}"] = {
            "a": a,
            "b": b,
            "metric": metric,
            "diff": primary["estimate"],
            "ci_low": primary["ci_low"],
            "ci_high": primary["ci_high"],
            "significant": primary["significant"],
            **test,
            "f1_diff": f1["estimate"],
            "f1_ci_low": f1["ci_low"],
            "f1_ci_high": f1["ci_high"],
        }
    return out


# effect name → (what it measures, contrast as {arm template: weight}); {m} is a model
EFFECTS = {
    "finetuning_gain_closed_book": ("{m}-none − base-none", {"{m}-none": 1, "base-none": -1}),
    "finetuning_gain_with_retrieval": ("{m}-retrieved − base-retrieved", {"{m}-retrieved": 1, "base-retrieved": -1}),
    "interaction": (
        "({m}-retrieved − base-retrieved) − ({m}-none − base-none)",
        {"{m}-retrieved": 1, "base-retrieved": -1, "{m}-none": -1, "base-none": 1},
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
TUNING_EFFECTS = {"finetuning_gain_closed_book", "finetuning_gain_with_retrieval", "interaction"}  # not for base


def effects(scores: dict[str, ArmScores], boot: Bootstrap = Bootstrap(), metric: str = "exact_match") -> dict:
    """model → effect → {estimate, ci_low, ci_high, significant, contrast}: the factorial design's
    effects as per-question contrasts of ``metric``, each with a paired bootstrap CI (the interaction is a
    difference-in-differences over the same questions). Effects whose arms were not run are left out."""
    out: dict[str, dict] = {}
    for m in models_of(scores):
        for name, (label, weights) in EFFECTS.items():
            if m == Model.base and name in TUNING_EFFECTS:
                continue
            arms = {t.format(m=m): w for t, w in weights.items()}
            if not all(a in scores for a in arms):
                continue
            cols = {a: _column(scores, a, metric) for a in arms}
            contrast = [sum(w * cols[a][i] for a, w in arms.items()) for i in range(len(next(iter(cols.values()))))]
            out.setdefault(m, {})[name] = {**_interval(contrast, boot), "contrast": label.format(m=m)}
    return out


def metrics_table(scores: dict[str, ArmScores], intervals: dict | None = None, digits: int = 6) -> dict[str, dict]:
    """Per arm: every metric, and ``<metric>_ci`` [low, high] where intervals are given; rounded."""
    out = {}
    for name, s in sorted(scores.items()):
        row = dict(s.metrics)
        for metric, ci in (intervals or {}).get(name, {}).items():
            row[f"{metric}_ci"] = list(ci)
        out[name] = json_safe(row, digits)
    return out


def metrics_document(scores: dict[str, ArmScores], boot: Bootstrap = Bootstrap(), extra: dict | None = None,
                     metric: str = "exact_match") -> dict:
    """metrics/metrics.json: arms (with CIs), differences and effects on ``metric`` (the primary metric),
    the bootstrap settings (+ ``extra``)."""
    return json_safe(
        {
            "arms": metrics_table(scores, arm_intervals(scores, boot)),
            "differences": compare_arms(scores, boot, metric=metric),
            "effects": effects(scores, boot, metric=metric),
            "bootstrap": {"resamples": boot.resamples, "confidence": boot.level, "seed": boot.seed},
            "primary_metric": metric,
            **(extra or {}),
        }
    )
