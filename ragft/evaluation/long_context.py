"""The long_context arms, scored by where the answer sits: each model's primary metric by the third of the prompt's
corpus that holds the question's gold document (first, middle, last; Liu et al. 2023, "Lost in the Middle"), with
clustered intervals (ragft.evaluation.stats.Resampling), and what a budget (long_context.max_tokens) left out: the
share of the corpus each question saw and whether its gold document was in the prompt.

A long_context prediction lists the documents of its prompt in their order (``chunk_ids``: ``doc:<doc_id>``).
"""

from __future__ import annotations

from typing import Any

from ragft.arms import DOCUMENT_CHUNK

THIRDS = ("first", "middle", "last")
ABSENT = "not in prompt"


def gold_position(chunk_ids: list[str], gold: list[str]) -> str:
    """The third of the prompt's documents that holds the first gold document, or ``ABSENT``."""
    docs = [c[len(DOCUMENT_CHUNK):] for c in chunk_ids]
    at = next((i for i, d in enumerate(docs) if d in set(gold)), None)
    return ABSENT if at is None else THIRDS[min(2, 3 * at // max(len(docs), 1))]


def score(arms: list[Any], qa: list[dict], per_question: dict[str, list[dict]], preds: dict[str, dict],
          n_documents: int, rs: Any, metric: str) -> dict:
    """metrics.json's ``long_context`` block: per long_context arm, the metric by gold position (estimate, CI,
    questions), the mean share of the corpus in the prompt and the share of questions whose gold document was in
    it. Empty when no arm reads the long_context context."""
    out: dict[str, dict] = {}
    for arm in arms:
        if arm.context != "long_context":
            continue
        rows = {r["qid"]: r for r in per_question[arm.name]}
        by_position: dict[str, list[str]] = {}
        share, seen = [], []
        for q in qa:
            ids = preds[arm.name][q["qid"]].get("chunk_ids") or []
            where = gold_position(ids, [str(d) for d in q.get("doc_ids") or []])
            by_position.setdefault(where, []).append(q["qid"])
            share.append(len(ids) / n_documents if n_documents else 0.0)
            seen.append(where != ABSENT)
        positions = {}
        for where in (*THIRDS, ABSENT):
            qids = by_position.get(where, [])
            if qids:
                positions[where] = {**rs.mean([rows[q][metric] for q in qids], qids).fields(), "questions": len(qids)}
        out[arm.name] = {"metric": metric, "position": positions, "documents": n_documents,
                         "corpus_share": sum(share) / len(share) if share else 0.0,
                         "gold_in_prompt": sum(seen) / len(seen) if seen else 0.0}
    return out
