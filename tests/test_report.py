"""The report: a verdict computed from the numbers (either sign, or none), Markdown that cannot be
hijacked by corpus text, the testbed note, and the CLI summary."""

from __future__ import annotations

import re

import pytest

from ragft import paths, report
from ragft.io import write_json
from ragft.summary import summary_text


def arms(base_none, rag, ft, both) -> dict[str, dict]:
    em = {"base-none": base_none, "base-retrieved": rag, "finetuned-none": ft, "finetuned-retrieved": both}
    return {arm: {"exact_match": v, "f1": v, "n": 200} for arm, v in em.items()}


def test_verdict_rag_wins_and_finetuning_adds():
    text = report.verdict(arms(0.05, 0.62, 0.30, 0.66))
    assert text.startswith(
        "On this corpus, RAG (base + retrieved) beats LoRA fine-tuning (finetuned, closed-book) by 32.0 EM points; "
        "fine-tuning on the documents added 4.0 points on top of RAG."
    )
    assert "Best arm: finetuned-retrieved" in text and "66.0%" in text


def test_verdict_finetuning_wins_and_costs_on_top_of_rag():
    text = report.verdict(arms(0.05, 0.40, 0.55, 0.385))
    assert text.startswith(
        "On this corpus, LoRA fine-tuning (finetuned, closed-book) beats RAG (base + retrieved) by 15.0 EM points; "
        "fine-tuning on the documents on top of RAG lost 1.5 points."
    )
    assert "Best arm: finetuned-none" in text


def test_verdict_no_difference_and_ties():
    text = report.verdict(arms(0.1, 0.5, 0.5, 0.5))
    assert "RAG (base + retrieved) and LoRA fine-tuning (finetuned, closed-book): no significant difference" in text
    assert "fine-tuning on the documents on top of RAG: no significant difference (+0.0 points)" in text
    assert "Best arms (tied): base-retrieved (RAG: base + retrieved), finetuned-none" in text
    assert "and finetuned-retrieved (both: finetuned + retrieved), EM 50.0%." in text
    assert report.verdict(arms(0.0, 0.0, 0.0, 0.0)).endswith("All arms tie at EM 0.0%.")


def test_verdict_carries_the_paired_confidence_interval():
    ci = {
        "base-retrieved vs finetuned-none": {"diff": -0.15, "ci_low": -0.20, "ci_high": -0.10},
        "finetuned-retrieved vs base-retrieved": {"diff": -0.015, "ci_low": -0.04, "ci_high": 0.01},
    }
    text = report.verdict(arms(0.05, 0.40, 0.55, 0.385), ci)
    assert "beats RAG (base + retrieved) by 15.0 EM points (95% CI 10.0 to 20.0);" in text
    # a CI spanning 0 is called what it is
    assert "fine-tuning on the documents on top of RAG: no significant difference (-1.5 points (95% CI -4.0 to 1.0))" in text
    # the verdict finds a difference stored either way round
    flipped = {"finetuned-none vs base-retrieved": {"diff": 0.15, "ci_low": 0.10, "ci_high": 0.20}}
    assert "by 15.0 EM points (95% CI 10.0 to 20.0)" in report.verdict(arms(0.05, 0.40, 0.55, 0.385), flipped)


def test_verdict_with_only_some_arms():
    only = {"base-none": {"exact_match": 0.2}, "base-retrieved": {"exact_match": 0.7}}
    assert report.verdict(only) == "Best arm: base-retrieved (RAG: base + retrieved), EM 70.0%."


def test_escape_md_renders_corpus_text_as_text():
    nasty = "<script>alert('x')</script> a|b **bold** [link](http://x) `code`\n# heading \\ _u_"
    out = report.escape_md(nasty)
    assert "<" not in out and ">" not in out and "&lt;script&gt;" in out
    assert "\n" not in out
    assert re.search(r"(?<!\\)[|*`\[\]_#]", out) is None, out  # every Markdown special is escaped
    assert "\\\\" in out  # a literal backslash stays a literal backslash


def inputs(question: str, answer: str, model_name: str = "scratch", testbed: bool = True) -> report.ReportInputs:
    qa = [{"qid": "q1", "question": question, "answer": "Paris", "attribute": "a|b"}]
    per_q = {arm: [{"answer": answer, "exact_match": 0.0, "f1": 0.0}] for arm in ("base-none", "base-retrieved")}
    return report.ReportInputs(
        metrics={a: {"exact_match": 0.0, "f1": 0.0, "n": 1} for a in per_q},
        qa=qa,
        per_question=per_q,
        predictions={a: {"q1": {"chunk_ids": ["c|1"] if a.endswith("retrieved") else []}} for a in per_q},
        chunk_text={"c|1": "<img src=x onerror=alert(1)> | chunk"},
        base_model={"name": model_name, "source": "hub", "testbed": testbed},
        examples=1,
    )


def test_report_escapes_every_corpus_string():
    text = report.render_report(inputs("<script>bad()</script> who | what?", "x | <b>y</b>", model_name="m|<i>"))
    assert "<script>" not in text and "<img" not in text and "<b>" not in text and "<i>" not in text
    assert "&lt;script&gt;bad()&lt;/script&gt; who \\| what?" in text
    for line in text.splitlines():
        if line.startswith("| base-"):  # rows of the tables: the pipes a cell adds must not split it
            cells = re.split(r"(?<!\\)\|", line)[1:-1]
            assert len(cells) in (3, 4, 9), line


def test_generator_line_comes_from_the_manifest():
    inp = inputs("q?", "a", model_name="Qwen2.5-0.5B-Instruct", testbed=False)
    inp.base_model["parameters"] = 494_032_768
    assert "Generator: Qwen2.5-0.5B-Instruct (hub, 494.0 M parameters)." in report.render_report(inp)


def test_testbed_note_only_for_testbed_models():
    assert "testbed, not a real LLM" in report.render_report(inputs("q?", "a"))
    assert "dvc exp run -S experiment=real_model" in report.render_report(inputs("q?", "a"))
    assert "testbed" not in report.render_report(inputs("q?", "a", testbed=False))


def test_read_verdict_round_trips():
    metrics = arms(0.0, 0.5, 0.25, 0.5)
    text = report.render_report(
        report.ReportInputs(metrics=metrics, qa=[], per_question={}, predictions={}, chunk_text={})
    )
    assert report.read_verdict(text) == report.verdict(metrics)


def test_summary_says_what_to_run_when_there_is_no_report(tmp_path):
    assert "make demo" in summary_text(tmp_path)


def test_summary_prints_verdict_arms_and_where_to_look(tmp_path):
    metrics = arms(0.05, 0.62, 0.30, 0.66)
    (tmp_path / "reports").mkdir()
    (tmp_path / paths.COMPARISON_REPORT).write_text(
        report.render_report(
            report.ReportInputs(metrics=metrics, qa=[], per_question={}, predictions={}, chunk_text={})
        )
    )
    write_json(tmp_path / paths.EVAL_METRICS, metrics)
    out = summary_text(tmp_path)
    assert out.splitlines()[0] == report.verdict(metrics)
    assert re.search(r"base-retrieved\s+62\.0\s+62\.0", out)
    assert "make mlflow-ui" in out and "http://127.0.0.1:5000" in out and "sqlite:///" in out


@pytest.mark.parametrize("value,expected", [(None, "NaN"), (float("nan"), "NaN"), (0.5, "0.500"), (1234, "1,234")])
def test_missing_numbers_show_as_nan_never_zero(value, expected):
    assert report._fmt(value) == expected
