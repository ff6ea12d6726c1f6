"""Checks every source's documents and questions pass before anything is written.

Each check raises DataError naming where the bad row came from (``where[i]``: a file and row for a
user's corpus, a dataset name for generated or downloaded data), the field, and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from ragft.io import DataError


def check_documents(documents: Sequence[dict], where: Sequence[str], origin: str) -> None:
    """Non-empty corpus, unique doc ids, non-empty texts."""
    if not documents:
        raise DataError(f"{origin}: the corpus is empty (no documents with text). Fix: add documents.")
    seen: dict[str, str] = {}
    for doc, loc in zip(documents, where):
        if not str(doc.get("text", "")).strip():
            raise DataError(f"{loc}: document {doc['doc_id']!r} has no text. Fix: fill it or remove it.")
        if doc["doc_id"] in seen:
            raise DataError(
                f"{loc}: doc id {doc['doc_id']!r} is also the id of {seen[doc['doc_id']]}. "
                "Fix: rename one of them (doc ids are paths without suffix, so a.md and a.txt collide)."
            )
        seen[doc["doc_id"]] = loc


def check_qa(rows: Sequence[dict], where: Sequence[str], doc_ids: set[str], empty_docs: Sequence[str] = ()) -> None:
    """Non-empty question/answer, gold documents present, unique qids and question texts."""
    if not rows:
        raise DataError(f"{where[0] if where else 'QA'}: no questions. Fix: add question/answer rows.")
    qids: dict[str, str] = {}
    questions: dict[str, str] = {}
    for row, loc in zip(rows, where):
        for field in ("question", "answer"):
            if not str(row.get(field) or "").strip():
                raise DataError(f"{loc}: field '{field}' is empty. Fix: fill it or remove the row.")
        for doc_id in row["doc_ids"]:
            if doc_id in doc_ids:
                continue
            if doc_id in empty_docs:
                raise DataError(f"{loc}: doc_id {doc_id!r} names an empty document. Fix: give the document text.")
            near = difflib.get_close_matches(str(doc_id), sorted(doc_ids), n=3)
            hint = f" Did you mean {', '.join(map(repr, near))}?" if near else ""
            raise DataError(
                f"{loc}: doc_id {doc_id!r} is not in the corpus ({len(doc_ids)} documents).{hint} "
                "Fix: use the document's path relative to the corpus folder, with or without its suffix."
            )
        if row["qid"] in qids:
            raise DataError(f"{loc}: qid {row['qid']!r} repeats {qids[row['qid']]}. Fix: make qids unique.")
        qids[row["qid"]] = loc
        text = row["question"].strip()
        if text in questions:
            raise DataError(
                f"{loc}: question {text!r} repeats {questions[text]}. "
                "Fix: remove the duplicate, or name the subject in the question so it has one answer."
            )
        questions[text] = loc
