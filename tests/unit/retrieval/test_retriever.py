"""The retriever group (BM25, hybrid fusion) and the cross-encoder reranker, on small corpora built here."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from ragft.config import ConfigError, compose_conf, validate
from ragft.config.schema import Bm25Config, IndexConfig, RerankerConfig, RetrieverConfig
from ragft.io import DataError
from ragft.retrieval import bm25, retriever
from tests.helpers import REPO, save_tiny_cross_encoder

CHUNKS = [
    {"chunk_id": "a#0", "doc_id": "a", "text": "The alloy ZK-4471 softens at 640 degrees and is cast in Dunmore."},
    {"chunk_id": "b#0", "doc_id": "b", "text": "The alloy QR-9012 softens at 580 degrees and is rolled in Avel."},
    {"chunk_id": "c#0", "doc_id": "c", "text": "An orchid named Corvantha flowers in late spring on wet cliffs."},
    {"chunk_id": "d#0", "doc_id": "d", "text": "The alloy MV-3307 softens at 700 degrees; it is forged in Kell."},
]


def cfg_of(method: str = "bm25", **hybrid) -> OmegaConf:
    rcfg = OmegaConf.merge(OmegaConf.structured(RetrieverConfig(method=method)), {"hybrid": hybrid})
    return OmegaConf.create({"retriever": rcfg, "index": OmegaConf.structured(IndexConfig)})


def vectors(seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(len(CHUNKS), 8)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


EMBEDDER = {"name": "e", "dim": 8}


def built(tmp_path, cfg, x=None):
    x = vectors() if x is None else x
    manifest, seconds = retriever.build_and_save(tmp_path, cfg, CHUNKS, x, [c["chunk_id"] for c in CHUNKS], EMBEDDER)
    return retriever.Retriever(tmp_path, cfg, CHUNKS, EMBEDDER, x), manifest, seconds


def test_bm25_finds_the_rare_term_exactly_and_deterministically(tmp_path):
    engine, manifest, seconds = built(tmp_path, cfg_of("bm25"))
    assert manifest["method"] == "bm25" and set(manifest["components"]) == {"bm25"} and set(seconds) == {"bm25"}
    assert manifest["corpus_sha256"] == retriever.corpus_hash(CHUNKS)
    assert manifest["bm25"] == bm25.settings(Bm25Config())
    ranks = engine.rank(["At what temperature does the alloy ZK-4471 soften?"], None, depth=4)
    assert ranks[0]["rows"][0] == 0                          # the rare term decides
    assert ranks == engine.rank(["At what temperature does the alloy ZK-4471 soften?"], None, depth=4)
    # the scores are Lucene BM25, by hand: idf = ln(1 + (N - df + .5) / (df + .5)), tf saturation with k1, b
    lexical = engine.bm25.scores("zk")
    n, df, k1, b = 4, 1, 1.5, 0.75
    lengths = [len(bm25.tokenize([c["text"]], Bm25Config())[0]) for c in CHUNKS]
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    expect = idf * 1 / (1 + k1 * (1 - b + b * lengths[0] / np.mean(lengths)))
    assert lexical[0] == pytest.approx(expect, rel=1e-5) and not lexical[1:].any()
    # no shared term: every chunk scores 0, ranked in corpus order
    assert engine.rank(["zzzz"], None, depth=3)[0] == {"rows": [0, 1, 2], "scores": [0.0, 0.0, 0.0]}


def test_rrf_and_weighted_fusion_by_hand():
    fused = retriever.rrf({"dense": [2, 0, 1], "bm25": [0, 3]}, {"dense": 0.5, "bm25": 0.5}, k=60)
    assert fused[0] == pytest.approx(0.5 / 62 + 0.5 / 61)
    assert fused[2] == pytest.approx(0.5 / 61) and fused[3] == pytest.approx(0.5 / 62)
    assert retriever._order(fused) == [0, 2, 3, 1]            # 2 and 3 tie-free; 1 last
    w = retriever.weighted({"dense": {0: 0.9, 1: 0.5, 2: 0.1}, "bm25": {0: 0.0, 1: 4.0, 2: 2.0}},
                           {"dense": 0.25, "bm25": 0.75})
    assert w == pytest.approx({0: 0.25, 1: 0.25 * 0.5 + 0.75, 2: 0.75 * 0.5})
    assert retriever._order({5: 1.0, 3: 1.0, 4: 2.0}) == [4, 3, 5]   # ties: corpus order


@pytest.mark.parametrize("fusion", ["rrf", "weighted"])
def test_hybrid_ranks_match_a_hand_fusion_of_its_parts(tmp_path, fusion):
    x = vectors(1)
    engine, manifest, _ = built(tmp_path, cfg_of("hybrid", fusion=fusion, candidates=4), x)
    assert set(manifest["components"]) == {"dense", "bm25"}
    question, query = "Which alloy is forged in Kell?", x[[1]] + 0.05
    got = engine.rank([question], query, depth=4)[0]
    dense_rows = list(np.argsort(-(x @ query[0]), kind="stable"))
    lexical = engine.bm25.scores(question)
    bm25_rows = list(np.lexsort((np.arange(4), -lexical)))
    if fusion == "rrf":
        want = retriever.rrf({"dense": dense_rows, "bm25": bm25_rows}, {"dense": 0.5, "bm25": 0.5}, 60)
    else:
        want = retriever.weighted({"dense": dict(enumerate((x @ query[0]).tolist())),
                                   "bm25": dict(enumerate(lexical.tolist()))}, {"dense": 0.5, "bm25": 0.5})
    assert got["rows"] == retriever._order(want)
    assert got["scores"] == pytest.approx([want[r] for r in got["rows"]], rel=1e-5)
    assert got["ranks"]["bm25"] == [bm25_rows.index(r) + 1 for r in got["rows"]]


def test_the_index_refuses_other_parameters_or_chunks(tmp_path):
    built(tmp_path, cfg_of("hybrid"))
    other = cfg_of("hybrid")
    other.retriever.bm25.k1 = 0.9
    with pytest.raises(DataError, match=r"manifest.json: field 'bm25'.*dvc repro index"):
        retriever.Retriever(tmp_path, other, CHUNKS, EMBEDDER)
    with pytest.raises(DataError, match="'method' is 'hybrid'"):
        retriever.Retriever(tmp_path, cfg_of("dense"), CHUNKS, EMBEDDER)
    edited = [dict(CHUNKS[0], text="changed"), *CHUNKS[1:]]
    with pytest.raises(DataError, match="corpus_sha256"):
        retriever.Retriever(tmp_path, cfg_of("hybrid"), edited, EMBEDDER)
    npy = tmp_path / "bm25" / "data.csc.index.npy"
    npy.write_bytes(npy.read_bytes()[:-4])
    with pytest.raises(DataError, match="data.csc.index.npy: missing or not the file"):
        retriever.Retriever(tmp_path, cfg_of("hybrid"), CHUNKS, EMBEDDER)


@pytest.mark.parametrize(("overrides", "message"), [
    (["retriever=hybrid", "retriever.hybrid.bm25_weight=0.2"], "sum to 1"),
    (["retriever=hybrid", "retriever.hybrid.dense_weight=-0.5", "retriever.hybrid.bm25_weight=1.5"], "in [0, 1]"),
    (["retriever=hybrid", "retriever.hybrid.candidates=5"], "retrieval.depth"),
    (["retriever=bm25", "retriever.bm25.b=2"], "retriever.bm25.b"),
    (["reranker=cross_encoder"], "reranker.path"),
    (["robustness.ks=[1,20]"], "robustness.ks"),
])
def test_config_rules(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(compose_conf(REPO / "conf", overrides))


def test_bad_stopword_list_is_a_config_error():
    with pytest.raises(ConfigError, match="retriever.bm25.stopwords"):
        bm25.tokenize(["x"], OmegaConf.structured(Bm25Config(stopwords="klingon")))


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory):
    return save_tiny_cross_encoder(tmp_path_factory.mktemp("ce") / "ce")


def test_cross_encoder_reranks_by_its_own_scores_and_keeps_the_first_stage(cross_encoder):
    from sentence_transformers import CrossEncoder

    from ragft.retrieval.rerank import CrossEncoderReranker

    rcfg = OmegaConf.structured(RerankerConfig(kind="cross_encoder", path=str(cross_encoder), batch_size=2))
    reranker = CrossEncoderReranker(rcfg)
    assert reranker.identity["architecture"] == "BertForSequenceClassification"
    assert len(reranker.identity["weights_sha256"]) == 64
    ranked = [{"qid": "q", "method": "bm25", "chunk_ids": ["a#0", "b#0", "c#0"], "doc_ids": ["a", "b", "c"],
               "scores": [3.0, 2.0, 1.0]}]
    texts = {c["chunk_id"]: c["text"] for c in CHUNKS}
    out = reranker.rerank({"q": "Where is ZK-4471 cast?"}, ranked, texts)[0]
    import torch

    reference = CrossEncoder(str(cross_encoder), activation_fn=torch.nn.Identity()).predict(
        [("Where is ZK-4471 cast?", texts[c]) for c in ["a#0", "b#0", "c#0"]])
    order = sorted(range(3), key=lambda i: -reference[i])
    assert out["chunk_ids"] == [["a#0", "b#0", "c#0"][i] for i in order]
    assert out["scores"] == pytest.approx([float(reference[i]) for i in order], abs=1e-5)
    assert out["retriever_ranks"] == [i + 1 for i in order]
    assert out["retriever_scores"] == [[3.0, 2.0, 1.0][i] for i in order]
