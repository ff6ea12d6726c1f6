"""infer@<model>-<context>: answer the eval questions with one arm of the experiment.

    python stages/infer.py +arm.model=<base|finetuned|raft> +arm.context=<none|retrieved|oracle|oracle_distractors>

Writes data/predictions/<model>-<context>/: predictions.jsonl (deterministic: byte-identical on a
rerun), arm.json (the arm, its generator, the decoding) and timings.json (wall clock, varies).
"""

from __future__ import annotations

import logging

from ragft import paths
from ragft.arms import CONTEXTS, MODELS, Arm
from ragft.pipeline.runner import stage_main

log = logging.getLogger(__name__)


def infer(cfg, run) -> None:
    from omegaconf import OmegaConf

    from ragft.io import atomic_dir, write_json, write_jsonl
    from ragft.model.generation import answer_questions, max_positions, read_contexts
    from ragft.model.loading import load_generator

    arm = Arm(str(cfg.arm.model), str(cfg.arm.context))
    run.set_tags({"mlflow.runName": f"infer@{arm.name}", "ragft.arm": arm.name})

    rows = read_contexts(paths.context_file(arm.context))
    adapter = paths.model_dir(arm.model) if arm.is_tuned else None
    model, tokenizer, manifest = load_generator(paths.BASE_MODEL, adapter, dtype=cfg.model.dtype,
                                                merge=cfg.inference.merge_adapter)
    log.info("arm %s: %d questions, generator %s%s", arm.name, len(rows), manifest.get("name", "?"),
             " + LoRA" if adapter else "")

    predictions, timings = answer_questions(rows, model, tokenizer, cfg)
    with atomic_dir(paths.predictions_dir(arm.model, arm.context)) as tmp:
        write_jsonl(tmp / paths.PREDICTIONS_FILE, predictions)
        write_json(
            tmp / paths.ARM_INFO,
            {
                "arm": arm.name,
                "model": arm.model,
                "context": arm.context,
                "base_model": manifest,
                "max_positions": max_positions(model, tokenizer),
                "decoding": OmegaConf.to_container(cfg.inference),
                "prompt": OmegaConf.to_container(cfg.prompt),
                "questions": len(predictions),
            },
        )
        write_json(tmp / paths.TIMINGS, timings)
        run.write_record(tmp)
    run.log_metrics({k: v for k, v in timings.items() if isinstance(v, (int, float))})
    log.info("arm %s: %.1f questions/s, %.3f s/question, %.1f prompt tokens on average", arm.name,
             timings["questions_per_second"], timings["mean_latency_seconds"], timings["mean_prompt_tokens"])


main = stage_main("infer", infer, arm={"model": MODELS, "context": CONTEXTS})
