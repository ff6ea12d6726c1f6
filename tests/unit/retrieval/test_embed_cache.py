"""The per-chunk vector cache: only changed texts are re-embedded, any embedder change invalidates
everything, the vectors are byte-identical with and without it, corrupt entries are recomputed."""

from __future__ import annotations

import multiprocessing
import sqlite3

import numpy as np
import pytest
from omegaconf import OmegaConf

from ragft.config.schema import EmbedderConfig
from ragft.retrieval import embed_cache
from ragft.retrieval.embed_cache import EmbeddingCache
from ragft.retrieval.embedding import Embedder, identity
from tests.helpers import SENTENCES

CHUNKS = SENTENCES + [f"Chunk {i} says that person {i} studied {'sonar ' * (i % 5)}at Harlow." for i in range(20)]


def cfg(**overrides):
    return OmegaConf.merge(OmegaConf.structured(EmbedderConfig), {"device": "cpu", **overrides})


def embed(ecfg, texts, root, prefix=""):
    """One embed-stage-like pass: (vectors, stats)."""
    cache = EmbeddingCache(root, identity(ecfg)) if root is not None else None
    with Embedder(ecfg, cache, progress=False) as embedder:
        vectors = embedder.embed(texts, prefix=prefix)
    return vectors, embedder.stats


@pytest.fixture(scope="module")
def uncached():
    """The vectors of a run without any cache: what every cached run must reproduce byte for byte."""
    return embed(cfg(), CHUNKS, None)[0]


def test_only_changed_chunks_are_reembedded_and_bytes_match_an_uncached_run(tmp_path, uncached):
    first, stats = embed(cfg(), CHUNKS, tmp_path)
    assert stats["encoded"] == len(CHUNKS) and stats["cache_hits"] == 0
    assert first.tobytes() == uncached.tobytes()

    again, stats = embed(cfg(), CHUNKS, tmp_path)
    assert stats["encoded"] == 0 and stats["cache_hits"] == len(CHUNKS)
    assert again.tobytes() == uncached.tobytes()

    edited = list(CHUNKS)
    edited[3] = "Harlow University, renamed Harlow College in 1990"      # one chunk edited
    edited.append("A brand-new chunk about Port Elmswick.")             # one chunk added
    got, stats = embed(cfg(), edited, tmp_path)
    assert stats["encoded"] == 2 and stats["cache_hits"] == len(CHUNKS) - 1
    fresh = embed(cfg(), edited, None)[0]
    assert got.tobytes() == fresh.tobytes()          # the 2 new rows were computed in a batch of their own


def test_prefix_is_part_of_the_key(tmp_path):
    embed(cfg(), CHUNKS[:4], tmp_path)
    _, stats = embed(cfg(), CHUNKS[:4], tmp_path, prefix="query: ")
    assert stats["encoded"] == 4


@pytest.mark.parametrize("change", [{"name": "renamed"}, {"revision": "0123abc"}, {"pooling": "cls"},
                                    {"max_length": 32}])
def test_a_changed_embedder_invalidates_everything(tmp_path, tiny_encoder_dir, change):
    path, _, _ = tiny_encoder_dir
    base = cfg(name="tiny", model=str(path), max_length=48)
    embed(base, CHUNKS, tmp_path)
    assert embed(base, CHUNKS, tmp_path)[1]["encoded"] == 0
    changed = OmegaConf.merge(base, change)
    vectors, stats = embed(changed, CHUNKS, tmp_path)
    assert stats["encoded"] == len(CHUNKS) and stats["cache_hits"] == 0
    assert vectors.tobytes() == embed(changed, CHUNKS, None)[0].tobytes()


def test_new_weights_at_the_same_path_change_the_identity(tmp_path, tiny_encoder_dir):
    path, _, _ = tiny_encoder_dir
    ecfg = cfg(name="tiny", model=str(path), max_length=48)
    before = identity(ecfg)
    weights = path / "model.safetensors"
    original = weights.read_bytes()
    try:
        weights.write_bytes(original + b" ")          # any change to the file changes its sha256
        assert identity(ecfg)["weights_sha256"] != before["weights_sha256"]
    finally:
        weights.write_bytes(original)


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupt_entries_are_detected_and_recomputed(tmp_path, uncached):
    embed(cfg(), CHUNKS, tmp_path)
    (shard,) = (tmp_path / "shards").glob("*.npy")
    _flip_last_byte(shard)                           # the last float of the last row
    got, stats = embed(cfg(), CHUNKS, tmp_path)
    assert stats["corrupt"] == 1 and stats["encoded"] == 1
    assert got.tobytes() == uncached.tobytes()
    assert embed(cfg(), CHUNKS, tmp_path)[1]["encoded"] == 0     # the recomputed vector was stored again

    shard.unlink()                                  # a lost shard: its rows are misses
    got, stats = embed(cfg(), CHUNKS, tmp_path)
    assert stats["encoded"] == len(CHUNKS) - 1 and got.tobytes() == uncached.tobytes()


def test_unreadable_index_is_set_aside(tmp_path, caplog):
    tmp_path.joinpath("index.sqlite").write_bytes(b"this is not a database" * 100)
    cache = EmbeddingCache(tmp_path, {"dim": 3})
    assert len(cache) == 0 and list(tmp_path.glob("index.sqlite.corrupt-*"))
    assert "unreadable" in caplog.text


def test_shards_are_plain_npy_without_pickle(tmp_path):
    cache = EmbeddingCache(tmp_path, {"dim": 4})
    cache.put(["a", "b"], np.arange(8, dtype=np.float32).reshape(2, 4))
    (shard,) = (tmp_path / "shards").glob("*.npy")
    np.testing.assert_array_equal(np.load(shard, allow_pickle=False), np.arange(8).reshape(2, 4))
    with sqlite3.connect(tmp_path / "index.sqlite") as con:
        assert con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == 2
    with pytest.raises(ValueError, match="float32"):
        cache.put(["c"], np.zeros((1, 4), dtype=np.float64))


def _writer(root, worker, n):
    cache = EmbeddingCache(root, {"dim": 8})
    for i in range(n):
        texts = [f"shared {i}", f"own {worker} {i}"]
        cache.put(texts, np.full((2, 8), i, dtype=np.float32))


def test_two_processes_can_fill_one_cache_at_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(tmp_path, w, 25)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    cache = EmbeddingCache(tmp_path, {"dim": 8})
    texts = [f"shared {i}" for i in range(25)] + [f"own {w} {i}" for w in range(2) for i in range(25)]
    vectors, hit = cache.get(texts)
    assert hit.all() and cache.last_corrupt == 0
    np.testing.assert_array_equal(vectors[:25, 0], np.arange(25))


def test_default_dir_is_under_the_real_repo_root(tmp_path, monkeypatch):
    monkeypatch.delenv(embed_cache.CACHE_ENV, raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))      # what DVC sets, also inside a temp `dvc exp run` copy
    assert embed_cache.default_dir() == tmp_path / ".cache/ragft/embeddings"
    monkeypatch.setenv(embed_cache.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert embed_cache.default_dir() == tmp_path / "elsewhere"
