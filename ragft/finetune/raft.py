"""RAFT training rows (Zhang et al. 2024, "RAFT: Adapting Language Model to Domain Specific RAG").

Each training question becomes a reading example whose context holds its gold chunk(s) among
``distractors`` chunks of other documents; with probability ``1 - p_gold`` the gold chunk is left out
(distractors only), so the model also learns to answer from memory when retrieval misses. The target
is the answer. Every draw comes from one generator seeded by ``finetune.raft.seed`` (RAG-FiT's RAFT
sampling is unseeded), so the rows are identical run to run.
"""

from __future__ import annotations

import random
from typing import Any

from ragft.io import DataError
from ragft.model import prompts


def raft_rows(qa_train: list[dict], chunks: list[dict], cfg: Any, tokenizer: Any = None) -> list[dict]:
    """One ``{"kind": "raft", "qid", "question", "prompt", "answer", "gold_in_context"}`` row per training
    question, in qid order."""
    rcfg = cfg.finetune.raft
    by_doc: dict[str, list[dict]] = {}
    for c in sorted(chunks, key=lambda c: c["chunk_id"]):
        by_doc.setdefault(str(c["doc_id"]), []).append(c)
    doc_ids = sorted(by_doc)
    rng = random.Random(f"raft:{rcfg.seed}")
    rows = []
    for qa in sorted(qa_train, key=lambda r: r["qid"]):
        gold_docs = [str(d) for d in qa.get("doc_ids") or []]
        gold = [c for d in gold_docs for c in by_doc.get(d, [])]
        if not gold:
            raise DataError(
                f"data/prepared/qa_train.jsonl: question {qa['qid']!r} has no chunk of its gold document(s) "
                f"{gold_docs} in data/chunks/chunks.jsonl. Fix: `dvc repro prepare chunk`, or use finetune mode "
                "'qa' for data without document ids."
            )
        others = [d for d in doc_ids if d not in set(gold_docs)]
        picked_docs = rng.sample(others, min(rcfg.distractors, len(others)))
        distractors = [rng.choice(by_doc[d]) for d in picked_docs]
        with_gold = rng.random() < rcfg.p_gold
        passages = (gold if with_gold else []) + distractors
        rng.shuffle(passages)
        context = prompts.join_contexts([c["text"] for c in passages], cfg)
        prompt = prompts.build_prompt(qa["question"], cfg, context=context or None, tokenizer=tokenizer)
        rows.append(
            {
                "kind": "raft",
                "qid": qa["qid"],
                "question": qa["question"],
                "prompt": prompt,
                "answer": qa["answer"],
                "gold_in_context": with_gold,
            }
        )
    return rows
