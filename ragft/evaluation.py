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


# The questions the experiment asks, as (a, b) pairs: does a beat b on the same questions?
COMPARISONS = (
    ("base-retrieved", "finetuned-none"),  # RAG vs fine-tuning
    ("finetuned-retrieved", "base-retrieved"),  # does fine-tuning add to RAG?
    ("base-retrieved", "base-none"),  # what retrieval adds
    ("finetuned-none", "base-none"),  # what fine-tuning adds, closed-book
)


def compare_arms(scores: dict[str, ArmScores], seed: int = 0, pairs=COMPARISONS) -> dict[str, dict]:
    """Paired EM differences with a bootstrap 95% CI and McNemar's exact test (ragft.stats), for the
    pairs of ``pairs`` whose arms were both run: the same questions answered by both arms, so the
    question-to-question variation cancels."""
    from ragft.stats import mcnemar, paired_bootstrap_diff

    out = {}
    for a, b in pairs:
        if a in scores and b in scores:
            em_a = [r["exact_match"] for r in scores[a].per_question]
            em_b = [r["exact_match"] for r in scores[b].per_question]
            ci = paired_bootstrap_diff(em_a, em_b, seed=seed)
            test = mcnemar([v == 1.0 for v in em_a], [v == 1.0 for v in em_b])
            out[f"{a} vs {b}"] = {"a": a, "b": b, "diff": ci.estimate, "ci_low": ci.low, "ci_high": ci.high, **test}
    return out


def metrics_table(scores: dict[str, ArmScores], digits: int = 6) -> dict[str, dict]:
    """metrics.json: per arm, rounded; NaN becomes null (JSON has no NaN)."""

    def clean(v: float) -> float | int | None:
        if isinstance(v, int):
            return v
        return None if math.isnan(v) else round(v, digits)

    return {name: {k: clean(v) for k, v in s.metrics.items()} for name, s in sorted(scores.items())}


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
