"""embed: chunks and the scored questions (eval, and dev when there is one) → L2-normalised float32 vectors from one encoder.

With `embedder.cache` the vectors of texts seen before come from the per-chunk cache (outside DVC's
outputs); the files written are byte for byte those of a run without it.
"""

from __future__ import annotations

import logging
import time

from ragft import paths
from ragft.pipeline.runner import stage_main

log = logging.getLogger(__name__)


def embed(cfg, run) -> None:
    import numpy as np

    from ragft.data.rows import read_scored_questions
    from ragft.io import DataError, atomic_dir, read_jsonl, write_json
    from ragft.retrieval import embedding
    from ragft.retrieval.embed_cache import EmbeddingCache, default_dir

    ecfg = cfg.embedder
    chunks = read_jsonl(paths.CHUNKS_FILE)
    questions = read_scored_questions(paths.PREPARED, ("question",))
    if not chunks:
        raise DataError(f"{paths.CHUNKS_FILE}: no chunks. Fix: check data/prepared/documents.jsonl, rerun `dvc repro chunk`.")
    dim = embedding.model_dim(ecfg)
    cache = EmbeddingCache(default_dir(), embedding.identity(ecfg, dim)) if ecfg.cache else None

    with embedding.Embedder(ecfg, cache) as embedder:
        t0 = time.perf_counter()
        vectors, qvectors = embedder.embed_many([([c["text"] for c in chunks], ecfg.passage_prefix),
                                                 ([q["question"] for q in questions], ecfg.query_prefix)])
        seconds = time.perf_counter() - t0
        chunks_encoded = embedder.encoded_per_group[0]
    manifest = {**embedding.manifest(ecfg, dim), "count": len(chunks), "n_questions": len(questions)}

    with atomic_dir(paths.EMBEDDINGS) as out:
        np.save(out / paths.VECTORS.name, vectors, allow_pickle=False)
        np.save(out / paths.QUESTION_VECTORS.name, qvectors, allow_pickle=False)
        write_json(out / paths.VECTOR_IDS.name, [c["chunk_id"] for c in chunks])
        write_json(out / paths.QUESTION_IDS.name, [q["qid"] for q in questions])
        write_json(out / paths.EMBEDDINGS_MANIFEST.name, manifest)
        run.write_record(out)
    stats = embedder.stats
    log.info("embedded %d chunks and %d questions in %.1fs on engine %s: %d chunks encoded (%.1f%%), "
             "%d texts from the cache, dim %d", len(chunks), len(questions), seconds, ecfg.engine, chunks_encoded,
             100 * chunks_encoded / len(chunks), stats["cache_hits"], dim)
    run.log_metrics({"embed_seconds": seconds, "n_chunks": len(chunks), "n_questions": len(questions), "dim": dim,
                     "texts_encoded": stats["encoded"], "cache_hits": stats["cache_hits"],
                     "cache_corrupt_entries": stats["corrupt"], "chunks_encoded": chunks_encoded,
                     "reembedded_fraction": chunks_encoded / len(chunks),
                     "encoded_per_second": stats["encoded"] / seconds if stats["encoded"] else 0.0})
    run.log_artifact(paths.EMBEDDINGS_MANIFEST)


main = stage_main("embed", embed, torch=True)
