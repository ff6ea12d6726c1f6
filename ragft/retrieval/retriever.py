"""The `retriever` group: dense (FAISS over the embedder's vectors), bm25 (lexical), or hybrid (both, fused).

The index stage builds what the method needs under data/index/ (dense/, bm25/) plus one manifest naming
the method, its parameters and the corpus it was built from; the retrieve stage refuses an index built
by another method, other parameters or another corpus. Every ranking is exact and deterministic: ties
are broken by the chunks' corpus order.

Hybrid fusion (per question, over each retriever's top `hybrid.candidates`):
- rrf: score = sum over retrievers of weight / (rrf_k + rank), rank from 1 (Cormack et al. 2009);
- weighted: weight-summed min-max-normalised scores over the union of the candidates, each
  candidate's missing score computed exactly (the query·chunk product, or its full BM25 score).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ragft.io import DataError, read_json, write_json
from ragft.retrieval import bm25
from ragft.retrieval import index as dense

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DENSE, BM25 = "dense", "bm25"
REBUILD = "Fix: rebuild the index with `dvc repro index`"


def components(method: str) -> tuple[str, ...]:
    """The indexes a method searches."""
    return {"dense": (DENSE,), "bm25": (BM25,), "hybrid": (DENSE, BM25)}[str(method)]


def settings(rcfg: Any) -> dict[str, Any]:
    """The retriever's parameters that decide its ranking (what the manifest records and the query side checks)."""
    method = str(rcfg.method)
    out: dict[str, Any] = {"method": method}
    if BM25 in components(method):
        out["bm25"] = bm25.settings(rcfg.bm25)
    return out


def corpus_hash(chunks: list[dict]) -> str:
    """sha256 of the chunk ids and texts, in order: what the index was built from."""
    digest = hashlib.sha256()
    for c in chunks:
        digest.update(json.dumps([c["chunk_id"], c["text"]]).encode())
    return digest.hexdigest()


def build_and_save(out_dir: str | Path, cfg: Any, chunks: list[dict], vectors: np.ndarray, vector_ids: list[str],
                   embedder: dict) -> tuple[dict, dict[str, float]]:
    """Build the method's indexes into ``out_dir``; return (manifest, build seconds per component)."""
    out_dir = Path(out_dir)
    method = str(cfg.retriever.method)
    seconds, parts = {}, {}
    if DENSE in components(method):
        m, seconds[DENSE] = dense.build_and_save(out_dir / DENSE, vectors, vector_ids, embedder, cfg.index)
        parts[DENSE] = {"factory": m["factory"], "metric": m["metric"], "n_vectors": m["n_vectors"],
                        "index_bytes": m["index_bytes"]}
    if BM25 in components(method):
        m, seconds[BM25] = bm25.build_and_save(out_dir / BM25, [c["text"] for c in chunks],
                                               [c["chunk_id"] for c in chunks], cfg.retriever.bm25)
        parts[BM25] = {"variant": m["variant"], "vocabulary": m["vocabulary"], "index_bytes": m["index_bytes"]}
    manifest = {**settings(cfg.retriever), "corpus_sha256": corpus_hash(chunks), "n_chunks": len(chunks),
                "components": parts}
    write_json(out_dir / MANIFEST, manifest)
    return manifest, seconds


def _order(fused: dict[int, float]) -> list[int]:
    """Rows by fused score, descending, ties in corpus order."""
    return sorted(fused, key=lambda row: (-fused[row], row))


def rrf(rankings: dict[str, list[int]], weights: dict[str, float], k: int) -> dict[int, float]:
    """Reciprocal rank fusion of ranked row lists."""
    fused: dict[int, float] = {}
    for name, rows in rankings.items():
        for rank, row in enumerate(rows, start=1):
            fused[row] = fused.get(row, 0.0) + weights[name] / (k + rank)
    return fused


def weighted(scores: dict[str, dict[int, float]], weights: dict[str, float]) -> dict[int, float]:
    """Weighted sum of per-retriever min-max-normalised scores (every retriever scores every candidate)."""
    fused: dict[int, float] = {}
    for name, by_row in scores.items():
        values = np.array(list(by_row.values()), dtype=np.float64)
        lo, span = float(values.min()), float(values.max() - values.min())
        for row, s in by_row.items():
            fused[row] = fused.get(row, 0.0) + weights[name] * ((s - lo) / span if span > 0 else 0.0)
    return fused


class Retriever:
    """The index stage's output, checked against the config and the chunks, ranking questions by the method."""

    def __init__(self, index_dir: str | Path, cfg: Any, chunks: list[dict], embedder: dict,
                 vectors: np.ndarray | None = None, vector_ids: list[str] | None = None):
        """``vectors`` (rows named by ``vector_ids``, default chunk order): the chunk vectors, which only the
        weighted fusion reads (it scores candidates exactly)."""
        index_dir = Path(index_dir)
        self.cfg = cfg.retriever
        self.manifest = read_json(index_dir / MANIFEST)
        want = settings(self.cfg)
        for field, value in want.items():
            if self.manifest.get(field) != value:
                raise DataError(f"{index_dir / MANIFEST}: field '{field}' is {self.manifest.get(field)!r} but "
                                f"params.yaml has retriever.{field} = {value!r}. {REBUILD}.")
        if self.manifest.get("corpus_sha256") != corpus_hash(chunks):
            raise DataError(f"{index_dir / MANIFEST}: field 'corpus_sha256' does not match data/chunks/chunks.jsonl "
                            f"(the index was built from other chunks). {REBUILD}.")
        self.method = str(self.cfg.method)
        self.chunk_ids = [c["chunk_id"] for c in chunks]
        self.position = {cid: i for i, cid in enumerate(self.chunk_ids)}
        self.dense = self.bm25 = None
        if DENSE in components(self.method):
            self.dense = dense.load_index(index_dir / DENSE, expected_embedder=embedder)
            self.metric = self.dense[2]["metric"]
            self.vectors = vectors
            if vectors is not None and vector_ids is not None:
                row = {cid: i for i, cid in enumerate(vector_ids)}
                self.vectors = vectors[[row[cid] for cid in self.chunk_ids]]
        if BM25 in components(self.method):
            self.bm25 = bm25.Bm25Index(index_dir / BM25, self.cfg.bm25)

    def _dense_rank(self, queries: np.ndarray, depth: int) -> tuple[list[list[int]], list[list[float]]]:
        index, ids, _ = self.dense
        scores, rows = index.search(np.ascontiguousarray(queries, dtype=np.float32), depth)
        out_rows, out_scores = [], []
        for srow, irow in zip(scores, rows):
            keep = irow >= 0                     # FAISS pads with -1 when fewer than depth are found
            out_rows.append([self._row(ids[i]) for i in irow[keep]])
            out_scores.append([float(s) if self.metric == "ip" else -float(s) for s in srow[keep]])
        return out_rows, out_scores

    def _row(self, chunk_id: str) -> int:
        if chunk_id not in self.position:
            raise DataError(f"index ids.json: chunk {chunk_id!r} is not in data/chunks/chunks.jsonl. "
                            "Fix: rebuild with `dvc repro embed index`.")
        return self.position[chunk_id]

    def _dense_exact(self, query: np.ndarray, rows: list[int]) -> dict[int, float]:
        """The dense score (higher is better) of given corpus rows, computed from the vectors."""
        if self.vectors is None:
            raise DataError("retriever.hybrid.fusion=weighted needs the chunk vectors. Fix: pass data/embeddings.")
        vecs = self.vectors[rows].astype(np.float64)
        q = query.astype(np.float64)
        values = vecs @ q if self.metric == "ip" else -((vecs - q) ** 2).sum(1)
        return dict(zip(rows, values.tolist()))

    def rank(self, questions: list[str], queries: np.ndarray | None, depth: int) -> list[dict]:
        """Per question (in order): ``{"rows", "scores", "ranks"}``, the top-``depth`` corpus rows by the
        method, their scores, and for hybrid each retriever's own rank of them (None: not in its candidates)."""
        if self.method == DENSE:
            rows, scores = self._dense_rank(queries, depth)
            return [{"rows": r, "scores": s} for r, s in zip(rows, scores)]
        if self.method == BM25:
            rows, scores = self.bm25.rank(questions, depth)
            return [{"rows": r.tolist(), "scores": s.tolist()} for r, s in zip(rows, scores)]
        h = self.cfg.hybrid
        weights = {DENSE: float(h.dense_weight), BM25: float(h.bm25_weight)}
        d_rows, _ = self._dense_rank(queries, h.candidates)
        b_rows, _ = self.bm25.rank(questions, h.candidates)
        out = []
        for i, question in enumerate(questions):
            rankings = {DENSE: d_rows[i], BM25: b_rows[i].tolist()}
            if str(h.fusion) == "rrf":
                fused = rrf(rankings, weights, int(h.rrf_k))
            else:
                union = sorted(set(rankings[DENSE]) | set(rankings[BM25]))
                lexical = self.bm25.scores(question)
                fused = weighted({DENSE: self._dense_exact(queries[i], union),
                                  BM25: {r: float(lexical[r]) for r in union}}, weights)
            top = _order(fused)[:depth]
            position = {name: {row: rank for rank, row in enumerate(rows, start=1)} for name, rows in rankings.items()}
            out.append({"rows": top, "scores": [fused[r] for r in top],
                        "ranks": {name: [position[name].get(r) for r in top] for name in rankings}})
        return out
