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
from ragft.arms import Arm, order


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
    ci = f"{METRIC_SHORT[metric]} {level(verdict.get('confidence', doc.get('bootstrap', {}).get('confidence', 0.95)))} CI"
    retrieval = read_json(root / paths.RETRIEVAL_METRICS) if (root / paths.RETRIEVAL_METRICS).exists() else {}
    retriever = (f" Retriever: {retriever_text(retrieval)} (recall@1 {retrieval['recall@1']:.3f})."
                 if "recall@1" in retrieval and retrieval.get("method") else "")  # no name, no sentence
    # cost per 1,000 queries beside quality, when metrics.json has the decision block
    cost = {a: money(d.get("cost_per_1k")) for a, d in decision.get("arms", {}).items()}
    cost_head = f"{decision['prices']['currency'] + ' per 1k q':>14}  " if decision else ""
    lines = [f"Generator: {generator_text(manifest)}. Primary metric: {metric}.{retriever}",
             verdict.get("text", f"(no verdict in {paths.EVAL_METRICS}: rerun `dvc repro evaluate`)"), "",
             f"{'arm':<{width}}  match (%)  EM (%)  F1 (%)  words  {cost_head}{ci}"]
    for arm in order(arms):
        m = arms[arm]
        cost_cell = f"{cost.get(arm, 'n/a'):>14}  " if decision else ""
        lines.append(f"{arm:<{width}}  {pct(m.get('match')):>9}  {pct(m.get('exact_match')):>6}  {pct(m.get('f1')):>6}  "
                     f"{m.get('mean_answer_words') or 0:>5.1f}  {cost_cell}{interval(m.get(f'{metric}_ci'))}".rstrip())
    generated = read_json(root / paths.GENERATED_MANIFEST) if (root / paths.GENERATED_MANIFEST).exists() else {}
    if generated.get("generated"):
        lines += ["", generated_note(generated)]
    if decision:
        tuned = {Arm.parse(a).model for a in decision.get("arms", {})} - {"base"}
        d = summary_lines(decision, {m: finetune_method(root / paths.model_dir(m)) for m in tuned})
        lines += ["", "Decision summary:", f"  {d['best']}", "  Break-even:", *[f"  - {x}" for x in d["break_even"]],
                  "  Assumptions:", *[f"  - {x}" for x in d["assumptions"]]]
    lines += [
        "",
        f"Report:        {paths.COMPARISON_REPORT} and {paths.HTML_REPORT} (per question: {paths.PER_QUESTION})",
        f"Metrics:       {paths.EVAL_METRICS}  (`dvc metrics show`; `dvc exp show`, `make compare` across experiments)",
        f"MLflow store:  {tracking_uri()}",
        "MLflow UI:     `make mlflow-ui`, then open http://127.0.0.1:5000",
    ]
    return "\n".join(lines) + "\n"
