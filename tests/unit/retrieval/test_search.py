"""Retrieval metrics against hand-computed values; ranked rows from a real index; the context files."""

from __future__ import annotations

import math

import numpy as np
import pytest
from omegaconf import OmegaConf

from ragft.config.schema import IndexConfig
from ragft.io import DataError
from ragft.retrieval import contexts
from ragft.retrieval import search as retrieval

CHUNKS = [
    {"chunk_id": "d1#0000", "doc_id": "d1", "text": "Ada was born in Elmswick."},
    {"chunk_id": "d1#0001", "doc_id": "d1", "text": "Ada studied at Harlow."},
    {"chunk_id": "d2#0000", "doc_id": "d2", "text": "Bo works at Tidewater."},
    {"chunk_id": "d3#0000", "doc_id": "d3", "text": "Cy was born in 1970."},
    {"chunk_id": "d3#0001", "doc_id": "d3", "text": "Cy studied law."},
    {"chunk_id": "d3#0002", "doc_id": "d3", "text": "Cy sails."},
]
QUESTIONS = [
    {"qid": "q2", "question": "When was Cy born?", "answer": "1970", "doc_ids": ["d3"]},
    {"qid": "q1", "question": "Where did Ada study?", "answer": "Harlow", "doc_ids": ["d1"]},
    {"qid": "q3", "question": "Who is Di?", "answer": "?", "doc_ids": ["d4"]},      # gold doc has no chunks
]
RANKED = [
    {"qid": "q1", "chunk_ids": ["d2#0000", "d1#0001", "d1#0000", "d3#0000"], "doc_ids": ["d2", "d1", "d1", "d3"],
     "scores": [0.9, 0.8, 0.7, 0.1]},
    {"qid": "q2", "chunk_ids": ["d3#0000", "d2#0000", "d3#0002", "d1#0000"], "doc_ids": ["d3", "d2", "d3", "d1"],
     "scores": [0.95, 0.5, 0.4, 0.2]},
    {"qid": "q3", "chunk_ids": ["d1#0000", "d2#0000", "d3#0000", "d3#0001"], "doc_ids": ["d1", "d2", "d3", "d3"],
     "scores": [0.3, 0.2, 0.1, 0.0]},
]


def test_metrics_match_hand_computed_values():
    m = retrieval.evaluate(RANKED, QUESTIONS, CHUNKS, [1, 3])
    # q1: first gold at rank 2; q2: rank 1; q3: never (its gold document has no chunks)
    assert m["mrr"] == pytest.approx((0.5 + 1.0 + 0.0) / 3, abs=1e-6)
    assert m["recall@1"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["recall@3"] == pytest.approx(2 / 3, abs=1e-6)
    lg = math.log2
    ndcg3_q1 = (1 / lg(3) + 1 / lg(4)) / (1 + 1 / lg(3))                  # 2 relevant chunks exist
    ndcg3_q2 = (1 + 1 / lg(4)) / (1 + 1 / lg(3) + 1 / lg(4))             # 3 relevant chunks, capped at k=3
    assert m["ndcg@3"] == pytest.approx((ndcg3_q1 + ndcg3_q2) / 3, abs=1e-6)
    assert m["ndcg@1"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["n_questions"] == 3
    assert retrieval.recall_curve(m, [3, 1]) == [{"k": 1, "recall": m["recall@1"]}, {"k": 3, "recall": m["recall@3"]}]


def test_single_question_metrics():
    got = retrieval.question_metrics(["x", "g", "y", "g"], {"g"}, n_relevant=1, ks=[1, 2, 4])
    assert got["mrr"] == 0.5
    assert (got["recall@1"], got["recall@2"], got["recall@4"]) == (0.0, 1.0, 1.0)
    assert got["ndcg@2"] == pytest.approx(1 / math.log2(3))
    # both relevant chunks at the top: the ideal ranking
    perfect = retrieval.question_metrics(["g", "g"], {"g"}, n_relevant=2, ks=[2])
    assert perfect["ndcg@2"] == pytest.approx(1.0)


def test_ranked_rows_from_a_dense_retriever(tmp_path):
    from ragft.config.schema import RetrieverConfig
    from ragft.retrieval.retriever import Retriever, build_and_save

    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(CHUNKS), 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    embedder = {"name": "e", "dim": 8}
    cfg = OmegaConf.create({"retriever": OmegaConf.structured(RetrieverConfig),
                            "index": OmegaConf.structured(IndexConfig)})
    ids = [c["chunk_id"] for c in CHUNKS]
    # vectors stored in another order than the chunks: rows still map back by chunk id
    order = list(range(len(CHUNKS)))[::-1]
    build_and_save(tmp_path, cfg, CHUNKS, x[order], [ids[i] for i in order], embedder)
    engine = Retriever(tmp_path, cfg, CHUNKS, embedder)
    queries = x[[4, 0]] + 0.01
    rows = retrieval.ranked_rows(["qb", "qa"], engine.rank(["b?", "a?"], queries, depth=10), CHUNKS, "dense")
    assert [r["qid"] for r in rows] == ["qa", "qb"]                      # sorted; depth > corpus: -1 dropped
    assert rows[0]["chunk_ids"][0] == "d1#0000" and rows[1]["chunk_ids"][0] == "d3#0001"
    assert all(len(r["chunk_ids"]) == len(CHUNKS) == len(r["scores"]) and r["method"] == "dense" for r in rows)
    assert rows[1]["doc_ids"] == [c.split("#")[0] for c in rows[1]["chunk_ids"]]
    assert rows[0]["scores"] == sorted(rows[0]["scores"], reverse=True)
    with pytest.raises(DataError, match="corpus_sha256"):
        Retriever(tmp_path, cfg, CHUNKS[:-1], embedder)
    with pytest.raises(DataError, match="rankings but 1 question ids"):
        retrieval.ranked_rows(["qa"], [], CHUNKS, "dense")


def test_contexts_none_and_retrieved_top_k():
    none = contexts.none_contexts(QUESTIONS)
    assert [r["qid"] for r in none] == ["q1", "q2", "q3"]
    assert all(r["chunks"] == [] for r in none)
    assert none[0]["question"] == "Where did Ada study?"
    got = contexts.retrieved_contexts(QUESTIONS, RANKED, CHUNKS, top_k=2)
    assert [r["qid"] for r in got] == ["q1", "q2", "q3"]
    assert all(len(r["chunks"]) == 2 for r in got)
    assert got[0]["chunks"][1] == {"chunk_id": "d1#0001", "doc_id": "d1", "text": "Ada studied at Harlow.", "score": 0.8}
    assert len(contexts.retrieved_contexts(QUESTIONS, RANKED, CHUNKS, top_k=10)[0]["chunks"]) == 4
    with pytest.raises(DataError, match="ranked.jsonl: no row for qid"):
        contexts.retrieved_contexts(QUESTIONS, RANKED[:1], CHUNKS, top_k=2)


def test_oracle_contexts_hold_the_gold_documents_chunks():
    got = contexts.oracle_contexts(QUESTIONS[:2], CHUNKS)
    assert [r["qid"] for r in got] == ["q1", "q2"]
    assert [c["chunk_id"] for c in got[0]["chunks"]] == ["d1#0000", "d1#0001"]
    assert [c["chunk_id"] for c in got[1]["chunks"]] == ["d3#0000", "d3#0001", "d3#0002"]
    assert all(c["score"] is None for r in got for c in r["chunks"])  # not ranked by the retriever
    with pytest.raises(DataError, match=r"no chunk of gold document\(s\) \['d4'\]"):
        contexts.oracle_contexts(QUESTIONS, CHUNKS)


def test_oracle_distractors_are_the_best_ranked_non_gold_chunks_shuffled_by_seed():
    got = contexts.oracle_distractor_contexts(QUESTIONS[:2], RANKED, CHUNKS, n_distractors=2, seed=0)
    q1 = {c["chunk_id"] for c in got[0]["chunks"]}
    assert q1 == {"d1#0000", "d1#0001", "d2#0000", "d3#0000"}  # gold d1 + the two best non-d1 chunks
    q2 = [c["chunk_id"] for c in got[1]["chunks"]]
    assert sorted(q2) == ["d1#0000", "d2#0000", "d3#0000", "d3#0001", "d3#0002"]
    again = contexts.oracle_distractor_contexts(QUESTIONS[:2], RANKED, CHUNKS, n_distractors=2, seed=0)
    assert again == got  # seeded
    orders = {
        tuple(c["chunk_id"] for c in contexts.oracle_distractor_contexts(QUESTIONS[:2], RANKED, CHUNKS, 2, s)[1]["chunks"])
        for s in range(8)
    }
    assert len(orders) > 1  # the seed really shuffles
    none = contexts.oracle_distractor_contexts(QUESTIONS[:2], RANKED, CHUNKS, n_distractors=0, seed=0)
    assert {c["chunk_id"] for c in none[0]["chunks"]} == {"d1#0000", "d1#0001"}


def test_build_all_makes_every_context_arm():
    cfg = OmegaConf.create({"top_k": 1, "distractors": 1, "seed": 3})
    built = contexts.build_all(QUESTIONS[:2], RANKED, CHUNKS, cfg)
    assert list(built) == list(contexts.BUILDERS)
    assert [len(r["chunks"]) for r in built["retrieved"]] == [1, 1]
    assert [len(r["chunks"]) for r in built["oracle_distractors"]] == [3, 4]
