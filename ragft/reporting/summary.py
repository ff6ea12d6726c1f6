"""`ragft summary`: what `make demo` prints at the end — the model, the verdict, the arms, where to look.

Everything comes from the pipeline's outputs: metrics/metrics.json, where the evaluate stage stored the
verdict with the metric and the confidence level it speaks of, and the base model's manifest.
"""

from __future__ import annotations

from pathlib import Path

from ragft import paths
from ragft.arms import order


def summary_text(root: str | Path = ".") -> str:
    from ragft.io import DataError, read_json
    from ragft.reporting.model import METRIC_SHORT, generator_text, retriever_text
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
    except DataError as err:
        return f"{err}\n"
    verdict = doc.get("verdict") or {}
    metric = doc.get("primary_metric", "exact_match")
    arms = doc.get("arms") or {}
    width = max([len(a) for a in arms] + [3])
    ci = f"{METRIC_SHORT[metric]} {level(verdict.get('confidence', doc.get('bootstrap', {}).get('confidence', 0.95)))} CI"
    retrieval = read_json(root / paths.RETRIEVAL_METRICS) if (root / paths.RETRIEVAL_METRICS).exists() else {}
    retriever = (f" Retriever: {retriever_text(retrieval)} (recall@1 {retrieval['recall@1']:.3f})."
                 if "recall@1" in retrieval else "")
    lines = [f"Generator: {generator_text(manifest)}. Primary metric: {metric}.{retriever}",
             verdict.get("text", f"(no verdict in {paths.EVAL_METRICS}: rerun `dvc repro evaluate`)"), "",
             f"{'arm':<{width}}  match (%)  EM (%)  F1 (%)  words  {ci}"]
    for arm in order(arms):
        m = arms[arm]
        lines.append(f"{arm:<{width}}  {pct(m.get('match')):>9}  {pct(m.get('exact_match')):>6}  {pct(m.get('f1')):>6}  "
                     f"{m.get('mean_answer_words') or 0:>5.1f}  {interval(m.get(f'{metric}_ci'))}".rstrip())
    lines += [
        "",
        f"Report:        {paths.COMPARISON_REPORT} and {paths.HTML_REPORT} (per question: {paths.PER_QUESTION})",
        f"Metrics:       {paths.EVAL_METRICS}  (`dvc metrics show`; `dvc exp show`, `make compare` across experiments)",
        f"MLflow store:  {tracking_uri()}",
        "MLflow UI:     `make mlflow-ui`, then open http://127.0.0.1:5000",
    ]
    return "\n".join(lines) + "\n"
