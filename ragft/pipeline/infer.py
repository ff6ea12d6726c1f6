"""infer@<model>: answer the eval questions with one model in every context arm (arms.contexts).

    python stages/infer.py +arm.model=<base|finetuned|raft>

The model is loaded once and answers each context in turn (loading and starting a process cost more
than most arms' generation). Writes data/predictions/<model>/<context>/: predictions.jsonl
(deterministic: byte-identical on a rerun), arm.json (the arm, its generator, the decoding) and
timings.json (wall clock, varies). DVC reruns the stage when any of its contexts changes; the contexts
whose prompts did not change come from the answer cache (ragft.model.answer_cache), so such a rerun
costs the model's load and the changed contexts' generation.
"""

from __future__ import annotations

import logging

from ragft import paths
from ragft.arms import MODELS, Arm
from ragft.pipeline.runner import stage_main

log = logging.getLogger(__name__)


def model_identity(manifest: dict, adapter, cfg, model) -> dict:
    """What the answers depend on besides the prompts and the decoding (the answer cache's key)."""
    from ragft.model.manifest import weights_hash

    return {"base_weights": manifest.get("weights_sha256"), "adapter": weights_hash(adapter) if adapter else None,
            "merged": bool(adapter and cfg.inference.merge_adapter), "dtype": str(next(model.parameters()).dtype),
            "device": next(model.parameters()).device.type}


def infer(cfg, run) -> None:
    from omegaconf import OmegaConf

    from ragft.io import atomic_dir, write_json, write_jsonl
    from ragft.model.answer_cache import AnswerCache, default_dir
    from ragft.model.generation import answer_questions, max_positions, read_contexts
    from ragft.model.loading import load_generator

    model_name = str(cfg.arm.model)
    arms = [Arm(model_name, str(c)) for c in cfg.arms.contexts]
    contexts = {a.context: read_contexts(paths.context_file(a.context)) for a in arms}  # every input, checked first
    adapter = paths.model_dir(model_name) if arms[0].is_tuned else None
    model, tokenizer, manifest = load_generator(paths.BASE_MODEL, adapter, dtype=cfg.model.dtype,
                                                merge=cfg.inference.merge_adapter)
    identity = model_identity(manifest, adapter, cfg, model)
    cache = AnswerCache(default_dir()) if cfg.inference.cache else None
    log.info("infer@%s: %s%s, %d contexts", model_name, manifest.get("name", "?"), " + LoRA" if adapter else "",
             len(arms))
    run.set_tags({"ragft.model": model_name})
    decoding, prompt = OmegaConf.to_container(cfg.inference), OmegaConf.to_container(cfg.prompt)
    with atomic_dir(paths.model_predictions(model_name)) as out:
        for arm in arms:
            predictions, timings = answer_questions(contexts[arm.context], model, tokenizer, cfg, cache, identity)
            arm_dir = out / arm.context
            arm_dir.mkdir()
            write_jsonl(arm_dir / paths.PREDICTIONS_FILE, predictions)
            write_json(arm_dir / paths.ARM_INFO, {
                "arm": arm.name, "model": arm.model, "context": arm.context, "base_model": manifest,
                "max_positions": max_positions(model, tokenizer), "decoding": decoding, "prompt": prompt,
                "questions": len(predictions),
            })
            write_json(arm_dir / paths.TIMINGS, timings)
            run.log_metrics({f"{arm.context}.{k}": v for k, v in timings.items() if isinstance(v, (int, float))})
            log.info("arm %s: %.1f questions/s, %.3f s/question, %.1f prompt tokens on average%s", arm.name,
                     timings["questions_per_second"], timings["mean_latency_seconds"], timings["mean_prompt_tokens"],
                     " (from the answer cache)" if timings["from_cache"] else "")
        run.write_record(out)


main = stage_main("infer", infer, arm={"model": MODELS}, torch=True)
