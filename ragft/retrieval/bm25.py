"""A BM25 index over the chunks' text (bm25s), exact and deterministic, with a manifest.

bm25s precomputes every (term, chunk) score into a sparse matrix, so a query's scores are one sparse
column sum: exact BM25, no approximation. Ranking sorts those scores with ties broken by corpus order,
so a rerun ranks identically. Arrays are saved as .npy without pickle; the vocabulary and parameters
as JSON. The chunks are indexed with their embedder passage prefix left out: BM25 sees the text.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ragft.config import ConfigError
from ragft.io import DataError, file_sha256, read_json, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
IDS = "ids.json"
REBUILD = "Fix: rebuild the index with `dvc repro index`"


def settings(bcfg: Any) -> dict[str, Any]:
    """The BM25 parameters as plain values: the manifest's record and the query side's check."""
    return {"variant": str(bcfg.variant), "k1": float(bcfg.k1), "b": float(bcfg.b), "delta": float(bcfg.delta),
            "lower": bool(bcfg.lower), "token_pattern": str(bcfg.token_pattern), "stopwords": str(bcfg.stopwords)}


def _stopwords(name: str) -> Any:
    return [] if name in ("none", "") else name


def tokenize(texts: list[str], bcfg: Any) -> list[list[str]]:
    """Texts → token lists with the configured pattern, case folding and stop words (bm25s' tokenizer)."""
    import bm25s

    try:
        return bm25s.tokenize(list(texts), lower=bool(bcfg.lower), token_pattern=str(bcfg.token_pattern),
                              stopwords=_stopwords(str(bcfg.stopwords)), return_ids=False, show_progress=False)
    except ValueError as err:
        raise ConfigError(f"params.yaml: field 'retriever.bm25.stopwords' is {bcfg.stopwords!r}: {err}. Fix: use a "
                          "bm25s stop-word list name (en, de, fr, es, it, pt, nl, ...) or none.") from None


def build(texts: list[str], bcfg: Any) -> Any:
    """The bm25s index over ``texts``; refuses a corpus whose tokenisation leaves no term at all."""
    import bm25s

    tokens = tokenize(texts, bcfg)
    if not any(tokens):
        raise DataError(
            f"data/chunks/chunks.jsonl: BM25 found no term in any of the {len(texts)} chunks with "
            f"retriever.bm25.token_pattern={bcfg.token_pattern!r} and stopwords={bcfg.stopwords!r}. Fix: check the "
            "chunks have text, or loosen the pattern / set retriever.bm25.stopwords=none."
        )
    empty = sum(not t for t in tokens)
    if empty:
        log.warning("BM25: %d of %d chunks have no term after tokenisation (they score 0)", empty, len(texts))
    retriever = bm25s.BM25(k1=float(bcfg.k1), b=float(bcfg.b), delta=float(bcfg.delta), method=str(bcfg.variant))
    retriever.index(tokens, show_progress=False)
    return retriever


def build_and_save(out_dir: str | Path, texts: list[str], ids: list[str], bcfg: Any) -> tuple[dict, float]:
    """Build the index into ``out_dir`` (bm25s' files, ids.json, manifest.json); return (manifest, seconds)."""
    t0 = time.perf_counter()
    retriever = build(texts, bcfg)
    seconds = time.perf_counter() - t0
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    retriever.save(str(out_dir), allow_pickle=False, show_progress=False)
    write_json(out_dir / IDS, ids)
    files = sorted(p for p in out_dir.iterdir() if p.name != MANIFEST)
    manifest = {
        "method": "bm25", "library": "bm25s", **settings(bcfg),
        "n_chunks": len(ids), "vocabulary": len(retriever.vocab_dict),
        "files_sha256": {p.name: file_sha256(p) for p in files},
        "index_bytes": sum(p.stat().st_size for p in files),
    }
    write_json(out_dir / MANIFEST, manifest)
    log.info("built BM25 (%s) over %d chunks, %d terms in %.2fs", bcfg.variant, len(ids), manifest["vocabulary"], seconds)
    return manifest, seconds


class Bm25Index:
    """A saved BM25 index, checked against its manifest, answering ``rank`` queries."""

    def __init__(self, index_dir: str | Path, bcfg: Any):
        import bm25s

        index_dir = Path(index_dir)
        self.manifest = read_json(index_dir / MANIFEST)
        want = settings(bcfg)
        for field, value in want.items():
            if self.manifest.get(field) != value:
                raise DataError(f"{index_dir / MANIFEST}: field '{field}' is {self.manifest.get(field)!r} but "
                                f"retriever.bm25.{field} is {value!r}. {REBUILD}.")
        for name, digest in self.manifest.get("files_sha256", {}).items():
            path = index_dir / name
            if not path.exists() or file_sha256(path) != digest:
                raise DataError(f"{path}: missing or not the file {index_dir / MANIFEST} records (damaged or "
                                f"replaced). {REBUILD}.")
        self.cfg = bcfg
        self.ids = read_json(index_dir / IDS)
        self.retriever = bm25s.BM25.load(str(index_dir), allow_pickle=False, show_progress=False, verbosity=0)
        if self.retriever.scores["num_docs"] != len(self.ids):
            raise DataError(f"{index_dir}: {self.retriever.scores['num_docs']} indexed chunks but {len(self.ids)} "
                            f"ids. {REBUILD}.")

    def scores(self, query: str) -> np.ndarray:
        """Exact BM25 score of every chunk for ``query`` (0 where it shares no term)."""
        tokens = tokenize([query], self.cfg)[0]
        return self.retriever.get_scores_from_ids(self.retriever.get_tokens_ids(tokens)).astype(np.float64)

    def rank(self, queries: list[str], depth: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per query: the top-``depth`` row numbers (score descending, ties in corpus order) and their scores."""
        rows, scores = [], []
        n_blank = 0
        for q in queries:
            s = self.scores(q)
            n_blank += not s.any()
            order = np.lexsort((np.arange(len(s)), -s))[:depth]
            rows.append(order)
            scores.append(s[order])
        if n_blank:
            log.warning("BM25: %d of %d questions share no term with any chunk (their ranking is corpus order)",
                        n_blank, len(queries))
        return rows, scores

