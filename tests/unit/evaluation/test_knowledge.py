"""What the models know: the storage probe's prompts and hits, abstention on absent people, scores by group."""

from __future__ import annotations

import pytest

from ragft.evaluation import knowledge
from ragft.evaluation.stats import Resampling
from ragft.io import DataError
from ragft.model.probe import completion_hit, storage_rows

BOOT = Resampling(resamples=200)


def test_storage_rows_cut_the_gold_document_just_before_the_answer():
    docs = [{"doc_id": "d1", "text": "Ada Cruz was born in Lyon. Ada Cruz works for Nimbus Cloud."},
            {"doc_id": "d2", "text": "Nothing to see."}]
    qs = [{"qid": "q1", "question": "Where?", "answer": "Lyon", "doc_ids": ["d1"]},
          {"qid": "q2", "question": "Who employs?", "answer": ["Nimbus", "Nimbus Cloud"], "doc_ids": ["d1"]},
          {"qid": "q3", "question": "Absent?", "answer": "Oslo", "doc_ids": ["d2"]},
          {"qid": "q4", "question": "At the start?", "answer": "Ada", "doc_ids": ["d1"]}]
    rows = storage_rows(qs, docs)
    assert rows == [{"qid": "q1", "prompt": "Ada Cruz was born in", "answer": "Lyon"},
                    {"qid": "q2", "prompt": "Ada Cruz was born in Lyon. Ada Cruz works for", "answer": "Nimbus"}]


@pytest.mark.parametrize(("completion", "hit"), [
    ("Lyon. Ada Cruz", True), (" lyon", True), ("Lyons", False), ("the city of Lyon", False), ("", False)])
def test_a_completion_hits_when_it_begins_with_the_answer(completion, hit):
    assert completion_hit(completion, "Lyon") is hit


def test_storage_sets_completion_beside_closed_book_and_checks_the_probe_questions():
    probes = [{"qid": f"q{i}", "prompt": "p", "answer": "Lyon"} for i in range(4)]
    completions = {"finetuned": [{"qid": f"q{i}", "completion": "Lyon" if i < 3 else "Oslo"} for i in range(4)],
                   "base": [{"qid": f"q{i}", "completion": "Oslo"} for i in range(4)]}
    closed = {"finetuned": {"q0": 1.0, "q1": 0.0, "q2": 0.0, "q3": 0.0}}
    out = knowledge.storage(probes, completions, closed, BOOT)
    assert out["finetuned"]["completion"]["estimate"] == 0.75 and out["finetuned"]["completion"]["n"] == 4
    assert out["finetuned"]["closed_book"]["estimate"] == 0.25
    assert out["finetuned"]["stored_not_extractable"]["estimate"] == 0.5
    assert out["base"]["completion"]["estimate"] == 0.0 and out["base"]["closed_book"] is None
    with pytest.raises(DataError, match="storage_probe.jsonl"):
        knowledge.storage(probes, {"base": completions["base"][:2]}, {}, BOOT)


@pytest.mark.parametrize(("answer", "declines"), [
    ("unknown", True), ("Unknown.", True), ("I don't know.", True), ("That is not mentioned in the text.", True),
    ("Lyon", False), ("unknownville", False), ("She was born in Lyon.", False)])
def test_abstention_is_recognised_as_whole_words(answer, declines):
    assert knowledge.is_abstention(answer) is declines


def test_abstention_rates_per_arm_and_groups():
    qs = [{"qid": "a"}, {"qid": "b"}]
    preds = {"base-none": {"a": {"answer": "unknown"}, "b": {"answer": "Lyon"}},
             "finetuned-none": {"a": {"answer": "Oslo"}, "b": {"answer": "Lyon"}}}
    out = knowledge.abstention(qs, preds, BOOT)
    assert out["base-none"]["abstained"]["estimate"] == 0.5 and out["finetuned-none"]["answered"]["estimate"] == 1.0
    qa = [{"qid": "c", "group": "celebrity"}, {"qid": "m1", "group": "minority"}, {"qid": "m2", "group": "minority"}]
    per_q = {"base-none": [{"exact_match": 1.0}, {"exact_match": 0.0}, {"exact_match": 1.0}]}
    grouped = knowledge.groups(qa, per_q, "exact_match", BOOT)
    assert grouped["celebrity"]["base-none"]["estimate"] == 1.0 and grouped["minority"]["base-none"]["n"] == 2
    assert knowledge.groups([{"qid": "c"}], per_q, "exact_match", BOOT) == {}
    flat = knowledge.summary_rows({"absent": out, "groups": grouped})
    assert flat["absent.base-none.abstained"] == 0.5 and flat["groups.minority.base-none"] == 0.5
