"""Split questions into train, dev and eval BY DOCUMENT.

A seeded share of the documents are eval documents; every question about one goes to eval. So
questions a model may be trained on (finetune.mode=qa) are about other documents than the ones it
is evaluated on: a correct eval answer cannot come from having seen that very question. The dev
split (`dataset.dev_fraction`) is carved out of the remaining documents afterwards, so the eval split
is the same with or without one: tuning may look at dev, no choice ever looks at eval.
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


def split_dev(train: Sequence[dict], dev_fraction: float, n_documents: int, seed: int,
              origin: str = "questions") -> tuple[list[dict], list[dict], list[str]]:
    """Move the questions of a seeded ``dev_fraction`` share of all ``n_documents`` (at least one document)
    from ``train`` into dev; return ``(train, dev, dev_doc_ids)``. ``dev_fraction`` 0: no dev split.

    A question touching a dev document is a dev question, so training questions never touch one."""
    if dev_fraction <= 0:
        return list(train), [], []
    docs = sorted({d for row in train for d in row["doc_ids"]})
    n_dev = max(round(dev_fraction * n_documents), 1)
    if n_dev >= len(docs):
        raise DataError(
            f"{origin}: dataset.dev_fraction={dev_fraction} asks for {n_dev} dev document(s), but only {len(docs)} "
            "non-eval document(s) have questions, and training needs at least one. Fix: lower dataset.dev_fraction "
            "or dataset.eval_fraction, or add questions about more documents."
        )
    dev_docs = set(random.Random(f"{seed}:dev").sample(docs, n_dev))
    kept, dev = [], []
    for row in train:
        (dev if dev_docs.intersection(row["doc_ids"]) else kept).append(row)
    return kept, dev, sorted(dev_docs)


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
