"""The sample-size planner (`ragft plan`) against analytic cases: independent questions give the textbook
n = (z σ / h)² (refined with t), documents give the same in documents, and what more questions on the same
documents can and cannot do."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ragft.evaluation.planner import icc, plan, plan_difference, plan_lines
from ragft.evaluation.stats import clustered_mean

TARGETS = {"half_width": 0.05, "min_effect": 0.10, "power": 0.8, "confidence": 0.95}


def test_independent_questions_give_the_textbook_sample_size():
    # 100 independent paired differences, half +1 and half −1: σ = sqrt(100/99) = 1.00504
    d = [1.0, -1.0] * 50
    out = plan_difference(d, list(range(100)), half_width=0.1, min_effect=0.2, power=0.8, confidence=0.95)
    assert out["tau"] == pytest.approx(math.sqrt(100 / 99))
    # textbook: n = (1.95996 × 1.00504 / 0.1)² = 388.04 → 389; t on n − 1 degrees of freedom adds under 1%
    assert 389 <= out["for_half_width"]["clusters"] <= 389 * 1.01
    # power: n = ((1.95996 + 0.84162) × 1.00504 / 0.2)² = 198.2 → 199, t adds under 2%
    assert 199 <= out["for_power"]["clusters"] <= 199 * 1.02
    assert out["for_half_width"]["questions"] == out["for_half_width"]["clusters"]  # one question per cluster
    assert out["for_half_width"]["more_clusters"] == out["for_half_width"]["clusters"] - 100


def test_documents_are_planned_from_the_spread_of_their_mean_differences():
    # 20 documents of 5 questions; every question of a document differs the same way: +1 or −1 alternately.
    # τ is the SD of the document means: sqrt(20/19) = 1.026; the same documents can never do better than now
    d = np.repeat([1.0, -1.0] * 10, 5)
    docs = np.repeat(np.arange(20), 5)
    out = plan_difference(d, docs, **TARGETS)
    assert out["tau"] == pytest.approx(math.sqrt(20 / 19))
    need = (1.959964 * math.sqrt(20 / 19) / 0.05) ** 2   # 1,617.3 documents by the normal formula
    assert math.ceil(need) <= out["for_half_width"]["clusters"] <= need * 1.01
    assert out["for_half_width"]["questions"] == 5 * out["for_half_width"]["clusters"]
    rho, _ = icc(d, docs)
    assert rho == pytest.approx(1.0)
    same = out["same_clusters"]
    assert same["per_cluster"] is None and same["floor"] == pytest.approx(out["half_width_now"])  # ρ = 1: no help


def test_more_questions_on_the_same_documents_when_they_are_independent_inside():
    rng = np.random.default_rng(3)
    docs = np.repeat(np.arange(40), 5)
    d = rng.choice([-1.0, 0.0, 1.0], size=200)            # no document effect: ρ ≈ 0
    out = plan_difference(d, docs, **TARGETS)
    rho, sigma2 = icc(d, docs)
    assert abs(rho) < 0.15
    # with ρ <= 0 treated as 0: m = σ² / (G (h/t)²), t on 39 degrees of freedom = 2.0227
    t = 2.022691
    expected = math.ceil(sigma2 * (1 - max(rho, 0)) / (40 * (0.05 / t) ** 2 - sigma2 * max(rho, 0)))
    assert out["same_clusters"]["per_cluster"] == expected


def test_the_current_half_width_is_the_reported_intervals():
    rng = np.random.default_rng(1)
    docs = np.repeat(np.arange(12), 5)
    d = rng.choice([-1.0, 0.0, 1.0], size=60, p=[0.2, 0.5, 0.3])
    ci = clustered_mean(d, docs)   # 12 documents: the cluster-robust t interval
    out = plan_difference(d, docs, **TARGETS)
    assert out["half_width_now"] == pytest.approx((ci.high - ci.low) / 2)
    assert out["reliable"] and out["clusters"] == 12


def test_no_variation_gives_no_plan_and_says_why():
    out = plan_difference([0.0] * 20, np.repeat(np.arange(4), 5), **TARGETS)
    assert "the same in every cluster" in out["reason"] and "for_half_width" not in out
    assert "fewer than 2 clusters" in plan_difference([1.0, 0.0], [0, 0], **TARGETS)["reason"]


def test_the_plan_block_and_its_sentences():
    qids = [f"q{i}" for i in range(60)]
    cluster_of = {q: f"d{i // 5}" for i, q in enumerate(qids)}
    rng = np.random.default_rng(0)
    rag = rng.integers(0, 2, 60).astype(float)
    scores = {"base-retrieved": list(rag), "raft-retrieved": list(np.maximum(rag, rng.integers(0, 2, 60)))}
    block = plan(scores, qids, [("raft-retrieved", "base-retrieved"), ("finetuned-none", "base-retrieved")],
                 cluster_of, "document", half_width=5, min_effect=10, power=0.8, confidence=0.95)
    assert (block["questions"], block["clusters"]) == (60, 12) and len(block["comparisons"]) == 1  # no finetuned arm
    c = block["comparisons"][0]
    assert c["diff"] == pytest.approx(np.mean(scores["raft-retrieved"]) - rag.mean())
    lines = plan_lines(block)
    assert lines[0] == ("You have 60 eval questions from 12 documents. Targets (eval.plan): an interval of ±5 points, "
                        "or 80% power to detect a 10-point difference, at 95% confidence.")
    h = c["for_half_width"]
    assert f"For ±5: about {h['questions']:,} questions from {h['clusters']:,} documents" in lines[1]
    assert lines[-1].startswith("Method: the observed variance of the document-level paired differences")


@pytest.mark.parametrize(("field", "value"), [("half_width", 0.0), ("half_width", -5.0), ("min_effect", 0.0),
                                              ("power", 1.0)])
def test_a_planner_target_of_zero_or_less_is_refused_by_the_schema(field, value):
    from omegaconf import OmegaConf

    from ragft.config import ConfigError, compose_conf, validate

    cfg = OmegaConf.merge(OmegaConf.create(compose_conf()), {"eval": {"plan": {field: value}}})
    with pytest.raises(ConfigError, match=rf"params\.yaml.*eval\.plan\.{field}"):
        validate(cfg, source="params.yaml")
