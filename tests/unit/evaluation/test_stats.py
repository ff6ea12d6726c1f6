"""Bootstrap CIs against analytic cases, and McNemar against hand-computed binomial tails."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ragft.evaluation.stats import bootstrap_mean, mcnemar


def test_bootstrap_mean_matches_normal_theory():
    x = np.random.default_rng(1).normal(10.0, 2.0, size=4000)
    ci = bootstrap_mean(x, resamples=2000, seed=0)
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)  # analytic 95% half-width ≈ 0.062
    assert ci.estimate == pytest.approx(x.mean())
    assert ci.high - ci.low == pytest.approx(2 * half, rel=0.1)
    assert ci.low < x.mean() < ci.high


def test_bootstrap_of_a_proportion_matches_wald_interval():
    x = np.array([1.0] * 300 + [0.0] * 700)
    ci = bootstrap_mean(x, resamples=4000, seed=3)
    half = 1.96 * math.sqrt(0.3 * 0.7 / 1000)
    assert ci.low == pytest.approx(0.3 - half, abs=0.006)
    assert ci.high == pytest.approx(0.3 + half, abs=0.006)


def test_paired_difference_is_tighter_than_unpaired_and_seeded():
    """compare_arms' interval: the bootstrap of the per-question differences (pairs stay together)."""
    from ragft.evaluation.factorial import Bootstrap, compare_arms
    from ragft.evaluation.scoring import ArmScores

    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, size=500)
    a, b = base + 0.1, base + rng.normal(0, 0.05, size=500)
    scores = {name: ArmScores(name, {}, [{"exact_match": float(v > 0), "f1": v} for v in vals])
              for name, vals in (("base-none", b), ("base-retrieved", a))}
    boot = Bootstrap(2000, 0.95, 7)
    diff = compare_arms(scores, boot)["base-retrieved vs base-none"]
    assert diff == compare_arms(scores, boot)["base-retrieved vs base-none"]        # seeded
    assert 0.08 < diff["f1_ci_low"] < diff["f1_diff"] < diff["f1_ci_high"] < 0.12      # paired: ±0.005
    unpaired = bootstrap_mean(a, seed=7).high - bootstrap_mean(a, seed=7).low      # ~0.18 wide on its own
    assert diff["f1_ci_high"] - diff["f1_ci_low"] < unpaired / 10


def test_identical_arms_give_zero_width_interval_and_nan_stays_nan():
    ci = bootstrap_mean([0.0, 0.0, 0.0])
    assert (ci.estimate, ci.low, ci.high) == (0.0, 0.0, 0.0) and ci.crosses_zero
    assert math.isnan(bootstrap_mean([float("nan")] * 3).estimate)
    assert bootstrap_mean([1.0, float("nan"), 0.0]).estimate == 0.5


def test_mcnemar_exact_against_binomial_tail():
    a = [True] * 8 + [False] * 2 + [True] * 5
    b = [False] * 8 + [True] * 2 + [True] * 5
    res = mcnemar(a, b)
    assert (res["only_a"], res["only_b"]) == (8, 2)
    expected = 2 * sum(math.comb(10, k) for k in range(3)) / 2**10  # two-sided exact: 0.109375
    assert res["p_value"] == pytest.approx(expected)
    assert mcnemar([True, False], [True, False])["p_value"] == 1.0


def test_cohen_kappa_matches_its_definition_and_is_nan_for_a_constant_rater():
    from ragft.evaluation.stats import cohen_kappa

    a = [1, 1, 1, 0, 0, 0, 1, 0, 1, 1] * 3
    b = [1, 1, 0, 0, 0, 1, 1, 0, 1, 1] * 3
    po = sum(x == y for x, y in zip(a, b)) / len(a)
    pa, pb = sum(a) / len(a), sum(b) / len(b)
    pe = pa * pb + (1 - pa) * (1 - pb)
    k = cohen_kappa(a, b, resamples=500, seed=0)
    assert abs(k.estimate - (po - pe) / (1 - pe)) < 1e-12 and k.low < k.estimate < k.high <= 1
    assert cohen_kappa(a, b, resamples=500, seed=0) == k  # seeded
    assert cohen_kappa(a, a, resamples=200).estimate == 1.0
    assert math.isnan(cohen_kappa([1] * 10, b[:10]).estimate)
