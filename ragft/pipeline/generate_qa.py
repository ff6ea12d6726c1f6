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
from ragft.model.gguf import installed as gguf_installed
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
    settings = OmegaConf.to_container(ds.generate, resolve=True)
    settings.pop("openai" if str(ds.generate.engine) == "local" else "model", None)
    seconds = manifest.pop("seconds")
    shortfall = too_few(kept, manifest, ds)
    with atomic_dir(paths.GENERATED) as out:   # written whole even when too few survive: candidates.jsonl says why
        write_jsonl(out / paths.GENERATED_QA.name, kept)
        write_jsonl(out / paths.GENERATED_CANDIDATES.name, candidates)
        write_json(out / paths.GENERATED_MANIFEST.name,
                   {"generated": True, **manifest, "settings": settings, "enough": shortfall is None})
        run.write_record(out)
    metrics = {**survived, "survival_rate": manifest["survival_rate"],
               "documents_with_questions": manifest["documents_with_questions"], "seconds": seconds}
    write_json(paths.GENERATE_QA_METRICS, metrics)
    run.log_metrics({f"generate.{k}": v for k, v in metrics.items()})
    run.set_tags({"ragft.question_generator": manifest["generator"]["name"]})
    log.info("kept %d of %d generated pairs (%.0f%%) from %d of %d documents; generator %s", len(kept),
             survived["generated"], 100 * manifest["survival_rate"], manifest["documents_with_questions"],
             len(documents), manifest["generator"]["name"])
    if shortfall:
        raise DataError(shortfall)


def too_few(kept: list[dict], manifest: dict, ds) -> str | None:
    """Why the kept pairs cannot make an experiment, with the fixes as exact overrides (None: enough).
    Too few is at least ``dataset.generate.min_questions`` pairs about at least 2 documents (a split by
    document needs both a training and an eval document)."""
    g = ds.generate
    need = int(g.min_questions)
    covered, total = manifest["documents_with_questions"], manifest["documents"]
    if len(kept) >= need and covered >= 2:
        return None
    survived = ", ".join(f"{k} {v}" for k, v in manifest["survived"].items())
    writer = manifest["generator"]["name"]
    best = str(g.writers[0].path) if g.writers else None   # the best offline writer (conf/dataset/local.yaml)
    fixes = []
    if str(g.engine) == "local" and best and best != str(g.model.path):
        fixes.append(f"the larger offline question writer: -S dataset.generate.model.path={best}" if gguf_installed(best)
                     else f"the larger offline question writer: `make models` (it installs {best}; generation "
                          "then uses it by default)")
    fixes += [
        "a served generator (any OpenAI-compatible server): -S dataset.generate.engine=openai "
        "-S dataset.generate.openai.base_url=http://127.0.0.1:8000/v1 -S dataset.generate.openai.model=<served name>",
        f"more requests per document: -S dataset.generate.per_document={2 * int(g.per_document)}",
        "your own QA file: `ragft init <your documents folder> --qa <file.jsonl> --force`, then "
        "`dvc exp run -S dataset=local` (dataset.qa=file)",
    ]
    return (
        f"{paths.GENERATED_CANDIDATES}: too few generated questions for an experiment: {len(kept)} kept (need "
        f"{need}: dataset.generate.min_questions) about {covered} of {total} documents (need 2 or more) from "
        f"{manifest['survived']['generated']} requests to {writer}. Survived each filter in turn: {survived}. "
        f"Read {paths.GENERATED_CANDIDATES} (every reply and the filter that dropped it). Fix: "
        + "; or ".join(fixes) + "."
    )


main = stage_main("generate_qa", generate_qa)  # torch only when generating: the generator seeds its own draws
