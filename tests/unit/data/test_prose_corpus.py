"""The prose retrieval corpus (bench/corpora.py): its shape, its rare terms, and ragft's local loader reading it."""

from __future__ import annotations

import json
import re

import pytest

from bench import corpora
from ragft.data.sources import load_local


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _family(doc_id: str) -> str:
    return doc_id.split("/", 1)[0]


def test_prose_corpus_shape_and_answers():
    docs, qa = corpora.passages(), corpora.questions()
    assert len(corpora.FAMILIES) == 8 and len(docs) == 48 and len(qa) == 48
    ids = [d["doc_id"] for d in docs]
    assert len(set(ids)) == 48
    assert sorted(ids) == sorted(q["doc_id"] for q in qa)
    assert len({q["question"] for q in qa}) == 48
    for family in corpora.FAMILIES:
        assert sum(_family(i) == family for i in ids) == 6
    by_id = {d["doc_id"]: d for d in docs}
    for d in docs:
        assert 60 <= len(d["text"].split()) <= 120, d["doc_id"]
        assert d["title"].strip() and "\n" not in d["title"], d["doc_id"]
    for q in qa:
        assert 1 <= len(q["answer"].split()) <= 4, q
        text = by_id[q["doc_id"]]["text"]
        assert re.search(rf"(?<!\w){re.escape(q['answer'])}(?!\w)", text, re.IGNORECASE), q


def test_every_question_names_a_rare_term_of_its_passage():
    """A token of >= 4 characters shared by the question and its passage and found in no other passage
    (so in particular in no other family's): what lexical retrieval can find the gold passage by."""
    docs = corpora.passages()
    tokens = {d["doc_id"]: _tokens(d["text"]) for d in docs}
    for q in corpora.questions():
        gold = q["doc_id"]
        elsewhere = set().union(*(t for i, t in tokens.items() if i != gold))
        other_families = set().union(*(t for i, t in tokens.items() if _family(i) != _family(gold)))
        rare = {t for t in _tokens(q["question"]) & tokens[gold] if len(t) >= 4 and t not in elsewhere}
        assert rare, q
        assert rare.isdisjoint(other_families)


def test_written_corpus_loads_through_the_local_loader(tmp_path, ds):
    docs_dir, qa_file = corpora.write_prose_corpus(tmp_path / "prose")
    assert docs_dir == tmp_path / "prose" / "docs" and qa_file == tmp_path / "prose" / "qa.jsonl"
    first = corpora.passages()[0]
    lines = (docs_dir / f"{first['doc_id']}.txt").read_text(encoding="utf-8").splitlines()
    assert lines == [first["title"], "", first["text"]]
    rows = [json.loads(line) for line in qa_file.read_text(encoding="utf-8").splitlines()]
    assert rows == corpora.questions()

    corpus = load_local(ds(source="local", path=str(docs_dir), qa_file=str(qa_file)))
    expected = {d["doc_id"]: d for d in corpora.passages()}
    assert len(corpus.documents) == 48 and len(corpus.qa) == 48
    assert [d["doc_id"] for d in corpus.documents] == sorted(expected)
    for d in corpus.documents:
        assert d["text"] == f"{expected[d['doc_id']]['title']}\n\n{expected[d['doc_id']]['text']}"
    assert [r["doc_ids"] for r in corpus.qa] == [[q["doc_id"]] for q in corpora.questions()]
    assert [(r["question"], r["answer"]) for r in corpus.qa] == [
        (q["question"], q["answer"]) for q in corpora.questions()
    ]

    # Writing again into the same folder is fine; a stray document there is refused.
    corpora.write_prose_corpus(tmp_path / "prose")
    (docs_dir / "alloys" / "stray.md").write_text("not ours\n", encoding="utf-8")
    with pytest.raises(ValueError, match="stray.md"):
        corpora.write_prose_corpus(tmp_path / "prose")
