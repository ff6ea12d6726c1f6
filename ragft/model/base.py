"""Build the base model folder for any source (scratch, hub, gguf), with its manifest and its metrics.

The model's name in the manifest is what was built or loaded: the scratch model's shape, the hub id and
revision (or the folder's name), the GGUF file's name; never a name the config gives.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ragft.model.manifest import base_manifest

log = logging.getLogger(__name__)


@dataclass
class BuiltModel:
    manifest: dict[str, Any]  # deterministic: goes into models/base/manifest.json
    metrics: dict[str, float]  # timings included: metrics/base_model.json and MLflow
    log_history: list[dict] = field(default_factory=list)


def build_base_model(cfg: Any, out_dir: str | Path, documents: list[dict]) -> BuiltModel:
    """Write the base model (safetensors + tokenizer) into ``out_dir``; return its manifest and metrics."""
    start = time.perf_counter()
    builders = {"scratch": lambda: _scratch(cfg, Path(out_dir), documents), "hub": lambda: _hub(cfg, Path(out_dir)),
                "gguf": lambda: _gguf(cfg, Path(out_dir))}
    built = builders[str(cfg.model.source)]()
    built.metrics["build_seconds"] = round(time.perf_counter() - start, 2)
    return built


def _scratch(cfg: Any, out_dir: Path, documents: list[dict]) -> BuiltModel:
    from ragft.model import probe, scratch
    from ragft.model.tokenizer import unknown_rate

    scfg = cfg.model.scratch
    model, tokenizer, result = scratch.build_scratch_model(cfg, out_dir, documents)
    sanity = probe.heldout_probe(model, tokenizer, scfg, cfg)
    manifest = base_manifest(
        source="scratch",
        name=f"scratch-gpt2-{scfg.n_layer}x{scfg.n_embd}",
        model=model,
        tokenizer=tokenizer,
        model_dir=out_dir,
        extra={
            "scratch": OmegaConf.to_container(scfg, resolve=True),
            "pretraining": {
                "steps": result.steps,
                "examples": result.n_examples,
                "final_loss": round(result.final_loss, 6),
                "curriculum": scratch.PRETRAIN_MIX,
                "people": scfg.pretrain_people,
            },
            "corpus_unknown_token_rate": unknown_rate(tokenizer, [d["text"] for d in documents]),
            "sanity_probe": {"people": scfg.heldout_people, **sanity},
        },
    )
    metrics = {
        "parameters": manifest["parameters"],
        "train_seconds": round(result.train_seconds, 2),
        "final_loss": result.final_loss,
        "steps": result.steps,
        **{f"probe_{k}": v for k, v in sanity.items() if k.endswith("_em")},
    }
    log.info("scratch model: %d parameters, probe %s", manifest["parameters"], sanity)
    return BuiltModel(manifest, metrics, result.log_history)


def _hub(cfg: Any, out_dir: Path) -> BuiltModel:
    from ragft.model import hub

    model, tokenizer, facts = hub.fetch_hub_model(cfg.model, out_dir)
    name = Path(facts["path"]).name if facts["revision"] is None else f"{facts['path']}@{facts['revision'][:12]}"
    manifest = base_manifest(source="hub", name=name, model=model, tokenizer=tokenizer, model_dir=out_dir, **facts)
    return BuiltModel(manifest, {"parameters": manifest["parameters"]})


def _gguf(cfg: Any, out_dir: Path) -> BuiltModel:
    from ragft.model import gguf

    source = gguf.locate(cfg.model)  # every check of the file, before the ~20 s of loading it
    model, tokenizer = gguf.convert(source, out_dir)
    facts = {"file": source.file.name, "sha256": gguf.sha256(source.file), "origin": source.origin, **source.metadata}
    manifest = base_manifest(source="gguf", name=source.name, model=model, tokenizer=tokenizer, model_dir=out_dir,
                             path=cfg.model.path, revision=source.origin.get("revision"), extra={"gguf": facts})
    log.info("base model %s (%s, %d parameters) from %s", source.name, manifest["architecture"],
             manifest["parameters"], source.origin)
    return BuiltModel(manifest, {"parameters": manifest["parameters"]})
