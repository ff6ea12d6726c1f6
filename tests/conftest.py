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
