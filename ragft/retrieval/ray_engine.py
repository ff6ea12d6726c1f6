"""`embedder.engine=ray`: the same Encoder in a Ray Data actor pool, writing the same bytes as in-process.

Texts go into a Ray dataset with their row numbers; ``map_batches`` runs them through a pool of
``embedder.ray.num_actors`` actors, each holding one ``ragft.retrieval.embedding.Encoder`` (the model loads
once per actor, not per batch; one GPU per actor where ``num_gpus_per_actor`` asks for it); the
vectors come back sorted by row number. A text's vector depends on its own tokens only (see
``ragft.retrieval.embedding.length_batches``), so however Ray splits the texts into blocks and batches, the
vectors are those of the in-process path (on CPU; tests/test_ray_engine.py checks it byte for byte).

Ray is an optional dependency: ``pip install 'ragft[ray]'``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragft.config import ConfigError

log = logging.getLogger(__name__)

# Texts per Ray batch, in units of embedder.batch_size: enough for each actor call to amortise its
# overhead, few enough that both actors get work on a corpus of a few thousand chunks.
RAY_BATCH_FACTOR = 4


class _EncodeBatch:
    """The actor: one Encoder, built from the plain embedder config, reused for every batch."""

    def __init__(self, ecfg: dict[str, Any], num_threads: int):
        import torch
        from omegaconf import OmegaConf

        from ragft.config.schema import EmbedderConfig
        from ragft.retrieval.embedding import Encoder

        torch.set_num_threads(num_threads)
        self.encoder = Encoder(OmegaConf.merge(OmegaConf.structured(EmbedderConfig), ecfg))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.encoder.encode([str(t) for t in batch["text"]], progress=False)
        return {"row": batch["row"], "vector": vectors}


def _check(ecfg: Any) -> None:
    rc = ecfg.ray
    if rc.num_actors < 1:
        raise ConfigError(f"params.yaml: field 'embedder.ray.num_actors' is {rc.num_actors}; it must be >= 1")
    if rc.num_cpus_per_actor <= 0:
        raise ConfigError(
            f"params.yaml: field 'embedder.ray.num_cpus_per_actor' is {rc.num_cpus_per_actor}; it must be > 0"
        )
    if rc.num_gpus_per_actor < 0:
        raise ConfigError(
            f"params.yaml: field 'embedder.ray.num_gpus_per_actor' is {rc.num_gpus_per_actor}; it must be >= 0"
        )
    if ecfg.device == "cuda" and rc.num_gpus_per_actor <= 0:
        raise ConfigError(
            "params.yaml: field 'embedder.device' is 'cuda' but embedder.ray.num_gpus_per_actor is 0, so no actor "
            "gets a GPU. Fix: set embedder.ray.num_gpus_per_actor=1 (or embedder.device=auto)."
        )


class RayEncoder:
    """``encode(texts)`` through Ray Data; starts a local Ray instance unless ``embedder.ray.address`` names one.

    ``close()`` shuts down the instance this object started (and only that one).
    """

    def __init__(self, ecfg: Any):
        from omegaconf import OmegaConf

        _check(ecfg)
        try:
            import ray
            import ray.data
        except ImportError as err:
            raise ConfigError(
                f"params.yaml: field 'embedder.engine' is 'ray' but Ray Data is not installed ({err}). "
                "Fix: pip install 'ragft[ray]' (or set embedder.engine=local)."
            ) from None
        import ragft

        self.cfg = ecfg
        self.plain = OmegaConf.to_container(ecfg, resolve=True)
        rc = ecfg.ray
        self.started = False
        if not ray.is_initialized():
            # Workers import the very ragft this driver runs (a DVC experiment runs a temp copy of the repo).
            code = os.path.dirname(os.path.dirname(ragft.__file__))
            pythonpath = os.pathsep.join(p for p in (code, os.environ.get("PYTHONPATH")) if p)
            kwargs: dict[str, Any] = {}
            if not rc.address:        # a local instance sized for the pool
                kwargs["num_cpus"] = math.ceil(rc.num_actors * rc.num_cpus_per_actor)
            ray.init(address=rc.address or None, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING, runtime_env={"env_vars": {"PYTHONPATH": pythonpath}}, **kwargs)
            self.started = True
        have = ray.cluster_resources()
        if have.get("CPU", 0) < rc.num_cpus_per_actor or have.get("GPU", 0) < rc.num_gpus_per_actor:
            self.close()
            raise ConfigError(
                f"params.yaml: fields 'embedder.ray.num_cpus_per_actor'/'num_gpus_per_actor' ask "
                f"{rc.num_cpus_per_actor}/{rc.num_gpus_per_actor} per actor but the Ray cluster has "
                f"{have.get('CPU', 0)} CPUs and {have.get('GPU', 0)} GPUs. Fix: lower them or join a larger cluster."
            )

    def encode(self, texts: Sequence[str], *, progress: bool = True, desc: str = "embed") -> np.ndarray:
        import ray
        import ray.data

        rc = self.cfg.ray
        n = len(texts)
        if not n:
            return np.zeros((0, self._dim()), dtype=np.float32)
        ray.data.DataContext.get_current().enable_progress_bars = progress
        # Similar lengths side by side, so each Ray batch holds texts the encoder can batch together.
        order = sorted(range(n), key=lambda i: -len(texts[i]))
        per_batch = self.cfg.batch_size * RAY_BATCH_FACTOR
        blocks = min(n, max(rc.num_actors, math.ceil(n / per_batch)))   # at least one block per actor
        ds = ray.data.from_items([{"row": i, "text": texts[i]} for i in order], override_num_blocks=blocks)
        out = ds.map_batches(
            _EncodeBatch,
            fn_constructor_kwargs={"ecfg": self.plain, "num_threads": max(1, int(rc.num_cpus_per_actor))},
            batch_size=per_batch,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=rc.num_actors),
            num_cpus=rc.num_cpus_per_actor,
            num_gpus=rc.num_gpus_per_actor,
        )
        vectors = None
        seen = 0
        for batch in out.iter_batches(batch_format="numpy", batch_size=None):
            if vectors is None:
                vectors = np.empty((n, batch["vector"].shape[1]), dtype=np.float32)
            vectors[batch["row"]] = batch["vector"]
            seen += len(batch["row"])
        if seen != n:
            raise RuntimeError(f"{desc}: Ray returned {seen} vectors for {n} texts")
        log.info("%s: %d texts encoded by %d Ray actors", desc, n, rc.num_actors)
        return vectors

    def _dim(self) -> int:
        from ragft.retrieval.embedding import model_dim

        return model_dim(self.cfg)

    def close(self) -> None:
        import ray

        if self.started and ray.is_initialized():
            ray.shutdown()
        self.started = False
