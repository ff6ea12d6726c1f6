"""chunk: documents → token-budgeted chunks of the embedder's tokenizer, with char offsets."""

from __future__ import annotations

import logging

from ragft import paths
from ragft.pipeline.runner import stage_main

log = logging.getLogger(__name__)


def chunk(cfg, run) -> None:
    from ragft.data.rows import read_documents
    from ragft.io import atomic_dir, write_json, write_jsonl
    from ragft.retrieval import chunking
    from ragft.retrieval.embedding import load_tokenizer

    ch = cfg.chunking
    docs = read_documents(paths.DOCUMENTS, allow_empty=True)
    tokenizer = load_tokenizer(cfg.embedder)
    chunking.check_budget(ch.size, tokenizer, cfg.embedder.max_length)

    chunks = chunking.chunk_documents(docs, tokenizer, ch.strategy, ch.size, ch.overlap)
    stats = chunking.token_stats(chunks)
    manifest = {
        "strategy": str(ch.strategy),
        "size": ch.size,
        "overlap": ch.overlap,
        "tokenizer": {"embedder": cfg.embedder.name, "model": cfg.embedder.model,
                      "revision": cfg.embedder.revision, "class": type(tokenizer).__name__},
        "n_documents": len(docs),
        "n_chunks": len(chunks),
        "tokens_per_chunk": stats,
    }
    with atomic_dir(paths.CHUNKS) as out:
        write_jsonl(out / paths.CHUNKS_FILE.name, chunks)
        write_json(out / paths.CHUNKS_MANIFEST.name, manifest)
        run.write_record(out)
    log.info("%d documents → %d chunks (%s tokens/chunk)", len(docs), len(chunks), stats)
    run.log_metrics({"n_documents": len(docs), "n_chunks": len(chunks),
                     "chunk_tokens_mean": stats["mean"], "chunk_tokens_max": stats["max"]})
    run.log_artifact(paths.CHUNKS_MANIFEST)


main = stage_main("chunk", chunk)
