"""base_model@<base>: a base model the candidates start from, saved to models/<base>/ with its manifest.

    python stages/base_model.py +arm.model=<base>

One stage per distinct base of the candidates that run (params.yaml's dag.bases): ``base`` is the `model`
group's, any other is declared in `bases`. model.source=scratch builds and pretrains a small GPT-2 here (a testbed, not a real LLM), on
synthbio people disjoint from the experiment's; model.source=hub copies a pinned hub model (or a
local directory) into models/<base>/; model.source=gguf converts a GGUF file. Timings and the sanity probe go to
metrics/base_model/<base>.json and MLflow, never into the deterministic manifest.
"""

from __future__ import annotations

import logging

from ragft import paths
from ragft.pipeline.runner import stage_main

log = logging.getLogger(__name__)


def base_model(cfg, run) -> None:
    from ragft.config import for_base
    from ragft.data.rows import read_documents
    from ragft.io import atomic_dir, write_json
    from ragft.model import base

    name = str(cfg.arm.model)
    cfg = for_base(cfg, name)
    documents = read_documents(paths.DOCUMENTS) if cfg.model.source == "scratch" else []
    with atomic_dir(paths.base_dir(name)) as out:
        built = base.build_base_model(cfg, out, documents)
        write_json(out / "manifest.json", built.manifest)
        run.write_record(out)

    for entry in built.log_history:
        if "loss" in entry:
            run.log_metrics({"pretrain_loss": entry["loss"]}, step=int(entry["step"]))
    write_json(paths.base_model_metrics(name), built.metrics)
    run.log_metrics(built.metrics)
    run.set_tags({"ragft.base": name, "ragft.base_model": built.manifest["name"], "ragft.testbed": built.manifest["testbed"]})
    log.info("base model %s (%s): %s", name, built.manifest["name"], built.metrics)


main = stage_main("base_model", base_model, arm={"model": lambda cfg: cfg.dag.bases}, torch=True)
