"""The data layer: load a corpus (synthbio | local | hf), check it, split its questions by document
(train / dev / eval), and write the prepare stage's files.

Formats written into the prepare directory (JSON lines, keys sorted, rows sorted):
- documents.jsonl    {"doc_id", "title", "text"}                         sorted by doc_id
- paraphrases.jsonl  {"doc_id", "paraphrase": i, "text"}                  synthbio only, else empty
- qa_train.jsonl     {"qid", "question", "answer", "doc_ids", "attribute"} questions about train documents
- qa_eval.jsonl      the same, about eval documents (disjoint from train by document)
- qa_dev.jsonl       the same, about dev documents (dataset.dev_fraction; empty when 0)
- qa_absent.jsonl    the same, about no document (synthbio's absent people, answer "unknown"; empty when none),
                     with "cluster": the person asked about (what their intervals resample)
- manifest.json      source, name, counts, eval doc ids, sha256 of each file (no timestamps); for PDFs with
                     page furniture (running titles, print dates, page numbers), the lines removed per document
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ragft import paths
from ragft.data.sources import LOADERS, Corpus
from ragft.data.split import check_disjoint, split_by_document, split_dev
from ragft.io import file_sha256, write_json, write_jsonl

log = logging.getLogger(__name__)

__all__ = ["Corpus", "load_corpus", "prepare"]


def load_corpus(ds: Any) -> Corpus:
    """Load and check the corpus that ``ds`` (the `dataset` config group) describes."""
    corpus = LOADERS[ds.source](ds)
    if ds.source != "synthbio":   # the synthbio knobs, e.g. from experiment=tiny on your own documents
        used = [k for k, default in (("derived", []), ("absent_people", 0), ("celebrity_fraction", 1.0),
                                     ("permute", True), ("fullname", True)) if ds.get(k, default) != default]
        if used:
            log.warning("dataset.%s: synthbio knobs, ignored for source %r", ", dataset.".join(used), ds.source)
    if ds.paraphrases and not corpus.paraphrases:
        log.warning(
            "dataset.paraphrases=%d is ignored: source %r has no paraphrase generator", ds.paraphrases, ds.source
        )
    return corpus


def prepare(ds: Any, out_dir: str | Path) -> dict:
    """Load, check and split the corpus, write the prepare files into ``out_dir``; return the manifest.

    Everything is read and checked before the first file is written.
    """
    out_dir = Path(out_dir)
    corpus = load_corpus(ds)
    origin = f"dataset {ds.name!r}"
    if ds.source == "local":   # the QA file the questions came from: the user's, or the generated one
        origin = str(paths.GENERATED_QA) if getattr(ds, "qa", "file") == "generate" else ds.qa_file
    train, evaluation, eval_docs = split_by_document(corpus.qa, ds.eval_fraction, ds.seed, origin)
    qa_docs = {d for row in corpus.qa for d in row["doc_ids"]}
    train, dev, dev_docs = split_dev(train, float(ds.dev_fraction), len(qa_docs), ds.seed, origin)
    names = {k: getattr(paths, k).name
             for k in ("DOCUMENTS", "PARAPHRASES", "QA_TRAIN", "QA_DEV", "QA_EVAL", "QA_ABSENT")}
    check_disjoint(train, evaluation, names["QA_TRAIN"], names["QA_EVAL"])
    check_disjoint(train, dev, names["QA_TRAIN"], names["QA_DEV"])
    check_disjoint(dev, evaluation, names["QA_DEV"], names["QA_EVAL"])
    absent = sorted(corpus.unanswerable, key=lambda r: r["qid"])
    for rows, name in ((train, "QA_TRAIN"), (dev, "QA_DEV"), (evaluation, "QA_EVAL")):
        check_disjoint(rows, absent, names[name], names["QA_ABSENT"])

    paraphrases = sorted(corpus.paraphrases, key=lambda r: (r["doc_id"], r["paraphrase"]))
    write_jsonl(out_dir / names["DOCUMENTS"], corpus.documents)
    write_jsonl(out_dir / names["PARAPHRASES"], paraphrases)
    write_jsonl(out_dir / names["QA_TRAIN"], train)
    write_jsonl(out_dir / names["QA_DEV"], dev)
    write_jsonl(out_dir / names["QA_EVAL"], evaluation)
    write_jsonl(out_dir / names["QA_ABSENT"], absent)

    manifest = {
        "source": ds.source,
        "name": ds.name,
        "counts": {
            "documents": len(corpus.documents),
            "paraphrases": len(paraphrases),
            "questions": len(corpus.qa),
            "qa_train": len(train),
            "qa_dev": len(dev),
            "qa_eval": len(evaluation),
            "qa_absent": len(absent),
            "train_documents": len(qa_docs) - len(eval_docs) - len(dev_docs),
            "dev_documents": len(dev_docs),
            "eval_documents": len(eval_docs),
        },
        "eval_doc_ids": eval_docs,
        "dev_doc_ids": dev_docs,
        "sha256": {name: file_sha256(out_dir / name) for name in sorted(names.values())},
    }
    if corpus.furniture:   # PDFs' page furniture removed at ingestion (ragft/data/pdf.py), per document
        manifest["pdf_furniture"] = {
            doc_id: {"lines_removed": len(lines), "distinct": sorted(set(lines))[:10]}
            for doc_id, lines in sorted(corpus.furniture.items())
        }
    write_json(out_dir / paths.PREPARED_MANIFEST.name, manifest)
    log.info("prepared %s: %s", ds.name, manifest["counts"])
    return manifest
