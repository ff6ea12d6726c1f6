"""infer@<model>-<context>: answer the eval questions with one arm of the experiment.

    python stages/infer.py +arm.model=<base|finetuned|raft> +arm.context=<none|retrieved|oracle|oracle_distractors>

Writes data/predictions/<model>-<context>/: predictions.jsonl (deterministic: byte-identical on a
rerun), arm.json (the arm, its generator, the decoding) and timings.json (wall clock, varies).
"""

from __future__ import annotations

import logging

from omegaconf import OmegaConf

from ragft import paths
from ragft.config import KNOWN_CONTEXTS, KNOWN_MODELS, ConfigError
from ragft.stage import stage

log = logging.getLogger("ragft.stages.infer")


def _inputs(cfg) -> list[str]:
    if cfg.arm is None:
        return []
    extra = [paths.model_dir(cfg.arm.model)] if cfg.arm.model != "base" else []
    return [str(p) for p in [paths.BASE_MODEL, *extra, paths.context_file(cfg.arm.context)]]


@stage("infer", inputs=_inputs)
def main(cfg, run) -> None:
    from ragft.generation import answer_questions, max_positions, read_contexts
    from ragft.io import atomic_dir, write_json, write_jsonl
    from ragft.model.loading import load_generator

    arm = cfg.arm
    if arm is None or arm.model not in KNOWN_MODELS or arm.context not in KNOWN_CONTEXTS:
        raise ConfigError(
            f"infer needs one arm: +arm.model=<{'|'.join(sorted(KNOWN_MODELS))}> "
            f"+arm.context=<{'|'.join(sorted(KNOWN_CONTEXTS))}> (got {OmegaConf.to_container(arm) if arm else None})"
        )
    name = f"{arm.model}-{arm.context}"
    run.set_tags({"mlflow.runName": f"infer@{name}", "ragft.arm": name})

    rows = read_contexts(paths.context_file(arm.context))
    adapter = paths.model_dir(arm.model) if arm.model != "base" else None
    model, tokenizer, manifest = load_generator(paths.BASE_MODEL, adapter)
    log.info(
        "arm %s: %d questions, generator %s%s", name, len(rows), manifest.get("name", "?"), " + LoRA" if adapter else ""
    )

    predictions, timings = answer_questions(rows, model, tokenizer, cfg)
    out = paths.predictions_dir(arm.model, arm.context)
    with atomic_dir(out) as tmp:
        write_jsonl(tmp / paths.PREDICTIONS_FILE, predictions)
        write_json(
            tmp / paths.ARM_INFO,
            {
                "arm": name,
                "model": arm.model,
                "context": arm.context,
                "base_model": manifest,
                "max_positions": max_positions(model, tokenizer),
                "decoding": OmegaConf.to_container(cfg.inference),
                "questions": len(predictions),
            },
        )
        write_json(tmp / paths.TIMINGS, timings)
        run.write_record(tmp)
    run.log_metrics({k: v for k, v in timings.items() if isinstance(v, (int, float))})
    log.info(
        "arm %s: %.1f questions/s, %.3f s/question, %.1f prompt tokens on average",
        name,
        timings["questions_per_second"],
        timings["mean_latency_seconds"],
        timings["mean_prompt_tokens"],
    )


if __name__ == "__main__":
    main()
