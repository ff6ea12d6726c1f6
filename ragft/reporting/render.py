"""The reports as files: reports/comparison.md and reports/report.html are two Jinja2 templates
(ragft/reporting/templates/) over one Report; the figures are PNGs, embedded in the page as data URIs
and written to reports/plots/ (for MLflow).

Escaping is each environment's default, not a call someone can forget: the HTML environment
autoescapes every expression, and the Markdown one passes every expression through ``escape_md``
(its ``finalize``), so a document holding ``<script>`` or a table pipe renders as text. Only the
number formatters below mark their output as safe. The page is self-contained (inline CSS from
templates/report.css, no JavaScript), well-formed XML as well as HTML5, and deterministic.
"""

from __future__ import annotations

import base64
import html
import logging
import re
from pathlib import Path
from typing import Any

from markupsafe import Markup

from ragft import paths
from ragft.arms import Arm
from ragft.reporting import plots
from ragft.reporting.model import ANSWER_METRICS, JUDGE_LABELS, RAGAS_METRICS, Report, is_nan

log = logging.getLogger(__name__)

CHUNK_CHARS = 1200  # an example's context chunk is cut here in the page
MD_CHUNK_CHARS = 400  # and here in the Markdown report


def escape_md(text: Any) -> str:
    """``text`` as inert Markdown on one line: HTML escaped, Markdown punctuation backslash-escaped."""
    if isinstance(text, Markup):
        return str(text)
    text = html.escape(str(text), quote=False)
    text = re.sub(r"([\\`*_\[\]|#~])", r"\\\1", text)
    return " ".join(text.split())  # a newline would end a table row


def number(value: Any, digits: int = 1, scale: float = 1.0) -> Markup:
    """The one number format of both reports: NaN for a missing value, thousands separated."""
    if is_nan(value):
        return Markup("NaN")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, int) and scale == 1.0:
        return Markup(f"{value:,}")
    return Markup(f"{value * scale:,.{digits}f}")


def pct(value: Any, digits: int = 1) -> Markup:
    """A fraction as a percentage."""
    return number(value, digits, 100.0)


def interval(ci: Any, digits: int = 1) -> Markup:
    """A [low, high] fraction interval as '[l, h]' in percent; empty when there is none."""
    if not (isinstance(ci, (list, tuple)) and len(ci) == 2) or any(is_nan(c) for c in ci):
        return Markup("")
    return Markup(f"[{pct(ci[0], digits)}, {pct(ci[1], digits)}]")


def level(confidence: float) -> Markup:
    """0.95 → '95%'."""
    return Markup(f"{100 * confidence:g}%")


def shorten(text: Any, n: int) -> str:
    text = str(text)
    return text[:n] + ("…" if len(text) > n else "")


def environment(kind: str):
    """The Jinja2 environment of the ``html`` or ``md`` templates."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    options: dict[str, Any] = {"loader": PackageLoader("ragft.reporting", "templates"), "undefined": StrictUndefined,
                               "trim_blocks": True, "lstrip_blocks": True, "keep_trailing_newline": True}
    if kind == "html":
        env = Environment(autoescape=True, **options)
    else:
        env = Environment(autoescape=False, finalize=escape_md, **options)
    env.filters.update(number=number, pct=pct, interval=interval, level=level, shorten=shorten, nan=is_nan)
    env.globals.update(arm_name=lambda model, context: Arm(model, context).name, ANSWER_METRICS=ANSWER_METRICS, RAGAS_METRICS=RAGAS_METRICS, JUDGE_LABELS=JUDGE_LABELS,
                       MD_CHUNK_CHARS=MD_CHUNK_CHARS, CHUNK_CHARS=CHUNK_CHARS)
    return env


def make_figures(report: Report) -> dict[str, bytes]:
    """name → PNG bytes, for the figures there is data for (names are the reports/plots/<name>.png files)."""
    level_ = report.confidence
    recall = [(float(k), m["recall"]) for k, m in report.retrieval_at_k if "recall" in m]
    ndcg = [(float(k), m["ndcg"]) for k, m in report.retrieval_at_k if "ndcg" in m]
    attr_arms = list(report.arms)
    figures = {
        "metrics_by_arm": plots.render(plots.metric_bars, report.arms, ANSWER_METRICS, "Answer quality by arm", level_),
        "ragas_by_arm": plots.render(plots.metric_bars, report.arms, RAGAS_METRICS, "ragas metrics (no LLM) by arm",
                                     level_),
        "effects": plots.render(plots.effects_forest, report.effects, level_, report.metric_short),
        "recall_at_k": plots.render(plots.recall_curve, recall, {"nDCG@k": ndcg} if ndcg else None),
        "score_by_attribute": plots.render(
            plots.attribute_heatmap, [r["attribute"] for r in report.attributes], attr_arms,
            [[r["score"].get(a) for a in attr_arms] for r in report.attributes],
            [r["n"] for r in report.attributes], report.metric_short),
        "finetune_loss": plots.render(plots.loss_curves, report.loss_curves, report.validation_curves),
        "cost_quality": plots.render(plots.cost_quality, report.costs, report.metric_short),
        **{f"robustness_{model}": plots.render(plots.robustness_bars, model, report.robustness["conditions"], rows,
                                               report.metric_short, level_)
           for model, rows in report.robustness_models.items()},
    }
    return {k: v for k, v in figures.items() if v is not None}


def render_markdown(report: Report) -> str:
    return environment("md").get_template("comparison.md.j2").render(r=report).rstrip() + "\n"


def render_html(report: Report, figures: dict[str, bytes] | None = None) -> str:
    """The page (figures: ``make_figures(report)`` unless given). Deterministic."""
    figures = make_figures(report) if figures is None else figures
    uris = {name: "data:image/png;base64," + base64.b64encode(png).decode("ascii") for name, png in figures.items()}
    css = Markup((Path(__file__).parent / "templates" / "report.css").read_text(encoding="utf-8"))  # our own file
    return environment("html").get_template("report.html.j2").render(r=report, figures=uris, css=css)


def write_reports(report: Report, markdown_path: str | Path = paths.COMPARISON_REPORT,
                  html_path: str | Path = paths.HTML_REPORT, plots_dir: str | Path = paths.REPORT_PLOTS) -> list[Path]:
    """Write the Markdown report, the page and its figures (plots_dir/<name>.png, replaced as a whole);
    return every file written, e.g. for MLflow."""
    from ragft.io import atomic_dir, atomic_file

    figures = make_figures(report)
    plots_dir = Path(plots_dir)
    with atomic_dir(plots_dir) as tmp:
        for name, png in sorted(figures.items()):
            (tmp / f"{name}.png").write_bytes(png)
    with atomic_file(markdown_path) as fh:
        fh.write(render_markdown(report))
    with atomic_file(html_path) as fh:
        fh.write(render_html(report, figures))
    log.info("wrote %s and %s with %d figures (%s)", markdown_path, html_path, len(figures), ", ".join(sorted(figures)))
    return [plots_dir / f"{name}.png" for name in sorted(figures)] + [Path(markdown_path), Path(html_path)]
