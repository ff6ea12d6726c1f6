"""A content-addressed cache of one context arm's answers: rerunning a model's infer stage regenerates only
the contexts whose prompts changed.

One infer stage per model answers every context arm (its model is loaded once); DVC reruns it when any of
its inputs change, e.g. when `retrieval.top_k` rewrites the retrieved contexts. The contexts whose prompts
did not change are then read from here instead of generated again. The key is a sha256 over everything
the answers depend on: the model's identity (base weights, adapter weights, merged or not, dtype, device
type), the exact token ids of every prompt of the context, the decoding settings and batch size, and the
generation code's version. A whole context is one entry, generated in the same batches as a cold run, so
the files written are byte for byte those of a run without the cache.

The cache lives outside DVC's outputs, at the real repository root (``$DVC_ROOT``, set by DVC even when
`dvc exp run` works in a temporary copy), or wherever ``$RAGFT_ANSWER_CACHE`` points; deleting it is
always safe. Entries are JSON files written under a temporary name and renamed into place, named by
their key, holding their key: a file that does not parse or holds another key is a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from ragft.io import atomic_file

log = logging.getLogger(__name__)

CACHE_ENV = "RAGFT_ANSWER_CACHE"
CACHE_DIR = Path(".cache/ragft/answers")         # under the repository root; in .gitignore and .dvcignore
GENERATION_VERSION = 1                           # bump when ragft.model.generation changes what it returns


def default_dir() -> Path:
    """``$RAGFT_ANSWER_CACHE``, else ``.cache/ragft/answers`` under ``$DVC_ROOT`` (or the working directory)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("DVC_ROOT") or ".") / CACHE_DIR


def key(identity: dict[str, Any], prompts: list[list[int]], decoding: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps({"identity": identity, "decoding": decoding, "version": GENERATION_VERSION},
                             sort_keys=True, default=str).encode())
    for ids in prompts:
        digest.update(b"\n" + ",".join(map(str, ids)).encode())
    return digest.hexdigest()


class AnswerCache:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _path(self, k: str) -> Path:
        return self.root / k[:2] / f"{k}.json"

    def get(self, k: str) -> dict | None:
        """``{"answers": [...], "output_tokens": [...], "timings": {...}}`` as generated, or None."""
        path = self._path(k)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if entry.get("key") != k or not isinstance(entry.get("answers"), list):
            log.warning("answer cache: %s is not the entry it is named after; generating again", path)
            return None
        if len(entry.get("output_tokens") or []) != len(entry["answers"]):
            return None  # written before answers carried their token counts: generated again, with them
        return entry

    def put(self, k: str, answers: list[str], timings: dict, output_tokens: list[int | None]) -> None:
        """The answers with their output-token counts (None: a server that reported none), and the timings
        measured when they were generated (what the cost tables show)."""
        with atomic_file(self._path(k)) as fh:
            json.dump({"key": k, "answers": answers,
                       "output_tokens": [None if n is None else int(n) for n in output_tokens],
                       "timings": timings}, fh, ensure_ascii=False)
