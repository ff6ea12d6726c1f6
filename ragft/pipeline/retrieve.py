"""retrieve: the scored questions (eval, and dev when there is one) → ranked chunks by the configured retriever
(and reranker); recall@k, MRR, nDCG@k against the gold documents, under the method's name: on the eval
questions, and under "dev" on the dev questions (what `ragft tune` may optimise)."""

from __future__ import annotations

import logging

from ragft import paths
from ragft.pipeline.runner import stage_main

log = logging.getLogger(__name__)


def retrieve(cfg, run) -> None:
    import csv

    import numpy as np

    from ragft.data.rows import read_scored_questions, split_rows
    from ragft.io import DataError, atomic_dir, atomic_file, read_json, read_jsonl, write_json, write_jsonl
    from ragft.retrieval import search
    from ragft.retrieval.retriever import Retriever

    rt, rr = cfg.retrieval, cfg.reranker
    reranker = None
    if str(rr.kind) == "cross_encoder":       # a bad reranker fails before any retrieval
        from ragft.retrieval.rerank import CrossEncoderReranker

        reranker = CrossEncoderReranker(rr)
    questions = read_scored_questions(paths.PREPARED, ("question", "doc_ids"))
    chunks = read_jsonl(paths.CHUNKS_FILE)
    qids = read_json(paths.QUESTION_IDS)
    queries = np.load(paths.QUESTION_VECTORS, allow_pickle=False)
    by_qid = {q["qid"]: q["question"] for q in questions}
    if set(qids) != set(by_qid):
        extra = sorted(set(qids) ^ set(by_qid))[:3]
        raise DataError(f"{paths.QUESTION_IDS}: the embedded questions differ from {paths.QA_EVAL} + "
                        f"{paths.QA_DEV.name}"
                        f" (e.g. {extra}). "
                        "Fix: `dvc repro embed`.")
    method = str(cfg.retriever.method)
    weighted = method == "hybrid" and str(cfg.retriever.hybrid.fusion) == "weighted"   # it reads the vectors
    vectors = np.load(paths.VECTORS, allow_pickle=False) if weighted else None
    engine = Retriever(paths.INDEX, cfg, chunks, read_json(paths.EMBEDDINGS_MANIFEST), vectors,
                       read_json(paths.VECTOR_IDS) if weighted else None)

    ranks = engine.rank([by_qid[q] for q in qids], queries, rt.depth)
    ranked = search.ranked_rows(qids, ranks, chunks, method)
    ks = list(rt.ks)
    evaluation, dev = split_rows(questions, "eval"), split_rows(questions, "dev")

    def summary() -> dict:   # eval's figures at the top level (as without a dev split), dev's under "dev"
        out = search.evaluate(ranked, evaluation, chunks, ks)
        return out | {"dev": search.evaluate(ranked, dev, chunks, ks)} if dev else out

    metrics = {"method": method, "reranker": str(rr.kind), **summary()}
    if reranker is not None:
        first = metrics
        ranked = reranker.rerank(by_qid, ranked, {c["chunk_id"]: c["text"] for c in chunks})
        metrics = {**first, **summary(),
                   "first_stage": {k: v for k, v in first.items() if k not in ("method", "reranker")}}

    with atomic_dir(paths.RETRIEVAL) as out:
        write_jsonl(out / paths.RANKED.name, ranked)
        if reranker is not None:
            write_json(out / "reranker.json", reranker.identity)
        run.write_record(out)
    write_json(paths.RETRIEVAL_METRICS, metrics)
    with atomic_file(paths.RECALL_AT_K_PLOT) as fh:
        writer = csv.DictWriter(fh, fieldnames=["k", "recall"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(search.recall_curve(metrics, rt.ks))
    log.info("retrieval (%s%s) over %d questions: %s", method, f" + {rr.kind}" if reranker else "", len(questions),
             {k: v for k, v in metrics.items() if k.startswith(("recall", "mrr"))})
    run.log_metrics(metrics)
    run.log_artifact(paths.RETRIEVAL_METRICS)


main = stage_main("retrieve", retrieve)
