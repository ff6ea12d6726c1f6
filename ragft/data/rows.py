"""Typed readers of the prepare stage's files (data/prepared/*.jsonl): every stage that reads questions
or documents reads them here, so a row is checked one way, with one message, wherever it is read.

Each reader checks the fields its caller needs (``fields``) before any expensive work and names the
file, the row and the fix. Questions come back sorted by qid (the order prepare writes), documents in file order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ragft.io import DataError, read_jsonl

RERUN = "Regenerate it with `dvc repro prepare`."


def _is_answer(value: object) -> bool:
    """A gold answer: a string, or a non-empty list of acceptable strings."""
    return isinstance(value, str) or (isinstance(value, list) and bool(value) and all(isinstance(a, str) for a in value))


# field → (check, what the message says it must be)
FIELDS = {
    "qid": (lambda v: isinstance(v, str), "a string"),
    "question": (lambda v: isinstance(v, str), "a string"),
    "answer": (_is_answer, "a string or a non-empty list of strings"),
    "doc_ids": (lambda v: isinstance(v, list), "a list of document ids"),
    "doc_id": (lambda v: isinstance(v, str), "a string"),
    "text": (lambda v: isinstance(v, str), "a string"),
    "paraphrase": (lambda v: isinstance(v, int), "an integer"),
}


def read_rows(path: str | os.PathLike, fields: Sequence[str], unique: str | None = None, *,
              allow_empty: bool = False) -> list[dict]:
    """The rows of ``path``, in file order, with ``fields`` checked and the ``unique`` field unique."""
    rows = read_jsonl(path)
    if not rows and not allow_empty:
        raise DataError(f"{path}: no rows. {RERUN}")
    seen: set = set()
    for i, row in enumerate(rows, 1):
        for name in fields:
            ok, what = FIELDS[name]
            if not ok(row.get(name)):
                raise DataError(f"{path}:{i}: field '{name}' is missing or not {what}. {RERUN}")
        if unique is not None:
            if row[unique] in seen:
                raise DataError(f"{path}:{i}: {unique} {row[unique]!r} appears twice. Make them unique, then rerun.")
            seen.add(row[unique])
    return rows


def read_questions(path: str | os.PathLike, fields: Sequence[str] = ("qid", "question", "answer", "doc_ids"),
                   *, allow_empty: bool = False) -> list[dict]:
    """qa_train.jsonl / qa_eval.jsonl rows, sorted by qid: ``{"qid", "question", "answer", "doc_ids", "attribute"}``."""
    return sorted(read_rows(path, ("qid", *fields), "qid", allow_empty=allow_empty), key=lambda r: r["qid"])


SPLITS = ("eval", "dev")   # the scored splits: eval (reported) and dev (what tuning may look at)


def read_scored_questions(prepared_dir: str | os.PathLike,
                          fields: Sequence[str] = ("qid", "question", "answer", "doc_ids")) -> list[dict]:
    """The questions every arm answers: qa_eval.jsonl's, qa_dev.jsonl's (empty without a dev split) and
    qa_absent.jsonl's (questions no document answers; empty without), each row with ``"split"``: "eval" |
    "dev" | "absent", sorted by qid (prepare keeps qids unique across the splits). A prepare folder from
    before a split existed reads as having none of it."""
    d = Path(prepared_dir)
    rows = [{**row, "split": "eval"} for row in read_questions(d / "qa_eval.jsonl", fields)]
    for split in ("dev", "absent"):
        path = d / f"qa_{split}.jsonl"
        if split == "dev" or path.exists():
            rows += [{**row, "split": split} for row in read_questions(path, fields, allow_empty=True)]
    return sorted(rows, key=lambda r: r["qid"])


def split_rows(rows: Sequence[dict], split: str) -> list[dict]:
    """The rows of ``read_scored_questions`` in one split."""
    return [r for r in rows if r.get("split", "eval") == split]


def read_documents(path: str | os.PathLike, *, allow_empty: bool = False) -> list[dict]:
    """documents.jsonl rows, sorted by doc_id: ``{"doc_id", "title", "text"}``."""
    return read_rows(path, ("doc_id", "text"), "doc_id", allow_empty=allow_empty)


def read_paraphrases(path: str | os.PathLike) -> list[dict]:
    """paraphrases.jsonl rows: ``{"doc_id", "paraphrase", "text"}`` (empty for sources without a generator)."""
    return read_rows(path, ("doc_id", "paraphrase", "text"), allow_empty=True)
