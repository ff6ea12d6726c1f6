"""Fine-tuning under `accelerate launch`: the finetune stage's own entry, launched as dvc.yaml launches it.

A clone of the test run's tiny build (tests/helpers.py: its base model and chunks are there already); then
the entry runs through accelerate with one CPU process (accelerate/cpu.yaml, what the pipeline
uses on CPU) and with two ranks, where only the main process may open an MLflow run.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from ragft.pipeline.runner import is_main_process
from tests.helpers import VENV_BIN, PipelineRepo, clone_build

ENTRY = ["stages/finetune.py", "+arm.model=finetuned"]


def launch(repo: PipelineRepo, *options: str):
    return repo.run(str(VENV_BIN / "accelerate"), "launch", "--config_file", "accelerate/cpu.yaml",
                    "--num_cpu_threads_per_process", "1", *options, *ENTRY, timeout=300)


def finetune_runs(repo: PipelineRepo) -> list[tuple[str, str]]:
    """(run id, status) of every finetune@finetuned run in the copy's MLflow store."""
    with sqlite3.connect(repo.root / "mlflow.db") as db:
        return db.execute("SELECT run_uuid, status FROM runs WHERE name = 'finetune@finetuned'").fetchall()


@pytest.fixture(scope="module")
def repo(tiny_build, tmp_path_factory):
    return clone_build(tiny_build, tmp_path_factory.mktemp("accelerate"))


def test_rank_decides_the_main_process(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()
    monkeypatch.setenv("RANK", "1")
    assert not is_main_process()


@pytest.mark.slow
def test_finetune_entry_under_accelerate_one_cpu_process(repo):
    before = {run for run, _ in finetune_runs(repo)}   # the build's own run
    launch(repo, "--num_processes", "1")
    adapter = repo.root / "models" / "finetuned"
    assert (adapter / "adapter_model.safetensors").stat().st_size > 0
    assert json.loads((adapter / "adapter_config.json").read_text())["peft_type"] == "LORA"
    record = json.loads((adapter / "run.json").read_text())
    runs = [r for r in finetune_runs(repo) if r[0] not in before]
    assert runs == [(record["run_id"], "FINISHED")]
    with sqlite3.connect(repo.root / "mlflow.db") as db:
        logged = {k for (k,) in db.execute("SELECT key FROM metrics WHERE run_uuid = ?", (record["run_id"],))}
    assert {"train_loss", "steps", "finetune_loss"} <= logged


@pytest.mark.slow
def test_only_the_main_process_logs_to_mlflow(repo):
    """Two ranks (torchrun under accelerate, gloo on CPU): both train, one MLflow run is opened."""
    before = {run for run, _ in finetune_runs(repo)}
    proc = launch(repo, "--multi_gpu", "--num_processes", "2")
    new = [(run, status) for run, status in finetune_runs(repo) if run not in before]
    assert len(new) == 1 and new[0][1] == "FINISHED", new
    log = proc.stdout + proc.stderr
    assert "rank 1, not the main process: no MLflow run" in log
    assert log.count("fine-tuning finetuned (docs, lora)") == 2  # both ranks did the work
    assert json.loads((repo.root / "models/finetuned/run.json").read_text())["run_id"] == new[0][0]
