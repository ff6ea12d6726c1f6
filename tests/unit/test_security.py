"""Security: no secret reaches MLflow, logs or reports; remote code runs only when configured; weights load
as safetensors only and nothing is ever unpickled; the Markdown report renders corpus text as text.

The end-to-end check that a secret in the environment of a whole `dvc repro` appears nowhere in the
MLflow store, the artifacts or reports/ runs on the reproducibility test's pipeline runs
(tests/test_reproducibility.py, with ``assert_secret_absent`` below), so no third pipeline is run.
"""

from __future__ import annotations

import ast
import html
import inspect
import json
import logging
import pickle
import re
import secrets
from html.parser import HTMLParser
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from ragft import paths, tracking
from ragft.config import ConfigError, compose_conf, validate
from ragft.io import DataError
from ragft.tracking.redact import MASK
from tests.helpers import (
    REPO,
    assert_no_pickled_weights,
    assert_secret_absent,
    canary,
    run_evaluate,
    write_evaluate_inputs,
)


def test_secret_looking_params_are_masked_in_mlflow_and_never_logged(tmp_path, monkeypatch, caplog):
    """A key named like a secret, or a value shaped like one, is *** in MLflow (stage run and the parent's
    summary); the value is nowhere in the store's bytes, the artifacts, or the log."""
    monkeypatch.chdir(tmp_path)  # artifacts of a SQLite store go beside it, at the repo root
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    key, hf, bearer = canary(), "hf_" + secrets.token_hex(12), secrets.token_hex(12)
    cfg = {
        "seed": 0,
        "tracking": {"enabled": True, "experiment": "security"},
        "eval": {"judge": {"api_key": key, "base_url": f"http://judge/v1?auth=Bearer {bearer}"}},
        "model": {"path": hf, "hf_token": key},
    }
    with caplog.at_level(logging.DEBUG), tracking.stage_run("evaluate", cfg) as run:
        run.log_params(cfg)
        run.log_summary(cfg, {"exact_match": 0.5})
        (tmp_path / "report.md").write_text("a report\n")
        run.log_artifact(tmp_path / "report.md")
    client = MlflowClient(tracking.tracking_uri())
    for run_id in (run.run_id, run.parent_id):
        params = client.get_run(run_id).data.params
        assert params["eval.judge.api_key"] == params["model.hf_token"] == params["model.path"] == MASK
        assert params["eval.judge.base_url"] == f"http://judge/v1?auth={MASK}"
    assert client.get_run(run.parent_id).data.metrics["exact_match"] == 0.5   # the summary did land
    for secret in (key, hf, bearer):
        assert assert_secret_absent(tmp_path, secret) >= 2                     # mlflow.db + the artifact
        assert secret not in caplog.text


def test_a_secret_cannot_enter_params_under_a_new_key():
    """params.yaml is schema-checked: a secret can only reach MLflow through a known field, never a stray key."""
    cfg = compose_conf()
    cfg["eval"]["judge"]["api_key"] = canary()
    with pytest.raises(ConfigError, match=r"eval\.judge\.api_key.*remove or rename"):
        validate(cfg)
    assert "api_key_env" in compose_conf()["eval"]["judge"]  # the key itself comes from the environment


# --------------------------------------------------------------------------- (b) remote code


def test_trust_remote_code_is_off_in_every_shipped_config():
    presets = [p.stem for p in (REPO / "conf/experiment").glob("*.yaml")]
    for overrides in [[]] + [[f"experiment={p}"] for p in presets]:
        cfg = compose_conf(overrides=overrides)
        assert cfg["model"]["trust_remote_code"] is False, overrides
        assert cfg["embedder"]["trust_remote_code"] is False, overrides


@pytest.fixture(scope="module")
def word_tokenizer():
    from ragft.model.tokenizer import train_word_tokenizer

    return train_word_tokenizer(["question : where was ada born ? answer : lyon"])


def custom_code_model(path: Path, tokenizer) -> Path:
    """A model folder whose config asks for its own Python code; importing that code leaves a marker file."""
    import safetensors.torch
    import torch

    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({
        "model_type": "ragft_untrusted",
        "architectures": ["Untrusted"],
        "auto_map": {"AutoConfig": "untrusted.UntrustedConfig", "AutoModelForCausalLM": "untrusted.Untrusted"},
    }))
    (path / "untrusted.py").write_text("import pathlib\npathlib.Path(__file__).with_name('CODE_RAN').touch()\n")
    safetensors.torch.save_file({"w": torch.zeros(1)}, str(path / "model.safetensors"))
    tokenizer.save_pretrained(path)
    return path / "CODE_RAN"


def hub_model_cfg(path: Path, **model):
    cfg = compose_conf(overrides=["model.source=hub", f"model.path={path}"])
    return validate(OmegaConf.merge(cfg, {"model": model})).model


def test_a_model_with_custom_code_is_refused_unless_configured(tmp_path, word_tokenizer):
    from ragft.model import hub

    ran = custom_code_model(tmp_path / "untrusted", word_tokenizer)
    mcfg = hub_model_cfg(tmp_path / "untrusted")
    assert mcfg.trust_remote_code is False
    with pytest.raises(ConfigError, match=r"params\.yaml: model\.path.*custom code.*model\.trust_remote_code=true"):
        hub.load_hub_model(mcfg)
    assert not ran.exists(), "the model's own code ran"


def test_loaders_pass_trust_remote_code_from_the_config(monkeypatch, tmp_path):
    """Every from_pretrained call receives the configured value (recorded, not loaded)."""
    import transformers

    from ragft.model import hub
    from ragft.retrieval import embedding

    seen: list[tuple[str, object]] = []

    class Stop(OSError):
        pass

    def recorder(name):
        def from_pretrained(*_args, **kwargs):
            seen.append((name, kwargs.get("trust_remote_code", "MISSING")))
            raise Stop("recorded")
        return from_pretrained

    for cls in ("AutoTokenizer", "AutoModel", "AutoModelForCausalLM"):
        monkeypatch.setattr(getattr(transformers, cls), "from_pretrained", recorder(cls))
    (tmp_path / "m").mkdir()
    (tmp_path / "m/config.json").write_text("{}")
    (tmp_path / "m/model.safetensors").write_bytes(b"")
    for trust in (False, True):
        seen.clear()
        with pytest.raises(ConfigError):
            hub.load_hub_model(hub_model_cfg(tmp_path / "m", trust_remote_code=trust))
        ecfg = OmegaConf.merge(compose_conf()["embedder"], {"trust_remote_code": trust})
        with pytest.raises(ConfigError):
            embedding._from_pretrained(transformers.AutoModel, ecfg)
        assert seen == [("AutoTokenizer", trust), ("AutoModel", trust)]


# --------------------------------------------------------------------------- (c) safetensors only, never unpickle


class _Payload:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickled_weights_only(path: Path, tokenizer, name: str = "pytorch_model.bin") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    marker = path / "UNPICKLED"
    (path / name).write_bytes(pickle.dumps(_Payload(marker)))
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return marker


def test_a_base_model_with_only_pickled_weights_is_refused(tmp_path, word_tokenizer):
    from transformers import GPT2Config

    from ragft.model.loading import load_generator

    GPT2Config(vocab_size=len(word_tokenizer), n_embd=8, n_layer=1, n_head=1).save_pretrained(tmp_path / "base")
    marker = pickled_weights_only(tmp_path / "base", word_tokenizer)
    with pytest.raises(DataError, match=r"base: no \*\.safetensors weights \(only \['pytorch_model\.bin'\].*Fix"):
        load_generator(tmp_path / "base", device="cpu")
    assert not marker.exists()


def test_an_adapter_with_only_pickled_weights_is_refused(tmp_path, word_tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    from ragft.model.loading import load_generator

    GPT2LMHeadModel(GPT2Config(vocab_size=len(word_tokenizer), n_embd=8, n_layer=1, n_head=1)).save_pretrained(
        tmp_path / "base"
    )
    word_tokenizer.save_pretrained(tmp_path / "base")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter/adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2}))
    marker = pickled_weights_only(tmp_path / "adapter", None, "adapter_model.bin")
    with pytest.raises(DataError, match=r"adapter: no \*\.safetensors weights \(only \['adapter_model\.bin'\]"):
        load_generator(tmp_path / "base", tmp_path / "adapter", device="cpu")
    assert not marker.exists()


def test_a_hub_model_dir_with_only_pickled_weights_is_refused(tmp_path, word_tokenizer):
    from ragft.model import hub

    (tmp_path / "m").mkdir()
    (tmp_path / "m/config.json").write_text(json.dumps({"model_type": "gpt2"}))
    marker = pickled_weights_only(tmp_path / "m", word_tokenizer)
    with pytest.raises(ConfigError, match=r"params\.yaml: model\.path .* no \*\.safetensors weights.*Fix"):
        hub.load_hub_model(hub_model_cfg(tmp_path / "m"))
    assert not marker.exists()


def test_an_embedder_with_only_pickled_weights_is_refused(tmp_path, word_tokenizer):
    from ragft.retrieval.embedding import Encoder

    (tmp_path / "enc").mkdir()
    (tmp_path / "enc/config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": len(word_tokenizer)}))
    marker = pickled_weights_only(tmp_path / "enc", word_tokenizer)
    ecfg = OmegaConf.merge(compose_conf()["embedder"], {"model": str(tmp_path / "enc")})
    with pytest.raises(ConfigError, match=r"embedder\.model.*cannot load it"):
        Encoder(ecfg)
    assert not marker.exists()


def test_saved_models_are_safetensors_only(tmp_path, word_tokenizer, tiny_cfg):
    """What the base_model stage writes for a hub model (the scratch model and the adapters: checked on real
    pipeline outputs in tests/test_reproducibility.py)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from ragft.model.base import build_base_model

    GPT2LMHeadModel(GPT2Config(vocab_size=len(word_tokenizer), n_embd=8, n_layer=1, n_head=1)).save_pretrained(
        tmp_path / "src"
    )
    word_tokenizer.save_pretrained(tmp_path / "src")
    cfg = validate(OmegaConf.merge(tiny_cfg, {"model": {"source": "hub", "path": str(tmp_path / "src")}}))
    build_base_model(cfg, tmp_path / "models/base", [])
    assert_no_pickled_weights(tmp_path / "models")


UNPICKLERS = {  # call → why it is refused
    "pickle.load": "unpickles", "pickle.loads": "unpickles", "cloudpickle.load": "unpickles",
    "dill.load": "unpickles", "joblib.load": "unpickles", "pd.read_pickle": "unpickles",
    "pandas.read_pickle": "unpickles", "faiss.deserialize_index": "reads an index from bytes",
}


UNPICKLING_MODULES = {"pickle", "cloudpickle", "dill", "joblib", "shelve", "marshal"}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func), {k.arg: ast.unparse(k.value) for k in node.keywords if k.arg}


def test_nothing_in_ragft_or_stages_unpickles():
    """Static check of every module: no pickle-family loader; torch.load only with weights_only=True;
    numpy loads only with allow_pickle=False; YAML only through safe loaders."""
    sources = sorted([*(REPO / "ragft").rglob("*.py"), *(REPO / "stages").glob("*.py")])
    assert len(sources) > 20
    problems = []
    for path in sources:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in UNPICKLING_MODULES for n in names):
                    problems.append(f"{path}:{node.lineno}: imports {names}")
        for call, func, kw in _calls(tree):
            where = f"{path.relative_to(REPO)}:{call.lineno}: {func}"
            if func in UNPICKLERS:
                problems.append(f"{where} {UNPICKLERS[func]}")
            if func == "torch.load" and kw.get("weights_only") != "True":
                problems.append(f"{where} without weights_only=True")
            if func in ("np.load", "numpy.load") and kw.get("allow_pickle") != "False":
                problems.append(f"{where} without allow_pickle=False")
            if func == "yaml.load" or func == "yaml.unsafe_load":
                problems.append(f"{where}: use yaml.safe_load")
    assert not problems, "\n".join(problems)


def test_the_index_loader_reads_faiss_format_only():
    from ragft.retrieval import index

    calls = {func for _, func, _ in _calls(ast.parse(inspect.getsource(index.load_index)))}
    assert "faiss.read_index" in calls
    assert not calls & set(UNPICKLERS)


# --------------------------------------------------------------------------- (d) the Markdown report


class _Rendered(HTMLParser):
    """Tags, table shapes and text of the HTML a Markdown viewer makes of the report."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.tables: list[list[int]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append(0)
        elif tag in ("td", "th"):
            self.tables[-1][-1] += 1

    def handle_data(self, data):
        self.text.append(data)


NASTY = "<script>alert(1)</script> a|b **x** [y](javascript:alert(2)) <img src=x onerror=alert(3)>"


def test_report_renders_every_corpus_question_and_model_string_as_text(tmp_path, default_cfg):
    """comparison.md as the evaluate stage writes it, with markup in every string that enters it (question,
    gold answer, attribute, model answers, chunks, the model's name), through a Markdown viewer."""
    from markdown_it import MarkdownIt

    write_evaluate_inputs(tmp_path, n_questions=10, marker=NASTY,
                          base_model={"name": f"model {NASTY}", "source": "hub", "testbed": False})
    run_evaluate(tmp_path, OmegaConf.merge(default_cfg, {"eval": {"ragas": False, "examples": 10}}))
    text = (tmp_path / paths.COMPARISON_REPORT).read_text()
    page = _Rendered()
    # a viewer that passes raw HTML through (the worst case) and renders GitHub tables
    page.feed(MarkdownIt("commonmark", {"html": True}).enable("table").render(text))
    assert not page.tags & {"script", "img", "a"}, page.tags
    shown = html.unescape("".join(page.text))
    for where in ("Who wrote ", "Gold answer: ", "birth_city ", "wrong 0 ", "is ", "model "):
        assert f"{where}<script>alert(1)</script> a|b **x** [y](javascript:alert(2))" in shown.replace("<i>", ""), where
    assert page.tables, "the report has tables"
    for rows in page.tables:
        assert len(set(rows)) == 1, f"a cell's '|' split a table row: {rows}"
    assert re.search(r"(?<!\\)\|b", text) is None
