"""What each context arm puts into the prompt.

- none                closed book: nothing;
- retrieved           the top_k chunks the retriever ranked first;
- oracle              the gold document's chunks (what a perfect retriever would return): the ceiling;
- oracle_distractors  the gold chunks plus the best-ranked *non-gold* retrieved chunks, shuffled with a
                      seed: can the model pick the right passage among plausible wrong ones?
- long_context        every document, whole, in one seeded order that is the same for every question (Chan et
                      al. 2024, "Don't Do RAG"): the prompt's corpus part is a shared prefix, the question comes
                      last. Written only when arms.contexts selects it (else empty); the infer stage fits it to
                      the model's window, or refuses (ragft/model/long_context.py).

Each arm gets its own file, so changing retrieval reruns only the arms that read retrieved chunks.
"""

from __future__ import annotations

import random

from ragft.arms import DOCUMENT_CHUNK
from ragft.io import DataError

BUILDERS = ("none", "retrieved", "oracle", "oracle_distractors", "long_context")


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


def _gold_docs(q: dict) -> list[str]:
    """A question's gold documents; none for a question about no document (the absent split: its oracle
    context is empty, and with distractors it is the distractors alone)."""
    docs = q.get("doc_ids") or []
    if not docs and q.get("split") != "absent":
        raise DataError(
            f"data/prepared/qa_eval.jsonl: question {q['qid']!r} has no doc_ids, so its oracle context is unknown. "
            "Fix: give every QA row the id(s) of the document(s) that answer it, or drop the oracle arms from arms.contexts."
        )
    return [str(d) for d in docs]


def _chunk_row(c: dict, score: float | None = None) -> dict:
    return {"chunk_id": c["chunk_id"], "doc_id": c["doc_id"], "text": c["text"], "score": score}


def oracle_contexts(questions: list[dict], chunks: list[dict]) -> list[dict]:
    """Every chunk of each question's gold document(s), in document order."""
    by_doc: dict[str, list[dict]] = {}
    for c in chunks:
        by_doc.setdefault(str(c["doc_id"]), []).append(c)
    rows = []
    for q in sorted(questions, key=lambda q: q["qid"]):
        picked = [_chunk_row(c) for d in _gold_docs(q) for c in by_doc.get(d, [])]
        if not picked and q.get("split") != "absent":
            raise DataError(
                f"data/chunks/chunks.jsonl: no chunk of gold document(s) {_gold_docs(q)} (question {q['qid']!r}). "
                "Fix: `dvc repro chunk` so the chunks cover data/prepared/documents.jsonl."
            )
        rows.append({"qid": q["qid"], "question": q["question"], "chunks": picked})
    return rows


def oracle_distractor_contexts(
    questions: list[dict], ranked: list[dict], chunks: list[dict], n_distractors: int, seed: int
) -> list[dict]:
    """The oracle chunks plus the ``n_distractors`` best-ranked retrieved chunks from other documents,
    shuffled per question with a generator seeded by ``seed`` and the qid (order-independent)."""
    by_id = {c["chunk_id"]: c for c in chunks}
    by_qid = {r["qid"]: r for r in ranked}
    question = {q["qid"]: q for q in questions}
    rows = []
    for row in oracle_contexts(questions, chunks):
        gold = set(_gold_docs(question[row["qid"]]))
        if row["qid"] not in by_qid:
            raise DataError(f"data/retrieval/ranked.jsonl: no row for qid {row['qid']!r}. Fix: `dvc repro retrieve`.")
        r = by_qid[row["qid"]]
        distractors = [
            _chunk_row(by_id[cid], score)
            for cid, score in zip(r["chunk_ids"], r["scores"])
            if cid in by_id and str(by_id[cid]["doc_id"]) not in gold
        ][:n_distractors]
        mixed = row["chunks"] + distractors
        random.Random(f"oracle_distractors:{seed}:{row['qid']}").shuffle(mixed)
        rows.append({**row, "chunks": mixed})
    return rows


def corpus_order(documents: list[dict], seed: int) -> list[dict]:
    """The documents in the long-context prompt's order: shuffled once with ``seed`` (from the doc-id order), so no
    document sits first because of its name, and every question sees the same prefix."""
    order = sorted(documents, key=lambda d: str(d["doc_id"]))
    random.Random(f"long_context:{seed}").shuffle(order)
    return order


def long_context_contexts(questions: list[dict], documents: list[dict], seed: int) -> list[dict]:
    """Every document, whole (its title as a heading line), in ``corpus_order``, for every question."""
    corpus = [{"chunk_id": f"{DOCUMENT_CHUNK}{d['doc_id']}", "doc_id": str(d["doc_id"]), "score": None,
               "text": f"{d['title']}\n{d['text']}" if d.get("title") else d["text"]}
              for d in corpus_order(documents, seed)]
    return [{"qid": q["qid"], "question": q["question"], "chunks": corpus} for q in sorted(questions, key=lambda q: q["qid"])]


def build_all(questions: list[dict], ranked: list[dict], chunks: list[dict], retrieval_cfg,
              documents: list[dict] | None = None, long_context_seed: int | None = None) -> dict[str, list[dict]]:
    """Every context arm's rows, keyed by arm name; long_context's only with ``documents`` (when selected)."""
    return {
        "none": none_contexts(questions),
        "retrieved": retrieved_contexts(questions, ranked, chunks, retrieval_cfg.top_k),
        "oracle": oracle_contexts(questions, chunks),
        "oracle_distractors": oracle_distractor_contexts(
            questions, ranked, chunks, retrieval_cfg.distractors, retrieval_cfg.seed
        ),
        "long_context": long_context_contexts(questions, documents, int(long_context_seed or 0)) if documents else [],
    }
