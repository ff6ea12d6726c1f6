"""Shared fixtures. Importing ragft applies the offline switches to the test process."""

from __future__ import annotations

import pytest

import ragft  # noqa: F401  (offline env)
from ragft.config import compose_conf, validate


@pytest.fixture(scope="session")
def default_cfg():
    """The default config, validated (typed OmegaConf DictConfig)."""
    return validate(compose_conf())


@pytest.fixture(scope="session")
def tiny_cfg():
    """The `experiment=tiny` config, validated: what the end-to-end tests run."""
    return validate(compose_conf(overrides=["experiment=tiny"]))


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path, monkeypatch):
    """Unit tests never touch the repo's mlflow.db."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory):
    """One real `dvc repro` of experiment=tiny in a temp copy of the repo, shared by the end-to-end tests
    (test_pipeline, test_remote, test_sweep); a test that changes the workspace resets it."""
    from tests.pipeline_repo import PipelineRepo

    repo = PipelineRepo.create(tmp_path_factory.mktemp("pipeline"))
    out = repo.dvc("repro")
    repo.commit("tiny experiment reproduced")
    repo.first_output = out.stdout
    return repo
