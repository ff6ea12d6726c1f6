"""retrieve: eval questions → ranked chunks; recall@k, MRR, nDCG@k against the gold documents."""

from __future__ import annotations

import logging

from ragft import paths
from ragft.pipeline.runner import stage_main

log = logging.getLogger(__name__)


def retrieve(cfg, run) -> None:
    import csv

    import numpy as np

    from ragft.data.rows import read_questions
    from ragft.io import atomic_dir, atomic_file, read_json, read_jsonl, write_json, write_jsonl
    from ragft.retrieval import search
    from ragft.retrieval.index import load_index

    rt = cfg.retrieval
    questions = read_questions(paths.QA_EVAL, ("question", "doc_ids"))
    chunks = read_jsonl(paths.CHUNKS_FILE)
    qids = read_json(paths.QUESTION_IDS)
    queries = np.load(paths.QUESTION_VECTORS, allow_pickle=False)
    built, ids, _ = load_index(paths.INDEX, expected_embedder=read_json(paths.EMBEDDINGS_MANIFEST))

    chunk_doc = {c["chunk_id"]: c["doc_id"] for c in chunks}
    ranked = search.search(built, ids, chunk_doc, qids, queries, rt.depth)
    metrics = search.evaluate(ranked, questions, chunks, list(rt.ks))

    with atomic_dir(paths.RETRIEVAL) as out:
        write_jsonl(out / paths.RANKED.name, ranked)
        run.write_record(out)
    write_json(paths.RETRIEVAL_METRICS, metrics)
    with atomic_file(paths.RECALL_AT_K_PLOT) as fh:
        writer = csv.DictWriter(fh, fieldnames=["k", "recall"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(search.recall_curve(metrics, rt.ks))
    log.info("retrieval over %d questions: %s", len(questions), metrics)
    run.log_metrics(metrics)
    run.log_artifact(paths.RETRIEVAL_METRICS)


main = stage_main("retrieve", retrieve)
