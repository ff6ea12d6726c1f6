"""`ragft injection`: the plan file is checked before any experiment, the reference runs first and alone,
each setting is compared with it and with the published direction (matches only with CIs apart), and the
report, plot and sweep record are written."""

from __future__ import annotations

import json

import pytest

from ragft.experiments import injection
from ragft.experiments.injection import PlanError, check_plan, direction, load_plan, parse_plan, run_plan
from ragft.experiments.sweep import Runner


def _plan(**changes):
    data = {"fixed": ["experiment=tiny", "arms.models=[base,finetuned]",
                      "arms.contexts=[none,retrieved]"],
            "arm": "finetuned-none", "metric": "exact_match", "jobs": 2,
            "settings": [{"name": "reference", "knob": "reference"},
                         {"name": "one-bio", "knob": "M=1", "overrides": ["finetune.paraphrases=0"], "expect": "lower",
                          "finding": "3.1: single 9.7%"},
                         {"name": "pit", "knob": "PIT", "overrides": ["finetune.mode=pit"], "expect": "higher"},
                         {"name": "lora", "knob": "LoRA", "overrides": ["finetune.method=lora"], "expect": "same"}]}
    data.update(changes)
    return data


class StandIn(Runner):
    """Scores each setting from a table; records the batches it was asked to run."""

    SCORES = {"reference": (0.40, 0.30, 0.50), "one-bio": (0.10, 0.05, 0.15), "pit": (0.45, 0.35, 0.55),
              "lora": (0.20, 0.12, 0.28)}

    def __init__(self):
        self.batches = []

    def run(self, batch, jobs, tag):
        self.batches.append(([name for name, _ in batch], jobs))
        return []

    def metrics(self, name):
        setting = name.split("-", 1)[1]
        est, low, high = self.SCORES[setting]
        doc = {"arms": {"finetuned-none": {"exact_match": est, "exact_match_ci": [low, high]},
                        "base-none": {"exact_match": 0.01, "exact_match_ci": [0.0, 0.03]},
                        "base-retrieved": {"exact_match": 0.95, "exact_match_ci": [0.9, 0.99]},
                        "finetuned-retrieved": {"exact_match": 0.9, "exact_match_ci": [0.85, 0.95]}},
               "storage": {"finetuned": {"completion": {"estimate": 0.6, "ci_low": 0.5, "ci_high": 0.7, "n": 10}}},
               "absent": {"finetuned-none": {"answered": {"estimate": 0.8, "ci_low": 0.7, "ci_high": 0.9, "n": 10}},
                          "base-none": {"answered": {"estimate": 0.3, "ci_low": 0.2, "ci_high": 0.4, "n": 10}}}}
        return "success", doc, ""


def test_the_plan_file_is_checked_field_by_field():
    assert [s.name for s in parse_plan(_plan(), "p.yaml").settings] == ["reference", "one-bio", "pit", "lora"]
    bad = [
        (_plan(settings=[]), "settings"),
        (_plan(metric="bleu"), "metric"),
        (_plan(jobs=0), "jobs"),
        (_plan(colour=1), "colour"),
        (_plan(settings=[{"name": "reference"}, {"name": "reference"}]), r"settings\[1\]\.name"),
        (_plan(settings=[{"name": "reference"}, {"name": "x", "expect": "sideways"}]), r"settings\[1\]\.expect"),
        (_plan(settings=[{"name": "x", "overrides": ["finetune.epochs=1"]}]), r"settings\[0\]"),
        (_plan(settings=[{"name": "reference"}, {"name": "bad name!"}]), r"settings\[1\]\.name"),
    ]
    for data, field in bad:
        with pytest.raises(PlanError, match=f"p.yaml: field '{field}"):
            parse_plan(data, "p.yaml")


def test_every_setting_must_compose_and_have_the_arm_before_any_experiment(tmp_path):
    check_plan(parse_plan(_plan(), "p.yaml"))
    broken = _plan(settings=[{"name": "reference"}, {"name": "x", "overrides": ["finetune.replay=1.5"]}])
    with pytest.raises(PlanError, match="setting 'x' does not compose.*finetune.replay"):
        check_plan(parse_plan(broken, "p.yaml"))
    with pytest.raises(PlanError, match="'arm'"):
        check_plan(parse_plan(_plan(arm="raft-none"), "p.yaml"))
    with pytest.raises(PlanError, match="no such plan file"):
        load_plan(tmp_path / "missing.yaml")


@pytest.mark.parametrize(("row", "expect", "seen"), [
    ((0.1, 0.05, 0.15), "lower", "matches"),
    ((0.45, 0.35, 0.55), "higher", "not resolved (CIs overlap)"),
    ((0.7, 0.6, 0.8), "lower", "contradicts (higher)"),
    ((0.42, 0.3, 0.5), "same", "matches"),
    ((0.1, 0.05, 0.15), "same", "contradicts (lower)"),
    ((0.1, 0.05, 0.15), None, ""),
])
def test_a_direction_matches_only_with_the_cis_apart(row, expect, seen):
    ref = {"estimate": 0.4, "ci_low": 0.3, "ci_high": 0.5}
    assert direction(dict(zip(("estimate", "ci_low", "ci_high"), row)), ref, expect) == seen


def test_the_reference_runs_alone_then_the_settings_in_batches_and_the_report_says_each_knob(tmp_path):
    runner = StandIn()
    record = run_plan(parse_plan(_plan(), "p.yaml"), "inj", runner)
    assert runner.batches == [(["inj-reference"], 1), (["inj-one-bio", "inj-pit"], 2), (["inj-lora"], 2)]
    rows = {r["name"]: r for r in record["settings"]}
    assert rows["one-bio"]["direction"] == "matches" and rows["one-bio"]["difference"] == pytest.approx(-0.3)
    assert rows["pit"]["direction"] == "not resolved (CIs overlap)"
    assert rows["lora"]["direction"] == "contradicts (lower)"
    assert rows["reference"]["completion"]["estimate"] == 0.6 and rows["reference"]["answered_absent"]["estimate"] == 0.8
    written = injection.write_results(record, tmp_path)
    assert [p.name for p in written] == ["inj.json", "inj.md", "inj.png"]
    md = (tmp_path / "reports/injection/inj.md").read_text()
    assert "| `one-bio` | M=1 | 10.0 [5.0, 15.0] | -30.0 |" in md and "Published: 3.1: single 9.7%" in md
    assert "| 30.0 [20.0, 40.0] → 80.0 [70.0, 90.0] |" in md   # absent people: base → fine-tuned
    sweep = json.loads((tmp_path / "reports/sweeps/inj.json").read_text())
    assert sweep["kind"] == "injection" and [e["name"] for e in sweep["experiments"]][0] == "inj-reference"


def test_only_keeps_the_reference_and_the_named_settings_in_the_plans_order():
    plan = parse_plan(_plan(), "p.yaml")
    assert [s.name for s in injection.select(plan, ["lora", "one-bio"]).settings] == ["reference", "one-bio", "lora"]
    with pytest.raises(PlanError, match="--only names 'loar'.*choose from \\['one-bio', 'pit', 'lora'\\]"):
        injection.select(plan, ["loar"])


def test_the_cli_refuses_a_bad_plan_before_any_experiment(tmp_path, monkeypatch, caplog):
    import argparse

    plan = tmp_path / "p.yaml"
    plan.write_text("settings: []\n")
    ran = []
    monkeypatch.setattr(injection, "run_plan", lambda *a, **k: ran.append(a))
    assert injection.run(argparse.Namespace(plan=str(plan), jobs=None, name="x")) == 2
    assert not ran and "field 'settings'" in caplog.text
