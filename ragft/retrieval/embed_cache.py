"""A content-addressed per-text vector cache: editing a few documents re-embeds only their chunks.

Key: sha256 over the encoder's identity (``ragft.retrieval.embedding.identity``: model, revision, weights
hash, pooling, normalisation, max length, device type and dtype, encoding scheme, torch and
transformers versions) and the exact text encoded, prefix included. Value: the exact float32
bytes the encoder produced, so a vector read back is byte for byte the vector computed, and the
embed stage's outputs are the same whether its vectors came from here or not.

The cache lives outside DVC's outputs, at the real repository root (``$DVC_ROOT``, which DVC sets
to the workspace even when `dvc exp run` runs the stage in a temporary copy), or wherever
``$RAGFT_EMBED_CACHE`` points. Deleting it is always safe. Layout:

    index.sqlite       key → (shard, row, sha256 of key + vector bytes)
    shards/<uuid>.npy  float32 (n, dim): the vectors one ``put`` computed

Nothing is pickled (``np.load(allow_pickle=False)``). Two experiments may share the cache at once:
each ``put`` writes its own shard under a temporary name, renames it into place, then commits its
rows in one SQLite transaction (SQLite's locking serialises writers). An entry whose shard is gone
or unreadable, or whose bytes no longer match its checksum, counts as a miss: it is recomputed and
written again. Old shards are never rewritten; nothing is garbage-collected.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragft.io import atomic_file

log = logging.getLogger(__name__)

CACHE_ENV = "RAGFT_EMBED_CACHE"
CACHE_DIR = Path(".cache/ragft/embeddings")     # under the repository root; in .gitignore and .dvcignore
SQLITE_TIMEOUT_S = 120.0                        # a parallel experiment may hold the write lock this long
_QUERY_CHUNK = 500                              # keys per SELECT (SQLite caps bound parameters)


def default_dir() -> Path:
    """``$RAGFT_EMBED_CACHE``, else ``.cache/ragft/embeddings`` under ``$DVC_ROOT`` (or the working directory)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("DVC_ROOT") or ".") / CACHE_DIR


class EmbeddingCache:
    """Vectors of one encoder identity, looked up and stored by text."""

    def __init__(self, root: str | os.PathLike, identity: dict[str, Any]):
        self.root = Path(root)
        self.identity = identity
        self.dim = int(identity["dim"])
        self.namespace = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        self.shards = self.root / "shards"
        self.db_path = self.root / "index.sqlite"
        self.last_corrupt = 0                     # entries found corrupt by the last get()
        self.shards.mkdir(parents=True, exist_ok=True)
        try:
            self._init_db()
        except sqlite3.DatabaseError as err:      # not a database any more: set it aside, start afresh
            aside = self.db_path.with_name(f"{self.db_path.name}.corrupt-{uuid.uuid4().hex[:8]}")
            log.warning("%s: unreadable (%s); moved to %s, starting an empty cache", self.db_path, err, aside)
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.db_path, aside)
            self._init_db()

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """One connection, one transaction (committed on success, rolled back on error)."""
        con = sqlite3.connect(self.db_path, timeout=SQLITE_TIMEOUT_S)
        try:
            with con:
                yield con
        finally:
            con.close()

    def _init_db(self) -> None:
        with self._db() as con:
            con.execute("CREATE TABLE IF NOT EXISTS vectors "
                        "(key TEXT PRIMARY KEY, shard TEXT NOT NULL, row INTEGER NOT NULL, digest TEXT NOT NULL)")
            con.execute("CREATE TABLE IF NOT EXISTS identities (namespace TEXT PRIMARY KEY, identity TEXT NOT NULL)")
            con.execute("INSERT OR IGNORE INTO identities VALUES (?, ?)",
                        (self.namespace, json.dumps(self.identity, sort_keys=True)))

    def key(self, text: str) -> str:
        return hashlib.sha256(self.namespace.encode() + b"\0" + text.encode("utf-8")).hexdigest()

    @staticmethod
    def _digest(key: str, vector: np.ndarray) -> str:
        return hashlib.sha256(key.encode() + np.ascontiguousarray(vector, dtype=np.float32).tobytes()).hexdigest()

    def _load_shard(self, shard: str) -> np.ndarray | None:
        path = self.shards / f"{shard}.npy"
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            log.warning("embedding cache shard %s unreadable (%s): its vectors are recomputed", path, err)
            return None
        if arr.dtype != np.float32 or arr.ndim != 2 or arr.shape[1] != self.dim:
            log.warning("embedding cache shard %s has shape %s %s, expected (n, %d) float32: recomputed",
                        path, arr.shape, arr.dtype, self.dim)
            return None
        return arr

    def get(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, hit): float32 (n, dim) with the cached rows filled, and which rows were found intact."""
        keys = [self.key(t) for t in texts]
        found: dict[str, tuple[str, int, str]] = {}
        with self._db() as con:
            for lo in range(0, len(keys), _QUERY_CHUNK):
                part = keys[lo : lo + _QUERY_CHUNK]
                sql = f"SELECT key, shard, row, digest FROM vectors WHERE key IN ({','.join('?' * len(part))})"
                found.update({k: (s, r, d) for k, s, r, d in con.execute(sql, part)})
        by_shard: dict[str, list[tuple[int, int, str]]] = {}
        for i, k in enumerate(keys):
            if k in found:
                shard, row, digest = found[k]
                by_shard.setdefault(shard, []).append((i, row, digest))
        vectors = np.zeros((len(keys), self.dim), dtype=np.float32)
        hit = np.zeros(len(keys), dtype=bool)
        corrupt = 0
        for shard, entries in by_shard.items():
            arr = self._load_shard(shard)
            for i, row, digest in entries:
                if arr is None or row >= len(arr):
                    corrupt += 1
                    continue
                vec = np.array(arr[row], dtype=np.float32)
                if self._digest(keys[i], vec) != digest:
                    corrupt += 1
                    continue
                vectors[i], hit[i] = vec, True
        if corrupt:
            log.warning("embedding cache: %d corrupt entries in %s; they are recomputed", corrupt, self.root)
        self.last_corrupt = corrupt
        return vectors, hit

    def put(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store ``vectors[i]`` (float32, exact bytes) for ``texts[i]``: one new shard, one transaction."""
        vectors = np.asarray(vectors)
        if vectors.dtype != np.float32 or vectors.shape != (len(texts), self.dim):
            raise ValueError(f"expected float32 vectors of shape ({len(texts)}, {self.dim}), "
                             f"got {vectors.dtype} {vectors.shape}")
        if not len(texts):
            return
        shard = uuid.uuid4().hex
        with atomic_file(self.shards / f"{shard}.npy", "wb") as fh:
            np.save(fh, np.ascontiguousarray(vectors), allow_pickle=False)
        rows = []
        for i, text in enumerate(texts):
            k = self.key(text)
            rows.append((k, shard, i, self._digest(k, vectors[i])))
        with self._db() as con:
            con.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        with self._db() as con:
            return int(con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
