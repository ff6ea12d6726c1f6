"""Any candidate model in the factorial: an adapter trained elsewhere (here with peft directly, not through ragft)
added with the README's one override, evaluated beside base and RAG, its folder a dependency of its own infer stage.

A clone of the test run's tiny build: its base model (models/base, the 2-layer scratch GPT-2 that reads) is the
adapter's base.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers import PipelineRepo, clone_build

OVERRIDE = "+candidates.mine={adapter: adapters/mine}"   # the README's "compare your own adapter", as written


@pytest.fixture(scope="module")
def repo(tiny_build, tmp_path_factory):
    return clone_build(tiny_build, tmp_path_factory.mktemp("candidates"))


def train_adapter(repo: PipelineRepo, steps: int, seed: int) -> None:
    """A LoRA adapter trained the way another tool trains one: peft on the base folder, a plain torch loop over the
    training documents, `save_pretrained` (safetensors). Run from the repo root, so it names its base models/base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cwd = os.getcwd()
    os.chdir(repo.root)
    try:
        torch.manual_seed(seed)
        tokenizer = AutoTokenizer.from_pretrained("models/base")
        model = get_peft_model(AutoModelForCausalLM.from_pretrained("models/base"),
                               LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True,
                                          task_type="CAUSAL_LM"))
        lines = (repo.root / "data/prepared/documents.jsonl").read_text().splitlines()
        docs = [json.loads(line)["text"] for line in lines][:4]
        optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        for step in range(steps):
            batch = tokenizer([docs[step % len(docs)]], return_tensors="pt", truncation=True, max_length=64)
            loss = model(**batch, labels=batch["input_ids"]).loss
            loss.backward()
            optimiser.step()
            optimiser.zero_grad()
        model.save_pretrained("adapters/mine")
    finally:
        os.chdir(cwd)


@pytest.mark.slow
def test_an_adapter_trained_elsewhere_is_a_candidate_with_one_override(repo):
    train_adapter(repo, steps=4, seed=0)
    config = json.loads((repo.root / "adapters/mine/adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "models/base"   # peft's own record of the base it was trained on

    repo.dvc("exp", "run", "-S", OVERRIDE, timeout=900)
    params = (repo.root / "params.yaml").read_text()
    assert "mine:\n    adapter: adapters/mine" in params
    metrics = json.loads((repo.root / "metrics/metrics.json").read_text())
    assert {"mine-none", "mine-retrieved", "base-none", "base-retrieved"} <= set(metrics["arms"])
    assert metrics["candidates"]["mine"] == {"base": "base", "kind": "adapter", "recipe": None,
                                             "adapter": "adapters/mine", "served": None, "label": None}
    # measured against its own base, untuned; and asked "RAG or fine-tuning?" like the document recipe
    gain = metrics["effects"]["mine"]["finetuning_gain_closed_book"]
    assert gain["contrast"] == "mine-none − base-none"
    assert "base-retrieved vs mine-none" in metrics["differences"]
    assert "the adapter (mine, closed-book)" in metrics["verdict"]["text"]
    arm = json.loads((repo.root / "data/predictions/mine/retrieved/arm.json").read_text())
    assert arm["candidate"]["kind"] == "adapter" and arm["base_model"]["name"] == "scratch-gpt2-2x64"
    # the report shows it beside base and RAG
    report = (repo.root / "reports/comparison.md").read_text()
    assert "mine: adapter trained elsewhere, retrieved chunks" in report and "RAG: base + retrieved" in report
    html = (repo.root / "reports/report.html").read_text()
    assert "mine-retrieved" in html

    # the adapter folder is infer@mine's dependency: a retrained adapter reruns that candidate only
    status = repo.dvc("status", "--json").stdout
    assert json.loads(status or "{}") == {}
    train_adapter(repo, steps=6, seed=1)
    changed = set(json.loads(repo.dvc("status", "--json").stdout))
    assert changed == {"infer@mine"}


def test_an_adapter_on_another_base_is_refused_before_any_stage_runs(repo):
    folder = repo.root / "adapters/elsewhere"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct",
                                                            "peft_type": "LORA"}))
    (folder / "adapter_model.safetensors").write_bytes(b"")
    result = repo.dvc("exp", "run", "-S", "+candidates.far={adapter: adapters/elsewhere}", check=False, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "candidates.far.adapter" in out and "'Qwen/Qwen2.5-0.5B-Instruct'" in out and "Fix" in out
    assert not (repo.root / "data/predictions/far").exists()
