"""Documents → chunks budgeted in the embedder's own tokens, with character offsets.

Budgeting in the embedder's tokenizer (not words or characters) is what guarantees a chunk is
never silently truncated by the encoder. Offsets come from the fast tokenizer's offset mapping,
so every chunk is an exact slice ``text[start:end]`` of its document.

- ``tokens``: fixed windows of ``size`` tokens, consecutive windows sharing ``overlap`` tokens.
- ``sentences``: whole sentences (and paragraphs) packed greedily up to ``size`` tokens; trailing
  sentences of up to ``overlap`` tokens are repeated at the start of the next chunk; a sentence
  longer than the budget falls back to token windows.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from ragft.config import ConfigError

log = logging.getLogger(__name__)

# A sentence ends after . ! ? (and closing quotes/brackets) followed by whitespace; a blank line
# ends a paragraph. Simple on purpose: chunks only need sensible break points, not linguistics.
SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+|\n\s*\n")


def _check_window(size: int, overlap: int) -> None:
    """A window must advance (the config schema refuses such settings; this guards direct calls)."""
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError(f"chunk size {size} / overlap {overlap}: need size > 0 and 0 <= overlap < size")


def check_budget(size: int, tokenizer: Any, max_length: int) -> None:
    """A chunk plus the encoder's special tokens must fit in embedder.max_length, or it is truncated."""
    need = size + tokenizer.num_special_tokens_to_add()
    if need > max_length:
        raise ConfigError(
            f"params.yaml: field 'chunking.size' is {size}; with special tokens a chunk takes {need} tokens, "
            f"more than embedder.max_length ({max_length}), so the encoder would cut it. "
            f"Fix: set chunking.size <= {max_length - tokenizer.num_special_tokens_to_add()}."
        )


def token_windows(n_tokens: int, size: int, overlap: int, first: int = 0) -> list[tuple[int, int]]:
    """Token ranges [lo, hi) of ``size`` tokens stepping by ``size - overlap``; the last one ends at n."""
    _check_window(size, overlap)
    spans, lo = [], first
    while lo < n_tokens:
        hi = min(lo + size, n_tokens)
        spans.append((lo, hi))
        if hi == n_tokens:
            break
        lo += size - overlap
    return spans


def sentence_spans(text: str, offsets: np.ndarray) -> list[tuple[int, int]]:
    """Token ranges [lo, hi) of the sentences of ``text`` (tokens belong to where they start)."""
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    sent_of_token = np.searchsorted(np.asarray(ends, dtype=np.int64), offsets[:, 0], side="right")
    cuts = np.flatnonzero(np.diff(sent_of_token)) + 1
    bounds = [0, *cuts.tolist(), len(offsets)]
    return [(lo, hi) for lo, hi in itertools.pairwise(bounds) if hi > lo]


def sentence_packs(sentences: list[tuple[int, int]], size: int, overlap: int) -> list[tuple[int, int]]:
    """Greedy packing of whole sentences up to ``size`` tokens (see the module docstring)."""
    _check_window(size, overlap)
    packs: list[tuple[int, int]] = []
    current: list[tuple[int, int]] = []

    def n_tok(units: list[tuple[int, int]]) -> int:
        return units[-1][1] - units[0][0] if units else 0

    def flush() -> None:
        if current:
            packs.append((current[0][0], current[-1][1]))

    for lo, hi in sentences:
        if hi - lo > size:                       # too long for any chunk: token windows of its own
            flush()
            packs.extend(token_windows(hi, size, overlap, first=lo))
            current = []
            continue
        if current and n_tok(current + [(lo, hi)]) > size:
            flush()
            carry = []                           # trailing sentences repeated as overlap
            for unit in reversed(current):
                if n_tok([unit] + carry) > overlap:
                    break
                carry.insert(0, unit)
            while carry and n_tok(carry + [(lo, hi)]) > size:
                carry.pop(0)
            current = carry
        current.append((lo, hi))
    flush()
    return packs


def chunk_document(doc: dict, tokenizer: Any, strategy: str, size: int, overlap: int) -> list[dict]:
    """One document → its chunks ``{"chunk_id","doc_id","text","start","end","n_tokens"}``."""
    _check_window(size, overlap)
    text = doc["text"]
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    if strategy == "tokens":
        spans = token_windows(len(offsets), size, overlap)
    elif strategy == "sentences":
        spans = sentence_packs(sentence_spans(text, offsets), size, overlap)
    else:
        raise ValueError(f"chunking strategy {strategy!r}: tokens or sentences")
    chunks = []
    for i, (lo, hi) in enumerate(spans):
        start, end = int(offsets[lo, 0]), int(offsets[hi - 1, 1])
        chunks.append({
            "chunk_id": f"{doc['doc_id']}#{i:04d}",
            "doc_id": doc["doc_id"],
            "text": text[start:end],
            "start": start,
            "end": end,
            "n_tokens": hi - lo,
        })
    return chunks


def chunk_documents(docs: Iterable[dict], tokenizer: Any, strategy: str, size: int, overlap: int,
                    progress: bool = True) -> list[dict]:
    from tqdm.auto import tqdm

    _check_window(size, overlap)
    docs = list(docs)
    out: list[dict] = []
    for doc in tqdm(docs, desc="chunk", unit="doc", disable=not progress):
        out.extend(chunk_document(doc, tokenizer, strategy, size, overlap))
    empty = len({d["doc_id"] for d in docs} - {c["doc_id"] for c in out})
    if empty:
        log.warning("%d document(s) have no tokens and produced no chunks", empty)
    return out


def token_stats(chunks: list[dict]) -> dict[str, Any]:
    n = np.asarray([c["n_tokens"] for c in chunks] or [0])
    return {"min": int(n.min()), "max": int(n.max()), "mean": round(float(n.mean()), 3), "total": int(n.sum())}
