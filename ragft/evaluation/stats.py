"""Uncertainty for arm comparisons on the same questions: paired bootstrap CIs and McNemar's test, and the
agreement of two raters (the LLM judge and the match metric) as Cohen's kappa with a paired bootstrap CI.

Both come from scipy (kappa itself from scikit-learn): `scipy.stats.bootstrap` (percentile intervals, seeded) for means (a paired difference is
the mean of the per-question differences), and the exact McNemar test as a binomial test on the discordant pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    @property
    def crosses_zero(self) -> bool:
        return self.low <= 0.0 <= self.high


def _degenerate(values: np.ndarray) -> bool:
    return values.size < 2 or np.all(values == values[0])


def bootstrap_mean(values: Sequence[float], *, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Percentile bootstrap CI of the mean (NaNs dropped: a metric that could not be computed is not 0)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    if _degenerate(x):
        return Interval(float(x.mean()), float(x.mean()), float(x.mean()))
    res = stats.bootstrap(
        (x,), np.mean, n_resamples=resamples, confidence_level=level, method="percentile",
        rng=np.random.default_rng(seed),
    )
    return Interval(float(x.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high))


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict[str, float]:
    """Exact McNemar test on paired right/wrong outcomes: p-value of "a and b are equally accurate"."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need the same questions: {a.shape} vs {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    p = 1.0 if n == 0 else float(stats.binomtest(only_a, n, 0.5, alternative="two-sided").pvalue)
    return {"only_a": only_a, "only_b": only_b, "p_value": p}


def cohen_kappa(a: Sequence[bool], b: Sequence[bool], *, resamples: int = 2000, seed: int = 0,
                level: float = 0.95) -> Interval:
    """Cohen's kappa of two raters' yes/no on the same items (scikit-learn), with a paired percentile
    bootstrap CI (scipy). NaN when either rater says the same for every item (kappa is undefined)."""
    from sklearn.metrics import cohen_kappa_score

    x, y = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    if x.shape != y.shape:
        raise ValueError(f"paired ratings need the same items: {x.shape} vs {y.shape}")
    if x.size < 2 or _degenerate(x) or _degenerate(y):
        return Interval(float("nan"), float("nan"), float("nan"))

    def kappa(u, v):
        return cohen_kappa_score(u, v) if len(set(u)) > 1 or len(set(v)) > 1 else 1.0

    import warnings

    with warnings.catch_warnings():  # a resample where both raters are constant: kappa 0/0, counted as agreement
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.bootstrap((x, y), kappa, paired=True, vectorized=False, n_resamples=resamples,
                              confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    return Interval(float(cohen_kappa_score(x, y)), float(res.confidence_interval.low),
                    float(res.confidence_interval.high))
