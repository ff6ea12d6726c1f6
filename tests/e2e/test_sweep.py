"""Sweeps: reading the queue from real `dvc exp show --json` output, refusing what would go wrong, and a real
2-experiment, 2-worker sweep into one MLflow store."""

from __future__ import annotations

import json
import re
import sys

import pytest
from mlflow.tracking import MlflowClient

from ragft.experiments import expshow, sweep
from tests.helpers import FIXTURES, VENV_BIN, PipelineRepo


def states(fixture: str) -> list[sweep.ExpState]:
    return expshow.experiments(json.loads((FIXTURES / fixture).read_text()))


def test_queue_states_from_real_exp_show():
    queued = {s.name: s for s in states("exp_show_queued.json")}
    assert {s.state for s in queued.values()} == {"queued"}
    assert queued["balmy-wife"].params == {"a": 2, "b": {"c": 2}}  # queued experiments already carry their params
    done = {s.name: s.state for s in states("exp_show_failed.json")}
    assert done == {"balmy-wife": "success", "slier-cats": "failed"}
    ran = {s.name: s for s in states("exp_show_sweep.json")}
    assert {s.state for s in ran.values()} == {"success"}
    assert {s.params["retrieval"]["top_k"] for s in ran.values()} == {2, 3}


def test_drain_check_names_failed_missing_and_leftover_experiments():
    assert sweep.drain_problems(states("exp_show_sweep.json"), ["acred-more", "fatal-gaur"]) == []
    assert sweep.drain_problems(states("exp_show_failed.json"), ["balmy-wife", "slier-cats"]) == ["slier-cats: failed"]
    assert sweep.drain_problems(states("exp_show_sweep.json"), ["gone"]) == ["gone: missing from `dvc exp show`"]
    leftover = sweep.drain_problems(states("exp_show_queued.json"), ["balmy-wife"])
    assert leftover == ["balmy-wife: queued", "slier-cats: still queued in the queue"]


QUEUE_STATUS = """\
Task     Name        Created    Status
790a2b7  nosed-hogs  04:18 PM   Running
b8f0f14  genic-self  04:18 PM   Queued
5345258  slier-cats  03:41 PM   Failed
2b04a75  balmy-wife  03:41 PM   Success

Worker status: 2 active, 1 idle
"""  # `dvc queue status` (DVC 3.67), which has no --json


def test_queue_status_lists_waiting_tasks_and_workers():
    assert sweep.parse_queue_status(QUEUE_STATUS) == ([("nosed-hogs", "running"), ("genic-self", "queued")], 2, 1)
    assert sweep.parse_queue_status("Worker status: 0 active, 0 idle\n") == ([], 0, 0)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"overrides": []}, "nothing to sweep"), ({"overrides": ["a=1,2"], "jobs": 0}, "at least 1"),
     ({"overrides": ["a=1,2"], "name": "../x"}, "--name")],
)
def test_bad_requests_are_refused_before_any_work(kwargs, match):
    with pytest.raises(sweep.SweepError, match=match):
        sweep.run_sweep(**kwargs)


def test_seeds_sweep_the_top_level_seed_of_eval_seeds(default_cfg):
    overrides = sweep.seed_overrides(["model=scratch,scratch_wide"])
    assert overrides == [f"seed={','.join(str(s) for s in default_cfg.eval.seeds)}", "model=scratch,scratch_wide"]


# --------------------------------------------------------------------------- real sweeps

TOY_STAGE = """import json, os, sys, yaml
a = yaml.safe_load(open("params.yaml"))["a"]
if a == 2:
    sys.exit("a=2 fails on purpose")
os.makedirs("metrics", exist_ok=True)
json.dump({"arms": {"base-none": {"exact_match": a / 10}}}, open("metrics/metrics.json", "w"))
"""


@pytest.mark.slow
def test_a_failed_experiment_fails_the_sweep_and_is_named(tmp_path):
    """`dvc exp run --run-all` exits 0 when an experiment fails; the sweep must not. (A one-stage toy repo
    with tracking off, so no MLflow server: this is about the queue.)"""
    repo = PipelineRepo(tmp_path)
    repo.run("git", "init", "-q")
    repo.dvc("init", "-q")
    (tmp_path / "params.yaml").write_text("a: 1\ntracking:\n  enabled: false\n")
    (tmp_path / "stage.py").write_text(TOY_STAGE)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: python stage.py\n    deps: [stage.py]\n    params: [a]\n"
        "    metrics:\n      - metrics/metrics.json:\n          cache: false\n"
    )
    repo.dvc("repro", "-q")
    repo.commit("toy")
    proc = repo.run(sys.executable, "-m", "ragft.sweep", "run", "-j", "2", "--name", "f", "-S", "a=2,3", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = re.search(r"NOT DRAINED: (\S+): failed", proc.stdout)
    assert failed, proc.stdout
    record = json.loads((tmp_path / "reports/sweeps/f.json").read_text())
    assert not record["drained"]
    assert {e["name"]: e["state"] for e in record["experiments"]}[failed.group(1)] == "failed"
    assert sorted(e["state"] for e in record["experiments"]) == ["failed", "success"]


def assert_figure(path) -> None:
    """A PNG that opens as an image of a figure's size, not just a file that exists."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] >= 400 and image.size[1] >= 200, image.size


@pytest.mark.slow
def test_real_sweep_drains_the_queue_into_one_store(tiny_repo):
    """2 experiments, 2 workers, on the session's tiny repro. `eval.bootstrap_resamples` only reruns
    `evaluate` (and `check_params`), which keeps this affordable on 2 cores; the machinery is the same
    for any param."""
    repo = tiny_repo
    proc = repo.run(sys.executable, "-m", "ragft.sweep", "run", "-j", "2", "--name", "t1",
                    "-S", "eval.bootstrap_resamples=300,400", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    record = json.loads((repo.root / "reports/sweeps/t1.json").read_text())
    names = [e["name"] for e in record["experiments"]]
    assert len(names) == 2 and record["drained"] and record["jobs"] == 2, record

    found = {s.name: s for s in expshow.experiments(json.loads(repo.dvc("exp", "show", "--json").stdout))}
    assert [found[n].state for n in names] == ["success", "success"]
    assert {found[n].params["eval"]["bootstrap_resamples"] for n in names} == {300, 400}
    assert not [s for s in found.values() if s.state in sweep.WAITING]
    assert "Queued" not in repo.dvc("queue", "status").stdout

    # every experiment logged into the one store at the copy's root, none into its temp copy
    client = MlflowClient(f"sqlite:///{repo.root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ragft").experiment_id], max_results=10000)
    parents = {r.data.tags["dvc.exp_name"]: r for r in runs
               if r.data.tags.get("ragft.kind") == "experiment" and r.data.tags.get("ragft.sweep") == "t1"}
    assert set(parents) == set(names)
    for name, parent in parents.items():
        assert parent.data.tags["repro.dvc_exp_name"] == name and parent.data.tags["repro.git_commit"] == record["baseline_rev"]
        assert "base-none.exact_match" in parent.data.metrics  # the summary
        stages = {r.data.tags.get("ragft.stage") for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
        assert "evaluate" in stages
    assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"]
    assert not list((repo.root / ".dvc" / "tmp").rglob("mlflow.db"))
    assert "database is locked" not in out

    # the comparison picks exactly this sweep's experiments
    proc = repo.run(sys.executable, "-m", "ragft.compare", "--sweep", "t1")
    text = (repo.root / "reports/sweep_t1.md").read_text()
    assert "| experiment | eval.bootstrap_resamples |" in text and all(f"| {n} |" in text for n in names)
    assert " [" in text  # the arms' CIs, read back from each experiment's metrics file
    assert "| base-retrieved | 100.0 [100.0, 100.0] | 100.0 [100.0, 100.0] |" in text   # the reading model's RAG
    assert_figure(repo.root / "reports/sweep_t1.png")


@pytest.mark.slow
def test_a_real_search_tunes_on_dev_reuses_unchanged_stages_and_reports_on_eval(tiny_repo, tmp_path):
    """`ragft tune` on the session's tiny repro (experiment=tiny has a dev split): the default (the workspace's
    params: nothing reruns) and 2 trials on 2 workers that change only `evaluate`'s params, so DVC reuses every
    other stage. (The objective, RAG's dev score, is 100% whatever the trials set: the reading model answers
    every dev question; tests/unit/experiments/test_tune.py checks the sampler's choices; this is the machinery:
    queue, dev scores, reuse, records, compare.)"""
    from ragft.experiments.tune import TUNE_DIR

    repo = tiny_repo
    search = tmp_path / "search.yaml"
    search.write_text(json.dumps({
        "objective": "dev.base-retrieved.exact_match", "trials": 2, "jobs": 2, "seed": 0,
        "fixed": [],
        "space": {"eval.bootstrap_resamples": {"type": "int", "low": 200, "high": 400}}}))
    proc = repo.run(str(VENV_BIN / "ragft"), "tune", str(search), "-n", "s1", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    record = json.loads((repo.root / TUNE_DIR / "s1.json").read_text())
    assert [t["name"] for t in record["trials"]] == ["s1-t0", "s1-t1"] and record["default"]["name"] == "s1-default"
    assert {t["state"] for t in [record["default"], *record["trials"]]} == {"success"}
    assert record["best"]["objective"] == 100.0 and record["apply"] == f"dvc exp apply {record['best']['name']}"
    # the default is the workspace's experiment: nothing reruns; the trials rerun evaluate alone
    # (check_params, which checks params.yaml against conf/, always runs)
    assert record["default"]["stages"]["ran"] == ["check_params"] and "prepare" in record["default"]["stages"]["reused"]
    for t in record["trials"]:
        assert t["stages"]["ran"] == ["check_params", "evaluate"], t["stages"]
        assert {"prepare", "base_model@base", "contexts"} <= set(t["stages"]["reused"]), t["stages"]
    found = {s.name: s for s in expshow.experiments(json.loads(repo.dvc("exp", "show", "--json").stdout))}
    doc = found["s1-default"].metrics
    assert doc["split"]["dev"] > 0 and doc["split"]["eval"] == doc["arms"]["base-none"]["n"]
    assert doc["dev"]["base-retrieved"]["n"] == doc["split"]["dev"]
    assert "Queued" not in repo.dvc("queue", "status").stdout
    md = (repo.root / TUNE_DIR / "s1.md").read_text()
    assert "dev − eval" in md and "s1-t0" in md
    assert_figure(repo.root / TUNE_DIR / "s1.png")
    # every trial is in the comparison, each table naming its split
    compared = repo.run(str(VENV_BIN / "ragft"), "compare", "--sweep", "s1").stdout
    assert "s1-default" in compared and "s1-t1" in compared
    assert "exact match (%), eval split" in compared.lower() and "exact match (%), dev split" in compared.lower()
