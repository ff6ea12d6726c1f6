"""The retrieval-robustness sweep's contexts: what each model reads as retrieval degrades.

Conditions (`robustness` in params.yaml), each a context file under data/contexts/robustness/:
- k<k>           the retrieved top k, in rank order, for k in robustness.ks and retrieval.top_k;
- k<max>-shuffled the same top max(ks) in a seeded random order (does the model lean on rank order?);
- gold           the gold document's chunks alone (the oracle arm);
- gold+<n>random the gold chunks among n chunks drawn at random from other documents;
- gold+<n>hard   the gold chunks among the n best-ranked retrieved chunks from other documents;
- no-gold        the retrieved top retrieval.top_k with every gold chunk removed (the next ones move up):
                 what the model answers when retrieval misses.
Gold and distractors are shuffled together; every draw is seeded by robustness.seed and the qid, so the
files do not depend on question order and are the same on a rerun. Random distractor sets are nested
(the first n of one permutation), so a larger n only adds passages.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from ragft.retrieval.contexts import _chunk_row, _gold_docs, oracle_contexts, retrieved_contexts


@dataclass(frozen=True)
class Condition:
    name: str        # the context file's stem and the predictions folder
    label: str       # the plot's tick label
    group: str       # top_k | shuffled | gold | random | hard | no_gold
    size: int        # k, or n distractors

    def as_dict(self) -> dict:
        return asdict(self)


def conditions(rb: Any, top_k: int) -> list[Condition]:
    """The sweep's conditions, in plot order."""
    ks, ns = _ks(rb, top_k), sorted(set(rb.distractors))
    out = [Condition(f"k{k}", f"top {k}", "top_k", k) for k in ks]
    out.append(Condition(f"k{ks[-1]}-shuffled", f"top {ks[-1]} shuffled", "shuffled", ks[-1]))
    if 0 in ns:
        out.append(Condition("gold", "gold only", "gold", 0))
    for kind in ("random", "hard"):
        out += [Condition(f"gold+{n}{kind}", f"gold + {n} {kind}", kind, n) for n in ns if n > 0]
    out.append(Condition("no-gold", f"top {top_k}, no gold", "no_gold", top_k))
    return out


def _ks(rb: Any, top_k: int) -> list[int]:
    """robustness.ks plus retrieval.top_k (the retrieved arm's own k, which no-gold is compared with)."""
    return sorted(set(rb.ks) | {int(top_k)})


def models(cfg: Any) -> list[str]:
    """The models the sweep answers with: robustness.models, or every model of arms.models."""
    if not cfg.robustness.enabled:
        return []
    return [str(m) for m in (cfg.robustness.models or cfg.arms.models)]


def _shuffled(items: list, *key: object) -> list:
    items = list(items)
    random.Random(":".join(map(str, ("robustness", *key)))).shuffle(items)
    return items


def build(questions: list[dict], ranked: list[dict], chunks: list[dict], rb: Any, top_k: int) -> dict[str, list[dict]]:
    """Every condition's context rows (the contexts stage's row format), keyed by condition name."""
    seed = rb.seed
    by_id = {c["chunk_id"]: c for c in chunks}
    by_qid = {r["qid"]: r for r in ranked}
    question = {q["qid"]: q for q in questions}
    gold_rows = {r["qid"]: r for r in oracle_contexts(questions, chunks)}
    conds = conditions(rb, top_k)
    ks = _ks(rb, top_k)
    kmax = ks[-1]
    out: dict[str, list[dict]] = {c.name: [] for c in conds}
    for k in ks:
        out[f"k{k}"] = retrieved_contexts(questions, ranked, chunks, k)
    for row in out[f"k{kmax}"]:
        out[f"k{kmax}-shuffled"].append({**row, "chunks": _shuffled(row["chunks"], seed, "order", row["qid"])})
    for qid in sorted(question):
        q = question[qid]
        gold = set(_gold_docs(q))
        base = {"qid": qid, "question": q["question"]}
        gold_chunks = gold_rows[qid]["chunks"]
        retrieved = [(cid, s) for cid, s in zip(by_qid[qid]["chunk_ids"], by_qid[qid]["scores"]) if cid in by_id]
        hard = [_chunk_row(by_id[cid], s) for cid, s in retrieved if str(by_id[cid]["doc_id"]) not in gold]
        pool = [_chunk_row(c) for c in chunks if str(c["doc_id"]) not in gold]
        drawn = _shuffled(pool, seed, "random", qid)
        for c in conds:
            if c.group == "gold":
                out[c.name].append({**base, "chunks": list(gold_chunks)})
            elif c.group in ("random", "hard"):
                distractors = (drawn if c.group == "random" else hard)[: c.size]
                out[c.name].append({**base, "chunks": _shuffled(gold_chunks + distractors, seed, c.name, qid)})
            elif c.group == "no_gold":
                out[c.name].append({**base, "chunks": hard[:top_k]})
    return out
