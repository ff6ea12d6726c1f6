"""`ragft tune`: the search file's checks (before any trial), the ask-and-tell loop over batches of DVC
experiments (a stand-in runner here; tests/e2e/test_sweep.py runs real ones), and its result."""

from __future__ import annotations

import json

import pytest

from ragft.experiments import tune
from ragft.experiments.tune import Search, TuneError, check_search, parse_search, run_search

FIXED = ["experiment=tiny", "dataset.dev_fraction=0.25", "arms.models=[base,raft]", "arms.contexts=[none,retrieved]"]


def _search(**changes) -> dict:
    data = {"objective": "dev.raft-retrieved.exact_match", "trials": 5, "jobs": 2, "seed": 0, "startup_trials": 2,
            "fixed": FIXED, "space": {"retrieval.top_k": {"type": "int", "low": 1, "high": 4},
                                      "finetune.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}}
    return {**data, **changes}


@pytest.mark.parametrize("objective", ["eval.raft-retrieved.match", "raft-retrieved.match", "arms.raft-retrieved.f1"])
def test_an_objective_on_the_eval_split_is_refused(objective):
    with pytest.raises(TuneError, match=r"field 'objective'.*a metric of the eval split.*tune on the dev split"):
        parse_search(_search(objective=objective), "s.yaml")


@pytest.mark.parametrize(("change", "message"), [
    ({"objective": "dev.raft-retrieved.bleu"}, r"'objective' is 'dev.raft-retrieved.bleu'.*dev.<arm>.<metric>"),
    ({"trials": 0}, r"'trials' is 0, a budget below 1"),
    ({"jobs": 0}, r"'jobs' is 0"),
    ({"space": {}}, r"'space' is \{\}.*declare at least one param"),
    ({"space": {"retrieval.top_k": {"type": "int", "low": 3, "high": 3}}}, r"space.retrieval.top_k' is an empty range"),
    ({"space": {"finetune.lora.r": {"type": "categorical", "choices": []}}}, r"choices' is \[\], an empty space"),
    ({"space": {"finetune.lr": {"type": "float", "low": 0, "high": 1, "log": True}}}, r"needs low > 0"),
    ({"space": {"finetune.lr": {"type": "normal", "low": 0, "high": 1}}}, r"type' is 'normal'"),
    ({"budget": 3}, r"field 'budget' is not a search setting"),
])
def test_bad_search_files_name_the_field_and_the_fix(change, message):
    with pytest.raises(TuneError, match=message) as err:
        parse_search(_search(**change), "tune/s.yaml")
    assert str(err.value).startswith("tune/s.yaml: field") and "Fix:" in str(err.value)


@pytest.mark.parametrize(("change", "message"), [
    ({"space": {"retrieval.topk": {"type": "int", "low": 1, "high": 3}}}, r"retrieval.topk' is not a param"),
    ({"space": {"tracking.experiment": {"choices": ["a", "b"]}}}, r"tracking.experiment' is read by no stage"),
    ({"space": {"retrieval.top_k": {"type": "int", "low": 0, "high": 3}}}, r"retrieval.top_k' includes 0, which the "
                                                                           r"config refuses"),
    ({"fixed": ["experiment=tiny", "dataset.dev_fraction=0"]}, r"'fixed' composes a config without a dev split.*dataset.dev_fraction=0.25"),
    ({"objective": "dev.finetuned-none.match"}, r"names the arm 'finetuned-none', which this experiment does not have"),
])
def test_a_search_the_pipeline_cannot_run_is_refused_before_any_trial(change, message):
    with pytest.raises(TuneError, match=message):
        check_search(parse_search(_search(**change), "s.yaml"))


def test_a_param_that_only_interpolates_into_what_stages_read_is_searchable():
    search = parse_search(_search(space={"seed": {"type": "int", "low": 0, "high": 3}}), "s.yaml")
    assert check_search(search)["dataset"]["dev_fraction"] == 0.25


class StandIn(tune.Runner):
    """Scores a trial from its overrides: dev = top_k / 4 (eval 0.1 lower); ``fail`` names experiments that fail."""

    def __init__(self, fail=()):
        self.batches, self.fail, self.docs = [], set(fail), {}

    def run(self, batch, jobs, tag):
        self.batches.append([name for name, _ in batch])
        for name, overrides in batch:
            top_k = next((int(o.split("=")[1]) for o in overrides if o.startswith("retrieval.top_k=")), 2)
            dev = top_k / 4
            self.docs[name] = {"dev": {"raft-retrieved": {"exact_match": dev, "exact_match_ci": [dev - 0.1, dev]}},
                               "arms": {"raft-retrieved": {"exact_match": dev - 0.1, "exact_match_ci": [0.0, dev]}}}
        return [f"{n}: failed" for n in self.fail if n in self.docs]

    def metrics(self, name):
        if name in self.fail:
            return "failed", None, ""
        return "success", self.docs[name], "Running stage 'contexts':\nStage 'prepare' didn't change, skipping\n"


def test_the_search_runs_the_default_and_its_trials_in_batches_and_picks_the_best_by_dev(tmp_path):
    search = parse_search(_search(), "s.yaml")
    runner = StandIn(fail={"t-t2"})
    record = run_search(search, "t", runner)
    assert runner.batches == [["t-default"], ["t-t0", "t-t1"], ["t-t2", "t-t3"], ["t-t4"]]
    by_name = {t["name"]: t for t in record["trials"]}
    assert by_name["t-t2"]["state"] == "failed" and by_name["t-t2"]["objective"] is None
    done = [t for t in record["trials"] if t["objective"] is not None]
    assert record["best"]["objective"] == max(t["objective"] for t in done)
    assert record["apply"] == f"dvc exp apply {record['best']['name']}"
    assert record["default"]["objective"] == 50.0 and record["default"]["eval"] == pytest.approx(40.0)
    assert tune.optimism(record["best"]) == pytest.approx(10.0)   # dev − eval of the chosen trial
    assert record["best"]["stages"] == {"ran": ["contexts"], "reused": ["prepare"]}
    # seeded: the same trials again; another seed samples others
    again = run_search(search, "t", StandIn(fail={"t-t2"}))
    assert [t["params"] for t in again["trials"]] == [t["params"] for t in record["trials"]]
    other = run_search(parse_search(_search(seed=1), "s.yaml"), "t", StandIn())
    assert [t["params"] for t in other["trials"]] != [t["params"] for t in record["trials"]]

    written = tune.write_results(record, tmp_path)
    text = written[1].read_text()
    assert "dev − eval" in text and f"`{record['apply']}`" in text and "looked at by no choice" in text
    assert "Stages: 5 run and 5 reused by DVC" in text   # the failed trial's log has none
    assert written[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sweep = json.loads((tmp_path / "reports" / "sweeps" / "t.json").read_text())
    assert [e["name"] for e in sweep["experiments"]] == ["t-default", *(f"t-t{i}" for i in range(5))]


def test_a_cost_weight_takes_the_decision_summary_cost_off_the_objective():
    search = Search("s.yaml", [], "raft-retrieved", "match", cost_weight=2.0)
    doc = {"dev": {"raft-retrieved": {"match": 0.5}}, "decision": {"arms": {"raft-retrieved": {"token_cost_per_1k": 3}}}}
    assert tune.objective_value(search, doc) == 44.0
    assert tune.objective_value(search, {"dev": {}}) is None


def test_the_command_fails_on_a_bad_search_file_before_any_trial(tmp_path, monkeypatch, capsys):
    from ragft.cli import main

    bad = tmp_path / "s.yaml"
    bad.write_text(json.dumps(_search(objective="eval.raft-retrieved.match")))
    monkeypatch.setattr(tune, "run_search", lambda *a, **k: pytest.fail("a trial ran"))
    assert main(["tune", str(bad)]) == 2
    assert main(["tune", str(tmp_path / "missing.yaml")]) == 2
