"""chunk: documents → token-budgeted chunks of the embedder's tokenizer, with char offsets."""

from __future__ import annotations

import logging

from ragft import chunking, paths
from ragft.embedding import load_tokenizer
from ragft.io import atomic_dir, read_jsonl, write_json, write_jsonl
from ragft.stage import stage

log = logging.getLogger(__name__)


@stage("chunk", inputs=lambda cfg: [str(paths.DOCUMENTS)])
def main(cfg, run):
    ch = cfg.chunking
    chunking.check_params(ch.size, ch.overlap)
    docs = read_jsonl(paths.DOCUMENTS)
    chunking.check_documents(docs, str(paths.DOCUMENTS))
    tokenizer = load_tokenizer(cfg.embedder)
    chunking.check_budget(ch.size, tokenizer, cfg.embedder.max_length)

    chunks = chunking.chunk_documents(docs, tokenizer, ch.strategy, ch.size, ch.overlap)
    stats = chunking.token_stats(chunks)
    manifest = {
        "strategy": ch.strategy,
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


if __name__ == "__main__":
    main()
