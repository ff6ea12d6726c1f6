"""contexts: one prompt-context file per context arm (none, retrieved, oracle, oracle_distractors)."""

from __future__ import annotations

import logging

from ragft import paths
from ragft.pipeline.runner import stage_main

log = logging.getLogger(__name__)


def contexts(cfg, run) -> None:
    from ragft.data.rows import read_questions
    from ragft.io import read_jsonl, write_jsonl
    from ragft.retrieval import contexts as arms_contexts

    questions = read_questions(paths.QA_EVAL, ("question", "doc_ids"))
    ranked = read_jsonl(paths.RANKED)
    chunks = read_jsonl(paths.CHUNKS_FILE)

    built = arms_contexts.build_all(questions, ranked, chunks, cfg.retrieval)
    # each file is written atomically on its own: an unchanged file keeps its hash, so its arms stay cached
    for kind, rows in built.items():
        write_jsonl(paths.context_file(kind), rows)
    run.write_record(paths.CONTEXTS)
    sizes = {f"mean_chunks_{k}": sum(len(r["chunks"]) for r in rows) / max(len(rows), 1) for k, rows in built.items()}
    log.info("contexts for %d questions: %s", len(questions), sizes)
    run.log_metrics({"n_questions": len(questions), **sizes})


main = stage_main("contexts", contexts)
