"""infer@<name>: answer the eval questions with one candidate model in every context arm (arms.contexts).

    python stages/infer.py +arm.model=<name>

The candidate (`candidates.<name>`) is its base model (models/<base>) untuned, with its fine-tuned folder
(models/<name>, a recipe trained here), with an adapter trained elsewhere (checked against the base: its named
base, its target modules and tensor shapes, before any generation), or a model an OpenAI-compatible endpoint serves.

The model is loaded once and answers each context in turn (loading and starting a process cost more
than most arms' generation), then continues the storage probe's document prefixes (eval.storage_probe:
data/predictions/<model>/storage_probe.jsonl). Writes data/predictions/<model>/<context>/: predictions.jsonl
(deterministic: byte-identical on a rerun), arm.json (the arm, its generator, the decoding) and
timings.json (wall clock, varies). DVC reruns the stage when any of its contexts changes; the contexts
whose prompts did not change come from the answer cache (ragft.model.answer_cache), so such a rerun
costs the model's load and the changed contexts' generation.

inference.engine picks who generates: hf (transformers, in this process) or openai (an OpenAI-compatible
server, ragft.serving.client: the same fitted prompts and decoding, each answer cached as it arrives).
"""

from __future__ import annotations

import logging

from ragft import paths
from ragft.arms import Arm
from ragft.pipeline.runner import stage_main

log = logging.getLogger(__name__)


def model_identity(manifest: dict, adapter, cfg, model) -> dict:
    """What the answers depend on besides the prompts and the decoding (the answer cache's key)."""
    from ragft.model.manifest import weights_hash

    return {"base_weights": manifest.get("weights_sha256"), "adapter": weights_hash(adapter) if adapter else None,
            "merged": bool(adapter and cfg.inference.merge_adapter), "dtype": str(next(model.parameters()).dtype),
            "device": next(model.parameters()).device.type}


class InProcess:
    """inference.engine=hf: the model loaded here once, answering every context in batches."""

    def __init__(self, cfg, model_name: str, base_dir, adapter, check=None):
        from ragft.model.loading import load_generator

        self.cfg = cfg
        self.model, self.tokenizer, self.manifest = load_generator(
            base_dir, adapter, dtype=cfg.model.dtype, merge=cfg.inference.merge_adapter, check_adapter=check)
        self.identity = model_identity(self.manifest, adapter, cfg, self.model)
        self.generator = {"engine": "hf"}

    def max_positions(self) -> int:
        from ragft.model.generation import max_positions

        return max_positions(self.model, self.tokenizer)

    def answer(self, rows, cache):
        from ragft.model.generation import answer_questions

        return answer_questions(rows, self.model, self.tokenizer, self.cfg, cache, self.identity)

    def complete(self, rows):
        from ragft.model.probe import complete

        return complete(self.model, self.tokenizer, rows, int(self.cfg.inference.batch_size), self.max_positions())


class Served:
    """inference.engine=openai: an OpenAI-compatible server answers; only the tokenizer is loaded here (the
    prompts are fitted to the model exactly as in process). The server is checked before any work."""

    def __init__(self, cfg, model_name: str, base_dir, adapter, check=None):
        from types import SimpleNamespace

        from transformers import AutoConfig

        from ragft.io import read_json
        from ragft.model.loading import load_tokenizer
        from ragft.model.manifest import weights_hash
        from ragft.serving import client

        self.cfg = cfg
        ocfg = cfg.inference.openai
        declared = (cfg.candidates[model_name] or {}).get("served")
        self.served = str(declared) if declared else client.served_model(ocfg, model_name)
        server_entry = client.probe(ocfg, self.served)
        self.tokenizer = load_tokenizer(base_dir)
        self.manifest = read_json(base_dir / "manifest.json")
        self.model = SimpleNamespace(config=AutoConfig.from_pretrained(base_dir))
        # the cache key: the served name and the weights the arm stands for (trained here); not the server's
        # listing, which changes once the server has loaded the model (it goes to arm.json)
        self.identity = {"engine": "openai", "served_model": self.served,
                         "base_weights": self.manifest.get("weights_sha256"),
                         "adapter": weights_hash(adapter) if adapter else None}
        self.generator = {"engine": "openai", "base_url": client.public_url(str(ocfg.base_url)),
                          "served_model": self.served, "server_model": server_entry}

    def max_positions(self) -> int:
        from ragft.model.generation import max_positions

        return max_positions(self.model, self.tokenizer)

    def answer(self, rows, cache):
        from ragft.serving.client import answer_served

        limit = self.max_positions() - self.cfg.inference.max_new_tokens
        return answer_served(rows, self.tokenizer, limit, self.cfg, self.served, self.identity, cache)


def fit_long_context(rows: list[dict], cfg, base_dir, model_name: str) -> list[dict]:
    """The long_context rows fitted to the base model's window (ragft.model.long_context), from its tokenizer and
    config alone: a corpus that cannot fit is refused before the weights load."""
    from types import SimpleNamespace

    from transformers import AutoConfig

    from ragft.io import DataError
    from ragft.model import long_context
    from ragft.model.generation import max_positions
    from ragft.model.loading import load_tokenizer

    tokenizer = load_tokenizer(base_dir)
    where = f"infer@{model_name} ({base_dir})"
    try:
        window = max_positions(SimpleNamespace(config=AutoConfig.from_pretrained(base_dir)), tokenizer)
    except DataError:
        raise DataError(f"{base_dir}/config.json: the model declares no window (max_position_embeddings), so the "
                        f"long_context arm cannot know whether the corpus fits. Fix: drop long_context from "
                        f"arms.contexts for candidate {model_name!r}, or use a model that declares its window.") from None
    return long_context.fit(rows, cfg, tokenizer, window, where)


def infer(cfg, run) -> None:
    from omegaconf import OmegaConf

    from ragft.arms import Design
    from ragft.config import ConfigError, for_candidate
    from ragft.io import DataError, atomic_dir, read_json, read_jsonl, write_json, write_jsonl
    from ragft.model.answer_cache import AnswerCache, default_dir
    from ragft.model.generation import read_contexts
    from ragft.retrieval import robustness

    model_name = str(cfg.arm.model)
    candidate = Design.from_config(cfg).get(model_name)
    cfg = for_candidate(cfg, model_name)
    base_dir = paths.base_dir(candidate.base)
    arms = [Arm(model_name, str(c)) for c in cfg.arms.contexts]
    contexts = {a.context: read_contexts(paths.context_file(a.context)) for a in arms}  # every input, checked first
    sweep = {}                               # the robustness conditions this model answers too
    if model_name in robustness.models(cfg):
        listed = read_json(paths.ROBUSTNESS_CONTEXTS / "conditions.json")
        if not listed:
            raise DataError(f"{paths.ROBUSTNESS_CONTEXTS / 'conditions.json'}: no conditions, but robustness.enabled "
                            "is true. Fix: `dvc repro contexts` (it writes them when robustness is enabled).")
        sweep = {c["name"]: read_contexts(paths.robustness_context(c["name"])) for c in listed}
    probe = read_jsonl(paths.STORAGE_PROBE) if paths.STORAGE_PROBE.exists() else []
    if probe and str(cfg.inference.engine) == "openai":
        raise ConfigError("params.yaml: field 'eval.storage_probe' is true, but the storage probe continues document "
                          "text in process and inference.engine=openai answers through a server. Fix: set "
                          "eval.storage_probe=false, or inference.engine=hf.")
    if "long_context" in contexts:   # the whole corpus fits the window, or a budget, or a refusal: before any load
        contexts["long_context"] = fit_long_context(contexts["long_context"], cfg, base_dir, model_name)
    adapter = candidate.weights if candidate.is_tuned else None
    check = None
    if candidate.kind == "adapter":  # trained elsewhere: it must fit the base before anything is generated
        from functools import partial

        from ragft.model.adapters import check_shapes

        check = partial(check_shapes, field_name=f"candidates.{model_name}.adapter")
    served = candidate.kind == "served" or str(cfg.inference.engine) == "openai"
    engine = (Served if served else InProcess)(cfg, model_name, base_dir, adapter, check)
    manifest = engine.manifest
    cache = AnswerCache(default_dir()) if cfg.inference.cache else None
    log.info("infer@%s: %s%s, %d contexts, engine %s", model_name, manifest.get("name", "?"),
             f" with {adapter}" if adapter else "", len(arms), engine.generator["engine"])
    run.set_tags({"ragft.model": model_name, "ragft.candidate": candidate.kind, "ragft.base": candidate.base,
                  "ragft.engine": engine.generator["engine"]})
    decoding, prompt = OmegaConf.to_container(cfg.inference), OmegaConf.to_container(cfg.prompt)
    with atomic_dir(paths.model_predictions(model_name)) as out:
        for arm in arms:
            predictions, timings = engine.answer(contexts[arm.context], cache)
            arm_dir = out / arm.context
            arm_dir.mkdir()
            write_jsonl(arm_dir / paths.PREDICTIONS_FILE, predictions)
            write_json(arm_dir / paths.ARM_INFO, {
                "arm": arm.name, "model": arm.model, "context": arm.context, "base_model": manifest,
                "candidate": candidate.plain(),
                "generator": engine.generator, "max_positions": engine.max_positions(), "decoding": decoding,
                "prompt": prompt, "questions": len(predictions),
            })
            write_json(arm_dir / paths.TIMINGS, timings)
            run.log_metrics({f"{arm.context}.{k}": v for k, v in timings.items() if isinstance(v, (int, float))})
            log.info("arm %s: %.1f questions/s, %.3f s/question, %.1f prompt tokens on average%s", arm.name,
                     timings["questions_per_second"], timings["mean_latency_seconds"], timings["mean_prompt_tokens"],
                     " (from the answer cache)" if timings["from_cache"] else "")
        for condition, rows in sweep.items():
            predictions, timings = engine.answer(rows, cache)
            cond_dir = out / "robustness" / condition
            cond_dir.mkdir(parents=True)
            write_jsonl(cond_dir / paths.PREDICTIONS_FILE, predictions)
            write_json(cond_dir / paths.TIMINGS, timings)
            log.info("robustness %s/%s: %.1f questions/s%s", model_name, condition, timings["questions_per_second"],
                     " (from the answer cache)" if timings["from_cache"] else "")
        if probe:
            completions = engine.complete(probe)
            write_jsonl(out / paths.storage_completions(model_name).name, completions)
            log.info("storage probe: %s continued %d document prefixes", model_name, len(completions))
        run.write_record(out)


main = stage_main("infer", infer, arm={"model": lambda cfg: cfg.dag.infer}, torch=True)
