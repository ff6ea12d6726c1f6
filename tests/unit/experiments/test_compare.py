"""Comparing experiments: parsing real `dvc exp show --json` output, what differs, CIs, mean ± std over seeds."""

from __future__ import annotations

import copy
import json
import math
import statistics

import pytest

from ragft.experiments import compare
from tests.helpers import FIXTURES

SWEEP = json.loads((FIXTURES / "exp_show_sweep.json").read_text())  # real: -S 'retrieval.top_k=2,3' on tiny
SEED_KEYS = {"seed", "finetune.seed", "finetune.raft.seed", "inference.seed", "retrieval.seed"}


def sweep_experiments() -> list[compare.Experiment]:
    return [e for e in compare.experiments_from_show(copy.deepcopy(SWEEP)) if e.kind == "experiment"]


def with_em(exp: compare.Experiment, **em: float) -> compare.Experiment:
    """A copy of ``exp`` with the exact match of some arms set (the tiny fixture scores 0 everywhere)."""
    exp = copy.deepcopy(exp)
    for arm, value in em.items():
        exp.arms[arm.replace("_", "-")]["exact_match"] = value
    return exp


def test_real_exp_show_parses_into_workspace_baseline_and_experiments():
    exps = compare.experiments_from_show(SWEEP)
    assert [e.kind for e in exps] == ["workspace", "baseline", "experiment", "experiment"]
    ws, base, *sweep = exps
    assert ws.name == "workspace" and base.name == "master" and len(base.rev) == 40
    assert {e.name for e in sweep} == {"acred-more", "fatal-gaur"}
    assert all(e.state == "success" for e in exps)
    assert {e.params["retrieval.top_k"] for e in sweep} == {2, 3} and base.params["retrieval.top_k"] == 1
    assert set(base.arms) == {"base-none", "base-retrieved", "finetuned-none", "finetuned-retrieved"}
    by_name = {e.name: e for e in sweep}   # the fixture's values: top_k 3 reads 141.675 prompt tokens, top_k 2 99.175
    arm = by_name["acred-more"].arms["base-retrieved"]
    assert arm["n"] == 40 and arm["exact_match"] == 0.0 and arm["mean_prompt_tokens"] == 141.675
    assert by_name["fatal-gaur"].arms["base-retrieved"]["mean_prompt_tokens"] == 99.175
    assert "exact_match_ci" not in arm  # DVC drops lists from metrics: the reason for add_intervals


def test_failed_and_queued_experiments_are_marked():
    def states(fixture: str) -> dict[str, str]:
        show = json.loads((FIXTURES / fixture).read_text())
        return {e.name: e.state for e in compare.experiments_from_show(show)}

    assert states("exp_show_failed.json")["slier-cats"] == "failed"
    assert states("exp_show_failed.json")["balmy-wife"] == "success"
    assert states("exp_show_queued.json")["slier-cats"] == "queued"


def test_intervals_come_back_from_the_metrics_file():
    exp = sweep_experiments()[0]
    doc = {"arms": {"base-retrieved": {"exact_match": 0.0, "exact_match_ci": [0.0, 0.1], "f1_ci": [0.0, 0.2]},
                    "not-an-arm-here": {"exact_match_ci": [0, 1]}}}
    compare.add_intervals(exp, doc)
    assert exp.arms["base-retrieved"]["exact_match_ci"] == [0.0, 0.1]
    assert "not-an-arm-here" not in exp.arms
    assert "exact_match_ci" not in exp.arms["base-none"]  # tolerated: shown without a CI


def test_only_the_params_that_differ_are_shown():
    exps = sweep_experiments()
    assert compare.varying_params(exps) == ["retrieval.top_k"]
    seeded = [copy.deepcopy(exps[0]) for _ in range(2)]
    for s, e in enumerate(seeded):
        for k in SEED_KEYS:
            e.params[k] = s
    assert set(compare.varying_params(seeded)) == SEED_KEYS
    assert compare.shown_params(seeded, SEED_KEYS) == ["seed"]  # the keys that follow it are left out


def test_report_lists_what_differs_metrics_with_cis_and_bolds_the_best():
    a, b = sweep_experiments()
    a = with_em(a, base_retrieved=0.75)
    b = with_em(b, base_retrieved=0.5)
    a.arms["base-retrieved"]["exact_match_ci"] = [0.625, 0.875]
    text = compare.render("Sweep `t`", [a, b], SEED_KEYS, plot_file="sweep_t.png", sweep="t")
    assert "| experiment | retrieval.top_k |" in text
    assert "| fatal-gaur | 2 |" in text and "| acred-more | 3 |" in text
    assert text.index("| fatal-gaur | 2 |") < text.index("| acred-more | 3 |")  # ordered by the swept value
    row = next(line for line in text.splitlines() if line.startswith("| base-retrieved") and "75.0" in line)
    assert row == "| base-retrieved | 50.0 | **75.0 [62.5, 87.5]** |"
    assert "| base-none | 0.0 | 0.0 |" in text  # a tie is not "best"
    assert "### F1 (%), eval split" in text and "Mean ± std" not in text  # one experiment per setting: nothing to average
    assert "![Exact match by arm](sweep_t.png)" in text and "ragft.sweep` = 't'" in text


def test_seeds_are_aggregated_per_setting_as_mean_and_std():
    base = sweep_experiments()[0]
    exps, values = [], {"scratch": [0.5, 0.6, 0.7], "scratch_wide": [0.2, 0.4]}
    for model, ems in values.items():
        for seed, em in enumerate(ems):
            e = with_em(base, base_none=em)
            e.name = f"{model}-s{seed}"
            e.params["model.name"] = model
            for k in SEED_KEYS:
                e.params[k] = seed
            exps.append(e)
    groups = compare.group_by_setting(exps, SEED_KEYS)
    assert [g.label for g in groups] == ["model.name=scratch", "model.name=scratch_wide"]
    mean, std, n = groups[0].stats("base-none", "exact_match")
    assert n == 3 and mean == pytest.approx(0.6) and std == pytest.approx(statistics.stdev([0.5, 0.6, 0.7]))
    text = compare.render("seeds", exps, SEED_KEYS)
    assert "## Mean ± std across seeds" in text
    assert "| base-none | **60.0 ± 10.0 (n=3)** | 30.0 ± 14.1 (n=2) |" in text
    single = compare.Group("one", exps[:1]).stats("base-none", "exact_match")
    assert single[2] == 1 and math.isnan(single[1])  # no std from one seed, never 0


def test_seed_derived_keys_are_read_from_conf():
    keys = compare.seed_derived_keys()
    assert SEED_KEYS <= keys
    assert not keys & {"dataset.seed", "model.scratch.seed", "eval.seed", "index.seed"}  # fixed: data and base model


def test_plot_writes_a_png(tmp_path):
    a, b = sweep_experiments()
    out = tmp_path / "sweep.png"
    compare.plot([with_em(a, base_retrieved=0.7), b], SEED_KEYS, out, "t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
