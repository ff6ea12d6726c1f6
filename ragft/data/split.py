"""Split questions into train and eval BY DOCUMENT.

A seeded share of the documents are eval documents; every question about one goes to eval. So
questions a model may be trained on (finetune.mode=qa) are about other documents than the ones it
is evaluated on: a correct eval answer cannot come from having seen that very question.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ragft.io import DataError


def split_by_document(
    qa: Sequence[dict], eval_fraction: float, seed: int, origin: str = "questions"
) -> tuple[list[dict], list[dict], list[str]]:
    """Return ``(train, eval, eval_doc_ids)``; rows sorted by qid, eval doc ids sorted.

    A question with several gold documents is an eval question if any of them is an eval
    document (training questions never touch eval documents).
    """
    docs = sorted({d for row in qa for d in row["doc_ids"]})
    if len(docs) < 2:
        raise DataError(
            f"{origin}: the questions cover {len(docs)} document(s); a split by document needs questions about at least 2. "
            "Fix: add questions about more documents."
        )
    n_eval = min(max(round(eval_fraction * len(docs)), 1), len(docs) - 1)
    eval_docs = set(random.Random(seed).sample(docs, n_eval))
    train, evaluation = [], []
    for row in sorted(qa, key=lambda r: r["qid"]):
        (evaluation if eval_docs.intersection(row["doc_ids"]) else train).append(row)
    return train, evaluation, sorted(eval_docs)


def check_disjoint(train: Sequence[dict], evaluation: Sequence[dict], train_name: str, eval_name: str) -> None:
    """Fail if a qid or a question text is in both splits (it would leak the eval answer into training)."""
    qids = {r["qid"] for r in train} & {r["qid"] for r in evaluation}
    questions = {r["question"].strip() for r in train} & {r["question"].strip() for r in evaluation}
    if qids or questions:
        shown = sorted(qids)[:3] + sorted(questions)[:3]
        raise DataError(
            f"{train_name} and {eval_name} share {len(qids)} qid(s) and {len(questions)} question text(s) "
            f"(e.g. {shown}). Fix: make qids and questions unique in the source data."
        )
