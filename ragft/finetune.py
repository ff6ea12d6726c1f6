"""Fine-tuned models: LoRA adapters (PEFT) trained with transformers.Trainer on training data only.

Two recipes, one per fine-tuned model of the experiment:
  finetuned  knowledge injection, by `finetune.mode`;
  raft       RAFT (ragft.raft): training questions read among distractor chunks → answer.

Modes of the `finetuned` recipe (`finetune.mode`):
  docs     continued pretraining on the corpus documents (+ `finetune.paraphrases` extra renderings
           per document: the augmentation knob), the classic "fine-tune on your documents";
  qa       supervised closed-book question → answer on the training split (loss on the answer);
  docs+qa  both.
`finetune.replay` mixes in that share of rows from the base model's own pretraining curriculum
(models/base/pretrain_mix.jsonl): fine-tuning on documents alone erodes the reading skill RAG needs.

Eval questions are never trained on: a training row sharing an eval question's qid, or holding its
text exactly or as a near-duplicate (MinHash LSH, ragft.contamination), stops the stage before any
training. The overlap measured is part of the result (and the report).
"""

from __future__ import annotations

import csv
import logging
import math
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragft import paths
from ragft.config import ConfigError
from ragft.io import DataError, atomic_file, read_jsonl
from ragft.model import prompts
from ragft.model.scratch import PRETRAIN_MIX
from ragft.model.training import ExampleMeanTrainer, final_loss, padding_collator, rows_dataset, training_args

log = logging.getLogger(__name__)

MODES = {"docs": ("docs",), "qa": ("qa",), "docs+qa": ("docs", "qa")}
RECIPES = ("finetuned", "raft")
REQUIRED = {
    "documents.jsonl": ("doc_id", "text"),
    "paraphrases.jsonl": ("doc_id", "paraphrase", "text"),
    "qa_train.jsonl": ("qid", "question", "answer"),
    "qa_eval.jsonl": ("qid", "question", "answer"),
}


@dataclass
class FinetuneResult:
    manifest: dict[str, Any]
    metrics: dict[str, float]
    log_history: list[dict] = field(default_factory=list)
    model: Any = None  # the trained PeftModel (in memory; the adapter is saved in out_dir)


# --------------------------------------------------------------------------- data


def read_prepared(prepared_dir: str | Path, names: tuple[str, ...]) -> dict[str, list[dict]]:
    """The prepare stage's files named in ``names``, with their required fields checked."""
    out = {}
    for name in names:
        path = Path(prepared_dir) / name
        rows = read_jsonl(path)
        for i, row in enumerate(rows, 1):
            missing = [f for f in REQUIRED[name] if f not in row]
            if missing:
                raise DataError(f"{path}:{i}: missing field(s) {missing}. Regenerate it with `dvc repro prepare`.")
        out[name] = rows
    return out


def normalize_question(text: str) -> str:
    """Lowercase, punctuation dropped, single spaces: trivially different spellings still collide."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def check_no_eval_leak(rows: list[dict], qa_eval: list[dict], source: str) -> None:
    """DataError if any training row carries an eval question (same qid or same normalised text)."""
    eval_qids = {str(r["qid"]) for r in qa_eval}
    eval_texts = {normalize_question(r["question"]): str(r["qid"]) for r in qa_eval}
    for row in rows:
        if "question" not in row:
            continue
        qid, text = str(row.get("qid")), normalize_question(row["question"])
        if qid in eval_qids or text in eval_texts:
            raise DataError(
                f"{source}: training question {row.get('qid')!r} ({row['question']!r}) is an eval question "
                f"(qid {qid if qid in eval_qids else eval_texts[text]} of {paths.QA_EVAL}). Eval questions must never be "
                "trained on: fix the train/eval split (`dvc repro prepare`) so no question is in both."
            )


def contamination_guard(rows: list[dict], qa_eval: list[dict], source: str, seed: int = 0) -> dict:
    """Exact + near-duplicate overlap of the training rows with the eval questions; DataError if any.

    Returns the measured overlap (for the manifest and the report)."""
    from ragft.contamination import find_overlap

    check_no_eval_leak(rows, qa_eval, source)
    texts = [r.get("question") or r.get("text") or r.get("prompt") or "" for r in rows]
    overlap = find_overlap(source, texts, {str(q["qid"]): q["question"] for q in qa_eval}, seed=seed)
    if overlap.contaminated:
        shown = sorted(overlap.exact)[:3] + [f"{q} (Jaccard {j})" for q, j in sorted(overlap.near)[:3]]
        raise DataError(
            f"{source}: {len(overlap.exact)} eval question(s) appear verbatim and {len(overlap.near)} as near-duplicates "
            f"in the fine-tuning data, e.g. {shown}. Eval questions must never be trained on: fix the train/eval "
            "split (`dvc repro prepare`) or remove those rows from the training data."
        )
    return overlap.as_dict()


def task_rows(
    cfg: Any,
    prepared: dict[str, list[dict]],
    tokenizer: Any,
    use_chat_template: bool,
    recipe: str = "finetuned",
    chunks: list[dict] | None = None,
) -> list[dict]:
    """The training rows of ``recipe`` (before replay), in a fixed order."""
    fcfg = cfg.finetune
    rows: list[dict] = []
    if recipe == "raft":
        from ragft.raft import raft_rows

        return raft_rows(prepared["qa_train.jsonl"], chunks or [], cfg, tokenizer, use_chat_template)
    if "docs" in MODES[fcfg.mode]:
        for doc in prepared["documents.jsonl"]:
            rows.append({"kind": "doc", "doc_id": doc["doc_id"], "text": doc["text"]})
        if fcfg.paraphrases:
            by_doc: dict[str, list[dict]] = {}
            for p in prepared["paraphrases.jsonl"]:
                by_doc.setdefault(str(p["doc_id"]), []).append(p)
            for doc in prepared["documents.jsonl"]:
                extra = sorted(by_doc.get(str(doc["doc_id"]), []), key=lambda p: p["paraphrase"])[: fcfg.paraphrases]
                rows += [{"kind": "paraphrase", "doc_id": p["doc_id"], "text": p["text"]} for p in extra]
    if "qa" in MODES[fcfg.mode]:
        for qa in prepared["qa_train.jsonl"]:
            prompt = prompts.build_prompt(qa["question"], cfg, tokenizer=tokenizer, use_chat_template=use_chat_template)
            rows.append(
                {"kind": "qa", "qid": qa["qid"], "question": qa["question"], "prompt": prompt, "answer": qa["answer"]}
            )
    return rows


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


# --------------------------------------------------------------------------- model


def check_target_modules(model: Any, targets: list[str]) -> None:
    """ConfigError before training if a LoRA target names no module of the model."""
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}
    missing = [t for t in targets if t not in names]
    if missing:
        import torch
        from transformers.pytorch_utils import Conv1D

        linear = sorted(
            {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, Conv1D))}
        )
        raise ConfigError(
            f"params.yaml: finetune.lora.target_modules {missing} name no module of {type(model).__name__}. "
            f"Fix: choose from its linear layers: {linear}."
        )


def lora_model(model: Any, lcfg: Any, seed: int):
    """Wrap ``model`` with a seeded LoRA adapter (PEFT)."""
    from peft import LoraConfig, get_peft_model
    from transformers import set_seed
    from transformers.pytorch_utils import Conv1D

    targets = list(lcfg.target_modules)
    check_target_modules(model, targets)
    conv1d = any(isinstance(m, Conv1D) and n.rsplit(".", 1)[-1] in targets for n, m in model.named_modules())
    config = LoraConfig(
        r=lcfg.r,
        lora_alpha=lcfg.alpha,
        lora_dropout=lcfg.dropout,
        target_modules=targets,
        fan_in_fan_out=conv1d,  # GPT-2 stores its projections transposed (Conv1D)
        task_type="CAUSAL_LM",
    )
    set_seed(seed)
    return get_peft_model(model, config)


# --------------------------------------------------------------------------- training


def train_adapter(model: Any, tokenizer: Any, dataset: Any, fcfg: Any, epochs: float | None = None) -> tuple[Any, float]:
    """Run transformers.Trainer on ``dataset``; return (trainer state, seconds)."""
    import tempfile

    work_dir = tempfile.TemporaryDirectory(prefix="ragft-finetune-")  # Trainer wants one; nothing is saved there
    args = training_args(
        work_dir.name,
        per_device_train_batch_size=fcfg.batch_size,
        num_train_epochs=fcfg.epochs if epochs is None else epochs,
        max_steps=fcfg.max_steps,
        learning_rate=fcfg.lr,
        warmup_steps=fcfg.warmup_ratio,  # a float in [0, 1) is a share of the total steps
        weight_decay=fcfg.weight_decay,
        seed=fcfg.seed,
        logging_steps=0.01,  # ~100 points on the loss curve
    )
    trainer = ExampleMeanTrainer(
        model=model, args=args, train_dataset=dataset, data_collator=padding_collator(tokenizer)
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    work_dir.cleanup()
    return trainer.state, seconds


def finetune(
    cfg: Any,
    base_dir: str | Path,
    prepared_dir: str | Path,
    out_dir: str | Path,
    recipe: str = "finetuned",
    chunks_file: str | Path | None = None,
) -> FinetuneResult:
    """Train ``recipe``'s LoRA adapter on the base model in ``base_dir``; save it (safetensors) in ``out_dir``.

    ``chunks_file`` (the retrieval corpus' chunks) is where the raft recipe draws gold and distractor
    passages from."""
    from omegaconf import OmegaConf

    from ragft.model.loading import load_generator
    from ragft.model.manifest import count_parameters

    fcfg = cfg.finetune
    if recipe not in RECIPES:
        raise ConfigError(f"fine-tuning recipe {recipe!r} is unknown; choose one of {list(RECIPES)} (arms.trained)")
    if fcfg.mode not in MODES:
        raise ConfigError(f"finetune.mode is {fcfg.mode!r}; choose one of {sorted(MODES)}")
    if recipe == "raft":
        names: tuple[str, ...] = ("qa_eval.jsonl", "qa_train.jsonl")
    else:
        names = ("documents.jsonl", "qa_eval.jsonl")
        names += ("paraphrases.jsonl",) if "docs" in MODES[fcfg.mode] and fcfg.paraphrases else ()
        names += ("qa_train.jsonl",) if "qa" in MODES[fcfg.mode] else ()
    prepared = read_prepared(prepared_dir, names)
    chunks = read_jsonl(chunks_file) if recipe == "raft" else None
    if recipe == "raft" and not chunks:
        raise DataError(f"{chunks_file}: no chunks; the raft recipe draws its passages from them. Fix: `dvc repro chunk`.")
    if fcfg.replay > 0 and not (Path(base_dir) / PRETRAIN_MIX).exists():
        raise ConfigError(
            f"finetune.replay is {fcfg.replay} but {Path(base_dir) / PRETRAIN_MIX} does not exist: replay draws from "
            "the pretraining mix that only a scratch base model saves. Fix: set finetune.replay=0 for model.source=hub."
        )

    model, tokenizer, base_manifest = load_generator(base_dir, device="cpu")
    chat = bool(base_manifest.get("use_chat_template", False))
    rows = task_rows(cfg, prepared, tokenizer, chat, recipe, chunks)
    if not rows:
        raise DataError(
            f"{prepared_dir}: no training rows for finetune.mode={fcfg.mode}. Check the prepare stage's outputs."
        )
    rows += replay_rows(base_dir, len(rows), fcfg.replay, fcfg.seed)
    overlap = contamination_guard(rows, prepared["qa_eval.jsonl"], f"{recipe} training data ({prepared_dir})", fcfg.seed)
    max_length = fcfg.raft.max_length if recipe == "raft" else fcfg.max_length
    dataset = rows_dataset(rows, tokenizer, max_length)

    model = lora_model(model, fcfg.lora, fcfg.seed)
    trainable = count_parameters(model, trainable_only=True)
    log.info(
        "fine-tuning %s (%s): %d rows, %d examples, %d trainable parameters",
        recipe, fcfg.mode if recipe == "finetuned" else "raft", len(rows), len(dataset), trainable,
    )
    state, seconds = train_adapter(model, tokenizer, dataset, fcfg, fcfg.raft.epochs if recipe == "raft" else None)
    model.eval()
    model.save_pretrained(out_dir)

    sanity = reading_probe(model, tokenizer, base_manifest, cfg)
    counts = {
        kind: sum(r["kind"] == kind and not r.get("replay") for r in rows) for kind in ("doc", "paraphrase", "qa", "raft")
    }
    counts["replay"] = sum(bool(r.get("replay")) for r in rows)
    loss = final_loss(state.log_history)
    manifest = {
        "base_model": {
            "path": str(base_dir),
            "name": base_manifest.get("name"),
            "weights_sha256": base_manifest.get("weights_sha256"),
        },
        "recipe": recipe,
        "mode": fcfg.mode if recipe == "finetuned" else "raft",
        "raft": OmegaConf.to_container(fcfg.raft) if recipe == "raft" else None,
        "contamination": overlap,
        "paraphrases": fcfg.paraphrases,
        "replay": fcfg.replay,
        "rows": counts,
        "n_examples": len(dataset),
        "trainable_params": trainable,
        "total_params": count_parameters(model),
        "lora": {
            "r": fcfg.lora.r,
            "alpha": fcfg.lora.alpha,
            "dropout": fcfg.lora.dropout,
            "target_modules": list(fcfg.lora.target_modules),
        },
        "steps": state.global_step,
        "final_loss": loss,
        "seed": fcfg.seed,
    }
    metrics = {
        "train_seconds": round(seconds, 2),
        "train_loss": loss,
        "n_examples": len(dataset),
        "trainable_params": trainable,
        "steps": state.global_step,
        "eval_overlap_exact": overlap["exact"],
        "eval_overlap_near": overlap["near_duplicates"],
        **{f"probe_{k}": v for k, v in sanity.items() if k.endswith("_em")},
    }
    return FinetuneResult(manifest, metrics, state.log_history, model)


def reading_probe(model: Any, tokenizer: Any, base_manifest: dict, cfg: Any) -> dict[str, float]:
    """The scratch base model's sanity probe, rerun on the fine-tuned model: does it still read?
    (The same held-out pretrain-pool people; empty for hub models.)"""
    if base_manifest.get("source") != "scratch" or "scratch" not in base_manifest:
        return {}
    from omegaconf import OmegaConf

    from ragft.model.probe import heldout_probe

    return heldout_probe(model, tokenizer, OmegaConf.create(base_manifest["scratch"]), cfg)


def write_loss_curve(path: str | Path, log_history: list[dict]) -> int:
    """plots/finetune_loss.csv: step,loss from the Trainer's log history."""
    points = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    with atomic_file(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["step", "loss"])
        writer.writerows((step, f"{loss:.6f}") for step, loss in points)
    return len(points)

