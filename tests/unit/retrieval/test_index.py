"""Index: exact Flat search, approximate indexes close to exact, refusals of mismatched or damaged indexes."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from ragft.config import ConfigError
from ragft.config.schema import IndexConfig
from ragft.io import DataError, read_json
from ragft.retrieval.index import build_and_save, build_index, load_index, recall_vs_exact

EMBEDDER = {"name": "toy-encoder", "model": "local:toy", "revision": None, "dim": 32, "pooling": "mean", "normalize": True}


def icfg(**kw):
    return OmegaConf.merge(OmegaConf.structured(IndexConfig), kw)


def clustered(n=2000, dim=32, centers=40, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, dim))
    x = c[rng.integers(0, centers, n)] + 0.3 * rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def data():
    x = clustered()
    return x, x[:100] + 0.05 * clustered(100, seed=1), [f"c{i:05d}" for i in range(len(x))]


def test_flat_is_exact(data):
    x, q, _ = data
    index = build_index(x, icfg())
    scores, rows = index.search(q, 5)
    brute = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(rows, brute)
    np.testing.assert_allclose(scores, np.take_along_axis(q @ x.T, brute, 1), atol=1e-5)
    assert recall_vs_exact(index, x, q, [1, 5], "ip") == {"recall_vs_exact@1": 1.0, "recall_vs_exact@5": 1.0}


@pytest.mark.parametrize("cfg", [{"factory": "IVF32,Flat", "nprobe": 8}, {"factory": "HNSW16", "ef_search": 64}])
def test_approximate_indexes_reach_exact_recall(data, cfg):
    x, q, _ = data
    index = build_index(x, icfg(**cfg))
    recall = recall_vs_exact(index, x, q, [1, 10], "ip")
    assert recall["recall_vs_exact@10"] >= 0.9, recall
    assert recall["recall_vs_exact@1"] >= 0.9, recall


def test_nprobe_matters_and_is_kept_in_the_manifest(data, tmp_path):
    x, q, ids = data
    low = recall_vs_exact(build_index(x, icfg(factory="IVF32,Flat", nprobe=1)), x, q, [10], "ip")
    high = recall_vs_exact(build_index(x, icfg(factory="IVF32,Flat", nprobe=16)), x, q, [10], "ip")
    assert low["recall_vs_exact@10"] < high["recall_vs_exact@10"]
    manifest, _ = build_and_save(tmp_path, x, ids, EMBEDDER, icfg(factory="IVF32,Flat", nprobe=16))
    assert manifest["search_params"] == {"nprobe": 16}
    index, _, _ = load_index(tmp_path, EMBEDDER)
    assert index.nprobe == 16


def test_build_is_deterministic_and_seeded(data, tmp_path):
    x, _, ids = data
    a, _ = build_and_save(tmp_path / "a", x, ids, EMBEDDER, icfg(factory="IVF32,Flat", nprobe=4, seed=1))
    b, _ = build_and_save(tmp_path / "b", x, ids, EMBEDDER, icfg(factory="IVF32,Flat", nprobe=4, seed=1))
    c, _ = build_and_save(tmp_path / "c", x, ids, EMBEDDER, icfg(factory="IVF32,Flat", nprobe=4, seed=2))
    assert (tmp_path / "a/index.faiss").read_bytes() == (tmp_path / "b/index.faiss").read_bytes()
    assert a == b and a["index_sha256"] != c["index_sha256"]


def test_save_load_roundtrip_and_manifest(data, tmp_path):
    x, _q, ids = data
    manifest, _ = build_and_save(tmp_path, x, ids, EMBEDDER, icfg())
    assert manifest["n_vectors"] == len(x) and manifest["embedder"]["dim"] == 32
    assert manifest["index_bytes"] == (tmp_path / "index.faiss").stat().st_size
    assert read_json(tmp_path / "manifest.json") == manifest
    index, got_ids, _ = load_index(tmp_path, EMBEDDER)
    assert got_ids == ids and index.ntotal == len(x)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.json", "index.faiss", "manifest.json"]  # no temp left


@pytest.mark.parametrize(("field", "value"), [("dim", 384), ("name", "another-encoder")])
def test_embedder_mismatch_is_refused(data, tmp_path, field, value):
    x, _, ids = data
    build_and_save(tmp_path, x, ids, EMBEDDER, icfg())
    with pytest.raises(DataError, match=rf"manifest.json: field 'embedder.{field}'.*dvc repro index"):
        load_index(tmp_path, {**EMBEDDER, field: value})


def test_damaged_index_file_is_refused(data, tmp_path):
    x, _, ids = data
    build_and_save(tmp_path, x, ids, EMBEDDER, icfg())
    path = tmp_path / "index.faiss"
    path.write_bytes(path.read_bytes()[:1000])                      # truncated
    with pytest.raises(DataError, match="index.faiss.*dvc repro index"):
        load_index(tmp_path, EMBEDDER)


def test_unreadable_index_file_is_a_data_error_not_a_crash(data, tmp_path):
    """Even if the manifest agrees with the file, FAISS's own read error becomes a DataError."""
    import json

    from ragft.io import file_sha256

    x, _, ids = data
    build_and_save(tmp_path, x, ids, EMBEDDER, icfg())
    (tmp_path / "index.faiss").write_bytes(b"garbage" * 10)
    manifest = read_json(tmp_path / "manifest.json")
    manifest["index_sha256"] = file_sha256(tmp_path / "index.faiss")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="FAISS cannot read it"):
        load_index(tmp_path, EMBEDDER)


def test_bad_settings_are_config_errors(data):
    x, _, _ = data
    with pytest.raises(ConfigError, match="index.factory"):
        build_index(x, icfg(factory="NotAnIndex42"))
    with pytest.raises(ConfigError, match="index.nprobe"):
        build_index(x, icfg(factory="Flat", nprobe=4))
    with pytest.raises(ConfigError, match="index.factory"):
        build_index(x[:10], icfg(factory="IVF64,Flat"))             # fewer vectors than lists


# --------------------------------------------------------------------------- factory: auto


def test_auto_choice_by_corpus_size():
    from ragft.retrieval.index import AUTO_APPROX, AUTO_EXACT_MAX, choose_factory

    assert choose_factory(1_000)[:2] == ("Flat", {})
    assert choose_factory(AUTO_EXACT_MAX)[0] == "Flat"
    factory, params, reason = choose_factory(AUTO_EXACT_MAX + 1)
    assert (factory, params) == (AUTO_APPROX[0], AUTO_APPROX[1]) and factory.startswith("HNSW")
    assert str(AUTO_EXACT_MAX) in reason and "bench/ann.py" in reason


def test_auto_builds_flat_for_a_small_corpus_and_says_why(data, tmp_path):
    x, _, ids = data
    manifest, _ = build_and_save(tmp_path, x, ids, EMBEDDER, icfg(factory="auto"))
    assert (manifest["factory"], manifest["factory_requested"], manifest["search_params"]) == ("Flat", "auto", {})
    assert "exact" in manifest["auto_reason"] and str(len(x)) in manifest["auto_reason"]
    index, _, loaded = load_index(tmp_path, EMBEDDER)
    assert loaded == manifest and index.ntotal == len(x)


def test_auto_builds_hnsw_above_the_threshold(data, tmp_path, monkeypatch):
    """The same choice on a corpus above a (lowered) threshold: HNSW with the chosen efSearch, kept on reload."""
    import ragft.retrieval.index as index_mod

    x, q, ids = data
    monkeypatch.setattr(index_mod, "AUTO_EXACT_MAX", len(x) - 1)
    manifest, _ = build_and_save(tmp_path, x, ids, EMBEDDER, icfg(factory="auto"))
    assert manifest["factory"] == index_mod.AUTO_APPROX[0] and manifest["factory_requested"] == "auto"
    assert manifest["search_params"] == index_mod.AUTO_APPROX[1]
    index, _, _ = load_index(tmp_path, EMBEDDER)
    import faiss

    assert faiss.downcast_index(index).hnsw.efSearch == index_mod.AUTO_APPROX[1]["efSearch"]
    assert recall_vs_exact(index, x, q, [10], "ip")["recall_vs_exact@10"] >= 0.95


def test_auto_refuses_a_hand_set_search_breadth(data):
    x, _, _ = data
    with pytest.raises(ConfigError, match="index.ef_search.*'auto'.*Fix"):
        build_index(x, icfg(factory="auto", ef_search=64))


def test_auto_preset_composes_and_validates():
    from ragft.config import compose_conf, validate

    cfg = validate(compose_conf(overrides=["index=auto"]))
    assert cfg.index.factory == "auto" and cfg.index.ef_search is None and cfg.index.nprobe is None
