"""Score every arm on one scored split (eval, or dev), question by question: SQuAD exact match / token F1 and, when
asked, ragas' metrics that need no LLM.

A score that is undefined for a question (no gold chunks, nothing retrieved) is NaN and stays NaN:
aggregates are means over the defined scores, and NaN when none is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from ragft import paths
from ragft.arms import Arm, Context
from ragft.evaluation.answers import exact_match_score, f1_score, gold_answers, match_score, max_over_ground_truths
from ragft.evaluation.ragas_metrics import ANSWER_METRICS, CONTEXT_METRICS, ragas_scores
from ragft.io import DataError, read_jsonl

log = logging.getLogger(__name__)


def read_predictions(pred_dir: str | Path, qids: list[str], stage: str | None = None,
                     other_split: Collection[str] = ()) -> dict[str, dict]:
    """One arm's predictions by qid (``pred_dir``: data/predictions/<model>/<context>); every question of
    ``qids`` must have exactly one. ``other_split``: qids of the other scored split (eval or dev), answered
    in the same file and left out here. ``stage``: the stage that writes them (default infer@<model>)."""
    pred_dir = Path(pred_dir)
    path = pred_dir / paths.PREDICTIONS_FILE
    stage = stage or f"infer@{pred_dir.parent.name}"
    if not path.exists():
        raise DataError(f"{path}: not found. Run `dvc repro {stage}`.")
    by_qid: dict[str, dict] = {}
    for lineno, row in enumerate(read_jsonl(path), 1):
        if not isinstance(row.get("answer"), str) or "qid" not in row:
            raise DataError(
                f"{path}: row {lineno} needs 'qid' and a string 'answer'. Rerun `dvc repro {stage}`."
            )
        count = row.get("output_tokens")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise DataError(f"{path}: row {lineno} has no 'output_tokens' count (the answer's generated tokens; "
                            f"predictions from before they were counted). Rerun `dvc repro {stage}`.")
        if row["qid"] not in other_split:
            by_qid[row["qid"]] = row
    missing = [q for q in qids if q not in by_qid]
    extra = sorted(set(by_qid) - set(qids))
    if missing or extra:
        raise DataError(
            f"{path}: predictions do not match the eval questions ({len(missing)} missing, e.g. {missing[:3]}; "
            f"{len(extra)} unknown, e.g. {extra[:3]}). Rerun `dvc repro {stage}` after the contexts stage."
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
                "match": max_over_ground_truths(match_score, pred, golds),
            }
        )
    metrics = {
        "n": len(rows),
        "exact_match": _mean([r["exact_match"] for r in rows]),
        "f1": _mean([r["f1"] for r in rows]),
        "match": _mean([r["match"] for r in rows]),
        "mean_answer_words": _mean([float(len(r["answer"].split())) for r in rows]),  # verbosity, beside match
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
    arms: list[Arm],
    qa: list[dict],
    chunks: list[dict],
    predictions_root: str | Path = paths.PREDICTIONS,
    use_ragas: bool = True,
    other_split: Collection[str] = (),
) -> tuple[dict[str, ArmScores], dict[str, dict[str, dict]]]:
    """Score every arm on the questions ``qa`` (one split); return (scores by arm name, predictions by arm name)."""
    qids = [q["qid"] for q in qa]
    texts_by_chunk, texts_by_doc = chunk_texts(chunks)
    gold = {q["qid"]: [t for d in q.get("doc_ids") or [] for t in texts_by_doc.get(d, [])] for q in qa}
    # read every arm first: a missing arm fails before minutes of scoring
    preds = {a.name: read_predictions(Path(predictions_root) / a.model / a.context, qids, other_split=other_split)
             for a in arms}
    scores = {}
    for arm in arms:
        name = arm.name
        closed_book = arm.context == Context.none
        scores[name] = score_arm(name, qa, preds[name], texts_by_chunk, None if closed_book else gold, use_ragas)
        m = scores[name].metrics
        log.info("%s: match %.3f EM %.3f F1 %.3f", name, m["match"], m["exact_match"], m["f1"])
    return scores, preds


def per_question_table(qa: list[dict], scores: dict[str, ArmScores]):
    """reports/per_question.csv as a DataFrame: the question, its gold answer, each arm's answer/match/EM/F1."""
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
        table[f"{name}.match"] = [r["match"] for r in arm.per_question]
        table[f"{name}.exact_match"] = [r["exact_match"] for r in arm.per_question]
        table[f"{name}.f1"] = [round(r["f1"], 6) for r in arm.per_question]
    return table
