"""The long_context arm: every document in one seeded order for every question; a corpus that cannot fit the
window refused (or cut to a budget in its order) before any model loads; the shared prefix computed once with the
same greedy answers as prefilling it per batch; accuracy by where the gold document sits."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from ragft.evaluation import long_context as lc_eval
from ragft.evaluation.stats import Resampling
from ragft.io import DataError
from ragft.model import generation, long_context
from ragft.retrieval.contexts import corpus_order, long_context_contexts
from tests.unit.model.test_generation import VOCABULARY

DOCS = [{"doc_id": f"d{i}", "title": "", "text": f"{p} was born in {c} and works for {w} ."}
        for i, (p, c, w) in enumerate([("alice", "paris", "acme"), ("bob", "london", "globex"), ("carol", "rome", "acme"),
                                       ("dave", "berlin", "globex"), ("alice", "rome", "globex"), ("bob", "paris", "acme")])]
QUESTIONS = [{"qid": f"q{i}", "question": f"where was {p} born ?" + " what" * i, "doc_ids": [f"d{i}"]}
             for i, p in enumerate(["alice", "bob", "carol", "dave", "alice", "bob"])]


def save_tiny_llama(out_dir: Path, positions: int = 256) -> Path:
    """A random 2-layer Llama (rotary positions: what the pad-between-prefix-and-question batching must respect)
    with the word-level tokenizer, saved as the base_model stage would."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([VOCABULARY + " and ."], trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[EOS]"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]",
                                        model_max_length=positions)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=positions,
                         initializer_range=0.5, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "manifest.json").write_text(json.dumps({"name": "tiny-llama", "source": "scratch", "testbed": True}))
    return out_dir


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("llama") / "base")


@pytest.fixture
def cfg(tiny_cfg):
    return OmegaConf.merge(tiny_cfg, {"inference": {"batch_size": 4, "max_new_tokens": 6, "prefix_reuse_min_tokens": 16},
                                      "arms": {"contexts": ["long_context"]}})


def test_every_question_gets_every_document_in_one_seeded_order():
    rows = long_context_contexts(QUESTIONS, DOCS, seed=0)
    orders = {tuple(c["doc_id"] for c in r["chunks"]) for r in rows}
    assert len(orders) == 1 and sorted(next(iter(orders))) == [d["doc_id"] for d in DOCS]   # shared, complete
    assert [c["chunk_id"] for c in rows[0]["chunks"]] == [f"doc:{d['doc_id']}" for d in corpus_order(DOCS, 0)]
    assert corpus_order(DOCS, 0) == corpus_order(list(reversed(DOCS)), 0)                  # not the input order
    assert corpus_order(DOCS, 0) != corpus_order(DOCS, 1)


def test_the_shared_prefix_is_computed_once_with_the_same_greedy_answers(cfg, llama_dir):
    from ragft.model.loading import load_generator

    model, tokenizer, _ = load_generator(llama_dir, device="cpu")
    rows = long_context_contexts(QUESTIONS, DOCS * 3, seed=0)   # ~200 tokens of corpus, questions of 5-10 tokens
    for row in rows:
        row["chunks"] = row["chunks"][:12]
    reused, timings = generation.answer_questions(rows, model, tokenizer, cfg)
    assert timings["shared_prefix_tokens"] > 100                          # computed once, then continued
    plain, plain_timings = generation.answer_questions(
        rows, model, tokenizer, OmegaConf.merge(cfg, {"inference": {"prefix_reuse_min_tokens": 0}}))
    assert plain_timings["shared_prefix_tokens"] == 0
    assert [p["answer"] for p in reused] == [p["answer"] for p in plain] and reused == plain
    one, _ = generation.answer_questions(rows, model, tokenizer, OmegaConf.merge(cfg, {"inference": {"batch_size": 1}}))
    assert one == reused                                                  # padding between prefix and question
    assert len({p["answer"] for p in reused}) > 2, "answers must depend on the question for this test to mean anything"


def _tokenizer(llama_dir):
    from ragft.model.loading import load_tokenizer

    return load_tokenizer(llama_dir)


def test_a_corpus_that_cannot_fit_is_refused_with_its_numbers_and_the_fixes(cfg, llama_dir):
    rows = long_context_contexts(QUESTIONS, DOCS * 10, seed=0)           # 60 documents: ~660 tokens > 256
    with pytest.raises(DataError, match=r"the long_context arm needs the whole corpus.*60 documents, \d+ tokens.*window "
                                        r"is 256 tokens less inference.max_new_tokens \(6\) = 250.*RAG.*"
                                        r"-S long_context.max_tokens=\d+"):
        long_context.fit(rows, cfg, _tokenizer(llama_dir), 256, "the model")
    fitted = long_context.fit(rows, cfg, _tokenizer(llama_dir), 2048, "the model")   # it fits a larger window
    assert fitted == rows


def test_a_budget_takes_documents_in_their_order_and_bad_budgets_are_refused(cfg, llama_dir):
    rows = long_context_contexts(QUESTIONS, DOCS * 10, seed=0)
    tok = _tokenizer(llama_dir)
    budgeted = long_context.fit(rows, OmegaConf.merge(cfg, {"long_context": {"max_tokens": 100}}), tok, 256, "m")
    kept = len(budgeted[0]["chunks"])
    assert 0 < kept < 60 and all(r["chunks"] == rows[0]["chunks"][:kept] for r in budgeted)
    assert len(tok(" ".join(c["text"] for c in budgeted[0]["chunks"]))["input_ids"]) <= 100
    with pytest.raises(DataError, match=r"long_context.max_tokens' is 3, below the first document .* at least 1\d"):
        long_context.fit(rows, OmegaConf.merge(cfg, {"long_context": {"max_tokens": 3}}), tok, 256, "m")
    with pytest.raises(DataError, match=r"long_context.max_tokens' is 400.*exceed m's window of 256.*max_tokens=\d+ or less"):
        long_context.fit(rows, OmegaConf.merge(cfg, {"long_context": {"max_tokens": 400}}), tok, 256, "m")


def test_a_model_without_a_known_window_is_refused_before_it_loads(cfg, llama_dir, monkeypatch):
    from ragft.pipeline import infer

    def no_window(*_):
        raise DataError("no maximum length")

    monkeypatch.setattr(generation, "max_positions", no_window)
    with pytest.raises(DataError, match=r"config.json: the model declares no window .* drop long_context"):
        infer.fit_long_context(long_context_contexts(QUESTIONS, DOCS, 0), cfg, llama_dir, "base")


def test_accuracy_by_the_third_of_the_prompt_that_holds_the_gold_document():
    assert lc_eval.gold_position(["doc:a", "doc:b", "doc:c", "doc:d", "doc:e", "doc:f"], ["a"]) == "first"
    assert lc_eval.gold_position(["doc:a", "doc:b", "doc:c", "doc:d", "doc:e", "doc:f"], ["c"]) == "middle"
    assert lc_eval.gold_position(["doc:a", "doc:b", "doc:c", "doc:d", "doc:e", "doc:f"], ["f"]) == "last"
    assert lc_eval.gold_position(["doc:a", "doc:b"], ["z"]) == "not in prompt"
    order = ["doc:" + d["doc_id"] for d in corpus_order(DOCS, 0)]
    preds = {"base-long_context": {q["qid"]: {"chunk_ids": order[:4]} for q in QUESTIONS}}
    per_question = {"base-long_context": [{"qid": q["qid"], "match": float(i % 2)} for i, q in enumerate(QUESTIONS)]}
    arm = SimpleNamespace(name="base-long_context", context="long_context")
    block = lc_eval.score([arm], QUESTIONS, per_question, preds, len(DOCS), Resampling(), "match")["base-long_context"]
    assert sum(p["questions"] for p in block["position"].values()) == len(QUESTIONS)
    assert block["position"]["not in prompt"]["questions"] == 2 and block["gold_in_prompt"] == pytest.approx(4 / 6)
    assert block["corpus_share"] == pytest.approx(4 / 6) and block["documents"] == 6
