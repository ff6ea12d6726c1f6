"""The decision summary: cost per 1,000 queries, the one-off cost of fine-tuning and the break-even query volume
of a fine-tuned arm against RAG (ragft.evaluation.costs), worked by hand; the eval.costs prices; and the
summary at the top of both reports and in `ragft summary`, with its assumptions."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import yaml
from omegaconf import OmegaConf

from ragft import paths
from ragft.config import ConfigError, compose_conf, validate
from ragft.evaluation import costs
from ragft.reporting.model import build_report
from ragft.reporting.render import escape_md, render_html, render_markdown
from ragft.reporting.summary import summary_text
from tests.helpers import XSS, run_evaluate, write_evaluate_inputs

PRICES = {"input_per_million": 0.15, "output_per_million": 0.60, "gpu_hour": None, "train_gpu_hour": 2.0,
          "currency": "USD"}


def arm(score: float, prompt_tokens: float, ci: tuple[float, float] | None = None) -> dict:
    return {"match": score, "match_ci": list(ci or (score - 0.05, score + 0.05)), "mean_prompt_tokens": prompt_tokens,
            "n": 100}


def diff(a: str, b: str, d: float, lo: float, hi: float) -> dict:
    return {f"{a} vs {b}": {"a": a, "b": b, "diff": d, "ci_low": lo, "ci_high": hi, "significant": not lo <= 0 <= hi}}


def block(arms: dict, differences: dict, prices: dict | None = None, output: dict | None = None,
          best: list[str] | None = None, ceilings: dict | None = None) -> dict:
    output = output or {a: 3.0 for a in arms}
    return costs.decision(arms, differences, {"best_arms": best or ["raft-retrieved"], "ceilings": ceilings or {}},
                          output, prices or PRICES, "match", 0.95, "document")


# RAG reads 60 prompt tokens, the closed-book fine-tuned arms 14; every arm answers in 3 tokens
ARMS = {"base-retrieved": arm(0.80, 60.0), "finetuned-none": arm(0.78, 14.0), "raft-none": arm(0.30, 14.0),
        "raft-retrieved": arm(0.86, 60.0)}
DIFFS = {**diff("base-retrieved", "finetuned-none", 0.02, -0.03, 0.07),   # RAG − finetuned-none: CI spans 0
         **diff("base-retrieved", "raft-none", 0.50, 0.40, 0.60),         # RAG ahead, CI excludes 0
         **diff("raft-retrieved", "base-retrieved", 0.06, 0.01, 0.11)}    # RAFT on top of RAG: a real gain
TRAIN = {"finetuned": 54.0, "raft": 90.0}   # seconds: 54 s at 2.0/h = 0.03; 90 s = 0.05


# --------------------------------------------------------------------------- the arithmetic, by hand


def test_cost_per_query_from_tokens_and_prices():
    # 60 prompt tokens at 0.15 per million + 3 output tokens at 0.60 per million = (9 + 1.8) / 1e6
    assert costs.token_cost(60, 3, 0.15, 0.60) == pytest.approx(10.8e-6)
    b = block(ARMS, DIFFS)
    assert b["arms"]["base-retrieved"]["token_cost_per_1k"] == pytest.approx(0.0108)
    assert b["arms"]["finetuned-none"]["token_cost_per_1k"] == pytest.approx(0.0039)   # (14 × 0.15 + 3 × 0.60) / 1e3
    assert b["comparisons"][0]["token_saving_per_1k"] == pytest.approx(0.0069)
    assert costs.token_cost(None, 3, 0.15, 0.60) is None and costs.token_cost(float("nan"), 3, 0.15, 0.60) is None


def test_a_shared_prefix_is_priced_with_and_without_prompt_caching():
    """A long_context arm: 1,000 prompt tokens, 900 of them the corpus every query shares; cached at 0.075."""
    arms = {**ARMS, "base-long_context": arm(0.5, 1000.0)}
    prices = {**PRICES, "cached_input_per_million": 0.075}
    b = costs.decision(arms, DIFFS, {"best_arms": ["raft-retrieved"]}, {a: 3.0 for a in arms}, prices, "match", 0.95,
                       "document", None, {"base-long_context": 900, "base-retrieved": 0})
    lc = b["arms"]["base-long_context"]
    assert lc["token_cost_per_1k"] == pytest.approx((1000 * 0.15 + 3 * 0.6) / 1e3)
    assert lc["cached_token_cost_per_1k"] == pytest.approx((100 * 0.15 + 900 * 0.075 + 3 * 0.6) / 1e3)
    assert "cached_token_cost_per_1k" not in b["arms"]["base-retrieved"] and b["prices"]["cached_input_per_million"]
    m = costs.measured(b, TRAIN, {a: 0.1 for a in arms})
    assert m["arms"]["base-long_context"]["cached_cost_per_1k"] == pytest.approx(lc["cached_token_cost_per_1k"])
    said = costs.summary_lines(m)["assumptions"][-1]
    assert said.startswith("With prompt caching: the prompt tokens every query shares") and "base-long_context 900" in said
    plain = block(ARMS, DIFFS)   # no shared prefix: the block (metrics.json) is as before
    assert "cached_input_per_million" not in plain["prices"]


def test_output_tokens_are_the_rows_counts():
    counted = [{"answer": "a b c", "output_tokens": 4}, {"answer": "", "output_tokens": 2}]
    assert costs.output_tokens(counted) == 3.0 and costs.output_tokens([]) is None


def test_time_costs_and_seconds_per_query():
    assert costs.time_cost(3600, 2.0) == pytest.approx(2.0) and costs.time_cost(54, 2.0) == pytest.approx(0.03)
    assert costs.time_cost(None, 2.0) is None and costs.time_cost(10, None) is None
    assert costs.seconds_per_query({"mean_latency_seconds": 0.25, "questions_per_second": 2}) == 0.25
    assert costs.seconds_per_query({"questions_per_second": 4.0}) == 0.25 and costs.seconds_per_query({}) is None


def test_break_even_volume_by_hand():
    # training 0.03 / (10.8e-6 − 3.9e-6 per query) = 4,347.8 queries
    assert costs.break_even(0.03, 10.8e-6, 3.9e-6) == pytest.approx(0.03 / 6.9e-6)
    assert costs.break_even(0.03, 3.9e-6, 10.8e-6) is None and costs.break_even(0.03, 5e-6, 5e-6) is None
    m = costs.measured(block(ARMS, DIFFS), TRAIN, {})
    ft = next(c for c in m["comparisons"] if c["tuned"] == "finetuned-none")
    assert ft["kind"] == "closed_book" and ft["never"] is None and not ft["worse"]
    assert ft["training_cost"] == pytest.approx(0.03) and ft["break_even_queries"] == pytest.approx(4347.826, rel=1e-6)
    assert m["training"]["finetuned"] == {"seconds": 54.0, "cost": pytest.approx(0.03)}
    text = costs.comparison_text(ft, m)
    assert "finetuned-none instead of base-retrieved: pays for its training after 4,348 queries" in text
    assert "USD 0.00390 vs USD 0.0108 per 1,000 queries" in text and "14.0 vs 60.0 prompt tokens" in text
    assert "USD 0.0300" in text and "no significant difference" in text


def test_never_when_the_fine_tuned_arm_is_worse_with_a_ci_excluding_zero():
    m = costs.measured(block(ARMS, DIFFS), TRAIN, {})
    raft = next(c for c in m["comparisons"] if c["tuned"] == "raft-none")
    assert raft["worse"] and raft["never"] == "worse" and raft["break_even_queries"] is None
    assert raft["saving_per_1k"] > 0   # cheaper per query, and still never: quality decides first
    assert "never: it is worse on match, -50.0 match points (95% CI -60.0 to -40.0)" in costs.comparison_text(raft, m)


def test_never_when_the_fine_tuned_arm_is_not_cheaper_per_query():
    arms = {**ARMS, "finetuned-none": arm(0.78, 80.0)}   # a longer prompt than RAG's
    m = costs.measured(block(arms, DIFFS), TRAIN, {})
    ft = next(c for c in m["comparisons"] if c["tuned"] == "finetuned-none")
    assert ft["never"] == "not_cheaper" and ft["break_even_queries"] is None and ft["saving_per_1k"] < 0
    assert "never: it is not cheaper per query" in costs.comparison_text(ft, m)


def test_raft_with_retrieval_and_answers_as_long_never_pays_back_on_cost_and_its_quality_gain_is_said():
    m = costs.measured(block(ARMS, DIFFS), TRAIN, {})
    rr = next(c for c in m["comparisons"] if c["tuned"] == "raft-retrieved")
    assert rr["kind"] == "same_prompt" and rr["never"] == "not_cheaper" and rr["better"]
    assert rr["quality"] == {"diff": 0.06, "ci_low": 0.01, "ci_high": 0.11, "clusters": None}
    assert rr["training_cost"] == pytest.approx(0.05)
    text = costs.comparison_text(rr, m)
    assert "raft-retrieved instead of base-retrieved: never: it is not cheaper per query" in text
    assert "Quality: +6.0 match points (95% CI 1.0 to 11.0), better" in text
    # shorter answers than RAG's on the same prompt: a break-even volume, said to come from the answers
    shorter = costs.measured(block(ARMS, DIFFS, output={**{a: 3.0 for a in ARMS}, "raft-retrieved": 1.0}), TRAIN, {})
    rr = next(c for c in shorter["comparisons"] if c["tuned"] == "raft-retrieved")
    assert rr["break_even_queries"] == pytest.approx(0.05 / (2 * 0.60e-6))
    assert "the saving is its shorter answers" in costs.comparison_text(rr, shorter)


def test_gpu_hour_prices_queries_by_measured_seconds_instead_of_tokens():
    prices = {**PRICES, "gpu_hour": 3.6}   # 0.001 per second
    seconds = {"base-retrieved": 0.02, "finetuned-none": 0.005, "raft-none": 0.005, "raft-retrieved": 0.02}
    m = costs.measured(block(ARMS, DIFFS, prices), TRAIN, seconds)
    assert m["basis"] == "gpu_hour"
    assert m["arms"]["base-retrieved"]["cost_per_1k"] == pytest.approx(0.02)     # 0.02 s × 0.001 × 1,000
    assert m["arms"]["base-retrieved"]["token_cost_per_1k"] == pytest.approx(0.0108)  # kept beside it
    ft = next(c for c in m["comparisons"] if c["tuned"] == "finetuned-none")
    assert ft["break_even_queries"] == pytest.approx(0.03 / (0.02e-3 - 0.005e-3))  # 2,000 queries
    assert any("measured seconds per question × USD 3.60 per hour" in a for a in costs.summary_lines(m)["assumptions"])


def test_break_even_is_unknown_without_a_measured_training_time():
    m = costs.measured(block(ARMS, DIFFS), {}, {})
    ft = next(c for c in m["comparisons"] if c["tuned"] == "finetuned-none")
    assert ft["training_cost"] is None and ft["break_even_queries"] is None and ft["never"] is None
    assert "break-even unknown: no measured training time" in costs.comparison_text(ft, m)


def test_the_metrics_block_is_deterministic_and_json_safe():
    b = block(ARMS, DIFFS)
    text = json.dumps(b, allow_nan=False, sort_keys=True)
    assert text == json.dumps(block(ARMS, DIFFS), allow_nan=False, sort_keys=True)
    assert "seconds" not in text and "break_even_queries" not in text and "training_cost" not in text
    assert [x["arm"] for x in b["best"]] == ["raft-retrieved"] and b["best"][0]["ci"] == pytest.approx([0.81, 0.91])
    assert [(c["tuned"], c["kind"]) for c in b["comparisons"]] == [
        ("finetuned-none", "closed_book"), ("raft-none", "closed_book"), ("raft-retrieved", "same_prompt")]
    no_rag = costs.decision({"raft-none": arm(0.3, 14.0)}, {}, {"best_arms": []}, {}, PRICES, "match", 0.95)
    assert no_rag["best"] == [] and no_rag["ceilings"] == []
    assert no_rag["comparisons"] == [] and no_rag["rag"] is None


def test_the_best_arm_is_deployable_and_an_oracle_arm_is_named_as_a_ceiling():
    arms = {**ARMS, "raft-oracle": {**arm(0.95, 60.0), "match_clusters": 12},
            "raft-retrieved": {**ARMS["raft-retrieved"], "match_clusters": 12}}
    m = costs.measured(block(arms, DIFFS, best=["raft-retrieved"], ceilings={"raft-oracle": 0.95}), TRAIN, {})
    assert [b["arm"] for b in m["best"]] == ["raft-retrieved"] and [c["arm"] for c in m["ceilings"]] == ["raft-oracle"]
    best = costs.summary_lines(m)["best"]
    assert best.startswith("Best deployable arm on match: raft-retrieved")
    assert "86.0% (95% CI 81.0 to 91.0, 12 documents)" in best
    assert ("Ceiling, with the gold document handed to the model (not deployable): raft-oracle "
            "(RAFT (LoRA, reading among distractors), gold document (oracle)), 95.0% (95% CI 90.0 to 100.0, "
            "12 documents).") in best


@pytest.mark.parametrize(("value", "expected"), [(0.0108, "0.0108"), (0.0039, "0.00390"), (1234.5, "1,234.50"),
                                                 (0, "0.00"), (None, "n/a")])
def test_money(value, expected):
    assert costs.money(value) == expected and costs.money(value, "EUR").endswith(expected)


# --------------------------------------------------------------------------- eval.costs


def test_costs_config_defaults_are_composed_into_params_yaml(default_cfg):
    want = {"input_per_million": 0.15, "output_per_million": 0.6, "gpu_hour": None, "train_gpu_hour": 2.0,
            "cached_input_per_million": 0.075, "currency": "USD"}
    assert OmegaConf.to_container(default_cfg.eval.costs) == want
    assert compose_conf()["eval"]["costs"] == want   # a fresh composition, not the developer's workspace params.yaml


@pytest.mark.parametrize("name", ["input_per_million", "output_per_million", "gpu_hour", "train_gpu_hour"])
def test_a_negative_price_is_rejected_naming_the_field_and_the_fix(name):
    cfg = OmegaConf.merge(OmegaConf.create(compose_conf()), {"eval": {"costs": {name: -1.0}}})
    with pytest.raises(ConfigError) as err:
        validate(cfg, source="params.yaml")
    message = str(err.value)
    assert "params.yaml" in message and f"eval.costs.{name}" in message and ">= 0" in message
    assert "fix" in message.lower() and "make params" in message


# --------------------------------------------------------------------------- in the reports and the summary


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, default_cfg):
    root = tmp_path_factory.mktemp("decision")
    write_evaluate_inputs(root, n_questions=30)
    doc = run_evaluate(root, OmegaConf.merge(default_cfg, {"eval": {"ragas": False, "examples": 1}}))
    return root, doc


def test_metrics_json_holds_the_token_priced_decision_only(evaluated):
    root, doc = evaluated
    d = doc["decision"]
    assert d["prices"] == PRICES and d["rag"] == "base-retrieved" and d["metric"] == "match" and d["unit"] == "document"
    assert [b["arm"] for b in d["best"]] == doc["verdict"]["best_arms"]
    a = d["arms"]["base-retrieved"]
    rows = [json.loads(line) for line in (root / paths.predictions_dir("base", "retrieved") / paths.PREDICTIONS_FILE)
            .read_text().splitlines()]
    counted = sum(r["output_tokens"] for r in rows) / len(rows)  # the rows' own counts (the fixture's), averaged
    assert a["prompt_tokens"] == 60.0 and a["output_tokens"] == pytest.approx(counted, abs=1e-6)
    assert a["token_cost_per_1k"] == pytest.approx((60 * 0.15 + counted * 0.60) / 1000, abs=1e-8)
    assert {c["tuned"] for c in d["comparisons"]} == {"finetuned-none", "finetuned-retrieved", "raft-none",
                                                       "raft-retrieved"}
    text = json.dumps(d)
    assert "seconds" not in text and "training" not in text and "break_even" not in text  # measured: reports only


def test_both_reports_and_the_summary_show_the_decision_under_the_verdict(evaluated):
    root, doc = evaluated
    md = (root / paths.COMPARISON_REPORT).read_text()
    lines = md.splitlines()
    assert lines[2].startswith("**Verdict:**") and lines[4] == "## Decision summary"
    assert md.index("## Decision summary") < md.index("Generator:") < md.index("## All arms")
    assert lines[6].startswith("Best deployable arm") and "(95% CI " in lines[6]
    clusters = doc["inference"]["clusters"]
    assert (f"| arm | what | match (%) [95% CI, {clusters} documents] | prompt tokens | output tokens | "
            "USD per 1,000 queries |") in md
    assert "| base-retrieved | RAG: base + retrieved | " in md and "| raft-oracle (ceiling) | " in md
    for text in ("finetuned-none instead of base-retrieved: never: it is worse on match",
                 "raft-retrieved instead of base-retrieved: never: it is not cheaper per query",
                 ("Prices (eval.costs; placeholder list prices, set your own): USD 0.15 per million input tokens, "
                  "USD 0.6 per million output tokens, USD 2.00 per hour of the training machine"),
                 ("Output tokens: counted, each answer's generated tokens without the end of sequence (a server's "
                  "usage.completion_tokens when an arm was served)."),
                 "finetuned 55.2 s (USD 0.0307), raft 65.2 s (USD 0.0362)",
                 "Break-even = training cost / (base-retrieved cost per query − the fine-tuned arm's cost per query)"):
        assert escape_md(text) in md, text
    page = (root / paths.HTML_REPORT).read_text()
    html = ET.fromstring(page.split("\n", 1)[1])
    div = next(d for d in html.iter("div") if d.get("id") == "decision")
    body = list(html.find("body").find("main"))
    assert [e.get("class") for e in body[1:3]] == ["verdict", "decision"]   # right under the verdict
    said = " ".join("".join(e.itertext()) for e in div.iter("li"))
    assert "finetuned-none instead of base-retrieved: never" in said and "placeholder list prices" in said
    assert "Output tokens: counted" in said and "finetuned 55.2 s (USD 0.0307)" in said
    assert len(div.find(".//tbody").findall("tr")) == len(doc["arms"])
    out = summary_text(root)
    assert "Decision summary:" in out and "USD per 1k q" in out
    assert "  - raft-retrieved instead of base-retrieved: never: it is not cheaper per query" in out
    assert "placeholder list prices" in out and "finetuned 55.2 s (USD 0.0307)" in out   # read from train_metrics.json


def test_a_break_even_volume_and_a_marked_up_currency_render_escaped(evaluated):
    _, doc = evaluated
    prices = {**PRICES, "currency": f"{XSS}|*"}
    m = costs.measured(block(ARMS, DIFFS, prices), TRAIN, {})
    report = build_report({**doc, "arms": {a: {**doc["arms"]["base-retrieved"], **v} for a, v in ARMS.items()}},
                          {}, [], examples=0, index={"index_bytes": 1, "build_seconds": 0.1}, decision=m)
    md, page = render_markdown(report), render_html(report, figures={})
    for out in (md, page):
        assert "pays for its training after 4,348 queries" in out and "<script>" not in out
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert f"{escape_md(XSS + '|*')} per 1,000 queries |" in md   # the table keeps its cells
    ET.fromstring(page.split("\n", 1)[1])


def test_ragft_plan_reads_the_workspace_and_takes_other_targets(evaluated, tmp_path):
    from ragft.config import compose_conf
    from ragft.evaluation.planner import plan_lines
    from ragft.reporting.summary import plan_text

    root, doc = evaluated
    (root / paths.PARAMS).write_text(yaml.safe_dump(compose_conf(), sort_keys=False))
    out = plan_text(root)
    clusters = doc["inference"]["clusters"]
    assert out.startswith(f"You have {doc['split']['eval']} eval questions from {clusters} documents. Targets "
                          "(eval.plan): an interval of ±5 points")
    assert "base-retrieved − finetuned-none: " in out and "raft-retrieved − base-retrieved: " in out
    assert out.splitlines() == plan_lines(doc["plan"], doc["differences"])   # the same plan as metrics.json's
    wider = plan_text(root, half_width=20, cluster="question")
    assert "an interval of ±20 points" in wider and "each its own unit (eval.cluster=question)" in wider
    with pytest.raises(ConfigError, match="eval.plan.half_width"):
        plan_text(root, half_width=0)
    with pytest.raises(ConfigError, match="reports/per_question.csv, metrics/metrics.json, .*: not found. Run `make demo`"):
        plan_text(tmp_path)
