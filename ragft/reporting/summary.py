"""`ragft summary`: what `make demo` prints at the end — the verdict, the arms, where to look.

Everything comes from metrics/metrics.json, where the evaluate stage stored the verdict with the
metric and the confidence level it speaks of.
"""

from __future__ import annotations

from pathlib import Path

from ragft import paths
from ragft.arms import order


def summary_text(root: str | Path = ".") -> str:
    from ragft.io import DataError, read_json
    from ragft.reporting.render import interval, level, pct
    from ragft.tracking import tracking_uri

    metrics_path = Path(root) / paths.EVAL_METRICS
    if not metrics_path.exists():
        return (f"No results yet ({paths.EVAL_METRICS} is missing). Run `make demo` (or `dvc repro`) to run the "
                "experiment, then `ragft summary` again.\n")
    try:
        doc = read_json(metrics_path)
    except DataError as err:
        return f"{err}\n"
    verdict = doc.get("verdict") or {}
    arms = doc.get("arms") or {}
    width = max([len(a) for a in arms] + [3])
    ci = f"EM {level(verdict.get('confidence', doc.get('bootstrap', {}).get('confidence', 0.95)))} CI"
    lines = [verdict.get("text", f"(no verdict in {paths.EVAL_METRICS}: rerun `dvc repro evaluate`)"), "",
             f"{'arm':<{width}}  EM (%)  F1 (%)  {ci}"]
    for arm in order(arms):
        m = arms[arm]
        lines.append(f"{arm:<{width}}  {pct(m.get('exact_match')):>6}  {pct(m.get('f1')):>6}  "
                     f"{interval(m.get('exact_match_ci'))}".rstrip())
    lines += [
        "",
        f"Report:        {paths.COMPARISON_REPORT} and {paths.HTML_REPORT} (per question: {paths.PER_QUESTION})",
        f"Metrics:       {paths.EVAL_METRICS}  (`dvc metrics show`; `dvc exp show`, `make compare` across experiments)",
        f"MLflow store:  {tracking_uri()}",
        "MLflow UI:     `make mlflow-ui`, then open http://127.0.0.1:5000",
    ]
    return "\n".join(lines) + "\n"
