"""Embedding: the same vectors as sentence-transformers, order kept, batch-size independent, any encoder by path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from ragft.config import ConfigError
from ragft.config.schema import EmbedderConfig
from ragft.retrieval.embedding import Encoder, compute_target, identity, length_batches, resolve_model_ref
from tests.helpers import SENTENCES


def cfg(**overrides):
    return OmegaConf.merge(OmegaConf.structured(EmbedderConfig), {"device": "cpu", **overrides})


@pytest.fixture(scope="module")
def minilm():
    return Encoder(cfg())


def test_matches_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(resolve_model_ref(EmbedderConfig.model), device="cpu")
    expected = reference.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    got = minilm.encode(SENTENCES, progress=False)
    assert got.dtype == np.float32 and got.shape == (len(SENTENCES), 384)
    cosines = (got * expected).sum(1)
    assert cosines.min() >= 0.9999, cosines
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_order_restored_and_batch_size_irrelevant(minilm):
    together = minilm.encode(SENTENCES, batch_size=4, progress=False)
    one_by_one = np.stack([minilm.encode([s], progress=False)[0] for s in SENTENCES])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)    # row i is sentence i, whatever the batching
    np.testing.assert_allclose(minilm.encode(SENTENCES, batch_size=64, progress=False), together, atol=1e-5)
    assert not np.allclose(together[0], together[1])


# How far batch-mates may move a vector: float32 rounding, or bfloat16's. Whether they move it at all depends on
# the CPU's GEMM kernels: on one CI machine not a bit; on a Sapphire Rapids (AVX-512, AMX) machine by up to
# 2.7e-7 in float32 and 1.7e-3 in bfloat16 (measured), since the kernel chosen depends on the batch's rows.
BATCH_TOLERANCE = {"float32": 1e-6, "bfloat16": 1e-2}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_vector_depends_on_its_text_alone(minilm, dtype):
    """What the cache and the Ray engine rely on: the same text gives the same bytes again, and batch-mates
    move a text's vector by no more than the dtype's rounding (fp32, and the bf16 switch)."""
    if dtype != "float32":
        minilm = Encoder(cfg(dtype=dtype))
    same_length = ["Ada Quill was born in Port Elmswick.", "Bo Reed was born in Port Elmswick."]
    crowd = same_length + SENTENCES + [s.upper() for s in SENTENCES]
    alone = np.stack([minilm.encode([s], progress=False)[0] for s in crowd])
    assert np.array_equal(np.stack([minilm.encode([s], progress=False)[0] for s in crowd]), alone)
    assert np.array_equal(minilm.encode(crowd, progress=False), minilm.encode(crowd, progress=False))
    atol = BATCH_TOLERANCE[dtype]
    for batch_size in (3, 64):
        np.testing.assert_allclose(minilm.encode(crowd, batch_size=batch_size, progress=False), alone, rtol=0, atol=atol)
    np.testing.assert_allclose(minilm.encode(crowd[::-1], progress=False), alone[::-1], rtol=0, atol=atol)


def test_length_batches_group_equal_padded_lengths():
    lengths = [5, 9, 5, 12, 9, 9, 3, 5]
    batches = length_batches(lengths, batch_size=2, multiple=1, min_width=1)
    rows = np.concatenate([r for _, r in batches])
    assert sorted(rows.tolist()) == list(range(len(lengths)))          # every text exactly once
    assert [w for w, _ in batches] == [12, 9, 9, 5, 5, 3]                # longest first, at most 2 per batch
    assert all(lengths[i] == w for w, r in batches for i in r)          # nobody padded: width = own length
    rounded = length_batches(lengths, batch_size=8, multiple=4, cap=10, min_width=1)
    assert [(w, sorted(r.tolist())) for w, r in rounded] == [(12, [3]), (10, [1, 4, 5]), (8, [0, 2, 7]), (4, [6])]
    floored = length_batches(lengths, batch_size=8, multiple=1, min_width=9)        # short texts share the floor width
    assert [(w, sorted(r.tolist())) for w, r in floored] == [(12, [3]), (9, [0, 1, 2, 4, 5, 6, 7])]


def test_compute_target_and_identity():
    assert compute_target(cfg()) == ("cpu", "float32")
    assert compute_target(cfg(device="auto", engine="ray", ray={"num_gpus_per_actor": 1})) == ("cuda", "bfloat16")
    assert compute_target(cfg(device="cuda", dtype="float32")) == ("cuda", "float32")
    base = identity(cfg(), dim=384)
    for change in ({"name": "x"}, {"revision": "abc"}, {"pooling": "cls"}, {"max_length": 128},
                   {"normalize": False}, {"dtype": "bfloat16"}):
        assert identity(cfg(**change), dim=384) != base, change
    for same in ({"engine": "ray"}, {"cache": False}, {"batch_size": 7}, {"query_prefix": "q: "}):
        assert identity(cfg(**same), dim=384) == base, same     # prefixes are part of the keyed text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where there is no GPU")
def test_cuda_without_a_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match="embedder.device"):
        Encoder(cfg(device="cuda"))


def test_prefix_changes_the_text_encoded(minilm):
    plain = minilm.encode(["Harlow University"], progress=False)
    prefixed = minilm.encode(["Harlow University"], prefix="query: ", progress=False)
    np.testing.assert_allclose(prefixed, minilm.encode(["query: Harlow University"], progress=False), atol=1e-6)
    assert not np.allclose(plain, prefixed)




def test_any_local_encoder_with_cls_pooling(tiny_encoder_dir):
    path, model, tokenizer = tiny_encoder_dir
    enc = Encoder(cfg(name="tiny", model=str(path), pooling="cls", max_length=32))
    assert enc.dim == 16
    got = enc.encode(SENTENCES[:3], progress=False)
    with torch.no_grad():
        batch = tokenizer(SENTENCES[:3], padding=True, truncation=True, max_length=32, return_tensors="pt")
        cls = model(**batch).last_hidden_state[:, 0]
    expected = torch.nn.functional.normalize(cls, dim=1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert enc.manifest()["weights_sha256"] and enc.manifest()["dim"] == 16


def test_truncates_to_max_length(tiny_encoder_dir):
    path, _, _ = tiny_encoder_dir
    enc = Encoder(cfg(name="tiny", model=str(path), max_length=8))
    long = " ".join(["ada quill was born in port"] * 20)
    np.testing.assert_allclose(enc.encode([long], progress=False),
                               enc.encode(["ada quill was born in port"], progress=False), atol=1e-5)


def test_max_length_beyond_model_positions_is_a_config_error(tiny_encoder_dir):
    path, _, _ = tiny_encoder_dir
    with pytest.raises(ConfigError, match="max_length"):
        Encoder(cfg(name="tiny", model=str(path), max_length=128))


def test_unknown_model_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="embedder.model"):
        Encoder(cfg(model=str(tmp_path / "nothing-here")))
    with pytest.raises(ConfigError, match="get_model_path"):
        resolve_model_ref("package:no_such_module_xyz")


def test_the_bf16_switch_keeps_the_fp32_directions(minilm):
    """`embedder.dtype: bfloat16` (1.75x on CPUs with native bf16, bench/embed_throughput.py) stays
    within the benchmark's cosine bound of the fp32 vectors."""
    bf16 = Encoder(cfg(dtype="bfloat16")).encode(SENTENCES, progress=False)
    fp32 = minilm.encode(SENTENCES, progress=False)
    assert bf16.dtype == np.float32 and (bf16 * fp32).sum(1).min() >= 0.9999
