"""What the data tests share."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf


@pytest.fixture
def ds(default_cfg):
    """A factory of `dataset` configs: the default, with overrides."""

    def make(**overrides):
        return OmegaConf.merge(default_cfg.dataset, overrides)

    return make
