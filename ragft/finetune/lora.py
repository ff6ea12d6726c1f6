"""Fine-tuned models: LoRA adapters (PEFT) trained with transformers.Trainer on training data only.

The recipe (ragft.finetune.recipes) gives the training rows; the contamination guard
(ragft.finetune.contamination) stops the stage before any training when a row holds an eval question,
exactly or as a near-duplicate; the overlap measured is part of the result (and the report).
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragft.config import ConfigError
from ragft.io import DataError, atomic_file, read_jsonl
from ragft.model.scratch import PRETRAIN_MIX
from ragft.model.training import ExampleMeanTrainer, final_loss, padding_collator, rows_dataset, training_args

log = logging.getLogger(__name__)


@dataclass
class FinetuneResult:
    manifest: dict[str, Any]
    metrics: dict[str, float]
    log_history: list[dict] = field(default_factory=list)
    model: Any = None  # the trained PeftModel (in memory; the adapter is saved in out_dir)


# --------------------------------------------------------------------------- model


ALL_LINEAR = "all-linear"  # PEFT's own choice of every linear projection (the output layer aside)


def check_target_modules(model: Any, targets: list[str]) -> None:
    """ConfigError before training if a LoRA target names no module of the model."""
    if targets == [ALL_LINEAR]:
        return
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
            f"Fix: choose from its linear layers: {linear}, or [{ALL_LINEAR}]."
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
        target_modules=ALL_LINEAR if targets == [ALL_LINEAR] else targets,
        fan_in_fan_out=conv1d,  # GPT-2 stores its projections transposed (Conv1D)
        task_type="CAUSAL_LM",
    )
    set_seed(seed)
    return get_peft_model(model, config)


# --------------------------------------------------------------------------- training


def check_qlora(fcfg: Any) -> None:
    """ConfigError before any work when finetune.qlora is asked for where it cannot run."""
    import importlib.util

    import torch

    if not fcfg.qlora:
        return
    if not torch.cuda.is_available():
        raise ConfigError("params.yaml: field 'finetune.qlora' is true, but 4-bit QLoRA (bitsandbytes) needs a CUDA "
                          "GPU and this machine has none. Fix: set finetune.qlora=false (LoRA on the full-precision "
                          "model), or run on a GPU machine.")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("params.yaml: field 'finetune.qlora' is true, but bitsandbytes is not installed. Fix: "
                          "pip install 'ragft[qlora]' (or set finetune.qlora=false).")


def load_for_training(base_dir: str | Path, cfg: Any) -> tuple[Any, Any, dict]:
    """The base model as training takes it: in `model.dtype` (bf16 on CUDA), or in 4 bits (finetune.qlora)."""
    from ragft.model.loading import load_generator, resolve_dtype

    fcfg = cfg.finetune
    dtype = resolve_dtype(cfg.model.dtype)  # for the device training will run on
    if not fcfg.qlora:
        return load_generator(base_dir, device="cpu", dtype=dtype)  # the Trainer moves it to the device
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    _, tokenizer, manifest = load_generator(base_dir, device="cpu", dtype=dtype)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=dtype if dtype != torch.float32 else torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(base_dir, use_safetensors=True, quantization_config=quant,
                                                 device_map={"": 0})
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=bool(fcfg.gradient_checkpointing))
    return model, tokenizer, manifest


def validation_settings(vcfg: Any, batch_size: int) -> tuple[dict, list]:
    """The Trainer settings and callbacks of ``finetune.validation``: the evaluation loss every ``eval_steps``
    (loss only: no logits are gathered), a checkpoint at each evaluation so the best can be reloaded at
    the end, and transformers' EarlyStoppingCallback."""
    from transformers import EarlyStoppingCallback

    settings = {
        "eval_strategy": "steps", "eval_steps": int(vcfg.eval_steps), "save_strategy": "steps",
        "save_steps": int(vcfg.eval_steps), "save_total_limit": 2, "load_best_model_at_end": True,
        "metric_for_best_model": "eval_loss", "greater_is_better": False, "prediction_loss_only": True,
        "per_device_eval_batch_size": int(batch_size),
    }
    stop = EarlyStoppingCallback(early_stopping_patience=int(vcfg.patience),
                                 early_stopping_threshold=float(vcfg.min_delta))
    return settings, [stop]


def train_adapter(model: Any, tokenizer: Any, dataset: Any, fcfg: Any, epochs: float | None = None,
                  bf16: bool = False, eval_dataset: Any = None) -> tuple[Any, float]:
    """Run transformers.Trainer on ``dataset`` (validated on ``eval_dataset``, if any, with early stopping
    and the best checkpoint kept); return (trainer state, seconds)."""
    import tempfile

    # Trainer wants a folder: validation's checkpoints go there (the best is reloaded), nothing stays
    work_dir = tempfile.TemporaryDirectory(prefix="ragft-finetune-")
    validation, callbacks = validation_settings(fcfg.validation, fcfg.batch_size) if eval_dataset else ({}, [])
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
        bf16=bf16,
        # non-reentrant checkpointing needs no gradient on the (frozen) inputs of a LoRA-wrapped model
        **({"gradient_checkpointing": True, "gradient_checkpointing_kwargs": {"use_reentrant": False}}
           if fcfg.gradient_checkpointing else {}),
        **validation,
    )
    trainer = ExampleMeanTrainer(model=model, args=args, train_dataset=dataset, eval_dataset=eval_dataset,
                                 data_collator=padding_collator(tokenizer), callbacks=callbacks,
                                 labelled_logits_only=bool(fcfg.labelled_logits_only))
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

    from ragft.finetune import recipes
    from ragft.finetune.contamination import contamination_guard
    from ragft.model.manifest import count_parameters

    fcfg = cfg.finetune
    prepared = recipes.read_prepared(prepared_dir, recipe, fcfg)
    chunks = read_jsonl(chunks_file) if recipe == "raft" else None
    if recipe == "raft" and not chunks:
        raise DataError(f"{chunks_file}: no chunks; the raft recipe draws its passages from them. Fix: `dvc repro chunk`.")
    if fcfg.replay > 0 and not (Path(base_dir) / PRETRAIN_MIX).exists():
        raise ConfigError(
            f"finetune.replay is {fcfg.replay} but {Path(base_dir) / PRETRAIN_MIX} does not exist: replay draws from "
            "the pretraining mix that only the scratch testbed saves. Fix: set finetune.replay=0 (finetune=lora, the "
            "default recipe, has it at 0)."
        )

    check_qlora(fcfg)
    model, tokenizer, base_manifest = load_for_training(base_dir, cfg)
    task = recipes.task_rows(cfg, prepared, tokenizer, recipe, chunks)
    if not task:
        raise DataError(
            f"{prepared_dir}: no training rows for finetune.mode={fcfg.mode}. Check the prepare stage's outputs."
        )
    # each phase (pit mode: two) gets its share of replay; phase 1 draws exactly as a one-phase recipe does
    groups = [g + recipes.replay_rows(base_dir, len(g), fcfg.replay, fcfg.seed if i == 0 else f"{fcfg.seed}:{i + 1}")
              for i, g in enumerate(recipes.phases(task))]
    rows = [r for g in groups for r in g]
    # never train on a held-out question: eval's (reported) nor dev's (what tuning looks at)
    held_out = prepared["qa_eval.jsonl"] + prepared.get("qa_dev.jsonl", [])
    overlap = contamination_guard(rows, held_out, f"{recipe} training data ({prepared_dir})", fcfg.seed)
    max_length = fcfg.raft.max_length if recipe == "raft" else fcfg.max_length
    splits = [recipes.validation_split(g, float(fcfg.validation.fraction), fcfg.seed) for g in groups]
    rows = [r for train, _ in splits for r in train]
    held = [r for _, h in splits for r in h]

    full = str(fcfg.method) == "full"
    if not full:
        model = lora_model(model, fcfg.lora, fcfg.seed)
    trainable = count_parameters(model, trainable_only=True)
    import torch

    bf16 = next(model.parameters()).dtype == torch.bfloat16 or bool(fcfg.qlora)
    seconds, history, n_examples, steps, state = 0.0, [], 0, 0, None
    for i, (train_rows, held_rows) in enumerate(splits, 1):
        dataset = rows_dataset(train_rows, tokenizer, max_length)
        eval_dataset = rows_dataset(held_rows, tokenizer, max_length) if held_rows else None
        n_examples += len(dataset)
        log.info(
            "fine-tuning %s (%s, %s)%s: %d rows, %d examples, %d trainable parameters",
            recipe, fcfg.mode if recipe == "finetuned" else "raft", fcfg.method,
            f", phase {i} of {len(splits)}" if len(splits) > 1 else "", len(train_rows), len(dataset), trainable,
        )
        state, phase_seconds = train_adapter(model, tokenizer, dataset, fcfg,
                                             fcfg.raft.epochs if recipe == "raft" else None, bf16=bf16,
                                             eval_dataset=eval_dataset)
        # one curve across the phases: each phase's steps continue the previous one's
        history += [{**e, "step": e["step"] + steps, "phase": i} if "step" in e else e for e in state.log_history]
        seconds, steps = seconds + phase_seconds, steps + state.global_step
    state.log_history = history
    model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    if full:   # the folder is a whole model: loadable (and servable) without the base's folder
        tokenizer.save_pretrained(out_dir)

    sanity = reading_probe(model, tokenizer, base_manifest, cfg)
    counts = {
        kind: sum(r["kind"] == kind and not r.get("replay") for r in rows) for kind in ("doc", "paraphrase", "qa", "raft")
    }
    counts["replay"] = sum(bool(r.get("replay")) for r in rows)
    loss = final_loss(state.log_history)
    validation = validation_summary(state, fcfg.validation, len(held))
    manifest = {
        "base_model": {
            "path": str(base_dir),
            "name": base_manifest.get("name"),
            "weights_sha256": base_manifest.get("weights_sha256"),
        },
        "recipe": recipe,
        "mode": fcfg.mode if recipe == "finetuned" else "raft",
        "method": str(fcfg.method),
        "phases": len(splits),
        "raft": OmegaConf.to_container(fcfg.raft) if recipe == "raft" else None,
        "contamination": overlap,
        "paraphrases": fcfg.paraphrases,
        "replay": fcfg.replay,
        "rows": counts,
        "n_examples": n_examples,
        "trainable_params": trainable,
        "total_params": count_parameters(model),
        "lora": None if full else {
            "r": fcfg.lora.r,
            "alpha": fcfg.lora.alpha,
            "dropout": fcfg.lora.dropout,
            "target_modules": list(fcfg.lora.target_modules),
        },
        "steps": steps,
        "final_loss": loss,
        "seed": fcfg.seed,
        "validation": validation,
    }
    metrics = {
        "train_seconds": round(seconds, 2),
        "train_loss": loss,
        "n_examples": n_examples,
        "trainable_params": trainable,
        "steps": steps,
        **{f"validation_{k}": v for k, v in validation.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
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


def validation_summary(state: Any, vcfg: Any, n_rows: int) -> dict:
    """What validation did: its rows, the best evaluation loss and its step (the checkpoint kept), and
    whether early stopping ended the run before its planned steps."""
    if not n_rows:
        return {"enabled": False}
    evals = [(e["step"], e["eval_loss"]) for e in state.log_history if "eval_loss" in e]
    best_step, best = min(evals, key=lambda p: (p[1], p[0])) if evals else (None, float("nan"))
    return {"enabled": True, "rows": n_rows, "fraction": float(vcfg.fraction), "evaluations": len(evals),
            "best_eval_loss": best, "best_step": best_step, "steps_planned": state.max_steps,
            "stopped_early": bool(state.global_step < state.max_steps)}


def write_curve(path: str | Path, log_history: list[dict], key: str = "loss") -> int:
    """A curve from the Trainer's log history, ``step,<key>``: the training loss (plots/finetune_loss/) or,
    with ``key="eval_loss"``, the validation loss (plots/finetune_validation/; a header only when off)."""
    points = [(e["step"], e[key]) for e in log_history if key in e and "step" in e]
    with atomic_file(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["step", key])
        writer.writerows((step, f"{loss:.6f}") for step, loss in points)
    return len(points)


def write_loss_curve(path: str | Path, log_history: list[dict]) -> int:
    return write_curve(path, log_history, "loss")


def write_validation_curve(path: str | Path, log_history: list[dict]) -> int:
    return write_curve(path, log_history, "eval_loss")


def export_merged(base_dir: str | Path, adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """The adapter folded into a copy of the base weights, saved as a plain model folder (safetensors, the
    base's tokenizer and manifest) that any server loads without adapter support. Written to a temporary
    folder and renamed into place."""
    from ragft.io import atomic_dir
    from ragft.model.loading import load_generator

    model, tokenizer, manifest = load_generator(base_dir, adapter_dir, dtype="float32", merge=True, device="cpu")
    with atomic_dir(out_dir) as out:
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.padding_side = "right"  # a server's default; ragft's in-process engine sets left itself
        tokenizer.save_pretrained(out)
    log.info("saved %s merged with %s to %s", base_dir, adapter_dir, out_dir)
    return Path(out_dir)
