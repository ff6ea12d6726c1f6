"""The config contract: conf/ composes into params.yaml, every option validates, bad settings fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ragft.config import ConfigError, check_params_fresh, compose_conf, load_params, validate

CONF = Path("conf")


def test_params_yaml_is_fresh_composition_of_conf():
    assert load_params("params.yaml") == compose_conf(), "params.yaml is stale: run `make params`"


GROUP_OPTIONS = sorted(
    (group.name, option.stem)
    for group in CONF.iterdir()
    if group.is_dir()
    for option in group.glob("*.yaml")
)


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS)
def test_every_config_option_composes_and_validates(group, option):
    cfg = compose_conf(overrides=[f"{group}={option}"])
    validate(cfg, source=f"conf/{group}/{option}.yaml")


def test_every_group_has_a_schema_section():
    cfg = compose_conf()
    for group in CONF.iterdir():
        if group.is_dir() and group.name != "experiment":
            assert group.name in cfg, f"conf/{group.name} is not composed into the config"


BAD = [
    ({"chunking": {"sizee": 3}}, "chunking.sizee"),
    ({"chunkin": {"size": 3}}, "chunkin"),
    ({"chunking": {"size": "big"}}, "chunking.size"),
    ({"retrieval": {"top_k": "three"}}, "retrieval.top_k"),
    ({"chunking": {"size": 32, "overlap": 32}}, "chunking.overlap"),
    ({"retrieval": {"top_k": 0}}, "retrieval.top_k"),
    ({"retrieval": {"top_k": 50}}, "retrieval.depth"),
    ({"index": {"metric": "cosine"}}, "index.metric"),
    ({"finetune": {"mode": "everything"}}, "finetune.mode"),
    ({"model": {"source": "hub", "path": None}}, "model.path"),
    ({"arms": {"contexts": ["none", "wikipedia"]}}, "arms.contexts"),
    ({"dataset": {"eval_fraction": 1.5}}, "dataset.eval_fraction"),
]


@pytest.mark.parametrize(("patch", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_settings_are_rejected_naming_file_and_field(patch, field):
    cfg = OmegaConf.merge(OmegaConf.create(compose_conf()), OmegaConf.create(patch))
    # OmegaConf.merge on a plain config accepts unknown keys; validate() is what must reject them.
    with pytest.raises(ConfigError) as err:
        validate(cfg, source="params.yaml")
    message = str(err.value)
    assert "params.yaml" in message and field in message and "fix" in message.lower()


def test_stale_params_are_refused(tmp_path, monkeypatch):
    import shutil

    shutil.copytree(CONF, tmp_path / "conf")
    params = compose_conf()
    params["chunking"]["size"] = 999
    (tmp_path / "params.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(params)))
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    with pytest.raises(ConfigError, match=r"stale.*chunking\.size.*make params"):
        check_params_fresh(tmp_path)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1")  # `dvc exp run -S` composes params.yaml itself
    check_params_fresh(tmp_path)


def test_tiny_experiment_preset_overrides_groups(tiny_cfg, default_cfg):
    assert tiny_cfg.dataset.n_people < default_cfg.dataset.n_people
    assert tiny_cfg.model.scratch.steps < default_cfg.model.scratch.steps
    assert tiny_cfg.embedder == default_cfg.embedder
