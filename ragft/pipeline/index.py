"""index: what the retriever searches (retriever.method: dense FAISS, BM25, or both), with a manifest."""

from __future__ import annotations

import logging

from ragft import paths
from ragft.pipeline.runner import stage_main

log = logging.getLogger(__name__)


def index(cfg, run) -> None:
    import numpy as np

    from ragft.io import atomic_dir, read_json, read_jsonl, write_json
    from ragft.retrieval import retriever
    from ragft.retrieval.index import load_index, recall_vs_exact

    embedder = read_json(paths.EMBEDDINGS_MANIFEST)
    chunks = read_jsonl(paths.CHUNKS_FILE)
    ids = read_json(paths.VECTOR_IDS)
    vectors = np.load(paths.VECTORS, allow_pickle=False)
    queries = np.load(paths.QUESTION_VECTORS, allow_pickle=False)
    method = str(cfg.retriever.method)

    with atomic_dir(paths.INDEX) as out:
        manifest, seconds = retriever.build_and_save(out, cfg, chunks, vectors, ids, embedder)
        run.write_record(out)
        recall = {}
        if retriever.DENSE in manifest["components"]:
            # measured on the index as written and read back: what retrieve will search
            built, _, _ = load_index(out / retriever.DENSE, expected_embedder=embedder)
            recall = recall_vs_exact(built, vectors, queries, list(cfg.retrieval.ks), cfg.index.metric)
    parts = manifest["components"]
    metrics = {"method": method, "build_seconds": round(sum(seconds.values()), 4),
               **{f"{name}.build_seconds": round(s, 4) for name, s in seconds.items()},
               "index_bytes": sum(p["index_bytes"] for p in parts.values()),
               "n_chunks": manifest["n_chunks"], **recall}
    write_json(paths.INDEX_METRICS, metrics)
    log.info("index metrics: %s", metrics)
    run.log_metrics(metrics)
    run.log_artifact(paths.INDEX_MANIFEST)


main = stage_main("index", index)
