"""A FAISS index over the chunk vectors, built from any ``index_factory`` string, with a manifest.

The manifest records what the vectors are (embedder, dim, corpus hash) and how the index searches
(factory, metric, nprobe / efSearch), so a query encoded by another model, or a damaged file, is
refused with a clear error instead of returning plausible nonsense. FAISS files are FAISS's own
format (never pickle).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ragft.config import ConfigError
from ragft.io import DataError, file_sha256, read_json, write_json

log = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
MANIFEST = "manifest.json"
IDS = "ids.json"
REBUILD = "Fix: rebuild the index with `dvc repro index`"


def _faiss():
    import faiss

    return faiss


def _faiss_msg(err: RuntimeError) -> str:
    """FAISS's reason without its C++ source location."""
    text = str(err).strip().splitlines()[-1]
    return text.split("Error: ", 1)[-1].split(": ", 1)[-1] if "Error" in text else text


def metric_of(name: str) -> int:
    faiss = _faiss()
    return {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}[name]


def search_params(icfg: Any) -> dict[str, int]:
    """The search-time settings, in FAISS ParameterSpace names."""
    params = {}
    if icfg.nprobe is not None:
        params["nprobe"] = int(icfg.nprobe)
    if icfg.ef_search is not None:
        params["efSearch"] = int(icfg.ef_search)
    return params


def apply_search_params(index: Any, params: dict[str, int], source: str = "params.yaml") -> None:
    space = _faiss().ParameterSpace()
    for name, value in params.items():
        try:
            space.set_index_parameter(index, name, value)
        except RuntimeError:
            field = {"nprobe": "index.nprobe", "efSearch": "index.ef_search"}[name]
            raise ConfigError(
                f"{source}: field '{field}' is {value} but this index has no {name} "
                f"(it applies to IVF / HNSW indexes). Fix: set {field} to null."
            ) from None


# `index.factory: auto` picks the engine by corpus size. The thresholds are bench/ann.py's measurements
# (2 cores, 384-dim clustered vectors; README "Scaling up"): up to AUTO_EXACT_MAX vectors exact search
# answers a query in milliseconds with no build and no recall loss; above it HNSW32 at this efSearch kept
# recall@10 >= 0.95 at >= 10x exact queries/s, while IVF needed most of its lists to reach that recall.
AUTO = "auto"
AUTO_EXACT_MAX = 100_000
AUTO_APPROX = ("HNSW32", {"efSearch": 128})


def choose_factory(n_vectors: int) -> tuple[str, dict[str, int], str]:
    """``(factory, search params, reason)`` that `index.factory: auto` uses for ``n_vectors`` vectors."""
    if n_vectors <= AUTO_EXACT_MAX:
        return "Flat", {}, (f"{n_vectors} vectors <= {AUTO_EXACT_MAX}: exact search is fast enough at this size "
                            "and loses no recall")
    factory, params = AUTO_APPROX
    return factory, dict(params), (f"{n_vectors} vectors > {AUTO_EXACT_MAX}: {factory} with {params} measured "
                                   "recall@10 >= 0.95 at >= 10x exact queries/s (bench/ann.py)")


def resolve_factory(icfg: Any, n_vectors: int) -> tuple[Any, str | None]:
    """The index settings to build: ``icfg`` itself, or for `factory: auto` a copy with the chosen
    factory and search params, plus the reason for the choice (None when nothing was chosen)."""
    if icfg.factory != AUTO:
        return icfg, None
    for name, field in (("nprobe", "index.nprobe"), ("ef_search", "index.ef_search")):
        if getattr(icfg, name) is not None:
            raise ConfigError(
                f"params.yaml: field '{field}' is {getattr(icfg, name)} but index.factory is 'auto', which sets the "
                f"search breadth itself. Fix: set {field} to null, or name a factory (e.g. HNSW32) to tune it."
            )
    factory, params, reason = choose_factory(n_vectors)
    resolved = SimpleNamespace(factory=factory, metric=icfg.metric, seed=icfg.seed,
                               nprobe=params.get("nprobe"), ef_search=params.get("efSearch"))
    return resolved, reason


def build_index(vectors: np.ndarray, icfg: Any) -> Any:
    """Create, seed, train (if the factory needs it), fill and configure the index."""
    faiss = _faiss()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    icfg, _ = resolve_factory(icfg, len(vectors))
    n, dim = vectors.shape
    try:
        index = faiss.index_factory(dim, icfg.factory, metric_of(icfg.metric))
    except RuntimeError as err:
        raise ConfigError(
            f"params.yaml: field 'index.factory' is {icfg.factory!r}, which FAISS cannot build for dim {dim} "
            f"({_faiss_msg(err)}). Fix: use a valid index_factory string, e.g. Flat, HNSW32, IVF64,Flat."
        ) from None
    apply_search_params(index, search_params(icfg))          # fail on a misplaced param before training
    _seed(index, icfg.seed)
    if not index.is_trained:
        try:
            index.train(vectors)
        except RuntimeError as err:
            raise ConfigError(
                f"params.yaml: field 'index.factory' is {icfg.factory!r}; training it on {n} vectors failed "
                f"({_faiss_msg(err)}). Fix: fewer IVF lists / PQ codes, or Flat / HNSW for small corpora."
            ) from None
    index.add(vectors)
    return index


def _seed(index: Any, seed: int) -> None:
    """Seed FAISS's k-means (IVF coarse quantizer, PQ codebooks): FAISS defaults to a fixed seed otherwise."""
    faiss = _faiss()
    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError:
        ivf = None
    if ivf is not None:
        ivf.cp.seed = seed
        pq = getattr(faiss.downcast_index(ivf), "pq", None)
        if pq is not None:
            pq.cp.seed = seed
    pq = getattr(faiss.downcast_index(index), "pq", None)
    if pq is not None:
        pq.cp.seed = seed


def is_exact(index: Any) -> bool:
    faiss = _faiss()
    return isinstance(faiss.downcast_index(index), faiss.IndexFlat)


def corpus_hash(vectors: np.ndarray, ids: list[str]) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    digest.update(json.dumps(ids).encode())
    return digest.hexdigest()


def recall_vs_exact(index: Any, vectors: np.ndarray, queries: np.ndarray, ks: list[int], metric: str) -> dict[str, float]:
    """Share of the exact top-k that the index also returns (1.0 for an exact index)."""
    if is_exact(index) or len(queries) == 0:
        return {f"recall_vs_exact@{k}": 1.0 for k in ks}
    faiss = _faiss()
    exact = faiss.IndexFlat(vectors.shape[1], metric_of(metric))
    exact.add(np.ascontiguousarray(vectors, dtype=np.float32))
    kmax = min(max(ks), len(vectors))
    _, approx_ids = index.search(queries, kmax)
    _, exact_ids = exact.search(queries, kmax)
    out = {}
    for k in ks:
        kk = min(k, kmax)
        hits = [len(set(a[:kk]) & set(e[:kk])) / kk for a, e in zip(approx_ids, exact_ids)]
        out[f"recall_vs_exact@{k}"] = round(float(np.mean(hits)), 6)
    return out


def build_and_save(out_dir: str | Path, vectors: np.ndarray, ids: list[str], embedder: dict, icfg: Any) -> tuple[dict, float]:
    """Build the index into ``out_dir`` (index.faiss, ids.json, manifest.json); return (manifest, build seconds)."""
    faiss = _faiss()
    if len(ids) != len(vectors):
        raise DataError(f"embeddings: {len(vectors)} vectors but {len(ids)} ids. Fix: rerun `dvc repro embed`.")
    if vectors.shape[1] != embedder["dim"]:
        raise DataError(f"embeddings manifest: field 'dim' is {embedder['dim']} but vectors have {vectors.shape[1]}. "
                        "Fix: rerun `dvc repro embed`.")
    requested = icfg.factory
    icfg, reason = resolve_factory(icfg, len(vectors))
    t0 = time.perf_counter()
    index = build_index(vectors, icfg)
    seconds = time.perf_counter() - t0
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{INDEX_FILE}.tmp-", dir=out_dir)
    os.close(fd)
    try:
        faiss.write_index(index, tmp)
        os.replace(tmp, out_dir / INDEX_FILE)
    finally:
        Path(tmp).unlink(missing_ok=True)
    write_json(out_dir / IDS, ids)
    manifest = {
        "embedder": {k: embedder.get(k) for k in ("name", "model", "revision", "dim", "pooling", "normalize")},
        "metric": icfg.metric,
        "factory": icfg.factory,
        "factory_requested": requested,
        **({"auto_reason": reason} if reason else {}),
        "search_params": search_params(icfg),
        "seed": int(icfg.seed),
        "n_vectors": int(index.ntotal),
        "corpus_sha256": corpus_hash(vectors, ids),
        "index_sha256": file_sha256(out_dir / INDEX_FILE),
        "index_bytes": (out_dir / INDEX_FILE).stat().st_size,
    }
    write_json(out_dir / MANIFEST, manifest)
    log.info("built %s (%s) over %d vectors in %.2fs, %d bytes%s", icfg.factory, icfg.metric, index.ntotal, seconds,
             manifest["index_bytes"], f" (auto: {reason})" if reason else "")
    return manifest, seconds


def load_index(index_dir: str | Path, expected_embedder: dict | None = None) -> tuple[Any, list[str], dict]:
    """Return ``(index, ids, manifest)``, refusing an index built for another embedder or a damaged file.

    ``expected_embedder`` is the query side's embedder manifest (at least ``name`` and ``dim``).
    """
    faiss = _faiss()
    index_dir = Path(index_dir)
    manifest_path, index_path = index_dir / MANIFEST, index_dir / INDEX_FILE
    manifest = read_json(manifest_path)
    built = manifest.get("embedder", {})
    if expected_embedder is not None:
        # dim and name always; the encoder and its pooling too when the query side says (same name, other vectors)
        fields = ("dim", "name", *(f for f in ("model", "pooling", "normalize") if f in expected_embedder))
        for field in fields:
            if built.get(field) != expected_embedder.get(field):
                raise DataError(
                    f"{manifest_path}: field 'embedder.{field}' is {built.get(field)!r} but the queries come from "
                    f"{expected_embedder.get(field)!r}. {REBUILD} (after `dvc repro embed` with the same embedder)."
                )
    if not index_path.exists():
        raise DataError(f"{index_path}: file not found. {REBUILD}.")
    if file_sha256(index_path) != manifest.get("index_sha256"):
        raise DataError(f"{index_path}: content does not match 'index_sha256' in {manifest_path} (damaged or "
                        f"replaced). {REBUILD}.")
    try:
        index = faiss.read_index(str(index_path))
    except RuntimeError as err:
        raise DataError(f"{index_path}: FAISS cannot read it ({_faiss_msg(err)}). {REBUILD}.") from None
    if index.d != built.get("dim") or index.ntotal != manifest.get("n_vectors"):
        raise DataError(f"{index_path}: holds {index.ntotal} vectors of dim {index.d}, but {manifest_path} says "
                        f"{manifest.get('n_vectors')} of dim {built.get('dim')}. {REBUILD}.")
    ids = read_json(index_dir / IDS)
    if len(ids) != index.ntotal:
        raise DataError(f"{index_dir / IDS}: {len(ids)} ids for {index.ntotal} vectors. {REBUILD}.")
    apply_search_params(index, manifest.get("search_params", {}), source=str(manifest_path))
    return index, ids, manifest
