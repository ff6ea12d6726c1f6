"""The fine-tuning recipes' training rows, one recipe per fine-tuned model of the experiment:
  finetuned  knowledge injection, by `finetune.mode`;
  raft       RAFT (ragft.finetune.raft): training questions read among distractor chunks → answer.

Modes of the `finetuned` recipe (`finetune.mode`):
  docs     continued pretraining on the corpus documents (+ `finetune.paraphrases` extra renderings
           per document: the augmentation knob), the classic "fine-tune on your documents";
  qa       supervised closed-book question → answer on the training split (loss on the answer);
  docs+qa  both, mixed in one phase;
  pit      pre-instruction-tuning (Jiang et al. 2024): phase 1 trains the QA of the training split and the
           training documents, phase 2 the held-out (eval and dev) documents, whose facts the first phase
           taught the model how to answer questions about.
`finetune.replay` mixes in that share of rows from the base model's own pretraining curriculum
(models/base/pretrain_mix.jsonl): fine-tuning on documents alone erodes the reading skill RAG needs.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from ragft.data import rows as prepared_rows
from ragft.io import read_jsonl
from ragft.model import prompts
from ragft.model.scratch import PRETRAIN_MIX

MODES = {"docs": ("docs",), "qa": ("qa",), "docs+qa": ("docs", "qa"), "pit": ("docs", "qa")}


def read_prepared(prepared_dir: str | Path, recipe: str, fcfg: Any) -> dict[str, list[dict]]:
    """The prepare stage's files ``recipe`` reads (checked by the typed row readers), by file name."""
    d = Path(prepared_dir)
    out = {"qa_eval.jsonl": prepared_rows.read_questions(d / "qa_eval.jsonl", ("question", "answer")),
           "qa_dev.jsonl": prepared_rows.read_questions(d / "qa_dev.jsonl", ("question", "answer"), allow_empty=True)}
    modes = MODES[str(fcfg.mode)]
    if recipe == "raft" or "qa" in modes:
        out["qa_train.jsonl"] = prepared_rows.read_questions(d / "qa_train.jsonl", ("question", "answer"))
    if recipe != "raft":
        out["documents.jsonl"] = prepared_rows.read_documents(d / "documents.jsonl")
        if "docs" in modes and fcfg.paraphrases:
            out["paraphrases.jsonl"] = prepared_rows.read_paraphrases(d / "paraphrases.jsonl")
    return out


def task_rows(
    cfg: Any,
    prepared: dict[str, list[dict]],
    tokenizer: Any,
    recipe: str = "finetuned",
    chunks: list[dict] | None = None,
) -> list[dict]:
    """The training rows of ``recipe`` (before replay), in a fixed order. In pit mode each row has its
    ``phase`` (1: training QA and documents, 2: the held-out documents)."""
    fcfg = cfg.finetune
    rows: list[dict] = []
    if recipe == "raft":
        from ragft.finetune.raft import raft_rows

        return raft_rows(prepared["qa_train.jsonl"], chunks or [], cfg, tokenizer)
    if "docs" in MODES[str(fcfg.mode)]:
        for doc in prepared["documents.jsonl"]:
            rows.append({"kind": "doc", "doc_id": doc["doc_id"], "text": doc["text"]})
        if fcfg.paraphrases:
            by_doc: dict[str, list[dict]] = {}
            for p in prepared["paraphrases.jsonl"]:
                by_doc.setdefault(str(p["doc_id"]), []).append(p)
            for doc in prepared["documents.jsonl"]:
                extra = sorted(by_doc.get(str(doc["doc_id"]), []), key=lambda p: p["paraphrase"])[: fcfg.paraphrases]
                rows += [{"kind": "paraphrase", "doc_id": p["doc_id"], "text": p["text"]} for p in extra]
    if "qa" in MODES[str(fcfg.mode)]:
        for qa in prepared["qa_train.jsonl"]:
            prompt = prompts.build_prompt(qa["question"], cfg, tokenizer=tokenizer)
            rows.append(
                {"kind": "qa", "qid": qa["qid"], "question": qa["question"], "prompt": prompt, "answer": qa["answer"]}
            )
    if str(fcfg.mode) == "pit":
        held_out = {d for name in ("qa_eval.jsonl", "qa_dev.jsonl") for q in prepared.get(name, []) for d in q["doc_ids"]}
        rows = [{**r, "phase": 2 if r.get("doc_id") in held_out else 1} for r in rows]
        rows = sorted(rows, key=lambda r: r["phase"])   # stable: each phase keeps its order
    return rows


def phases(rows: list[dict]) -> list[list[dict]]:
    """The rows trained one phase after another (pit mode: two; else one), in phase order."""
    numbers = sorted({r.get("phase", 1) for r in rows})
    return [[r for r in rows if r.get("phase", 1) == n] for n in numbers]


def replay_rows(base_dir: str | Path, n_task: int, share: float, seed: int) -> list[dict]:
    """``share`` of the final mix drawn (seeded, without repeats while possible) from the base model's
    pretraining curriculum."""
    if share <= 0:
        return []
    pool = read_jsonl(Path(base_dir) / PRETRAIN_MIX)
    n = round(n_task * share / (1.0 - share))
    rng = random.Random(f"replay:{seed}")
    picked = [row for _ in range(math.ceil(n / len(pool))) for row in rng.sample(pool, len(pool))][:n]
    return [{**row, "replay": True} for row in picked]


def validation_split(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(training rows, validation rows): ``fraction`` of the groups held out, a group being a document
    (document and paraphrase rows) or a question (QA and RAFT rows), drawn with ``seed``; replayed rows
    always train. ``fraction=0``: every row trains (no validation)."""
    if fraction <= 0:
        return rows, []

    def group(row: dict) -> str:
        return f"doc:{row['doc_id']}" if row.get("kind") in ("doc", "paraphrase") else f"q:{row.get('qid')}"

    groups = sorted({group(r) for r in rows if not r.get("replay")})
    n_val = max(1, round(fraction * len(groups)))
    if n_val >= len(groups):
        from ragft.config import ConfigError

        raise ConfigError(f"params.yaml: field 'finetune.validation.fraction' is {fraction}: with {len(groups)} "
                          "training group(s) (documents or questions) nothing would be left to train on. Fix: a "
                          "smaller fraction, more training data, or 0 to turn validation off.")
    held = set(random.Random(f"validation:{seed}").sample(groups, n_val))
    train = [r for r in rows if r.get("replay") or group(r) not in held]
    return train, [r for r in rows if not r.get("replay") and group(r) in held]
