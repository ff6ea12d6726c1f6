"""retrieve: eval questions → ranked chunks; recall@k, MRR, nDCG@k against the gold documents."""

from __future__ import annotations

import csv
import logging

import numpy as np

from ragft import paths, retrieval
from ragft.index import load_index
from ragft.io import atomic_dir, atomic_file, read_json, read_jsonl, write_json, write_jsonl
from ragft.stage import stage

log = logging.getLogger(__name__)


@stage("retrieve", inputs=lambda cfg: [str(paths.INDEX), str(paths.EMBEDDINGS), str(paths.CHUNKS_FILE),
                                       str(paths.QA_EVAL)])
def main(cfg, run):
    rt = cfg.retrieval
    questions = retrieval.read_questions(paths.QA_EVAL)
    chunks = read_jsonl(paths.CHUNKS_FILE)
    qids = read_json(paths.QUESTION_IDS)
    queries = np.load(paths.QUESTION_VECTORS, allow_pickle=False)
    index, ids, _ = load_index(paths.INDEX, expected_embedder=read_json(paths.EMBEDDINGS_MANIFEST))

    chunk_doc = {c["chunk_id"]: c["doc_id"] for c in chunks}
    ranked = retrieval.search(index, ids, chunk_doc, qids, queries, rt.depth)
    metrics = retrieval.evaluate(ranked, questions, chunks, list(rt.ks))

    with atomic_dir(paths.RETRIEVAL) as out:
        write_jsonl(out / paths.RANKED.name, ranked)
        run.write_record(out)
    write_json(paths.RETRIEVAL_METRICS, metrics)
    with atomic_file(paths.RECALL_AT_K_PLOT) as fh:
        writer = csv.DictWriter(fh, fieldnames=["k", "recall"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(retrieval.recall_curve(metrics, rt.ks))
    log.info("retrieval over %d questions: %s", len(questions), metrics)
    run.log_metrics(metrics)
    run.log_artifact(paths.RETRIEVAL_METRICS)


if __name__ == "__main__":
    main()
