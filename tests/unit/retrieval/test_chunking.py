"""Chunking: exact token windows, offsets that slice the original text, sentence packing within budget."""

from __future__ import annotations

import itertools

import pytest
from omegaconf import OmegaConf

from ragft.config import ConfigError
from ragft.config.schema import EmbedderConfig
from ragft.retrieval import chunking
from ragft.retrieval.embedding import load_tokenizer

DOC = {
    "doc_id": "p001",
    "title": "Ada Quill",
    "text": (
        "Ada Quill was born on 3 March 1961 in Port Elmswick. She studied marine biology at Harlow University!\n\n"
        "After graduating, Ada joined Tidewater Instruments, where she designed sonar buoys for twenty years. "
        "Colleagues remember her as patient, exacting, and funny? Her notebooks are kept in the Elmswick archive. "
        "She retired in 2019 and now teaches sailing to children on weekends."
    ),
}


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(OmegaConf.structured(EmbedderConfig))


def doc_offsets(tokenizer, text):
    return tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]


def test_token_windows_are_exact_in_tokens(tokenizer):
    offsets = doc_offsets(tokenizer, DOC["text"])
    n = len(offsets)
    size, overlap = 16, 5
    chunks = chunking.chunk_document(DOC, tokenizer, "tokens", size, overlap)
    assert n > 3 * size
    for i, c in enumerate(chunks):
        lo = i * (size - overlap)
        hi = min(lo + size, n)
        assert (c["start"], c["end"]) == (offsets[lo][0], offsets[hi - 1][1])
        assert c["n_tokens"] == hi - lo
    assert chunks[-1]["end"] == offsets[-1][1]                         # the tail is covered
    assert all(c["n_tokens"] == size for c in chunks[:-1])
    # consecutive windows share exactly `overlap` tokens
    a, b = chunks[0], chunks[1]
    shared = [o for o in offsets if a["start"] <= o[0] and o[1] <= a["end"] and b["start"] <= o[0]]
    assert len(shared) == overlap


def test_offsets_slice_the_original_text(tokenizer):
    for strategy, overlap in (("tokens", 4), ("sentences", 0), ("sentences", 8)):
        for c in chunking.chunk_document(DOC, tokenizer, strategy, 20, overlap):
            assert c["text"] == DOC["text"][c["start"]:c["end"]]
            assert c["doc_id"] == "p001"


def test_ids_are_deterministic(tokenizer):
    a = chunking.chunk_documents([DOC], tokenizer, "tokens", 16, 4, progress=False)
    b = chunking.chunk_documents([DOC], tokenizer, "tokens", 16, 4, progress=False)
    assert a == b
    assert [c["chunk_id"] for c in a] == [f"p001#{i:04d}" for i in range(len(a))]


def test_sentence_packing_respects_budget_and_keeps_sentences_whole(tokenizer):
    size = 30
    chunks = chunking.chunk_document(DOC, tokenizer, "sentences", size, 0)
    assert len(chunks) > 1
    for c in chunks:
        assert c["n_tokens"] <= size
        assert len(tokenizer(c["text"], add_special_tokens=False)["input_ids"]) <= size
        assert c["text"][-1] in ".!?", c["text"]                        # ends on a sentence boundary
    # no overlap: the chunks tile the tokens exactly once
    assert sum(c["n_tokens"] for c in chunks) == len(doc_offsets(tokenizer, DOC["text"]))
    # the paragraph break is a boundary too
    assert chunks[0]["text"].startswith("Ada Quill was born")


def test_sentence_overlap_repeats_whole_trailing_sentences(tokenizer):
    chunks = chunking.chunk_document(DOC, tokenizer, "sentences", 40, 25)
    assert any(b["start"] < a["end"] for a, b in itertools.pairwise(chunks))
    for a, b in itertools.pairwise(chunks):
        assert b["start"] > a["start"] and b["end"] > a["end"]          # progress
        assert b["n_tokens"] <= 40


def test_overlong_sentence_falls_back_to_token_windows(tokenizer):
    long = {"doc_id": "x", "text": "Short one. " + " ".join(["word"] * 50) + ". Tail sentence."}
    chunks = chunking.chunk_document(long, tokenizer, "sentences", 12, 0)
    assert chunks[0]["text"] == "Short one."
    assert [c["n_tokens"] for c in chunks[1:6]] == [12, 12, 12, 12, 3]  # "word"×50 + "." = 51 tokens
    assert chunks[-1]["text"] == "Tail sentence."
    assert all(c["n_tokens"] <= 12 for c in chunks)


def test_overlap_not_below_size_is_rejected(tokenizer):
    from ragft.config import compose_conf, validate

    for size, overlap in ((16, 16), (16, 20), (0, 0)):
        with pytest.raises(ConfigError, match=r"params.yaml: field 'chunking.(overlap|size)'"):  # the schema's rule
            validate(compose_conf(overrides=[f"chunking.size={size}", f"chunking.overlap={overlap}"]))
        with pytest.raises(ValueError, match="overlap"):  # a direct call cannot loop forever either
            chunking.chunk_document(DOC, tokenizer, "tokens", size, overlap)


def test_budget_must_fit_encoder_max_length(tokenizer):
    chunking.check_budget(254, tokenizer, 256)
    with pytest.raises(ConfigError, match="chunking.size <= 254"):
        chunking.check_budget(255, tokenizer, 256)


def test_empty_document_gives_no_chunks(tokenizer):
    assert chunking.chunk_document({"doc_id": "e", "text": "  \n"}, tokenizer, "tokens", 8, 2) == []
    assert chunking.chunk_document({"doc_id": "e", "text": ""}, tokenizer, "sentences", 8, 0) == []
