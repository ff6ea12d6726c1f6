"""`ragft init <folder> [--qa <file>]`: a user's folder, checked by the prepare stage's loader, copied into data/raw/."""

from __future__ import annotations

import json

import pytest

from bench.corpora import write_prose_corpus
from ragft.cli import main
from ragft.io import DataError
from tests.helpers import write_own_corpus


def test_init_checks_copies_and_prints_the_experiment_line(tmp_path, monkeypatch, capsys):
    docs, qa = write_prose_corpus(tmp_path / "mine")
    (docs / ".DS_Store").write_text("x")                       # hidden files stay behind
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    assert main(["init", str(docs), "--qa", str(qa)]) == 0
    out = capsys.readouterr().out
    assert "48 documents and 48 questions" in out and "dvc exp run -S dataset=local\n" in out
    copied = sorted(p.relative_to(repo / "data/raw/docs").as_posix() for p in (repo / "data/raw/docs").rglob("*.txt"))
    assert copied == sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.txt"))
    assert not (repo / "data/raw/docs/.DS_Store").exists()
    assert (repo / "data/raw/qa.jsonl").read_bytes() == qa.read_bytes()
    # a second init would replace the user's documents: refused without --force
    assert main(["init", str(docs), "--qa", str(qa)]) == 1
    assert main(["init", str(docs), "--qa", str(qa), "--force"]) == 0


def test_init_refuses_bad_input_before_writing(tmp_path, monkeypatch):
    from ragft.data.own_corpus import init_corpus

    docs, qa = write_prose_corpus(tmp_path / "mine")
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Q?", "answer": "A", "doc_id": "no/such"}) + "\n")
    with pytest.raises(DataError, match="no/such"):
        init_corpus(docs, bad)
    with pytest.raises(DataError, match="not found"):
        init_corpus(tmp_path / "missing", qa)
    assert not (tmp_path / "data").exists()                   # nothing written


def test_init_without_a_qa_file_prints_the_generated_questions_run(tmp_path, monkeypatch, capsys):
    docs = write_own_corpus(tmp_path / "mine")
    monkeypatch.chdir(tmp_path)
    assert main(["init", str(docs)]) == 0
    printed = capsys.readouterr().out
    assert "8 documents checked" in printed and "dvc exp run -S dataset=local -S dataset.qa=generate" in printed
    assert (tmp_path / "data/raw/docs/manuals/turbine.pdf").read_bytes() == (docs / "manuals/turbine.pdf").read_bytes()
    assert not (tmp_path / "data/raw/qa.jsonl").exists()
