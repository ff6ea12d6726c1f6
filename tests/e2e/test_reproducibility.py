"""Reproducibility: two `dvc repro` runs from scratch of the same config, in two fresh copies of the repo,
give byte-identical metrics and predictions. Only wall-clock timings and MLflow run ids may differ.

The same two runs carry secrets in their environment (the judge key, HF_TOKEN, OPENAI_API_KEY) and
check that none of them lands anywhere in the repo (MLflow's SQLite bytes, its artifacts, reports/,
every output), and that every saved model is safetensors only (tests/test_security.py's helpers).
"""

from __future__ import annotations

import subprocess

import pytest

from ragft import paths
from tests.helpers import VENV_BIN, PipelineRepo, assert_no_pickled_weights, assert_secret_absent, canary, reduce_arms

pytestmark = pytest.mark.slow

SECRET_ENV = ("RAGFT_JUDGE_API_KEY", "HF_TOKEN", "OPENAI_API_KEY")
VARIES = {paths.TIMINGS, paths.RUN_RECORD}   # wall clock; the MLflow run that produced the output


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two fresh copies reproduced at the same time (the same wall-clock budget as one)."""
    secrets = {name: canary() for name in SECRET_ENV}
    repos = []
    for name in ("first", "second"):
        repo = PipelineRepo.create(tmp_path_factory.mktemp(name))
        reduce_arms(repo, ["base", "finetuned"], ["retrieved"])
        repo.env.update(secrets)
        repos.append(repo)
    procs = [subprocess.Popen([str(VENV_BIN / "dvc"), "repro"], cwd=r.root, env=r.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in repos]
    outs = [p.communicate(timeout=1200)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-6000:]
    return repos, secrets


def compared_files(root) -> dict[str, bytes]:
    files = {str(paths.EVAL_METRICS): (root / paths.EVAL_METRICS).read_bytes()}
    for f in sorted((root / paths.PREDICTIONS).rglob("*")):
        if f.is_file() and f.name not in VARIES:
            files[str(f.relative_to(root))] = f.read_bytes()
    return files


def test_two_runs_from_scratch_are_byte_identical(runs):
    (a, b), _ = runs
    first, second = compared_files(a.root), compared_files(b.root)
    predictions = [k for k in first if k.endswith(paths.PREDICTIONS_FILE)]
    assert len(predictions) == 2, sorted(first)          # base-retrieved, finetuned-retrieved
    assert sorted(first) == sorted(second)
    differ = [k for k in first if first[k] != second[k]]
    assert not differ, f"differ between two runs of the same config: {differ}"


def test_no_secret_from_the_environment_lands_anywhere(runs):
    repos, secrets = runs
    for repo in repos:
        assert (repo.root / "mlflow.db").exists() and (repo.root / "mlartifacts").is_dir()
        assert (repo.root / paths.COMPARISON_REPORT).exists()
        for secret in secrets.values():
            assert assert_secret_absent(repo.root, secret) > 50


def test_saved_models_are_safetensors_only(runs):
    (a, _), _ = runs
    weights = assert_no_pickled_weights(a.root / paths.MODELS)
    assert {w.parent.name for w in weights} >= {"base", "finetuned"}
