"""Generation: prompts fit the model by cutting context only; batching does not change answers; the
infer stage's body writes deterministic predictions. All on a tiny random GPT-2 built here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ragft import paths
from ragft.io import DataError, write_jsonl
from ragft.model import generation, prompts
from ragft.model.loading import load_generator
from ragft.tracking.runs import StageRun

VOCABULARY = (
    "question context answer : who where when what is was born in the city of studied at works for "
    "alice bob carol dave paris london rome berlin 1990 1985 physics history acme globex ?"
)
N_POSITIONS = 48


def save_tiny_generator(out_dir: Path, seed: int = 0) -> Path:
    """A random 2-layer GPT-2 and a word-level tokenizer, saved as the base_model stage would."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([VOCABULARY], trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[EOS]"]))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]", model_max_length=N_POSITIONS
    )
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=N_POSITIONS,
        n_embd=32,
        n_layer=2,
        n_head=2,
        initializer_range=0.5,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "manifest.json").write_text(json.dumps({"name": "tiny", "source": "scratch", "testbed": True}))
    return out_dir


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_generator(tmp_path_factory.mktemp("tiny") / "base")


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_generator(tiny_dir, device="cpu")


@pytest.fixture
def cfg(tiny_cfg):  # the word-level prompts of the scratch generator these tests build
    return OmegaConf.merge(tiny_cfg, {"inference": {"batch_size": 3, "max_new_tokens": 6}})


def context_rows() -> list[dict]:
    people = ["alice", "bob", "carol", "dave"]
    rows = []
    for i in range(7):
        chunks = [
            {
                "chunk_id": f"c{i}-{j}",
                "doc_id": f"d{j}",
                "text": f"{people[j % 4]} was born in paris " * (1 + (i + j) % 3),
                "score": 1.0 - j / 10,
            }
            for j in range(i % 3)
        ]
        rows.append({"qid": f"q{i}", "question": f"where was {people[i % 4]} born ?" + " what" * i, "chunks": chunks})
    long = [
        {"chunk_id": f"long-{j}", "doc_id": "d9", "text": "bob works for globex " * 5, "score": 0.5} for j in range(3)
    ]
    rows.append({"qid": "q-long", "question": "who works for globex ?", "chunks": long})  # must be cut to fit
    return rows


def test_build_prompt_uses_the_config_templates(cfg, tiny):
    _, tokenizer, _ = tiny
    assert generation.build_prompt("who is bob ?", [], cfg, tokenizer) == "question : who is bob ? answer :"
    assert (
        generation.build_prompt("who is bob ?", ["bob works for acme", "alice studied physics"], cfg, tokenizer)
        == "context : bob works for acme alice studied physics question : who is bob ? answer :"
    )


def test_truncation_cuts_context_never_the_question(cfg, tiny):
    _, tokenizer, _ = tiny
    question = "where was alice born ?"
    chunks = ["alice was born in paris " * 6, "bob was born in rome " * 6]
    ids, texts, truncated = generation.fit_prompt(question, chunks, cfg, tokenizer, limit=20)
    text = tokenizer.decode(ids)
    assert truncated and len(texts) == 1 and len(ids) <= 20 and chunks[0].startswith(texts[0])
    assert text.startswith("context : alice was born")
    assert text.endswith("question : where was alice born ? answer :")
    # fits already: nothing cut, both chunks kept
    ids, texts, truncated = generation.fit_prompt(question, ["bob works for acme"], cfg, tokenizer, limit=40)
    assert (texts, truncated) == (["bob works for acme"], False) and len(ids) == 15
    # the question alone is too long: a clear error instead of a silently cut question
    with pytest.raises(DataError, match="does not fit"):
        generation.fit_prompt(question + " what" * 30, chunks, cfg, tokenizer, limit=20)


def test_batched_answers_equal_one_at_a_time(cfg, tiny):
    model, tokenizer, _ = tiny
    rows = context_rows()
    batched, timings = generation.answer_questions(rows, model, tokenizer, cfg)
    single, _ = generation.answer_questions(
        rows, model, tokenizer, OmegaConf.merge(cfg, {"inference": {"batch_size": 1}})
    )
    assert [p["answer"] for p in batched] == [p["answer"] for p in single]
    assert batched == single
    assert [p["qid"] for p in batched] == [r["qid"] for r in rows]
    assert len({p["answer"] for p in batched}) > 3, "answers must depend on the prompt for this test to mean anything"
    for p, r in zip(batched[:-1], rows[:-1]):
        prompt = generation.build_prompt(r["question"], [c["text"] for c in r["chunks"]], cfg, tokenizer)
        assert p["prompt_tokens"] == len(prompts.encode_prompt(prompt, tokenizer))
        assert p["chunk_ids"] == [c["chunk_id"] for c in r["chunks"]]
        assert len(tokenizer(p["answer"])["input_ids"]) <= cfg.inference.max_new_tokens
    long = batched[-1]
    assert long["prompt_tokens"] <= N_POSITIONS - cfg.inference.max_new_tokens
    assert long["chunk_ids"] == ["long-0"] and long["scores"] == [0.5]  # 3 chunks of 20 tokens: one fits
    assert timings["questions"] == 8 and timings["truncated_prompts"] == 1 and timings["mean_latency_seconds"] > 0


def test_output_tokens_are_the_generated_ids_before_the_end_of_sequence(cfg, tiny):
    """Each prediction's output_tokens against a direct model.generate of the same prompt, one at a time (no
    padding): the new ids up to, not including, the first EOS (or all of them when none came)."""
    import torch

    model, tokenizer, _ = tiny
    rows = context_rows()

    def direct(gen_cfg) -> list[list[int]]:
        outs = []
        for r in rows:
            ids, _, _ = generation.fit_prompt(r["question"], [c["text"] for c in r["chunks"]], cfg, tokenizer,
                                              N_POSITIONS - cfg.inference.max_new_tokens)
            with torch.inference_mode():
                outs.append(model.generate(input_ids=torch.tensor([ids]), generation_config=gen_cfg,
                                           attention_mask=torch.ones(1, len(ids), dtype=torch.long))[0, len(ids):].tolist())
        return outs

    # the random model never says [EOS]: make its most frequent word the end of sequence, so answers end early
    free = direct(generation.generation_config(cfg.inference, model, tokenizer))
    words = [t for out in free for t in out]
    eos, saved = max(set(words), key=words.count), model.generation_config.eos_token_id
    model.generation_config.eos_token_id = eos
    try:
        predictions, timings = generation.answer_questions(rows, model, tokenizer, cfg)
        expected = [out.index(eos) if eos in out else len(out)
                    for out in direct(generation.generation_config(cfg.inference, model, tokenizer))]
    finally:
        model.generation_config.eos_token_id = saved
    assert [p["output_tokens"] for p in predictions] == expected
    assert len(set(expected)) > 1, "the counts must differ between answers for this test to mean anything"
    assert timings["mean_output_tokens"] == pytest.approx(sum(expected) / len(expected))
    # by hand: EOS (2) ends a row; what follows it (padding) is not counted; a row without EOS counts in full
    assert generation.new_token_counts(torch.tensor([[5, 7, 2, 0, 0], [5, 6, 7, 8, 9], [2, 0, 0, 0, 0]]), 2) == [2, 5, 0]
    assert generation.new_token_counts(torch.tensor([[5, 3, 7], [5, 7, 3]]), [3, 9]) == [1, 2]


def test_sampling_is_seeded(cfg, tiny):
    model, tokenizer, _ = tiny
    sampled = OmegaConf.merge(cfg, {"inference": {"do_sample": True, "temperature": 1.5, "seed": 3}})
    first, _ = generation.answer_questions(context_rows(), model, tokenizer, sampled)
    again, _ = generation.answer_questions(context_rows(), model, tokenizer, sampled)
    assert first == again


def test_decoding_ignores_the_checkpoint_generation_defaults(cfg, tiny):
    model, tokenizer, _ = tiny
    model.generation_config.repetition_penalty = 1.7  # what a hub checkpoint might ship
    try:
        gen = generation.generation_config(cfg.inference, model, tokenizer)
    finally:
        model.generation_config.repetition_penalty = 1.0
    assert gen.repetition_penalty == 1.0 and gen.do_sample is False and gen.num_beams == 1
    assert gen.eos_token_id == tokenizer.eos_token_id and gen.pad_token_id == tokenizer.pad_token_id


def test_read_contexts_names_the_bad_row(tmp_path):
    path = tmp_path / "retrieved.jsonl"
    write_jsonl(
        path, [{"qid": "q1", "question": "x", "chunks": []}, {"qid": "q2", "question": "y", "chunks": [{"text": "t"}]}]
    )
    with pytest.raises(DataError, match=r"row 2: chunks\[0\] needs"):
        generation.read_contexts(path)


def test_infer_stage_body_writes_deterministic_predictions(tmp_path, monkeypatch, cfg, tiny_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    monkeypatch.chdir(tmp_path)
    save_tiny_generator(tmp_path / paths.BASE_MODEL)
    base = AutoModelForCausalLM.from_pretrained(tmp_path / paths.BASE_MODEL, use_safetensors=True)
    get_peft_model(
        base, LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True, init_lora_weights=False)
    ).save_pretrained(tmp_path / paths.FINETUNED)
    rows = context_rows()
    write_jsonl(paths.context_file("retrieved"), rows)
    write_jsonl(paths.context_file("none"), [r | {"chunks": []} for r in rows])

    from ragft.pipeline.infer import infer

    monkeypatch.setenv("RAGFT_ANSWER_CACHE", str(tmp_path / "answers"))
    run = StageRun.disabled("infer")
    cfg = OmegaConf.merge(cfg, {"arms": {"contexts": ["none", "retrieved"]}})
    outputs, cached = {}, {}
    for model in ("base", "finetuned", "finetuned"):  # the second finetuned run answers from the cache
        infer(OmegaConf.merge(cfg, {"arm": {"model": model}}), run)
        assert sorted(p.name for p in paths.model_predictions(model).iterdir()) == ["none", "retrieved", "run.json"]
        for context in ("none", "retrieved"):
            out = paths.predictions_dir(model, context)
            assert sorted(p.name for p in out.iterdir()) == ["arm.json", "predictions.jsonl", "timings.json"]
            text = (out / paths.PREDICTIONS_FILE).read_text()
            assert outputs.setdefault((model, context), text) == text, "a rerun must write the same bytes"
            cached.setdefault((model, context), []).append(json.loads((out / paths.TIMINGS).read_text())["from_cache"])
    base_rows = [
        json.loads(line)
        for line in (paths.predictions_dir("base", "none") / paths.PREDICTIONS_FILE).read_text().splitlines()
    ]
    assert [r["qid"] for r in base_rows] == [r["qid"] for r in rows]
    assert all(r["chunk_ids"] == [] for r in base_rows)
    retrieved_rows = [json.loads(line) for line in
                      (paths.predictions_dir("base", "retrieved") / paths.PREDICTIONS_FILE).read_text().splitlines()]
    # each arm answered its own context: the retrieved arm's prompts held the retrieved chunks (as many as fit)
    assert sum(bool(p["chunk_ids"]) for p in retrieved_rows) == sum(bool(r["chunks"]) for r in rows) == 5
    for pred, row in zip(retrieved_rows, rows):
        ids = [c["chunk_id"] for c in row["chunks"]]
        assert bool(pred["chunk_ids"]) == bool(ids) and pred["chunk_ids"] == ids[: len(pred["chunk_ids"])], pred
    assert cached[("finetuned", "retrieved")] == [False, True] and cached[("base", "none")] == [False]
    assert set(base_rows[0]) == {"qid", "answer", "chunk_ids", "scores", "prompt_tokens", "output_tokens"}
    info = json.loads((paths.predictions_dir("finetuned", "retrieved") / paths.ARM_INFO).read_text())
    assert info["arm"] == "finetuned-retrieved" and info["base_model"]["testbed"] is True
    assert outputs[("base", "none")] != outputs[("finetuned", "retrieved")]
