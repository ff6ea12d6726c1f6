"""contexts: one prompt-context file per context arm (none, retrieved, oracle, oracle_distractors, and long_context
when arms.contexts selects it: an empty file otherwise, so its absence changes nothing), for every
scored question (eval, dev when there is one, absent people's when there are); the robustness conditions and
the storage probe (eval.storage_probe: each eval question's gold document up to its answer) for eval only."""

from __future__ import annotations

import logging

from ragft import paths
from ragft.pipeline.runner import stage_main

log = logging.getLogger(__name__)


def contexts(cfg, run) -> None:
    from ragft.data.rows import read_documents, read_scored_questions, split_rows
    from ragft.io import atomic_dir, read_jsonl, write_json, write_jsonl
    from ragft.model.probe import storage_rows
    from ragft.retrieval import contexts as arms_contexts
    from ragft.retrieval import robustness

    questions = read_scored_questions(paths.PREPARED, ("question", "doc_ids"))
    ranked = read_jsonl(paths.RANKED)
    chunks = read_jsonl(paths.CHUNKS_FILE)

    selected = "long_context" in [str(c) for c in cfg.arms.contexts]
    built = arms_contexts.build_all(questions, ranked, chunks, cfg.retrieval,
                                    read_documents(paths.DOCUMENTS) if selected else None, cfg.long_context.seed)
    # each file is written atomically on its own: an unchanged file keeps its hash, so its arms stay cached
    for kind, rows in built.items():
        write_jsonl(paths.context_file(kind), rows)
    probe = storage_rows(split_rows(questions, "eval"), read_documents(paths.DOCUMENTS)) if cfg.eval.storage_probe else []
    write_jsonl(paths.STORAGE_PROBE, probe)
    # the robustness sweep's conditions (robustness.enabled; otherwise an empty list)
    conds = robustness.conditions(cfg.robustness, cfg.retrieval.top_k) if cfg.robustness.enabled else []
    with atomic_dir(paths.ROBUSTNESS_CONTEXTS) as out:
        if conds:
            evaluation = split_rows(questions, "eval")   # the robustness sweep is reported: eval only
            for name, rows in robustness.build(evaluation, ranked, chunks, cfg.robustness, cfg.retrieval.top_k).items():
                write_jsonl(out / f"{name}.jsonl", rows)
        write_json(out / "conditions.json", [c.as_dict() for c in conds])
        run.write_record(out)
    run.write_record(paths.CONTEXTS)
    sizes = {f"mean_chunks_{k}": sum(len(r["chunks"]) for r in rows) / max(len(rows), 1) for k, rows in built.items()}
    log.info("contexts for %d questions: %s; %d robustness conditions; %d storage probes", len(questions), sizes,
             len(conds), len(probe))
    run.log_metrics({"n_questions": len(questions), "n_storage_probes": len(probe), **sizes})


main = stage_main("contexts", contexts)
