"""`python -m ragft.summary`: what `make demo` prints at the end — the verdict, the arms, where to look.

This is a CLI's output for a person at a terminal, so it prints.
"""

from __future__ import annotations

import math
from pathlib import Path

from ragft import paths


def summary_text(root: str | Path = ".") -> str:
    from ragft.io import DataError, read_json
    from ragft.report import read_verdict
    from ragft.tracking import tracking_uri

    root = Path(root)
    report_path, metrics_path = root / paths.COMPARISON_REPORT, root / paths.EVAL_METRICS
    if not report_path.exists() or not metrics_path.exists():
        return (
            f"No results yet ({paths.COMPARISON_REPORT} is missing). Run `make demo` "
            "(or `dvc repro`) to run the experiment, then `python -m ragft.summary` again.\n"
        )
    try:
        metrics = read_json(metrics_path)
    except DataError as err:
        return f"{err}\n"
    verdict = read_verdict(report_path.read_text(encoding="utf-8")) or "(no verdict line in the report)"

    def pct(v: float | None) -> str:
        return "NaN" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:5.1f}"

    def ci(m: dict, key: str) -> str:
        lo_hi = m.get(f"{key}_ci")
        return f"[{pct(lo_hi[0]).strip()}, {pct(lo_hi[1]).strip()}]" if isinstance(lo_hi, list) and len(lo_hi) == 2 else ""

    from ragft.compare import arms_of

    arms = arms_of(metrics)  # {"arms": {...}, "differences": ..., "effects": ...}
    width = max([len(a) for a in arms] + [3])
    lines = [verdict, "", f"{'arm':<{width}}  EM (%)  F1 (%)  EM CI"]
    lines += [
        f"{arm:<{width}}  {pct(m.get('exact_match')):>6}  {pct(m.get('f1')):>6}  {ci(m, 'exact_match')}".rstrip()
        for arm, m in arms.items()
    ]
    lines += [
        "",
        f"Report:        {paths.COMPARISON_REPORT} (per question: {paths.PER_QUESTION})",
        f"Metrics:       {paths.EVAL_METRICS}  (`dvc metrics show`; `dvc exp show`, `make compare` across experiments)",
        f"MLflow store:  {tracking_uri()}",
        "MLflow UI:     `make mlflow-ui`, then open http://127.0.0.1:5000",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    print(summary_text(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
