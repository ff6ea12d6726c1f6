"""embed: chunks and eval questions → L2-normalised float32 vectors from one encoder."""

from __future__ import annotations

import logging
import time

import numpy as np

from ragft import paths
from ragft.embedding import Encoder
from ragft.io import DataError, atomic_dir, read_jsonl, write_json
from ragft.retrieval import read_questions
from ragft.stage import stage

log = logging.getLogger(__name__)


@stage("embed", inputs=lambda cfg: [str(paths.CHUNKS_FILE), str(paths.QA_EVAL)])
def main(cfg, run):
    chunks = read_jsonl(paths.CHUNKS_FILE)
    questions = read_questions(paths.QA_EVAL)
    if not chunks:
        raise DataError(f"{paths.CHUNKS_FILE}: no chunks. Fix: check data/prepared/documents.jsonl, rerun `dvc repro chunk`.")
    encoder = Encoder(cfg.embedder)

    t0 = time.perf_counter()
    vectors = encoder.encode([c["text"] for c in chunks], prefix=cfg.embedder.passage_prefix, desc="embed chunks")
    chunk_seconds = time.perf_counter() - t0
    qvectors = encoder.encode([q["question"] for q in questions], prefix=cfg.embedder.query_prefix,
                              desc="embed questions")
    manifest = {**encoder.manifest(), "count": len(chunks), "n_questions": len(questions)}

    with atomic_dir(paths.EMBEDDINGS) as out:
        np.save(out / paths.VECTORS.name, vectors, allow_pickle=False)
        np.save(out / paths.QUESTION_VECTORS.name, qvectors, allow_pickle=False)
        write_json(out / paths.VECTOR_IDS.name, [c["chunk_id"] for c in chunks])
        write_json(out / paths.QUESTION_IDS.name, [q["qid"] for q in questions])
        write_json(out / paths.EMBEDDINGS_MANIFEST.name, manifest)
        run.write_record(out)
    rate = len(chunks) / chunk_seconds
    log.info("embedded %d chunks in %.1fs (%.1f chunks/s) on %s, dim %d", len(chunks), chunk_seconds, rate,
             encoder.device, encoder.dim)
    run.log_metrics({"chunks_per_second": rate, "embed_seconds": chunk_seconds, "n_chunks": len(chunks),
                     "n_questions": len(questions), "dim": encoder.dim})
    run.log_artifact(paths.EMBEDDINGS_MANIFEST)


if __name__ == "__main__":
    main()
