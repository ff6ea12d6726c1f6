"""index: a FAISS index from an index_factory string over the chunk vectors, with a manifest."""

from __future__ import annotations

import logging

from ragft import paths
from ragft.pipeline.runner import stage_main

log = logging.getLogger(__name__)


def index(cfg, run) -> None:
    import numpy as np

    from ragft.io import atomic_dir, read_json, write_json
    from ragft.retrieval.index import build_and_save, load_index, recall_vs_exact

    embedder = read_json(paths.EMBEDDINGS_MANIFEST)
    ids = read_json(paths.VECTOR_IDS)
    vectors = np.load(paths.VECTORS, allow_pickle=False)
    queries = np.load(paths.QUESTION_VECTORS, allow_pickle=False)

    with atomic_dir(paths.INDEX) as out:
        manifest, seconds = build_and_save(out, vectors, ids, embedder, cfg.index)
        run.write_record(out)
        # measured on the index as written and read back: what retrieve will search
        built, _, _ = load_index(out, expected_embedder=embedder)
        recall = recall_vs_exact(built, vectors, queries, list(cfg.retrieval.ks), cfg.index.metric)
    metrics = {"build_seconds": round(seconds, 4), "index_bytes": manifest["index_bytes"],
               "n_vectors": manifest["n_vectors"], **recall}
    write_json(paths.INDEX_METRICS, metrics)
    log.info("index metrics: %s", metrics)
    run.log_metrics(metrics)
    run.log_artifact(paths.INDEX_MANIFEST)


main = stage_main("index", index)
