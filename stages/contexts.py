"""contexts: one prompt-context file per arm (none: nothing; retrieved: the top_k chunks)."""

from __future__ import annotations

import logging

from ragft import contexts, paths
from ragft.io import read_jsonl, write_jsonl
from ragft.retrieval import read_questions
from ragft.stage import stage

log = logging.getLogger(__name__)


@stage("contexts", inputs=lambda cfg: [str(paths.RANKED), str(paths.CHUNKS_FILE), str(paths.QA_EVAL)])
def main(cfg, run):
    questions = read_questions(paths.QA_EVAL)
    ranked = read_jsonl(paths.RANKED)
    chunks = read_jsonl(paths.CHUNKS_FILE)

    retrieved = contexts.retrieved_contexts(questions, ranked, chunks, cfg.retrieval.top_k)
    # each file is written atomically on its own: an unchanged file keeps its hash, so its arms stay cached
    write_jsonl(paths.context_file("none"), contexts.none_contexts(questions))
    write_jsonl(paths.context_file("retrieved"), retrieved)
    run.write_record(paths.CONTEXTS)
    log.info("contexts for %d questions (top_k=%d)", len(questions), cfg.retrieval.top_k)
    run.log_metrics({"n_questions": len(questions), "top_k": cfg.retrieval.top_k})


if __name__ == "__main__":
    main()
