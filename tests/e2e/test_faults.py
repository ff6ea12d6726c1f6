"""Faults: a stage SIGKILLed mid-way, and a dead tracking server.

A kill (OOM killer, a lost machine) skips every cleanup. What must hold anyway: the stage's declared
output is absent, so DVC cannot take it for finished; `dvc status` says the stage must run; the next
`dvc repro` reruns just that stage cleanly (and sweeps the killed writer's temp files); and the killed
MLflow run does not stay RUNNING forever: the next run of the stage marks it KILLED.

The stages are killed from outside once two things the code itself does are seen: its temp output dir
exists (atomic_dir: the kill lands inside the write) and its progress bar has moved (the encoder's, the
Trainer's). Each stage is made slow on purpose first (one text per embedding batch; many training steps), and
the config change is checked to have reached params.yaml, so the kill lands mid-way by construction, not
because the machine is slow. No test hooks in the code.
The unit-level fail-fast check of ragft.tracking.runs is tests/test_tracking.py::test_unreachable_tracking_server_fails_fast;
here a real stage script meets a dead MLFLOW_TRACKING_URI.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil  # accelerate's dependency
import pytest
from mlflow.tracking import MlflowClient

from ragft.io import sweep_stale_temps
from tests.helpers import VENV_BIN, PipelineRepo, clone_build, configure, reduce_arms

# --------------------------------------------------------------------------- unit: the sweep


def test_temp_files_of_a_dead_writer_are_swept_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "embeddings"
    stale = [tmp_path / f".embeddings.tmp-{dead.pid}-abc", tmp_path / f".embeddings.old-{dead.pid}"]
    live = tmp_path / f".embeddings.tmp-{os.getppid()}-xyz"            # a running process's temp dir
    other = tmp_path / f".chunks.tmp-{dead.pid}-abc"                    # another output's
    for d in (*stale, live, other):
        d.mkdir()
        (d / "vectors.npy").write_bytes(b"partial")
    assert sorted(sweep_stale_temps(out)) == sorted(stale)
    assert live.exists() and other.exists() and not any(p.exists() for p in stale)


# --------------------------------------------------------------------------- the pipeline

pipeline = pytest.mark.slow




@pytest.fixture(scope="module")
def repo(tiny_build, tmp_path_factory):
    """A clone of the test run's tiny build whose embed and finetune@finetuned last long enough to be killed:
    one text per embedding batch (~100 batches), 60 training steps (the tiny config trains ~8)."""
    repo = clone_build(tiny_build, tmp_path_factory.mktemp("faults"))
    # the embedding cache off: every text is encoded, not read back from the build's cache
    configure(repo, {"embedder.batch_size": 1, "embedder.cache": False, "finetune.max_steps": 60})
    client = MlflowClient(f"sqlite:///{repo.root / 'mlflow.db'}")
    repo.build_runs = {r.info.run_id for r in client.search_runs(
        [client.get_experiment_by_name("ragft").experiment_id], max_results=10000)}
    reduce_arms(repo, ["base", "finetuned"], ["none"])
    return repo


def runs_of(repo: PipelineRepo, stage: str) -> list:
    """The stage's MLflow runs in this clone since the build (the build's own runs came with its store)."""
    client = MlflowClient(f"sqlite:///{repo.root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ragft")
    found = client.search_runs([exp.experiment_id], filter_string=f"tags.`ragft.stage` = '{stage}'")
    return sorted((r for r in found if r.info.run_id not in repo.build_runs), key=lambda r: r.info.start_time)


def stale_temps(output: Path) -> list[Path]:
    return sorted(output.parent.glob(f".{output.name}.tmp-*")) if output.parent.exists() else []


def repro_and_kill(repo: PipelineRepo, target: str, script: str, mid_way: str,
                   inside_writer: bool) -> tuple[str, list[Path]]:
    """`dvc repro <target>`; SIGKILL the ``script`` process once its output after "Running stage
    '<target>'" matches ``mid_way`` and, with ``inside_writer``, its temp output dir exists (the stage is inside
    atomic_dir). Returns dvc's output and the stage's temp outputs seen at the kill."""
    proc = subprocess.Popen([str(VENV_BIN / "dvc"), "repro", target], cwd=repo.root, env=repo.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stdout.read1(1 << 16), b"")), daemon=True)
    reader.start()
    output = repo.root / {"stages/embed.py": "data/embeddings",
                          "stages/finetune.py": f"models/{target.split('@')[-1]}"}[script]
    deadline, seen_temps, victim = time.monotonic() + 540, None, None
    while victim is None and proc.poll() is None and time.monotonic() < deadline:
        text = b"".join(chunks).decode(errors="replace")
        start = text.find(f"Running stage '{target}'")
        # the markers the code writes: its progress bar, and its temp output dir (inside atomic_dir)
        if start >= 0 and re.search(mid_way, text[start:]) and (stale_temps(output) or not inside_writer):
            victim = next((p for p in psutil.Process(proc.pid).children(recursive=True)
                           if "python" in p.name() and script in " ".join(p.cmdline())), None)
            if victim is not None:
                seen_temps = stale_temps(output)
                victim.send_signal(signal.SIGKILL)
        time.sleep(0.02)
    proc.wait(timeout=120)
    reader.join(timeout=10)
    out = b"".join(chunks).decode(errors="replace")
    assert victim is not None, f"{script} never got mid-way (or finished first):\n{out[-4000:]}"
    assert proc.returncode != 0, out[-4000:]
    return out, seen_temps


def assert_rerun_is_clean(repo: PipelineRepo, stage: str, output: Path, killed_run_id: str) -> None:
    assert stage in repo.dvc("status").stdout, "DVC must see the killed stage as not done"
    out = repo.dvc("repro", stage).stdout
    assert repo.ran(out) == {stage}, "only the killed stage reruns: its upstream stays cached"
    runs = {r.info.run_id: r.info.status for r in runs_of(repo, stage)}
    assert runs.pop(killed_run_id) == "KILLED", "the killed run was left RUNNING"
    assert list(runs.values()) == ["FINISHED"]
    assert output.is_dir() and (output / "run.json").exists()
    assert stale_temps(output) == [], "the killed writer's temp files were not swept"


@pipeline
def test_dead_tracking_server_fails_a_stage_in_seconds_before_any_work(repo):
    """A real stage script meets a dead MLFLOW_TRACKING_URI: one line naming it, exit 2, no output written.
    (That it takes seconds, one probe with its timeout and no retry, is tests/unit/tracking/test_tracking.py's.)"""
    import shutil

    with socket.socket() as s:                      # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**repo.env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
    shutil.rmtree(repo.root / "data/prepared")      # checked out from the build: gone, so "not written" can be seen
    try:
        proc = subprocess.run([sys.executable, "stages/prepare.py"], cwd=repo.root, env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 2 and "Traceback" not in out, out[-3000:]
        assert f"http://127.0.0.1:{port} is unreachable" in out and "MLFLOW_TRACKING_URI" in out, out[-3000:]
        assert "stage prepare: starting" not in out and not (repo.root / "data/prepared").exists()
    finally:
        repo.dvc("checkout", "-q", "data/prepared")


@pipeline
def test_embed_killed_mid_way_leaves_nothing_finished_and_reruns_cleanly(repo):
    output = repo.root / "data/embeddings"
    # killed while encoding (the encoder's bar between 1% and 99%: ~90 one-text batches), before embed opens its
    # output: nothing is half-written, nothing is left to sweep (a kill inside the writer is finetune's test)
    out, temps_at_kill = repro_and_kill(repo, "embed", "stages/embed.py", r"embed:\s+[1-9]\d?%", inside_writer=False)
    assert repo.ran(out) == {"embed"}   # upstream comes from the build; the batch size changes embed alone
    assert temps_at_kill == []
    assert not output.exists(), "a killed embed left data/embeddings, which DVC could take for finished"
    (killed,) = runs_of(repo, "embed")
    assert killed.info.status == "RUNNING"          # SIGKILL: the run could not end itself
    assert_rerun_is_clean(repo, "embed", output, killed.info.run_id)


@pipeline
def test_finetune_killed_mid_training_leaves_nothing_finished_and_reruns_cleanly(repo):
    stage, output = "finetune@finetuned", repo.root / "models/finetuned"
    out, temps_at_kill = repro_and_kill(repo, stage, "stages/finetune.py", r"\d+/60 \[",   # the Trainer's bar
                                        inside_writer=True)
    assert repo.ran(out) == {stage}
    assert temps_at_kill, "the kill must land while the adapter is being written (inside atomic_dir)"
    assert not output.exists(), "a killed finetune left models/finetuned, which DVC could take for finished"
    assert stale_temps(output), "SIGKILL skips cleanup: the temp dir is still there until the next write"
    (killed,) = runs_of(repo, stage)
    assert killed.info.status == "RUNNING"
    assert_rerun_is_clean(repo, stage, output, killed.info.run_id)
    assert (output / "adapter_model.safetensors").exists()
