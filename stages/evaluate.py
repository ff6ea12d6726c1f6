"""evaluate: score every arm, write the verdict and its evidence, and the experiment's MLflow summary.

Writes metrics/metrics.json (DVC metrics, deterministic), reports/per_question.csv,
plots/metric_by_arm.csv and reports/comparison.md.
"""

from __future__ import annotations

import logging
import time

from omegaconf import OmegaConf

from ragft import paths
from ragft.stage import stage

log = logging.getLogger("ragft.stages.evaluate")

UPSTREAM = {"retrieval": paths.RETRIEVAL_METRICS, "index": paths.INDEX_METRICS, "finetune": paths.FINETUNE_METRICS}


@stage("evaluate", inputs=lambda cfg: [paths.PREDICTIONS, paths.QA_EVAL, paths.CHUNKS_FILE, *UPSTREAM.values()])
def main(cfg, run) -> None:
    from ragft import evaluation, report
    from ragft.io import atomic_file, read_json, read_jsonl, write_json
    from ragft.tracking import flatten

    arms = [(m, c) for m in cfg.arms.models for c in cfg.arms.contexts]
    qa = evaluation.read_eval_questions(paths.QA_EVAL)
    chunks = read_jsonl(paths.CHUNKS_FILE)
    upstream = {name: read_json(path) for name, path in UPSTREAM.items()}
    names = [f"{m}-{c}" for m, c in arms]
    arm_info = {a: read_json(paths.PREDICTIONS / a / paths.ARM_INFO) for a in names}
    timings = {a: read_json(paths.PREDICTIONS / a / paths.TIMINGS) for a in names}

    t0 = time.perf_counter()
    scores, preds = evaluation.evaluate_arms(arms, qa, chunks, paths.PREDICTIONS, use_ragas=cfg.eval.ragas)
    scoring_seconds = time.perf_counter() - t0
    log.info("scored %d arms x %d questions in %.1f s", len(arms), len(qa), scoring_seconds)
    metrics = evaluation.metrics_table(scores)
    comparisons = evaluation.compare_arms(scores, seed=cfg.seed)
    table = evaluation.per_question_table(qa, scores)
    texts_by_chunk, _ = evaluation.chunk_texts(chunks)
    text = report.render_report(
        report.ReportInputs(
            metrics=metrics,
            qa=qa,
            per_question={a: s.per_question for a, s in scores.items()},
            predictions=preds,
            chunk_text=texts_by_chunk,
            timings=timings,
            base_model=arm_info[names[0]]["base_model"],
            comparisons=comparisons,
            examples=cfg.eval.examples,
            **upstream,
        )
    )

    write_json(paths.EVAL_METRICS, metrics)
    with atomic_file(paths.PER_QUESTION) as fh:
        table.to_csv(fh, index=False)
    with atomic_file(paths.METRIC_BY_ARM_PLOT) as fh:
        fh.write("arm,exact_match,f1\n" + "".join(f"{a},{m['exact_match']},{m['f1']}\n" for a, m in metrics.items()))
    with atomic_file(paths.COMPARISON_REPORT) as fh:
        fh.write(text)
    run.write_record(paths.REPORTS)

    flat = flatten(metrics)
    run.log_metrics(flat | flatten({"compare": comparisons}) | {"scoring_seconds": scoring_seconds})
    run.log_table(table, artifact_file="per_question.json")
    run.log_artifact(paths.COMPARISON_REPORT)
    run.log_summary(OmegaConf.to_container(cfg, resolve=True), flat)
    log.info("%s", report.verdict(metrics, comparisons))


if __name__ == "__main__":
    main()
