"""`ragft serve`'s pieces that need no server: what it serves, how it is started, the line it prints."""

from __future__ import annotations

import pytest

from ragft.io import DataError
from ragft.serving import local


def test_the_server_binds_to_localhost_only():
    cmd = local.serve_command(8123)
    assert cmd[1] == "serve" and cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "8123"


def write_params(root) -> None:
    """params.yaml (its candidates and dag) as `make params` composes conf/: a fresh composition, not the
    developer's workspace file."""
    from omegaconf import OmegaConf

    from ragft.config import compose_conf

    (root / "params.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(compose_conf())))


def test_missing_models_name_the_stage_to_run(tmp_path):
    write_params(tmp_path)
    with pytest.raises(DataError, match=r"dvc repro base_model@base"):
        local.served_folders(["base"], tmp_path)
    (tmp_path / "models" / "base").mkdir(parents=True)
    (tmp_path / "models" / "base" / "config.json").write_text("{}")
    with pytest.raises(DataError, match=r"dvc repro finetune@raft"):
        local.served_folders(["base", "raft"], tmp_path)
    with pytest.raises(DataError, match=r"--models \['mine'\]: not candidates.*\['base', 'finetuned', 'raft'\]"):
        local.served_folders(["mine"], tmp_path)


def test_an_exported_merged_folder_is_served_as_it_is(tmp_path):
    write_params(tmp_path)
    base, tuned = tmp_path / "models" / "base", tmp_path / "models" / "finetuned"
    for d in (base, tuned / "merged"):
        d.mkdir(parents=True)
        (d / "config.json").write_text("{}")
    (tuned / "adapter_config.json").write_text("{}")
    folders = local.served_folders(["base", "finetuned"], tmp_path)
    assert folders == {"base": base.resolve(), "finetuned": (tuned / "merged").resolve()}
    line = local.exp_run_line("http://127.0.0.1:8000/v1", folders)
    assert line.startswith("dvc exp run -S inference.engine=openai -S inference.openai.base_url=http://127.0.0.1:8000/v1")
    assert f"-S inference.openai.models.finetuned={(tuned / 'merged').resolve()}" in line
