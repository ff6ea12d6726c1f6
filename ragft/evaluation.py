"""Score every arm on the eval split: SQuAD exact match / token F1, and ragas' metrics that need no LLM.

EM/F1 follow the official SQuAD v1.1 evaluation script (Rajpurkar et al., 2016, "SQuAD: 100,000+
Questions for Machine Comprehension of Text", evaluate-v1.1.py): lowercase, strip punctuation and the
articles a/an/the, collapse whitespace; F1 over the bag of normalised tokens; the max over gold
answers. ragas (0.4.x) supplies string similarity, ROUGE-L and, for arms with a retrieved context,
context precision/recall against the gold documents' chunks, all computed without an LLM or network.
A score that is undefined for a question (no gold chunks, nothing retrieved) is NaN and stays NaN:
aggregates are means over the defined scores, and NaN when none is.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragft import paths
from ragft.io import DataError, read_jsonl
from ragft.text import normalize_answer

log = logging.getLogger(__name__)

ANSWER_METRICS = ("string_similarity", "rouge")
CONTEXT_METRICS = ("context_precision", "context_recall")

# --------------------------------------------------------------------------- SQuAD v1.1


def exact_match_score(prediction: str, ground_truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_score(prediction: str, ground_truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(ground_truth).split()
    num_same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def max_over_ground_truths(metric, prediction: str, ground_truths: list[str]) -> float:
    return max(metric(prediction, gt) for gt in ground_truths)


def gold_answers(answer: Any) -> list[str]:
    """A QA row's answer field as a list of acceptable answers."""
    return [answer] if isinstance(answer, str) else list(answer)


# --------------------------------------------------------------------------- ragas


def _ragas_metrics(names: tuple[str, ...]) -> dict[str, Any]:
    """ragas' classic metric objects: the only ones its evaluate() accepts in 0.4.x (importing them
    from ragas.metrics warns of deprecation; the collections API has no non-LLM context metrics)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ragas.metrics import (
            NonLLMContextPrecisionWithReference,
            NonLLMContextRecall,
            NonLLMStringSimilarity,
            RougeScore,
        )
    make = {
        "string_similarity": NonLLMStringSimilarity,
        "rouge": RougeScore,
        "context_precision": NonLLMContextPrecisionWithReference,
        "context_recall": NonLLMContextRecall,
    }
    return {name: make[name]() for name in names}


def ragas_scores(samples: list[dict], names: tuple[str, ...]) -> dict[str, list[float]]:
    """Per-sample scores of ragas metrics ``names`` for ragas SingleTurnSample dicts (response,
    reference, retrieved_contexts, reference_contexts), in the order of ``samples``."""
    if not samples:
        return {name: [] for name in names}
    from ragas import EvaluationDataset, evaluate
    from ragas.metrics.base import MetricWithEmbeddings, MetricWithLLM

    metrics = _ragas_metrics(names)
    if any(isinstance(m, (MetricWithLLM, MetricWithEmbeddings)) for m in metrics.values()):
        raise AssertionError("only metrics that need no LLM or embeddings may run here (no network)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = evaluate(
            EvaluationDataset.from_list(samples),
            metrics=list(metrics.values()),
            show_progress=False,
            raise_exceptions=True,
        )
    out: dict[str, list[float]] = {}
    for name, metric in metrics.items():
        # ROUGE's column is "rouge_score(mode=fmeasure)": match the metric name as a prefix
        key = next(k for k in result.scores[0] if k == metric.name or k.startswith(metric.name + "("))
        out[name] = [float(row[key]) if row[key] is not None else math.nan for row in result.scores]
    return out


# --------------------------------------------------------------------------- inputs


def read_eval_questions(path: str | Path) -> list[dict]:
    rows = read_jsonl(path)
    if not rows:
        raise DataError(f"{path}: no eval questions. Rerun `dvc repro prepare`.")
    for lineno, row in enumerate(rows, 1):
        for key in ("qid", "question", "answer"):
            if key not in row:
                raise DataError(f"{path}: row {lineno} has no field '{key}'. Regenerate it with `dvc repro prepare`.")
        answers = row["answer"]
        if not (
            isinstance(answers, str)
            or (isinstance(answers, list) and answers and all(isinstance(a, str) for a in answers))
        ):
            raise DataError(f"{path}: row {lineno}: 'answer' must be a string or a non-empty list of strings.")
    return rows


def read_predictions(pred_dir: str | Path, qids: list[str]) -> dict[str, dict]:
    """One arm's predictions by qid; every eval question must have exactly one."""
    pred_dir = Path(pred_dir)
    path = pred_dir / paths.PREDICTIONS_FILE
    if not path.exists():
        raise DataError(f"{path}: not found. Run `dvc repro infer@{pred_dir.name}`.")
    by_qid: dict[str, dict] = {}
    for lineno, row in enumerate(read_jsonl(path), 1):
        if not isinstance(row.get("answer"), str) or "qid" not in row:
            raise DataError(
                f"{path}: row {lineno} needs 'qid' and a string 'answer'. Rerun `dvc repro infer@{pred_dir.name}`."
            )
        by_qid[row["qid"]] = row
    missing = [q for q in qids if q not in by_qid]
    extra = sorted(set(by_qid) - set(qids))
    if missing or extra:
        raise DataError(
            f"{path}: predictions do not match the eval questions ({len(missing)} missing, e.g. {missing[:3]}; "
            f"{len(extra)} unknown, e.g. {extra[:3]}). Rerun `dvc repro infer@{pred_dir.name}` after the contexts stage."
        )
    return by_qid


def chunk_texts(chunks: list[dict]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(text by chunk id, chunk texts by document id in document order) from chunks.jsonl rows."""
    by_id: dict[str, str] = {}
    by_doc: dict[str, list[tuple[int, str]]] = {}
    for row in chunks:
        by_id[row["chunk_id"]] = row["text"]
        by_doc.setdefault(row["doc_id"], []).append((row.get("start", 0), row["text"]))
    return by_id, {doc: [t for _, t in sorted(items, key=lambda x: x[0])] for doc, items in by_doc.items()}


# --------------------------------------------------------------------------- scoring


@dataclass
class ArmScores:
    """One arm: its aggregate metrics and its per-question scores (in eval order)."""

    name: str
    metrics: dict[str, float]
    per_question: list[dict] = field(default_factory=list)


def _mean(values: list[float]) -> float:
    defined = [v for v in values if not math.isnan(v)]
    return sum(defined) / len(defined) if defined else math.nan


def score_arm(
    name: str,
    qa: list[dict],
    predictions: dict[str, dict],
    texts_by_chunk: dict[str, str],
    gold_contexts: dict[str, list[str]] | None,
    use_ragas: bool = True,
) -> ArmScores:
    """Score one arm. ``gold_contexts`` (qid → gold chunks' texts) is given for arms with a retrieved
    context only; their context precision/recall compare retrieved chunks to it."""
    rows = []
    for q in qa:
        pred = predictions[q["qid"]]["answer"]
        golds = gold_answers(q["answer"])
        rows.append(
            {
                "qid": q["qid"],
                "answer": pred,
                "exact_match": max_over_ground_truths(exact_match_score, pred, golds),
                "f1": max_over_ground_truths(f1_score, pred, golds),
            }
        )
    metrics = {
        "n": len(rows),
        "exact_match": _mean([r["exact_match"] for r in rows]),
        "f1": _mean([r["f1"] for r in rows]),
        "mean_prompt_tokens": _mean([float(predictions[q["qid"]].get("prompt_tokens", math.nan)) for q in qa]),
    }
    if use_ragas:
        samples = [{"response": r["answer"], "reference": gold_answers(q["answer"])[0]} for r, q in zip(rows, qa)]
        for metric, scores in ragas_scores(samples, ANSWER_METRICS).items():
            for r, s in zip(rows, scores):
                r[metric] = s
            metrics[metric] = _mean(scores)
        if gold_contexts is not None:
            _score_contexts(rows, qa, predictions, texts_by_chunk, gold_contexts, metrics)
    return ArmScores(name, metrics, rows)


def _score_contexts(rows, qa, predictions, texts_by_chunk, gold_contexts, metrics) -> None:
    """Context precision/recall where both sides exist; NaN where either is empty (undefined)."""
    samples, where = [], []
    for i, q in enumerate(qa):
        retrieved = [texts_by_chunk[c] for c in predictions[q["qid"]].get("chunk_ids", []) if c in texts_by_chunk]
        reference = gold_contexts.get(q["qid"], [])
        for metric in CONTEXT_METRICS:
            rows[i][metric] = math.nan
        if retrieved and reference:
            samples.append({"retrieved_contexts": retrieved, "reference_contexts": reference})
            where.append(i)
    undefined = len(qa) - len(where)
    if undefined:
        log.warning(
            "%d questions have no retrieved or no gold chunks: their context precision/recall are NaN", undefined
        )
    for metric, scores in ragas_scores(samples, CONTEXT_METRICS).items():
        for i, s in zip(where, scores):
            rows[i][metric] = s
        metrics[metric] = _mean([r[metric] for r in rows])


def evaluate_arms(
    arms: list[tuple[str, str]],
    qa: list[dict],
    chunks: list[dict],
    predictions_root: str | Path = paths.PREDICTIONS,
    use_ragas: bool = True,
) -> tuple[dict[str, ArmScores], dict[str, dict[str, dict]]]:
    """Score every (model, context) arm; return (scores by arm name, predictions by arm name)."""
    qids = [q["qid"] for q in qa]
    texts_by_chunk, texts_by_doc = chunk_texts(chunks)
    gold = {q["qid"]: [t for d in q.get("doc_ids") or [] for t in texts_by_doc.get(d, [])] for q in qa}
    # read every arm first: a missing arm fails before minutes of scoring
    preds = {f"{m}-{c}": read_predictions(Path(predictions_root) / f"{m}-{c}", qids) for m, c in arms}
    scores = {}
    for model, context in arms:
        name = f"{model}-{context}"
        scores[name] = score_arm(name, qa, preds[name], texts_by_chunk, gold if context != "none" else None, use_ragas)
        log.info("%s: EM %.3f F1 %.3f", name, scores[name].metrics["exact_match"], scores[name].metrics["f1"])
    return scores, preds


# --------------------------------------------------------------------------- statistics

PER_QUESTION_METRICS = ("exact_match", "f1", *ANSWER_METRICS, *CONTEXT_METRICS)


@dataclass(frozen=True)
class Bootstrap:
    """The settings of every interval (eval.bootstrap_resamples / confidence / seed)."""

    resamples: int = 2000
    level: float = 0.95
    seed: int = 0


def arm_intervals(scores: dict[str, ArmScores], boot: Bootstrap = Bootstrap()) -> dict[str, dict[str, tuple]]:
    """arm → metric → (low, high): a percentile bootstrap CI of each per-question metric's mean."""
    from ragft.stats import bootstrap_mean

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
    parsed = [(a, *a.split("-", 1)) for a in arms]
    pairs = []
    for i, (a, ma, ca) in enumerate(parsed):
        for b, mb, cb in parsed[:i]:
            if ma == mb or ca == cb:
                pairs.append((a, b))
    for a, m, c in parsed:
        if m != "base" and c == "none" and "base-retrieved" in arms:
            pairs.append(("base-retrieved", a))
    return pairs


def _interval(values: list[float], boot: Bootstrap) -> dict:
    from ragft.stats import bootstrap_mean

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
    scores: dict[str, ArmScores], boot: Bootstrap = Bootstrap(), pairs: list[tuple[str, str]] | None = None
) -> dict[str, dict]:
    """Paired differences over the same questions: EM and F1 with bootstrap CIs (resampling questions,
    so question-to-question variation cancels) and McNemar's exact test on EM. A difference is
    ``significant`` when its CI excludes 0."""
    from ragft.stats import mcnemar

    pairs = factorial_pairs(list(scores)) if pairs is None else pairs
    out = {}
    for a, b in pairs:
        if a not in scores or b not in scores:
            continue
        em_a, em_b = _column(scores, a), _column(scores, b)
        em = _interval([x - y for x, y in zip(em_a, em_b)], boot)
        f1 = _interval([x - y for x, y in zip(_column(scores, a, "f1"), _column(scores, b, "f1"))], boot)
        test = mcnemar([v == 1.0 for v in em_a], [v == 1.0 for v in em_b])
        out[f"{a} vs {b}"] = {
            "a": a,
            "b": b,
            "diff": em["estimate"],
            "ci_low": em["ci_low"],
            "ci_high": em["ci_high"],
            "significant": em["significant"],
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


def effects(scores: dict[str, ArmScores], boot: Bootstrap = Bootstrap(), metric: str = "exact_match") -> dict:
    """model → effect → {estimate, ci_low, ci_high, significant, contrast}: the factorial design's
    effects as per-question contrasts of EM, each with a paired bootstrap CI (the interaction is a
    difference-in-differences over the same questions). Effects whose arms were not run are left out."""
    models = sorted({a.split("-", 1)[0] for a in scores}, key=lambda m: (m != "base", m))
    out: dict[str, dict] = {}
    for m in models:
        for name, (label, weights) in EFFECTS.items():
            if m == "base" and (name.startswith("finetuning") or name == "interaction"):
                continue
            arms = {t.format(m=m): w for t, w in weights.items()}
            if not all(a in scores for a in arms):
                continue
            cols = {a: _column(scores, a, metric) for a in arms}
            contrast = [sum(w * cols[a][i] for a, w in arms.items()) for i in range(len(next(iter(cols.values()))))]
            out.setdefault(m, {})[name] = {**_interval(contrast, boot), "contrast": label.format(m=m)}
    return out


def json_safe(v: Any, digits: int = 6) -> Any:
    """JSON-safe and stable: floats rounded, NaN → null (JSON has no NaN)."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, digits)
    if isinstance(v, (list, tuple)):
        return [json_safe(x, digits) for x in v]
    if isinstance(v, dict):
        return {k: json_safe(x, digits) for k, x in v.items()}
    return v


def metrics_table(scores: dict[str, ArmScores], intervals: dict | None = None, digits: int = 6) -> dict[str, dict]:
    """Per arm: every metric, and ``<metric>_ci`` [low, high] where intervals are given; rounded."""
    out = {}
    for name, s in sorted(scores.items()):
        row = dict(s.metrics)
        for metric, ci in (intervals or {}).get(name, {}).items():
            row[f"{metric}_ci"] = list(ci)
        out[name] = json_safe(row, digits)
    return out


def metrics_document(scores: dict[str, ArmScores], boot: Bootstrap = Bootstrap(), extra: dict | None = None) -> dict:
    """metrics/metrics.json: arms (with CIs), differences, effects, the bootstrap settings (+ ``extra``)."""
    return json_safe(
        {
            "arms": metrics_table(scores, arm_intervals(scores, boot)),
            "differences": compare_arms(scores, boot),
            "effects": effects(scores, boot),
            "bootstrap": {"resamples": boot.resamples, "confidence": boot.level, "seed": boot.seed},
            **(extra or {}),
        }
    )


def per_question_table(qa: list[dict], scores: dict[str, ArmScores]):
    """reports/per_question.csv as a DataFrame: the question, its gold answer, each arm's answer/EM/F1."""
    import pandas as pd

    table = pd.DataFrame(
        {
            "qid": [q["qid"] for q in qa],
            "attribute": [q.get("attribute") or "" for q in qa],
            "question": [q["question"] for q in qa],
            "gold_answer": [" | ".join(gold_answers(q["answer"])) for q in qa],
        }
    )
    for name, arm in scores.items():
        table[f"{name}.answer"] = [r["answer"] for r in arm.per_question]
        table[f"{name}.exact_match"] = [r["exact_match"] for r in arm.per_question]
        table[f"{name}.f1"] = [round(r["f1"], 6) for r in arm.per_question]
    return table


def contamination_report(qa: list[dict], chunks: list[dict], trained: dict[str, dict], seed: int = 0) -> dict:
    """What overlaps what: the fine-tuning data vs the eval questions (each finetune stage checked it and
    failed on any overlap; its counts are repeated here), the corpus vs the eval questions (near-duplicate
    questions in the corpus would be a leak of another kind), and the share of eval answers found in the
    corpus (expected: that is RAG)."""
    from ragft.contamination import answers_in_corpus, find_overlap

    texts = [c["text"] for c in chunks]
    corpus = find_overlap("corpus", texts, {str(q["qid"]): q["question"] for q in qa}, seed=seed)
    answers = {str(q["qid"]): gold_answers(q["answer"])[0] for q in qa}
    return {
        "eval_questions": len(qa),
        "finetune_vs_eval": {
            m: {"exact": t.get("eval_overlap_exact"), "near_duplicates": t.get("eval_overlap_near")}
            for m, t in sorted(trained.items())
        },
        "corpus_vs_eval_questions": {"exact": len(corpus.exact), "near_duplicates": len(corpus.near)},
        "eval_answers_in_corpus": round(answers_in_corpus(answers, texts), 6),
    }
