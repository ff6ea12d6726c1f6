"""Eval questions → ranked chunks, and how good the ranking is against the gold documents.

Relevance is by document: a chunk is relevant to a question when it comes from one of the
question's gold documents (chunk boundaries are ours, the gold labels are per document).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence

from ragft.io import DataError

log = logging.getLogger(__name__)


def ranked_rows(qids: list[str], ranks: list[dict], chunks: list[dict], method: str) -> list[dict]:
    """data/retrieval/ranked.jsonl rows ``{"qid","method","chunk_ids","doc_ids","scores"[,"ranks"]}`` sorted by
    qid, from a retriever's per-question ``{"rows","scores"[,"ranks"]}`` (rows index ``chunks``)."""
    if len(qids) != len(ranks):
        raise DataError(f"question embeddings: {len(ranks)} rankings but {len(qids)} question ids. "
                        "Fix: `dvc repro embed`.")
    out = []
    for qid, r in zip(qids, ranks):
        picked = [chunks[i] for i in r["rows"]]
        row = {"qid": qid, "method": method, "chunk_ids": [c["chunk_id"] for c in picked],
               "doc_ids": [c["doc_id"] for c in picked], "scores": [round(float(s), 6) for s in r["scores"]]}
        if "ranks" in r:
            row["ranks"] = r["ranks"]
        out.append(row)
    return sorted(out, key=lambda r: r["qid"])


def question_metrics(ranked_docs: Sequence[str], gold: set[str], n_relevant: int, ks: Sequence[int]) -> dict[str, float]:
    """recall@k (any gold chunk in top k), reciprocal rank, nDCG@k (binary relevance) for one question."""
    rel = [1.0 if d in gold else 0.0 for d in ranked_docs]
    first = next((i for i, r in enumerate(rel) if r), None)
    out = {"mrr": 0.0 if first is None else 1.0 / (first + 1)}
    for k in ks:
        out[f"recall@{k}"] = float(any(rel[:k]))
        dcg = sum(r / math.log2(i + 2) for i, r in enumerate(rel[:k]))
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(n_relevant, k)))
        out[f"ndcg@{k}"] = dcg / ideal if ideal else 0.0
    return out


def evaluate(ranked: list[dict], questions: list[dict], chunks: list[dict], ks: Sequence[int]) -> dict[str, float]:
    """Mean recall@k, MRR and nDCG@k over the questions (a question nothing was retrieved for scores 0)."""
    per_doc = Counter(c["doc_id"] for c in chunks)
    by_qid = {r["qid"]: r for r in ranked}
    totals: Counter = Counter()
    unreachable = 0
    for q in questions:
        gold = set(q["doc_ids"])
        n_relevant = sum(per_doc[d] for d in gold)
        unreachable += n_relevant == 0
        docs = by_qid.get(q["qid"], {}).get("doc_ids", [])
        totals.update(question_metrics(docs, gold, n_relevant, ks))
    if unreachable:
        log.warning("%d question(s) have no chunk from their gold documents in the corpus", unreachable)
    n = len(questions)
    keys = ["mrr"] + [f"{m}@{k}" for m in ("recall", "ndcg") for k in ks]
    metrics = {key: round(totals[key] / n, 6) if n else 0.0 for key in keys}
    metrics["n_questions"] = n
    return metrics


def recall_curve(metrics: dict[str, float], ks: Sequence[int]) -> list[dict]:
    """Rows for plots/recall_at_k.csv."""
    return [{"k": int(k), "recall": metrics[f"recall@{k}"]} for k in sorted(ks)]
