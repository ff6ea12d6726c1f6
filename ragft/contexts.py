"""What each context arm puts into the prompt: nothing (closed book) or the top-k retrieved chunks.

Each arm gets its own file, so changing retrieval reruns only the arms that read retrieved chunks.
"""

from __future__ import annotations

from ragft.io import DataError


def none_contexts(questions: list[dict]) -> list[dict]:
    return [{"qid": q["qid"], "question": q["question"], "chunks": []} for q in sorted(questions, key=lambda q: q["qid"])]


def retrieved_contexts(questions: list[dict], ranked: list[dict], chunks: list[dict], top_k: int) -> list[dict]:
    """The ``top_k`` best-ranked chunks per question, with their text and score."""
    by_id = {c["chunk_id"]: c for c in chunks}
    by_qid = {r["qid"]: r for r in ranked}
    rows = []
    for q in sorted(questions, key=lambda q: q["qid"]):
        if q["qid"] not in by_qid:
            raise DataError(f"data/retrieval/ranked.jsonl: no row for qid {q['qid']!r}. Fix: `dvc repro retrieve`.")
        r = by_qid[q["qid"]]
        picked = []
        for cid, score in list(zip(r["chunk_ids"], r["scores"]))[:top_k]:
            if cid not in by_id:
                raise DataError(f"data/retrieval/ranked.jsonl: chunk {cid!r} (qid {q['qid']!r}) is not in "
                                "data/chunks/chunks.jsonl. Fix: `dvc repro embed index retrieve`.")
            c = by_id[cid]
            picked.append({"chunk_id": cid, "doc_id": c["doc_id"], "text": c["text"], "score": score})
        rows.append({"qid": q["qid"], "question": q["question"], "chunks": picked})
    return rows
