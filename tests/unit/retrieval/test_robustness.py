"""The robustness sweep's contexts (ragft.retrieval.robustness) and its scoring (ragft.evaluation.robustness)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ragft.evaluation.robustness import contrasts
from ragft.retrieval import robustness

CHUNKS = [{"chunk_id": f"d{i}#0", "doc_id": f"d{i}", "text": f"text {i}"} for i in range(12)]
CHUNKS.insert(1, {"chunk_id": "d0#1", "doc_id": "d0", "text": "text 0, second chunk"})
QUESTIONS = [{"qid": f"q{i}", "question": f"question {i}?", "doc_ids": [f"d{i}"]} for i in range(3)]
# each question's ranking: a non-gold chunk first, its gold chunk(s) second, then the rest
RANKED = [{"qid": q["qid"],
           "chunk_ids": [c["chunk_id"] for c in sorted(CHUNKS, key=lambda c: (c["doc_id"] != f"d{(i + 1) % 12}",
                                                                               c["doc_id"] != f"d{i}", c["chunk_id"]))][:10],
           "scores": [1.0 - j / 10 for j in range(10)]} for i, q in enumerate(QUESTIONS)]
for r in RANKED:
    r["doc_ids"] = [c.split("#")[0] for c in r["chunk_ids"]]
RB = SimpleNamespace(ks=[1, 3, 10], distractors=[0, 1, 4], seed=7)


def names(rows):
    return [c["chunk_id"] for c in rows["chunks"]]


def test_conditions_in_plot_order():
    got = [c.name for c in robustness.conditions(RB, top_k=2)]
    assert got == ["k1", "k2", "k3", "k10", "k10-shuffled", "gold", "gold+1random", "gold+4random", "gold+1hard",
                   "gold+4hard", "no-gold"]


def test_each_condition_degrades_retrieval_as_named():
    built = robustness.build(QUESTIONS, RANKED, CHUNKS, RB, top_k=2)
    q0 = {name: next(r for r in rows if r["qid"] == "q0") for name, rows in built.items()}
    assert names(q0["k1"]) == ["d1#0"] and names(q0["k3"]) == ["d1#0", "d0#0", "d0#1"]
    assert sorted(names(q0["k10-shuffled"])) == sorted(names(q0["k10"])) and names(q0["k10-shuffled"]) != names(q0["k10"])
    assert names(q0["gold"]) == ["d0#0", "d0#1"]                               # every chunk of the gold document
    for n in (1, 4):
        for kind in ("random", "hard"):
            chunks = names(q0[f"gold+{n}{kind}"])
            assert {"d0#0", "d0#1"} <= set(chunks) and len(chunks) == 2 + n
    non_gold = [c for c in RANKED[0]["chunk_ids"] if not c.startswith("d0#")]
    assert set(names(q0["gold+4hard"])) - {"d0#0", "d0#1"} == set(non_gold[:4])   # the best-ranked non-gold
    small = set(names(q0["gold+1random"])) - {"d0#0", "d0#1"}
    assert small < set(names(q0["gold+4random"]))                             # nested draws: more n only adds
    assert names(q0["no-gold"]) == non_gold[:2]                              # gold removed, the next ones move up
    assert all(len(rows) == 3 for rows in built.values())


def test_draws_are_seeded_and_independent_of_question_order():
    a = robustness.build(QUESTIONS, RANKED, CHUNKS, RB, top_k=2)
    b = robustness.build(QUESTIONS[::-1], RANKED[::-1], CHUNKS, RB, top_k=2)
    assert a == b
    other = robustness.build(QUESTIONS, RANKED, CHUNKS, SimpleNamespace(**{**vars(RB), "seed": 8}), top_k=2)
    assert other["gold+4random"] != a["gold+4random"]


def test_models_follow_the_config():
    cfg = SimpleNamespace(robustness=SimpleNamespace(enabled=True, models=None), arms=SimpleNamespace(models=["base", "raft"]))
    assert robustness.models(cfg) == ["base", "raft"]
    cfg.robustness.models = ["raft"]
    assert robustness.models(cfg) == ["raft"]
    cfg.robustness.enabled = False
    assert robustness.models(cfg) == []


def test_contrasts_are_points_lost():
    conds = [c.as_dict() for c in robustness.conditions(RB, top_k=2)]
    est = {"k1": 0.5, "k2": 0.65, "k3": 0.7, "k10": 0.6, "k10-shuffled": 0.55, "gold": 0.9, "gold+1random": 0.85,
           "gold+4random": 0.8, "gold+1hard": 0.7, "gold+4hard": 0.4, "no-gold": 0.1}
    got = contrasts({k: {"estimate": v} for k, v in est.items()}, conds)
    assert got == pytest.approx({"k_best_minus_k1": 0.2, "shuffle_cost": 0.05, "random_distractor_cost": 0.1,
                                 "hard_distractor_cost": 0.5, "missing_gold_cost": 0.55})   # k2 (top_k) - no-gold
