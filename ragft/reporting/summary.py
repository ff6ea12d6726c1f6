"""`ragft summary`: what `make demo` prints at the end — the model, the verdict, the arms, the decision
summary (cost per 1,000 queries, break-even of fine-tuning against RAG, with its assumptions), where the
questions came from when they were generated, where to look.

Everything comes from the pipeline's outputs: metrics/metrics.json, where the evaluate stage stored the
verdict with the metric and the confidence level it speaks of, and the decision block (token-priced costs);
the fine-tuned models' train_metrics.json and the arms' timings.json (measured times, for training costs
and break-even); and the base model's manifest.
"""

from __future__ import annotations

from pathlib import Path

from ragft import paths
from ragft.arms import Arm, Design


def measured_decision(root: Path, block: dict) -> dict:
    """metrics.json's decision block with what the measured times add (ragft.evaluation.costs.measured),
    read from the fine-tuned models' train_metrics.json and the arms' timings.json, where they exist."""
    from ragft.evaluation import costs
    from ragft.io import read_json

    def read(path: Path) -> dict:
        return read_json(path) if path.exists() else {}

    models = sorted({c["model"] for c in block.get("comparisons", [])})
    train = {m: read(root / paths.model_dir(m) / paths.TRAIN_METRICS).get("train_seconds") for m in models}
    seconds = {a: costs.seconds_per_query(read(root / paths.predictions_dir(Arm.parse(a).model, Arm.parse(a).context)
                                                / paths.TIMINGS)) for a in block.get("arms", {})}
    return costs.measured(block, train, seconds)


def summary_text(root: str | Path = ".") -> str:
    from ragft.evaluation.costs import money, summary_lines
    from ragft.evaluation.planner import plan_lines
    from ragft.io import DataError, read_json
    from ragft.model.loading import finetune_method
    from ragft.reporting.model import METRIC_SHORT, generated_note, generator_text, retriever_text
    from ragft.reporting.render import interval, level, pct
    from ragft.tracking import tracking_uri

    root = Path(root)
    metrics_path = root / paths.EVAL_METRICS
    if not metrics_path.exists():
        return (f"No results yet ({paths.EVAL_METRICS} is missing). Run `make demo` (or `dvc repro`) to run the "
                "experiment, then `ragft summary` again.\n")
    try:
        doc = read_json(metrics_path)
        manifest = read_json(root / paths.BASE_MODEL / "manifest.json") if (root / paths.BASE_MODEL).exists() else {}
        decision = measured_decision(root, doc["decision"]) if doc.get("decision") else {}
    except DataError as err:
        return f"{err}\n"
    verdict = doc.get("verdict") or {}
    metric = doc.get("primary_metric", "exact_match")
    arms = doc.get("arms") or {}
    width = max([len(a) for a in arms] + [3])
    design = doc.get("inference") or {}
    over = f", {design['clusters']} {design['unit']}s" if design.get("clusters") else ""
    ci = f"{METRIC_SHORT[metric]} {level(verdict.get('confidence', design.get('confidence', 0.95)))} CI{over}"
    retrieval = read_json(root / paths.RETRIEVAL_METRICS) if (root / paths.RETRIEVAL_METRICS).exists() else {}
    retriever = (f" Retriever: {retriever_text(retrieval)} (recall@1 {retrieval['recall@1']:.3f})."
                 if "recall@1" in retrieval and retrieval.get("method") else "")  # no name, no sentence
    # cost per 1,000 queries beside quality, when metrics.json has the decision block
    cost = {a: money(d.get("cost_per_1k")) for a, d in decision.get("arms", {}).items()}
    cost_head = f"{decision['prices']['currency'] + ' per 1k q':>14}  " if decision else ""
    lines = [f"Generator: {generator_text(manifest)}. Primary metric: {metric}.{retriever}",
             verdict.get("text", f"(no verdict in {paths.EVAL_METRICS}: rerun `dvc repro evaluate`)"), "",
             f"{'arm':<{width}}  match (%)  EM (%)  F1 (%)  words  {cost_head}{ci}"]
    for arm in Design.from_json(doc.get("candidates"), arms).order(arms):
        m = arms[arm]
        cost_cell = f"{cost.get(arm, 'n/a'):>14}  " if decision else ""
        lines.append(f"{arm:<{width}}  {pct(m.get('match')):>9}  {pct(m.get('exact_match')):>6}  {pct(m.get('f1')):>6}  "
                     f"{m.get('mean_answer_words') or 0:>5.1f}  {cost_cell}{interval(m.get(f'{metric}_ci'))}".rstrip())
    generated = read_json(root / paths.GENERATED_MANIFEST) if (root / paths.GENERATED_MANIFEST).exists() else {}
    if generated.get("generated"):
        lines += ["", generated_note(generated)]
    if design:
        lines += ["", f"Intervals: {design['interval']}, over the {design['clusters']} eval {design['unit']}s "
                      f"(eval.cluster); tests: {design['test']}."
                  + ("" if design.get("reliable", True) else
                     f" Fewer than {design['min_clusters']} clusters: the intervals are unreliable; add eval documents.")]
    if decision:
        cands = Design.from_json(doc.get("candidates"), arms)
        tuned = {Arm.parse(a).model for a in decision.get("arms", {})} & {c.name for c in cands.tuned()}
        d = summary_lines(decision, {m: finetune_method(root / paths.model_dir(m)) for m in tuned})
        lines += ["", "Decision summary:", f"  {d['best']}", "  Break-even:", *[f"  - {x}" for x in d["break_even"]],
                  "  Assumptions:", *[f"  - {x}" for x in d["assumptions"]]]
    if doc.get("plan"):
        plan = plan_lines(doc["plan"], doc.get("differences"))
        lines += ["", "How many questions would settle it (`ragft plan`):", *[f"  - {x}" for x in plan]]
    lines += [
        "",
        f"Report:        {paths.COMPARISON_REPORT} and {paths.HTML_REPORT} (per question: {paths.PER_QUESTION})",
        f"Metrics:       {paths.EVAL_METRICS}  (`dvc metrics show`; `dvc exp show`, `make compare` across experiments)",
        f"MLflow store:  {tracking_uri()}",
        "MLflow UI:     `make mlflow-ui`, then open http://127.0.0.1:5000",
    ]
    return "\n".join(lines) + "\n"


def plan_text(root: str | Path = ".", *, half_width: float | None = None, min_effect: float | None = None,
              power: float | None = None, cluster: str | None = None) -> str:
    """`ragft plan`: how many eval documents and questions would settle each comparison of the verdict, from the
    workspace's per-question scores (reports/per_question.csv) and the questions' documents (data/prepared);
    targets default to params.yaml's eval.plan, the unit to its eval.cluster."""
    import math

    import pandas as pd

    from ragft.config import ConfigError, load_params, validate
    from ragft.config.schema import PlanConfig
    from ragft.data.rows import read_scored_questions, split_rows
    from ragft.evaluation.planner import plan, plan_lines
    from ragft.evaluation.stats import clusters_of
    from ragft.evaluation.verdict import comparisons
    from ragft.io import read_json

    root = Path(root)
    needed = [root / paths.PER_QUESTION, root / paths.EVAL_METRICS, root / paths.PREPARED / "qa_eval.jsonl"]
    missing = [str(p.relative_to(root)) for p in needed if not p.exists()]
    if missing:
        raise ConfigError(f"{', '.join(missing)}: not found. Run `make demo` (or `dvc repro`) first, then `ragft plan`.")
    ev = validate(load_params(root / paths.PARAMS)).eval
    targets = PlanConfig(half_width=ev.plan.half_width if half_width is None else half_width,
                         min_effect=ev.plan.min_effect if min_effect is None else min_effect,
                         power=ev.plan.power if power is None else power)  # the schema's checks on the targets
    unit = str(ev.cluster if cluster is None else cluster)
    doc = read_json(root / paths.EVAL_METRICS)
    metric = doc.get("primary_metric", str(ev.primary_metric))
    table = pd.read_csv(root / paths.PER_QUESTION, dtype={"qid": str}, keep_default_na=False)
    arms = [c[: -len(f".{metric}")] for c in table.columns if c.endswith(f".{metric}")]
    qa = split_rows(read_scored_questions(root / paths.PREPARED, ("question", "answer")), "eval")
    cluster_of = clusters_of(qa, unit, where=f"{paths.PREPARED}/qa_eval.jsonl")
    unknown = sorted(set(table["qid"]) - set(cluster_of))
    if unknown:
        raise ConfigError(f"{paths.PER_QUESTION}: questions {unknown[:3]} are not in {paths.PREPARED}/qa_eval.jsonl "
                          "(the report is from another prepare). Fix: `dvc repro evaluate`.")
    scores = {a: [float(v) if v != "" else math.nan for v in table[f"{a}.{metric}"]] for a in arms}
    block = plan(scores, list(table["qid"]), comparisons(arms), cluster_of, unit, half_width=targets.half_width,
                 min_effect=targets.min_effect, power=targets.power, confidence=float(ev.confidence))
    differences = doc.get("differences") if unit == doc.get("inference", {}).get("unit") else None
    if not block["comparisons"]:
        return ("No comparison to plan: the verdict's comparisons need the RAG arm (base-retrieved) and a fine-tuned "
                "arm.\n")
    return "\n".join(plan_lines(block, differences)) + "\n"
