"""The data layer: synthbio generation, the three loaders, validation, the split, prepare end to end."""

from __future__ import annotations

import json
import random
import re

import pytest

from ragft.config import ConfigError
from ragft.data import load_corpus, prepare, synthbio
from ragft.data.rows import read_scored_questions, split_rows
from ragft.data.sources import html_to_text
from ragft.data.split import check_disjoint, split_by_document, split_dev
from ragft.io import DataError, read_json, read_jsonl

# --------------------------------------------------------------------------- synthbio


def test_synthbio_is_deterministic():
    a = synthbio.generate_people(50, seed=3)
    b = synthbio.generate_people(50, seed=3)
    assert a == b
    bios_a = [synthbio.render_biography(p, random.Random(7)) for p in a]
    bios_b = [synthbio.render_biography(p, random.Random(7)) for p in b]
    assert bios_a == bios_b
    assert synthbio.generate_people(50, seed=4) != a


def test_synthbio_people_are_stable_across_sizes_and_unique():
    small, large = synthbio.generate_people(10, seed=0), synthbio.generate_people(300, seed=0)
    assert large[:10] == small
    assert len({p.name for p in large}) == 300
    assert [p.person_id for p in small[:3]] == ["p0000", "p0001", "p0002"]


def test_synthbio_pools_are_disjoint():
    experiment = synthbio.generate_people(2000, seed=0, pool="experiment")
    pretrain = synthbio.generate_people(2000, seed=0, pool="pretrain")
    assert len({p.name for p in experiment}) == len({p.name for p in pretrain}) == 2000
    assert not {p.name for p in experiment} & {p.name for p in pretrain}
    # whatever the seeds: the pool of a name is fixed by the name
    other = synthbio.generate_people(2000, seed=123, pool="pretrain")
    assert not {p.name for p in experiment} & {p.name for p in other}
    # both pools use the same words
    words = lambda people: {w for p in people for w in p.name.split()}
    assert words(experiment) == words(pretrain)


def test_synthbio_questions_are_answerable_from_the_biography():
    for person in synthbio.generate_people(100, seed=1):
        bio = synthbio.render_biography(person, random.Random(person.person_id))
        questions = synthbio.make_questions(person, random.Random(person.person_id))
        assert [q.attribute for q in questions] == list(synthbio.ATTRIBUTES)
        for q in questions:
            assert q.answer == person.attributes[q.attribute]
            assert q.answer in bio
            assert person.name in q.question


def test_synthbio_templates_and_lexicon():
    for attr in synthbio.ATTRIBUTES:
        assert len(synthbio.BIO_TEMPLATES[attr]) >= 3 and len(synthbio.QUESTION_TEMPLATES[attr]) >= 2
    lex = set(synthbio.lexicon())
    rng = random.Random(0)
    for person in synthbio.generate_people(200, seed=0) + synthbio.generate_people(200, seed=0, pool="pretrain"):
        text = (
            synthbio.render_biography(person, rng)
            + " "
            + " ".join(q.question for q in synthbio.make_questions(person, rng))
        )
        assert set(synthbio.TOKEN_RE.findall(text)) <= lex


def test_synthbio_attributes_are_validated():
    people = synthbio.generate_people(5, seed=0, attributes=["employer", "major"])
    assert all(list(p.attributes) == ["employer", "major"] for p in people)
    with pytest.raises(ValueError, match="birth_city"):  # the message lists the valid names
        synthbio.generate_people(5, seed=0, attributes=["employer", "shoe_size"])
    with pytest.raises(ValueError, match="asked for"):
        synthbio.generate_people(10**6, seed=0)


# --------------------------------------------------------------------------- config helpers


def test_synthbio_source_and_attribute_errors(ds):
    corpus = load_corpus(ds(n_people=6, paraphrases=2, attributes=["major", "employer"]))
    assert len(corpus.documents) == 6 and len(corpus.paraphrases) == 12 and len(corpus.qa) == 12
    assert {r["attribute"] for r in corpus.qa} == {"major", "employer"}
    with pytest.raises(ConfigError, match="dataset.attributes.*birth_date"):
        load_corpus(ds(attributes=["major", "height"]))


# --------------------------------------------------------------------------- split


def _qa(n_docs: int, per_doc: int = 2) -> list[dict]:
    return [
        {"qid": f"d{d}-{i}", "question": f"q {d} {i}?", "answer": "a", "doc_ids": [f"d{d}"], "attribute": None}
        for d in range(n_docs)
        for i in range(per_doc)
    ]


def test_split_is_by_document_seeded_and_disjoint():
    train, evaluation, eval_docs = split_by_document(_qa(20), eval_fraction=0.25, seed=0)
    assert len(eval_docs) == 5 and len(evaluation) == 10 and len(train) == 30
    assert {d for r in evaluation for d in r["doc_ids"]} == set(eval_docs)
    assert not {d for r in train for d in r["doc_ids"]} & set(eval_docs)
    assert split_by_document(_qa(20), 0.25, seed=0)[2] == eval_docs
    assert split_by_document(_qa(20), 0.25, seed=1)[2] != eval_docs
    check_disjoint(train, evaluation, "qa_train.jsonl", "qa_eval.jsonl")


def test_split_rejects_overlap_and_too_few_documents():
    rows = _qa(4)
    with pytest.raises(DataError, match="qa_train.jsonl and qa_eval.jsonl share"):
        check_disjoint(rows[:3], [dict(rows[0], qid="other")], "qa_train.jsonl", "qa_eval.jsonl")
    with pytest.raises(DataError, match="at least 2"):
        split_by_document(_qa(1), 0.5, seed=0)


# --------------------------------------------------------------------------- local


def _corpus(tmp_path, qa_rows=None, qa_name="qa.jsonl"):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "guide.md").write_text("# The Guide\nThe warranty lasts 3 years.\n", encoding="utf-8")
    (docs / "sub" / "notes.txt").write_text("The office opens at 9 am.\n", encoding="utf-8")
    (docs / "page.html").write_text(
        "<html><head><title>Pricing &amp; Plans</title><style>p{color:red}</style></head>"
        "<body><h1>Pricing</h1><p>The basic plan costs 5 euros.</p><script>var x=1;</script></body></html>",
        encoding="utf-8",
    )
    rows = (
        qa_rows
        if qa_rows is not None
        else [
            {"question": "How long is the warranty?", "answer": "3 years", "doc_id": "guide"},
            {"question": "When does the office open?", "answer": "9 am", "doc_id": "sub/notes"},
            {"question": "How much is the basic plan?", "answer": "5 euros", "doc_id": "page"},
        ]
    )
    qa = tmp_path / qa_name
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return docs, qa


def test_html_to_text_drops_markup_scripts_and_styles():
    title, text = html_to_text("<title>T</title><style>a{}</style><p>One &lt;two&gt;</p><p>Three</p><script>x</script>")
    assert title == "T" and text == "One <two>\nThree"


def test_local_loader_reads_md_txt_html(tmp_path, ds):
    docs, qa = _corpus(tmp_path)
    corpus = load_corpus(ds(source="local", path=str(docs), qa_file=str(qa)))
    by_id = {d["doc_id"]: d for d in corpus.documents}
    assert list(by_id) == ["guide", "page", "sub/notes"]
    assert by_id["guide"]["title"] == "The Guide"
    assert by_id["page"] == {
        "doc_id": "page",
        "title": "Pricing & Plans",
        "text": "Pricing\nThe basic plan costs 5 euros.",
    }
    assert by_id["sub/notes"]["title"] == "notes"
    assert [r["qid"] for r in corpus.qa] == ["q00001", "q00002", "q00003"]
    assert corpus.qa[2]["doc_ids"] == ["page"] and corpus.qa[2]["attribute"] is None
    assert corpus.paraphrases == []


def test_local_loader_reads_csv(tmp_path, ds):
    docs, _ = _corpus(tmp_path)
    qa = tmp_path / "qa.csv"
    qa.write_text('question,answer,doc_id\n"How long, exactly, is the warranty?",3 years,guide\n', encoding="utf-8")
    corpus = load_corpus(ds(source="local", path=str(docs), qa_file=str(qa)))
    assert corpus.qa[0]["question"] == "How long, exactly, is the warranty?"


def _bad_missing_folder(tmp_path):
    _, qa = _corpus(tmp_path)
    return tmp_path / "nope", qa, "nope"


def _bad_no_files(tmp_path):
    (tmp_path / "empty").mkdir()
    _, qa = _corpus(tmp_path)
    return tmp_path / "empty", qa, "empty"


def _bad_all_empty(tmp_path):
    d = tmp_path / "blank"
    d.mkdir()
    (d / "a.md").write_text("  \n", encoding="utf-8")
    _, qa = _corpus(tmp_path)
    return d, qa, "blank"


def _bad_not_utf8(tmp_path):
    docs, qa = _corpus(tmp_path)
    (docs / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    return docs, qa, "latin.txt"


def _bad_qa_not_utf8(tmp_path):
    docs, qa = _corpus(tmp_path)
    qa.write_bytes('{"question": "caf\xe9?", "answer": "a", "doc_id": "guide"}\n'.encode("latin-1"))
    return docs, qa, "qa.jsonl"


def _bad_duplicate_ids(tmp_path):
    docs, qa = _corpus(tmp_path)
    (docs / "guide.txt").write_text("Another guide.", encoding="utf-8")
    return docs, qa, "guide"


def _bad_unknown_doc(tmp_path):
    docs, qa = _corpus(tmp_path, [{"question": "Q?", "answer": "A", "doc_id": "guide.pdf"}])
    return docs, qa, "qa.jsonl:line 1"


def _bad_empty_question(tmp_path):
    docs, qa = _corpus(
        tmp_path,
        [{"question": "Q?", "answer": "A", "doc_id": "guide"}, {"question": " ", "answer": "A", "doc_id": "guide"}],
    )
    return docs, qa, "qa.jsonl:line 2"


def _bad_empty_answer(tmp_path):
    docs, qa = _corpus(tmp_path, [{"question": "Q?", "answer": "", "doc_id": "guide"}])
    return docs, qa, "qa.jsonl:line 1"


def _bad_missing_field(tmp_path):
    docs, qa = _corpus(tmp_path, [{"question": "Q?", "answer": "A"}])
    return docs, qa, "qa.jsonl:line 1"


def _bad_missing_column(tmp_path):
    docs, _ = _corpus(tmp_path)
    qa = tmp_path / "qa.csv"
    qa.write_text("question,answer\nQ?,A\n", encoding="utf-8")
    return docs, qa, "qa.csv"


def _bad_duplicate_question(tmp_path):
    docs, qa = _corpus(
        tmp_path,
        [{"question": "Q?", "answer": "A", "doc_id": "guide"}, {"question": "Q?", "answer": "B", "doc_id": "page"}],
    )
    return docs, qa, "qa.jsonl:line 2"


@pytest.mark.parametrize(
    "make_bad, fix_word",
    [
        (_bad_missing_folder, "not found"),
        (_bad_no_files, "no .md"),
        (_bad_all_empty, "empty"),
        (_bad_not_utf8, "UTF-8"),
        (_bad_qa_not_utf8, "UTF-8"),
        (_bad_duplicate_ids, "rename"),
        (_bad_unknown_doc, "Did you mean 'guide'"),
        (_bad_empty_question, "'question' is empty"),
        (_bad_empty_answer, "'answer' is empty"),
        (_bad_missing_field, "missing field(s) ['doc_id']"),
        (_bad_missing_column, "missing column(s) ['doc_id']"),
        (_bad_duplicate_question, "repeats"),
    ],
    ids=lambda v: getattr(v, "__name__", "")[5:] if callable(v) else "",
)
def test_local_bad_input_names_the_file(tmp_path, ds, make_bad, fix_word):
    docs, qa, named = make_bad(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(DataError) as err:
        prepare(ds(source="local", path=str(docs), qa_file=str(qa)), out)
    assert named in str(err.value) and fix_word in str(err.value) and "Fix" in str(err.value)
    assert not out.exists()  # nothing written


# --------------------------------------------------------------------------- hf


def _squad_rows() -> list[dict]:
    contexts = [f"Context number {i}: the value of item {i} is {i * 7}." for i in range(6)]
    rows = []
    for i, ctx in enumerate(contexts):
        for j in range(2):
            rows.append(
                {
                    "id": f"{i}-{j}",
                    "title": f"Item_{i}",
                    "context": ctx,
                    "question": f"What is the value of item {i} (form {j})?",
                    "answers": {"text": [str(i * 7), f"{i * 7} units"], "answer_start": [0, 0]},
                }
            )
    rows.append(
        {
            "id": "x",
            "title": "Item_0",
            "context": contexts[0],
            "question": "Unanswerable?",
            "answers": {"text": [], "answer_start": []},
        }
    )
    return rows


def test_hf_loader_on_a_local_json_dataset(tmp_path, ds):
    path = tmp_path / "squad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _squad_rows()), encoding="utf-8")
    cfg = ds(
        source="hf", name="squadish", paraphrases=0, hf={"name": "json", "data_files": str(path), "split": "train"}
    )
    corpus = load_corpus(cfg)
    assert len(corpus.documents) == 6 and len(corpus.qa) == 12  # identical contexts merged; unanswerable dropped
    doc = {d["doc_id"]: d for d in corpus.documents}
    for row in corpus.qa:
        (doc_id,) = row["doc_ids"]
        assert re.fullmatch(r"d[0-9a-f]{12}", doc_id) and row["answer"] in doc[doc_id]["text"]
        assert doc[doc_id]["title"].startswith("Item_")
    assert load_corpus(cfg).qa == corpus.qa  # seeded shuffle: same order again

    limited = load_corpus(ds(source="hf", hf={"name": "json", "data_files": str(path), "limit": 4}))
    assert len(limited.qa) <= 4 and {r["qid"] for r in limited.qa} <= {r["qid"] for r in corpus.qa}

    with pytest.raises(DataError, match="dataset.hf.question"):
        load_corpus(ds(source="hf", hf={"name": "json", "data_files": str(path), "question": "query"}))
    with pytest.raises(DataError, match="cannot load"):
        load_corpus(ds(source="hf", hf={"name": "json", "data_files": str(tmp_path / "missing.jsonl")}))


def test_hf_loader_on_a_saved_dataset(tmp_path, ds):
    import datasets

    datasets.DatasetDict({"validation": datasets.Dataset.from_list(_squad_rows())}).save_to_disk(
        str(tmp_path / "saved")
    )
    corpus = load_corpus(ds(source="hf", hf={"name": str(tmp_path / "saved"), "split": "validation"}))
    assert len(corpus.documents) == 6 and len(corpus.qa) == 12


# --------------------------------------------------------------------------- prepare end to end


def test_prepare_writes_the_split_corpus(tmp_path, ds):
    cfg = ds(n_people=20, paraphrases=2, eval_fraction=0.5, seed=5)
    manifest = prepare(cfg, tmp_path / "a")
    docs = read_jsonl(tmp_path / "a" / "documents.jsonl")
    train = read_jsonl(tmp_path / "a" / "qa_train.jsonl")
    evaluation = read_jsonl(tmp_path / "a" / "qa_eval.jsonl")
    paraphrases = read_jsonl(tmp_path / "a" / "paraphrases.jsonl")
    assert [d["doc_id"] for d in docs] == sorted(d["doc_id"] for d in docs) and len(docs) == 20
    assert set(docs[0]) == {"doc_id", "title", "text"}
    assert len(paraphrases) == 40 and set(paraphrases[0]) == {"doc_id", "paraphrase", "text"}
    assert set(train[0]) == {"qid", "question", "answer", "doc_ids", "attribute"}
    assert len(train) == len(evaluation) == 50
    train_docs = {d for r in train for d in r["doc_ids"]}
    eval_docs = {d for r in evaluation for d in r["doc_ids"]}
    assert not train_docs & eval_docs and eval_docs == set(manifest["eval_doc_ids"])
    texts = {d["doc_id"]: d["text"] for d in docs}
    assert all(r["answer"] in texts[r["doc_ids"][0]] for r in train + evaluation)
    assert manifest == read_json(tmp_path / "a" / "manifest.json")
    assert manifest["counts"] == {
        "documents": 20,
        "paraphrases": 40,
        "questions": 100,
        "qa_train": 50,
        "qa_dev": 0,
        "qa_eval": 50,
        "qa_absent": 0,
        "train_documents": 10,
        "dev_documents": 0,
        "eval_documents": 10,
    }
    assert (tmp_path / "a" / "qa_dev.jsonl").read_text() == "" and manifest["dev_doc_ids"] == []
    # byte-identical on a second run
    prepare(cfg, tmp_path / "b")
    for name in ("documents.jsonl", "paraphrases.jsonl", "qa_train.jsonl", "qa_eval.jsonl", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_dev_split_comes_out_of_the_training_documents_and_leaves_eval_as_it_was(tmp_path, ds):
    without = prepare(ds(n_people=20, paraphrases=0, eval_fraction=0.5, seed=5), tmp_path / "a")
    manifest = prepare(ds(n_people=20, paraphrases=0, eval_fraction=0.5, dev_fraction=0.2, seed=5), tmp_path / "b")
    assert (tmp_path / "a" / "qa_eval.jsonl").read_bytes() == (tmp_path / "b" / "qa_eval.jsonl").read_bytes()
    train, dev = (read_jsonl(tmp_path / "b" / f"qa_{s}.jsonl") for s in ("train", "dev"))
    dev_docs, train_docs = ({d for r in rows for d in r["doc_ids"]} for rows in (dev, train))
    assert dev_docs == set(manifest["dev_doc_ids"]) and len(dev_docs) == 4 and not dev_docs & train_docs
    assert not dev_docs & set(without["eval_doc_ids"])
    assert manifest["counts"] | {"qa_train": 50} == without["counts"] | {"qa_dev": 20, "dev_documents": 4,
                                                                      "train_documents": 6}
    assert len(train) == 30
    # seeded: the same dev documents again, others under another seed
    assert split_dev(train + dev, 0.2, 20, seed=5)[2] == manifest["dev_doc_ids"]
    assert split_dev(train + dev, 0.2, 20, seed=6)[2] != manifest["dev_doc_ids"]
    # every scored question once, tagged with its split
    scored = read_scored_questions(tmp_path / "b", ("question",))
    assert [r["qid"] for r in scored] == sorted(r["qid"] for r in scored) and len(scored) == 70
    assert {r["split"] for r in scored} == {"eval", "dev"} and len(split_rows(scored, "dev")) == 20


def test_a_dev_split_that_leaves_no_training_document_is_refused(tmp_path, ds):
    with pytest.raises(DataError, match=r"dataset.dev_fraction=0.45 asks for 9 dev document\(s\), but only 8"):
        split_dev(_qa(16)[: 8 * 2], 0.45, 20, seed=0)
    from ragft.config.schema import DatasetConfig

    with pytest.raises(ConfigError, match="dataset.dev_fraction.*below 1 - dataset.eval_fraction"):
        DatasetConfig(eval_fraction=0.5, dev_fraction=0.5)


def test_prepare_local_writes_empty_paraphrases(tmp_path, ds):
    docs, qa = _corpus(tmp_path)
    manifest = prepare(ds(source="local", path=str(docs), qa_file=str(qa), paraphrases=0), tmp_path / "out")
    assert (tmp_path / "out" / "paraphrases.jsonl").read_text() == ""
    assert manifest["source"] == "local" and manifest["counts"]["qa_train"] + manifest["counts"]["qa_eval"] == 3
