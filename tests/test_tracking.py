"""Tracking: where the store lives, how runs are grouped and recorded, and failure modes."""

from __future__ import annotations

import json
import multiprocessing as mp
import time

import pytest
from mlflow.tracking import MlflowClient

from ragft import tracking

CFG = {"seed": 0, "tracking": {"enabled": True, "experiment": "t"}, "judge": {"api_key": "sk-abcdefghijkl"}}


def test_default_store_is_sqlite_at_real_repo_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.tracking_uri() == "http://127.0.0.1:5999"


def test_secrets_are_masked():
    flat = tracking.mask_secrets(tracking.flatten(CFG | {"note": "Bearer abc.def", "hf_token": "hf_abcdefghij"}))
    assert flat["judge.api_key"] == tracking.MASK
    assert flat["hf_token"] == tracking.MASK
    assert "abc.def" not in flat["note"]
    assert flat["seed"] == 0


def test_stage_runs_are_children_of_one_experiment_parent(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    ids = []
    for stage in ("prepare", "chunk"):
        with tracking.stage_run(stage, CFG, inputs=[]) as run:
            run.log_params(CFG)
            run.log_metrics({"n": 3, "nested": {"x": 1.5}, "nan": float("nan")})
            run.write_record(tmp_path / stage)
            ids.append(run)
    client = MlflowClient(tracking.tracking_uri())
    assert ids[0].parent_id == ids[1].parent_id
    for handle in ids:
        run = client.get_run(handle.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == handle.parent_id
        assert run.data.tags["ragft.stage"] == handle.stage
        assert {"git_commit", "params_hash", "ragft.input_hash"} <= set(run.data.tags)
        assert run.data.params["judge.api_key"] == tracking.MASK
        assert run.data.metrics["nested.x"] == 1.5 and "nan" not in run.data.metrics
        record = json.loads((tmp_path / handle.stage / "run.json").read_text())
        assert record["run_id"] == handle.run_id


def test_dvc_experiments_get_their_own_parent(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parents = set()
    for name in ("exp-a", "exp-b", "exp-a"):
        monkeypatch.setenv("DVC_EXP_NAME", name)
        with tracking.stage_run("chunk", CFG) as run:
            parents.add((name, run.parent_id))
    assert len({p for _, p in parents}) == 2


def test_failed_stage_marks_run_failed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError), tracking.stage_run("embed", CFG) as run:
        raise ValueError("boom")
    assert MlflowClient(tracking.tracking_uri()).get_run(run.run_id).info.status == "FAILED"


def test_run_left_running_by_a_killed_stage_is_marked_killed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    client = MlflowClient(tracking.tracking_uri())
    exp_id = tracking.ensure_experiment("t")
    parent = tracking.parent_run(client, exp_id, CFG)
    key, _ = tracking.experiment_key(CFG)
    orphan = client.create_run(exp_id, tags={"ragft.stage": "embed", "ragft.experiment_key": key, "mlflow.parentRunId": parent})
    with tracking.stage_run("embed", CFG):
        pass
    assert client.get_run(orphan.info.run_id).info.status == "KILLED"


def test_unreachable_tracking_server_fails_fast(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: nothing listens
    start = time.monotonic()
    with pytest.raises(tracking.TrackingError, match="unreachable.*MLFLOW_TRACKING_URI"), tracking.stage_run("prepare", CFG):
        pytest.fail("the stage body must not run")
    assert time.monotonic() - start < 15


def _create(uri: str, out) -> None:
    import os

    os.environ["MLFLOW_TRACKING_URI"] = uri
    out.put(tracking.ensure_experiment("race"))


def test_racing_creators_share_one_fresh_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'race.db'}"
    queue = mp.get_context("spawn").Queue()
    procs = [mp.get_context("spawn").Process(target=_create, args=(uri, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    ids = {queue.get(timeout=5) for _ in procs}
    assert len(ids) == 1
    assert MlflowClient(uri).get_experiment(ids.pop()).name == "race"


def test_every_infer_arm_lands_under_the_same_parent(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    parents = set()
    for arm in ({"model": "base", "context": "none"}, {"model": "finetuned", "context": "retrieved"}):
        with tracking.stage_run("infer", CFG | {"arm": arm}) as run:
            parents.add(run.parent_id)
    assert len(parents) == 1
