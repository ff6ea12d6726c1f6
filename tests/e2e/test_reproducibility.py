"""Reproducibility: a `dvc repro` from scratch in a fresh copy of the repo gives metrics and predictions
byte-identical to the test run's shared tiny build (the same config, reproduced earlier by another process).
Only wall-clock timings and MLflow run ids may differ. The tiny config's arms score differently (RAG reads, the
closed-book arms do not), so identical metrics mean identical scores, intervals and verdict, not two zeros.

The fresh run carries secrets in its environment (the judge key, HF_TOKEN, OPENAI_API_KEY) and checks that
none of them lands anywhere in the repo (MLflow's SQLite bytes, its artifacts, reports/, every output), and
that every saved model is safetensors only (tests/test_security.py's helpers).
"""

from __future__ import annotations

import json

import pytest

from ragft import paths
from tests.helpers import E2E_EXPERIMENT, PipelineRepo, assert_no_pickled_weights, assert_secret_absent, canary

pytestmark = pytest.mark.slow

SECRET_ENV = ("RAGFT_JUDGE_API_KEY", "HF_TOKEN", "OPENAI_API_KEY")
VARIES = {paths.TIMINGS, paths.RUN_RECORD}   # wall clock; the MLflow run that produced the output


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_build):
    """A fresh copy reproduced with secrets in its environment, beside the shared build (no secrets)."""
    secrets = {name: canary() for name in SECRET_ENV}
    repo = PipelineRepo.create(tmp_path_factory.mktemp("fresh"), experiment=E2E_EXPERIMENT)
    repo.env.update(secrets)
    repo.dvc("repro", timeout=1800)
    return (PipelineRepo(tiny_build), repo), secrets


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
    assert len(predictions) == 12, sorted(first)          # 3 models x 4 contexts
    assert sorted(first) == sorted(second)
    differ = [k for k in first if first[k] != second[k]]
    assert not differ, f"differ between two runs of the same config: {differ}"
    doc = json.loads(first[str(paths.EVAL_METRICS)])      # what is identical is not nothing
    scores = {arm: m["exact_match"] for arm, m in doc["arms"].items()}
    assert scores["base-retrieved"] >= 0.8 and scores["base-none"] <= 0.1, scores


def test_no_secret_from_the_environment_lands_anywhere(runs):
    (_, repo), secrets = runs
    assert (repo.root / "mlflow.db").exists() and (repo.root / "mlartifacts").is_dir()
    assert (repo.root / paths.COMPARISON_REPORT).exists()
    for secret in secrets.values():
        assert assert_secret_absent(repo.root, secret) > 50


def test_saved_models_are_safetensors_only(runs):
    (_, a), _ = runs
    weights = assert_no_pickled_weights(a.root / paths.MODELS)
    assert {w.parent.name for w in weights} >= {"base", "finetuned"}
