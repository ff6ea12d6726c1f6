"""generate_qa: with `dataset.qa=generate`, question/short-answer pairs written by a generator from the
documents in `dataset.path` (ragft/data/questions.py), filtered, into data/generated/qa.jsonl: the QA file
prepare then reads. With `dataset.qa=file` (or another source) it writes an empty folder and loads
nothing, so the DAG is the same for every corpus and a QA file costs no generation.

data/generated/ holds qa.jsonl (the kept pairs), candidates.jsonl (every pair, its raw reply and the filter
that dropped it: what to read when few survive) and manifest.json (the generator, its settings, the
count surviving each filter). Timings go to metrics/generate_qa.json and MLflow.
"""

from __future__ import annotations

import logging

from omegaconf import OmegaConf

from ragft import paths
from ragft.pipeline.runner import stage_main

log = logging.getLogger(__name__)


def generate_qa(cfg, run) -> None:
    from ragft.data import questions
    from ragft.data.sources import load_documents
    from ragft.io import DataError, atomic_dir, write_json, write_jsonl

    ds = cfg.dataset
    if ds.source != "local" or ds.qa != "generate":
        with atomic_dir(paths.GENERATED) as out:
            write_json(out / paths.GENERATED_MANIFEST.name, {"generated": False, "reason": f"dataset.qa={ds.qa}"})
            run.write_record(out)
        write_json(paths.GENERATE_QA_METRICS, {"generated": 0, "kept": 0})
        log.info("dataset.qa=%s: no questions to generate", ds.qa)
        return

    documents = load_documents(ds.path)   # every document check before the generator loads
    kept, candidates, manifest = questions.generate_questions(documents, ds.generate)
    survived = manifest["survived"]
    if not kept:
        raise DataError(
            f"{ds.path}: none of the {survived['generated']} generated question/answer pairs survived the filters "
            f"(survived each: {survived}); read {paths.GENERATED_CANDIDATES} for why. Fix: a stronger generator, "
            "e.g. a larger model behind an OpenAI-compatible server (-S dataset.generate.engine=openai "
            "-S dataset.generate.openai.base_url=... -S dataset.generate.openai.model=...), more requests "
            "(dataset.generate.per_document), or your own QA file (dataset.qa=file, dataset.qa_file)."
        )
    settings = OmegaConf.to_container(ds.generate, resolve=True)
    settings.pop("openai" if str(ds.generate.engine) == "local" else "model", None)
    seconds = manifest.pop("seconds")
    with atomic_dir(paths.GENERATED) as out:
        write_jsonl(out / paths.GENERATED_QA.name, kept)
        write_jsonl(out / paths.GENERATED_CANDIDATES.name, candidates)
        write_json(out / paths.GENERATED_MANIFEST.name, {"generated": True, **manifest, "settings": settings})
        run.write_record(out)
    metrics = {**survived, "survival_rate": manifest["survival_rate"],
               "documents_with_questions": manifest["documents_with_questions"], "seconds": seconds}
    write_json(paths.GENERATE_QA_METRICS, metrics)
    run.log_metrics({f"generate.{k}": v for k, v in metrics.items()})
    run.set_tags({"ragft.question_generator": manifest["generator"]["name"]})
    log.info("kept %d of %d generated pairs (%.0f%%) from %d of %d documents", len(kept), survived["generated"],
             100 * manifest["survival_rate"], manifest["documents_with_questions"], len(documents))


main = stage_main("generate_qa", generate_qa)  # torch only when generating: the generator seeds its own draws
