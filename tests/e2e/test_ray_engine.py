"""embedder.engine=ray: Ray Data actors write exactly the vectors of the in-process path."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from ragft.config import ConfigError
from ragft.config.schema import EmbedderConfig
from ragft.retrieval.embed_cache import EmbeddingCache
from ragft.retrieval.embedding import Embedder, Encoder, identity
from tests.helpers import SENTENCES

# Several lengths (short ones under the encoder's minimum width too) and more texts than one Ray batch.
TEXTS = SENTENCES + [f"Person {i} was born in town {i * 7} and studied {'marine ' * (i % 11)}biology." for i in range(40)]


def cfg(**overrides):
    base = {"device": "cpu", "engine": "ray", "batch_size": 4,
            "ray": {"num_actors": 2, "num_cpus_per_actor": 1.0, "num_gpus_per_actor": 0.0, "address": None}}
    return OmegaConf.merge(OmegaConf.structured(EmbedderConfig), base, overrides)


@pytest.mark.slow
def test_ray_actor_pool_writes_the_in_process_vectors(tmp_path):
    """One local Ray instance (2 CPUs, 2 actors): the in-process vectors, in order, with and without the cache
    (to float32 rounding: the actors' batches differ from the local run's; see test_embedding.BATCH_TOLERANCE)."""
    import ray
    import ray.data

    local = Encoder(cfg(engine="local")).encode(TEXTS, progress=False)
    assert identity(cfg()) == identity(cfg(engine="local"))            # same bytes, so one cache for both
    cache = EmbeddingCache(tmp_path, identity(cfg()))
    cache.put(TEXTS[:5], local[:5])
    with Embedder(cfg(), cache, progress=False) as embedder:
        cached, fresh = embedder.embed_many([(TEXTS[:5], ""), (TEXTS[5:], "")])
        assert ray.is_initialized() and ray.cluster_resources()["CPU"] == 2
        assert embedder.encoded_per_group == [0, len(TEXTS) - 5]
    assert not ray.is_initialized()                                    # the instance it started is shut down
    got = np.concatenate([cached, fresh])
    assert got.dtype == np.float32 and got.shape == local.shape
    np.testing.assert_allclose(got, local, rtol=0, atol=1e-6)   # in order; batch-mates move only the last bits


@pytest.mark.parametrize("ray_cfg, field", [({"num_actors": 0}, "num_actors"),
                                            ({"num_cpus_per_actor": 0.0}, "num_cpus_per_actor"),
                                            ({"num_gpus_per_actor": -1.0}, "num_gpus_per_actor")])
def test_bad_ray_settings_fail_before_ray_starts(ray_cfg, field):
    from ragft.retrieval.ray_engine import RayEncoder

    with pytest.raises(ConfigError, match=f"embedder.ray.{field}"):
        RayEncoder(cfg(ray=ray_cfg))


def test_cuda_without_gpu_actors_is_a_config_error():
    from ragft.retrieval.ray_engine import RayEncoder

    with pytest.raises(ConfigError, match="num_gpus_per_actor=1"):
        RayEncoder(cfg(device="cuda"))
