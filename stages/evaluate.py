"""evaluate: score every arm, write the verdict and its evidence, and the experiment's MLflow summary.

Writes metrics/metrics.json (DVC metrics, deterministic: arms with CIs, paired differences, effects,
contamination), reports/per_question.csv, plots/metric_by_arm.csv, reports/comparison.md and
reports/report.html (+ its PNGs in reports/plots/).
"""

from __future__ import annotations

import logging
import time

from omegaconf import OmegaConf

from ragft import paths
from ragft.stage import stage

log = logging.getLogger("ragft.stages.evaluate")

UPSTREAM = {"retrieval": paths.RETRIEVAL_METRICS, "index": paths.INDEX_METRICS}


def _inputs(cfg) -> list:
    return [paths.PREDICTIONS, paths.QA_EVAL, paths.CHUNKS_FILE, paths.MODELS, paths.CONTEXTS, *UPSTREAM.values()]


@stage("evaluate", inputs=_inputs)
def main(cfg, run) -> None:
    from ragft import evaluation, html_report, judge, report
    from ragft.io import atomic_file, read_json, read_jsonl, write_json
    from ragft.tracking import flatten

    if cfg.eval.judge.enabled:
        judge.check_config(cfg.eval.judge)  # a bad judge setting fails before any scoring
    arms = [(m, c) for m in cfg.arms.models for c in cfg.arms.contexts]
    qa = evaluation.read_eval_questions(paths.QA_EVAL)
    chunks = read_jsonl(paths.CHUNKS_FILE)
    upstream = {name: read_json(path) for name, path in UPSTREAM.items()}
    trained = {m: read_json(paths.model_dir(m) / paths.TRAIN_METRICS) for m in cfg.arms.trained}
    names = [f"{m}-{c}" for m, c in arms]
    arm_info = {a: read_json(paths.PREDICTIONS / a / paths.ARM_INFO) for a in names}
    timings = {a: read_json(paths.PREDICTIONS / a / paths.TIMINGS) for a in names}

    t0 = time.perf_counter()
    scores, preds = evaluation.evaluate_arms(arms, qa, chunks, paths.PREDICTIONS, use_ragas=cfg.eval.ragas)
    boot = evaluation.Bootstrap(cfg.eval.bootstrap_resamples, cfg.eval.confidence, cfg.eval.seed)
    contamination = evaluation.contamination_report(qa, chunks, trained, seed=cfg.eval.seed)
    doc = evaluation.metrics_document(scores, boot, {"contamination": contamination})
    texts_by_chunk, _ = evaluation.chunk_texts(chunks)
    judged = None
    if cfg.eval.judge.enabled:  # LLM-judged ragas metrics; NaN judgements stay NaN (null) and are counted
        judged = judge.judge_arms(cfg.eval.judge, judge.build_samples(qa, preds, texts_by_chunk))
        for arm, row in judged["arms"].items():
            doc["arms"][arm].update(evaluation.json_safe(row))
        doc["judge"] = evaluation.json_safe({"settings": judged["settings"], "failures": judged["failures"]})
    scoring_seconds = time.perf_counter() - t0
    log.info("scored %d arms x %d questions in %.1f s", len(arms), len(qa), scoring_seconds)
    table = evaluation.per_question_table(qa, scores)
    inputs = report.ReportInputs(
        metrics=doc["arms"],
        qa=qa,
        per_question={a: s.per_question for a, s in scores.items()},
        predictions=preds,
        chunk_text=texts_by_chunk,
        timings=timings,
        base_model=arm_info[names[0]]["base_model"],
        comparisons=doc["differences"],
        effects=doc["effects"],
        contamination=contamination,
        finetune=trained,
        examples=cfg.eval.examples,
        confidence=cfg.eval.confidence,
        **upstream,
    )

    write_json(paths.EVAL_METRICS, doc)
    with atomic_file(paths.PER_QUESTION) as fh:
        table.to_csv(fh, index=False)
    with atomic_file(paths.METRIC_BY_ARM_PLOT) as fh:
        fh.write("arm,exact_match,f1\n" + "".join(f"{a},{m['exact_match']},{m['f1']}\n" for a, m in doc["arms"].items()))
    with atomic_file(paths.COMPARISON_REPORT) as fh:
        fh.write(report.render_report(inputs))
    base_manifest = arm_info[names[0]]["base_model"]
    ctx = html_report.load_context(
        ".",
        verdict=report.verdict(doc["arms"], doc["differences"]),
        labels={a: report.arm_label(a) for a in doc["arms"]},
        trained=list(cfg.arms.trained),
        judge=judged,
        examples=cfg.eval.examples,
        generator=report.generator_text(base_manifest),
        notes=report.testbed_text(base_manifest),
    )
    html_report.write_report(ctx)
    run.write_record(paths.REPORTS)

    flat = flatten({k: doc[k] for k in ("arms", "effects")})
    run.log_metrics(flat | flatten({"compare": doc["differences"]}) | {"scoring_seconds": scoring_seconds})
    run.log_table(table, artifact_file="per_question.json")
    run.log_artifact(paths.COMPARISON_REPORT)
    run.log_artifact(html_report.HTML_REPORT)
    run.log_artifact(html_report.PLOTS_DIR, "plots")
    run.log_artifact(paths.EVAL_METRICS)
    run.log_summary(OmegaConf.to_container(cfg, resolve=True), flatten(doc["arms"]))
    log.info("%s", report.verdict(doc["arms"], doc["differences"]))


if __name__ == "__main__":
    main()
