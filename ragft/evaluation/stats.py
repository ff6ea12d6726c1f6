"""Uncertainty for arm comparisons on the same questions: paired bootstrap CIs and McNemar's test.

Both come from scipy: `scipy.stats.bootstrap` (percentile intervals, seeded) for means (a paired difference is
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
