"""synthbio's knowledge-injection knobs: permutation, full name vs pronouns, celebrities, derived questions and
absent people, each seeded, each refused where it cannot apply."""

from __future__ import annotations

import random

import pytest
from omegaconf import OmegaConf

from ragft.config import ConfigError, validate
from ragft.data import load_corpus, prepare, synthbio
from ragft.data.rows import read_scored_questions, split_rows
from ragft.io import read_jsonl


def _person():
    return synthbio.generate_people(1, 3)[0]


def test_the_defaults_render_as_before_every_knob_existed():
    person = _person()
    rng = random.Random("x")
    sentences = [rng.choice(synthbio.BIO_TEMPLATES[a]).format(name=person.name, value=v)
                 for a, v in person.attributes.items()]
    rng.shuffle(sentences)
    assert synthbio.render_biography(person, random.Random("x")) == " ".join(sentences)


def test_without_permutation_every_biography_keeps_the_attribute_order():
    for person in synthbio.generate_people(5, 0):
        for seed in range(3):
            text = synthbio.render_biography(person, random.Random(seed), permute=False)
            positions = [text.index(v) for v in person.attributes.values()]
            assert positions == sorted(positions)


def test_without_the_full_name_only_the_first_sentence_names_the_person():
    for person in synthbio.generate_people(8, 1):
        text = synthbio.render_biography(person, random.Random(2), fullname=False)
        assert text.count(person.name) == 1
        assert all(v in text for v in person.attributes.values())
        pronoun = person.pronoun
        assert text.count(f"{pronoun} ") + text.count(f"{pronoun.lower()} ") >= len(person.attributes) - 1
        assert "of He" not in text and "of She" not in text, "a pronoun stands only where the name is the subject"
    assert {p.pronoun for p in synthbio.generate_people(40, 0)} == set(synthbio.PRONOUNS)


def test_derived_questions_are_answerable_from_the_biographies_and_seeded():
    people = synthbio.generate_people(30, 4)
    qs = synthbio.derived_questions(people, ["inverse", "compare"], seed=4)
    assert qs == synthbio.derived_questions(people, ["inverse", "compare"], seed=4)
    by_id = {p.person_id: p for p in people}
    inverse = [q for q in qs if q.kind == "inverse"]
    compare = [q for q in qs if q.kind == "compare"]
    assert inverse and compare
    for q in inverse:
        (pid,) = q.person_ids
        assert q.answer == by_id[pid].name and by_id[pid].attributes["birth_date"] in q.question
        assert sum(p.attributes["birth_date"] == by_id[pid].attributes["birth_date"] for p in people) == 1
    for q in compare:
        a, b = (by_id[i] for i in q.person_ids)
        assert a.name in q.question and b.name in q.question
        assert q.answer == min((a, b), key=synthbio.birth_order).name
    with pytest.raises(ValueError, match="unknown"):
        synthbio.derived_questions(people, ["parity"], seed=0)
    with pytest.raises(ValueError, match="birth_date"):
        synthbio.derived_questions(synthbio.generate_people(3, 0, attributes=["major"]), ["inverse"], seed=0)


def test_celebrities_alone_get_the_paraphrases_and_questions_name_their_group(ds):
    corpus = load_corpus(ds(n_people=20, paraphrases=3, celebrity_fraction=0.25))
    with_paraphrases = {p["doc_id"] for p in corpus.paraphrases}
    assert len(with_paraphrases) == 5 and len(corpus.paraphrases) == 15
    groups = {q["doc_ids"][0]: q["group"] for q in corpus.qa}
    assert {d for d, g in groups.items() if g == "celebrity"} == with_paraphrases
    assert load_corpus(ds(n_people=20, paraphrases=3, celebrity_fraction=0.25)).paraphrases == corpus.paraphrases
    everyone = load_corpus(ds(n_people=20, paraphrases=3))
    assert "group" not in everyone.qa[0] and len(everyone.paraphrases) == 60


def test_absent_people_are_asked_about_but_never_written_about(ds, tmp_path):
    cfg = ds(n_people=10, paraphrases=1, absent_people=3, derived=["inverse"])
    manifest = prepare(cfg, tmp_path)
    absent = read_jsonl(tmp_path / "qa_absent.jsonl")
    assert manifest["counts"]["qa_absent"] == len(absent) == 15
    assert {q["answer"] for q in absent} == {synthbio.ABSTAIN} and all(q["doc_ids"] == [] for q in absent)
    corpus_text = " ".join(d["text"] for d in read_jsonl(tmp_path / "documents.jsonl"))
    absent_names = {p.name for p in synthbio.generate_people(13, cfg.seed)[10:]}
    assert not any(name in corpus_text for name in absent_names)
    assert all(any(n in q["question"] for n in absent_names) for q in absent)
    scored = read_scored_questions(tmp_path, ("question", "answer"))
    assert len(split_rows(scored, "absent")) == 15
    derived = [q for q in read_jsonl(tmp_path / "qa_train.jsonl") + read_jsonl(tmp_path / "qa_eval.jsonl")
               if q["attribute"] == "inverse"]
    assert derived, "the derived questions are split by document like the others"


@pytest.mark.parametrize(("override", "field"), [
    ({"celebrity_fraction": 1.5}, "dataset.celebrity_fraction"),
    ({"absent_people": -1}, "dataset.absent_people"),
    ({"derived": ["inverse", "inverse"]}, "dataset.derived"),
    ({"derived": ["parity"]}, "dataset.derived"),
])
def test_bad_knobs_are_refused_by_the_schema(default_cfg, override, field):
    cfg = OmegaConf.merge(default_cfg, {"dataset": override})
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        validate(cfg)
