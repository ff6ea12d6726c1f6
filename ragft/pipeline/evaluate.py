"""evaluate: score every arm, write the verdict and its evidence, and the experiment's MLflow summary.

Every number of the verdict, the reports and metrics.json's top level is on the eval split; with a dev split
(dataset.dev_fraction) metrics.json's "dev" block holds every arm's scores on dev, what `ragft tune` optimises.

Every interval and test resamples the questions' clusters (eval.cluster: their source documents by default;
ragft.evaluation.stats), and metrics.json's ``inference`` block says what they are.

Writes metrics/metrics.json (DVC metrics, deterministic: arms with intervals, paired differences, effects,
contamination, the verdict, the decision summary's token-priced costs: ragft.evaluation.costs, the sample-size
plan: ragft.evaluation.planner),
metrics/robustness.json (the robustness sweep, when enabled), reports/per_question.csv, plots/metric_by_arm.csv, and the two reports
(reports/comparison.md, reports/report.html + its PNGs in reports/plots/), all from what this stage
computed in memory.
"""

from __future__ import annotations

import logging
import time

from ragft import paths
from ragft.pipeline.runner import stage_main

log = logging.getLogger(__name__)


def read_loss_curve(path, column: str = "loss") -> list[tuple[float, float]]:
    """A fine-tuned model's loss.csv (step,loss) or eval_loss.csv (step,eval_loss) as points."""
    import csv

    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return [(float(r["step"]), float(r[column])) for r in csv.DictReader(fh) if r.get("step") and r.get(column)]


def knowledge_blocks(cfg, arms, qa, absent, scores, rs, qids) -> dict:
    """metrics.json's storage (eval.storage_probe), absent (dataset.absent_people) and groups (questions with a
    group: synthbio's celebrities) blocks, each only when the experiment measures it."""
    from ragft.arms import Context
    from ragft.evaluation import knowledge, scoring
    from ragft.io import read_jsonl

    out: dict = {}
    probes = read_jsonl(paths.STORAGE_PROBE) if cfg.eval.storage_probe else []
    if probes:
        completions = {m: read_jsonl(paths.storage_completions(m)) for m in cfg.arms.models}
        closed = {a.model: {q["qid"]: r["exact_match"] for q, r in zip(qa, scores[a.name].per_question)}
                  for a in arms if a.context == Context.none}
        out["storage"] = knowledge.storage(probes, completions, closed, rs)
    if absent:
        preds = {a.name: scoring.read_predictions(paths.predictions_dir(a.model, a.context), sorted(qids["absent"]),
                                                  other_split=qids["eval"] | qids["dev"]) for a in arms}
        out["absent"] = knowledge.abstention(absent, preds, rs)
    grouped = knowledge.groups(qa, {a: s.per_question for a, s in scores.items()}, str(cfg.eval.primary_metric), rs)
    if grouped:
        out["groups"] = grouped
    return out


def evaluate(cfg, run) -> None:
    import csv

    from ragft.arms import Context, Design, product
    from ragft.config import ConfigError, plain
    from ragft.data.rows import read_scored_questions, split_rows
    from ragft.evaluation import costs, factorial, judge, knowledge, long_context, planner, robustness, scoring
    from ragft.evaluation.stats import Resampling, clusters_of
    from ragft.evaluation.verdict import comparisons, verdict
    from ragft.finetune.contamination import contamination_report
    from ragft.io import atomic_file, flatten, json_safe, read_json, read_jsonl, write_json
    from ragft.model.loading import finetune_method
    from ragft.reporting.model import build_report
    from ragft.reporting.render import write_reports

    ev = cfg.eval
    if ev.judge.enabled:
        judge.check_config(ev.judge)  # a bad judge setting fails before any scoring
    arms = product(cfg.arms.models, cfg.arms.contexts)
    unknown = sorted(set(ev.judge.arms or []) - {a.name for a in arms}) if ev.judge.enabled else []
    if unknown:
        raise ConfigError(f"params.yaml: field 'eval.judge.arms' names {unknown}, which are not arms of this experiment; "
                          f"choose from {[a.name for a in arms]} (or null for every arm).")
    scored = read_scored_questions(paths.PREPARED, ("question", "answer"))
    qa, dev, absent = split_rows(scored, "eval"), split_rows(scored, "dev"), split_rows(scored, "absent")
    rs = Resampling(str(ev.cluster), clusters_of(scored, str(ev.cluster), where=f"{paths.PREPARED}/qa_{{split}}.jsonl"),
                    ev.bootstrap_resamples, ev.confidence, ev.seed)
    chunks = read_jsonl(paths.CHUNKS_FILE)
    retrieval, index = read_json(paths.RETRIEVAL_METRICS), read_json(paths.INDEX_METRICS)
    design = Design.from_config(cfg)
    trained = {m: read_json(paths.model_dir(m) / paths.TRAIN_METRICS) for m in cfg.dag.trained}
    tuned_with = {m: finetune_method(paths.model_dir(m)) for m in cfg.dag.trained}
    arm_info = {a.name: read_json(paths.predictions_dir(a.model, a.context) / paths.ARM_INFO) for a in arms}
    timings = {a.name: read_json(paths.predictions_dir(a.model, a.context) / paths.TIMINGS) for a in arms}

    t0 = time.perf_counter()
    qids = {name: {q["qid"] for q in rows} for name, rows in (("eval", qa), ("dev", dev), ("absent", absent))}
    scores, preds = scoring.evaluate_arms(arms, qa, chunks, paths.PREDICTIONS, use_ragas=ev.ragas,
                                          other_split=qids["dev"] | qids["absent"])
    contamination = contamination_report(qa, chunks, trained, seed=ev.seed)
    metric = str(ev.primary_metric)
    doc = factorial.metrics_document(scores, rs, {"contamination": contamination, "candidates": design.to_json()},
                                     metric=metric, design=design)
    doc["split"] = {"eval": len(qa), "dev": len(dev)} | ({"absent": len(absent)} if absent else {})
    if dev:   # the same arms on dev: answer metrics with CIs (no ragas, no judge: the search reads these)
        dev_scores, _ = scoring.evaluate_arms(arms, dev, chunks, paths.PREDICTIONS, use_ragas=False,
                                              other_split=qids["eval"] | qids["absent"])
        doc["dev"] = factorial.metrics_table(dev_scores, factorial.arm_intervals(dev_scores, rs))
    doc.update(knowledge_blocks(cfg, arms, qa, absent, scores, rs, qids))
    if any(a.context == Context.long_context for a in arms):   # accuracy by the gold document's place in the prompt
        corpus = read_jsonl(paths.context_file(Context.long_context))
        doc["long_context"] = json_safe(long_context.score(
            arms, qa, {a: s.per_question for a, s in scores.items()}, preds, len(corpus[0]["chunks"]) if corpus else 0,
            rs, metric))
    judged = None
    if ev.judge.enabled:  # LLM-judged ragas metrics; NaN judgements stay NaN (null) and are counted
        texts_by_chunk, _ = scoring.chunk_texts(chunks)
        judged = judge.judge_arms(ev.judge, judge.build_samples(qa, preds, texts_by_chunk))
        for arm, row in judged["arms"].items():
            doc["arms"][arm].update(json_safe(row))
        judged["agreement"] = judge.agreement(
            judged["per_question"], {a: [bool(r["match"]) for r in s.per_question] for a, s in scores.items()}, rs,
            [q["qid"] for q in qa])
        doc["judge"] = json_safe({k: judged[k] for k in ("settings", "failures", "agreement")})
    doc["verdict"] = json_safe(verdict(doc["arms"], doc["differences"], ev.confidence, metric, tuned_with,
                                       doc["inference"], design))
    # the decision summary: token-priced costs in metrics.json (deterministic); what measured times add
    # (training costs, time-priced costs, break-even volumes) only in the reports
    output = {a: costs.output_tokens(preds[a][q["qid"]] for q in qa) for a in preds}
    doc["decision"] = json_safe(costs.decision(doc["arms"], doc["differences"], doc["verdict"], output,
                                               {k: ev.costs[k] for k in (*costs.PRICE_KEYS, "cached_input_per_million")}, metric, ev.confidence,
                                               str(ev.cluster), design,
                                               {a: t.get("shared_prefix_tokens") for a, t in timings.items()}), 9)
    doc["plan"] = json_safe(planner.plan(
        {a: [r[metric] for r in s.per_question] for a, s in scores.items()}, [q["qid"] for q in qa],
        comparisons(scores, design), rs.cluster_of, rs.unit, half_width=ev.plan.half_width, min_effect=ev.plan.min_effect,
        power=ev.plan.power, confidence=ev.confidence))
    decision = costs.measured(doc["decision"], {m: t.get("train_seconds") for m, t in trained.items()},
                              {a: costs.seconds_per_query(t) for a, t in timings.items()})
    robust = json_safe(robustness.score(cfg, qa, rs))   # {"enabled": false} unless robustness.enabled
    scoring_seconds = time.perf_counter() - t0
    log.info("scored %d arms x %d questions in %.1f s", len(arms), len(qa), scoring_seconds)

    # what each example's context arms put in the prompt; not long_context's: the same whole corpus for every
    # question (its section says so), which would repeat in every example
    contexts = {c: {r["qid"]: r["chunks"] for r in read_jsonl(paths.context_file(c))}
                for c in dict.fromkeys(a.context for a in arms) if c not in (Context.none, Context.long_context)}
    report = build_report(
        doc, {a: s.per_question for a, s in scores.items()}, qa, contexts=contexts, timings=timings,
        base_manifest=arm_info[arms[0].name]["base_model"], finetune=trained, methods=tuned_with,
        loss_curves={m: read_loss_curve(paths.model_dir(m) / paths.TRAIN_CURVE) for m in trained},
        validation_curves={m: read_loss_curve(paths.model_dir(m) / paths.VALIDATION_CURVE, "eval_loss") for m in trained},
        retrieval=retrieval, index=index, judge=judged, examples=ev.examples, robustness=robust, decision=decision,
        generated=read_json(paths.GENERATED_MANIFEST) if paths.GENERATED_MANIFEST.exists() else None,
    )
    table = scoring.per_question_table(qa, scores)

    write_json(paths.EVAL_METRICS, doc)
    with atomic_file(paths.PER_QUESTION) as fh:
        table.to_csv(fh, index=False)
    with atomic_file(paths.METRIC_BY_ARM_PLOT) as fh:
        writer = csv.DictWriter(fh, fieldnames=["arm", "match", "exact_match", "f1"], extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows({"arm": a, **m} for a, m in doc["arms"].items())
    write_json(paths.ROBUSTNESS_METRICS, robust)
    with atomic_file(paths.ROBUSTNESS_PLOT) as fh:
        writer = csv.DictWriter(fh, fieldnames=["model", "condition", "group", "size", "estimate"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(robustness.plot_rows(robust))
    written = write_reports(report)
    run.write_record(paths.REPORTS)

    run.log_metrics(flatten({k: doc[k] for k in ("arms", "effects")}) | flatten({"compare": doc["differences"]})
                    | flatten({"dev": doc.get("dev", {})}) | knowledge.summary_rows(doc)
                    | {"scoring_seconds": scoring_seconds, "clusters": doc["inference"]["clusters"]})
    run.log_table(table, artifact_file="per_question.json")
    for path in written:
        run.log_artifact(path, "plots" if path.suffix == ".png" else None)
    run.log_artifact(paths.EVAL_METRICS)
    run.log_summary(plain(cfg), flatten(doc["arms"]))
    run.set_tags({"ragft.verdict": doc["verdict"]["text"][:5000], "ragft.ci_unit": doc["inference"]["unit"],
                  "ragft.ci_method": doc["inference"]["interval"], "ragft.test": doc["inference"]["test"]})
    log.info("%s", doc["verdict"]["text"])


main = stage_main("evaluate", evaluate)
