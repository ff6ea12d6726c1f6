"""The typed readers of data/prepared/: one check and one message per field, wherever a row is read."""

from __future__ import annotations

import pytest

from ragft.data.rows import read_documents, read_paraphrases, read_questions
from ragft.io import DataError, write_jsonl

Q = {"qid": "q1", "question": "Where was Ada born?", "answer": "Paris", "doc_ids": ["d1"]}


def test_questions_come_back_sorted_with_the_fields_the_caller_needs(tmp_path):
    write_jsonl(tmp_path / "qa.jsonl", [Q | {"qid": "q2"}, Q])
    assert [r["qid"] for r in read_questions(tmp_path / "qa.jsonl")] == ["q1", "q2"]
    write_jsonl(tmp_path / "no_docs.jsonl", [{k: v for k, v in Q.items() if k != "doc_ids"}])
    assert read_questions(tmp_path / "no_docs.jsonl", ("question", "answer"))[0]["answer"] == "Paris"
    with pytest.raises(DataError, match=r"no_docs.jsonl:1: field 'doc_ids' is missing or not a list of document ids\. "
                                        r"Regenerate it with `dvc repro prepare`"):
        read_questions(tmp_path / "no_docs.jsonl")


@pytest.mark.parametrize(("row", "message"), [
    ({"qid": 3}, r"qa.jsonl:1: field 'qid' is missing or not a string"),
    (Q | {"answer": []}, r"field 'answer' is missing or not a string or a non-empty list of strings"),
    (Q | {"answer": ["Paris", 1]}, r"field 'answer'"),
    (Q | {"question": None}, r"field 'question'"),
])
def test_a_bad_question_row_is_named(tmp_path, row, message):
    write_jsonl(tmp_path / "qa.jsonl", [row])
    with pytest.raises(DataError, match=message):
        read_questions(tmp_path / "qa.jsonl")


def test_duplicates_and_empty_files_are_refused(tmp_path):
    write_jsonl(tmp_path / "qa.jsonl", [Q, Q])
    with pytest.raises(DataError, match=r"qa.jsonl:2: qid 'q1' appears twice"):
        read_questions(tmp_path / "qa.jsonl")
    write_jsonl(tmp_path / "docs.jsonl", [{"doc_id": "a", "text": "x"}, {"doc_id": "a", "text": "y"}])
    with pytest.raises(DataError, match=r"docs.jsonl:2: doc_id 'a' appears twice"):
        read_documents(tmp_path / "docs.jsonl")
    write_jsonl(tmp_path / "empty.jsonl", [])
    with pytest.raises(DataError, match=r"empty.jsonl: no rows"):
        read_questions(tmp_path / "empty.jsonl")
    assert read_documents(tmp_path / "empty.jsonl", allow_empty=True) == []


def test_documents_and_paraphrases(tmp_path):
    write_jsonl(tmp_path / "docs.jsonl", [{"doc_id": "b", "text": "x"}, {"doc_id": "a"}])
    with pytest.raises(DataError, match=r"docs.jsonl:2: field 'text' is missing or not a string"):
        read_documents(tmp_path / "docs.jsonl")
    rows = [{"doc_id": "a", "paraphrase": 0, "text": "x"}, {"doc_id": "a", "paraphrase": 1, "text": "y"}]
    write_jsonl(tmp_path / "para.jsonl", rows)
    assert read_paraphrases(tmp_path / "para.jsonl") == rows   # several per document: not unique by paraphrase
