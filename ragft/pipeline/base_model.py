"""base_model: the generator every arm starts from, saved to models/base/ with its manifest.

model.source=scratch builds and pretrains a small GPT-2 here (a testbed, not a real LLM), on
synthbio people disjoint from the experiment's; model.source=hub copies a pinned hub model (or a
local directory) into models/base/. Timings and the sanity probe go to metrics/base_model.json and
MLflow, never into the deterministic manifest.
"""

from __future__ import annotations

import logging

from ragft import paths
from ragft.pipeline.runner import stage_main

log = logging.getLogger(__name__)


def base_model(cfg, run) -> None:
    from ragft.data.rows import read_documents
    from ragft.io import atomic_dir, write_json
    from ragft.model import base

    documents = read_documents(paths.DOCUMENTS) if cfg.model.source == "scratch" else []
    with atomic_dir(paths.BASE_MODEL) as out:
        built = base.build_base_model(cfg, out, documents)
        write_json(out / "manifest.json", built.manifest)
        run.write_record(out)

    for entry in built.log_history:
        if "loss" in entry:
            run.log_metrics({"pretrain_loss": entry["loss"]}, step=int(entry["step"]))
    write_json(paths.BASE_MODEL_METRICS, built.metrics)
    run.log_metrics(built.metrics)
    run.set_tags({"ragft.base_model": built.manifest["name"], "ragft.testbed": built.manifest["testbed"]})
    log.info("base model %s: %s", built.manifest["name"], built.metrics)


main = stage_main("base_model", base_model, torch=True)
