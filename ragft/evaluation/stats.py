"""Uncertainty that follows the design: questions come several to a document, so every interval and test
resamples the question's cluster (its source document by default, `eval.cluster`), never the question alone.

A retrieval miss or a badly parsed document fails all of its questions together (positive correlation within
a document, as on generated questions over real documents); on synthbio, where each document gets one question
per attribute, easy and hard attributes mix inside every document (negative correlation). Resampling questions
as if they were independent makes the intervals too narrow in the first case and too wide in the second.

The methods, all over per-cluster totals (a cluster's sum of a per-question value and its count of questions):

- **Interval of a mean** (an arm's score, a paired difference, an effect: a difference is the mean of the
  per-question differences, so pairs stay together), over the ratio estimator Σ sums / Σ counts:
  - with fewer than BOOTSTRAP_CLUSTERS clusters, the cluster-robust t interval: the CR1 sandwich variance with t
    on G − 1 degrees of freedom (Cameron & Miller 2015, "A Practitioner's Guide to Cluster-Robust Inference",
    JHR: with few clusters a bootstrap under-covers). Simulated in tests/unit/evaluation/test_stats.py (1,000 eval
    sets of 12 documents x 5 questions, paired right/wrong differences): it covered 95.1%, BCa 90.3%;
  - from BOOTSTRAP_CLUSTERS clusters on, a cluster bootstrap (Davison & Hinkley 1997, *Bootstrap Methods and
    their Application*, §3.8; Field & Welsh 2007, "Bootstrapping clustered data", JRSS-B) with bias-corrected
    and accelerated limits (BCa; Efron 1987), through `scipy.stats.bootstrap` over the clusters' (sum, count)
    pairs: it follows a skewed score near 0 or 1 better than the t interval. With 30 documents x 5 questions
    and an intra-document correlation of 0.3 it covered 94.3% where resampling questions covered 84.7%
    (test_stats.py, 300 simulated eval sets).
  Below MIN_CLUSTERS clusters no interval is reliable, and the reports say so.
- **Paired test** (is arm a as good as arm b?): a sign-flip permutation test over clusters: under the null the
  two arms' labels are exchangeable within each cluster, so each cluster's total difference is as likely
  negated (`scipy.stats.permutation_test`, exact when the flips can be enumerated). With one question per
  cluster and right/wrong outcomes it is the exact McNemar test (the discordant pairs' signs are binomial).
- **Design effect**: the clustered variance of the mean over the independent one (Kish 1965; the
  cluster-robust variance of Miller 2024, "Adding Error Bars to Evals", arXiv:2411.00640), and the effective
  number of questions n / design effect: how many independent questions the eval set is worth.

Every function drops NaN values (a metric that could not be computed is not 0) and is seeded.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

MIN_CLUSTERS = 10        # below this no clustered interval is reliable: the reports say so
BOOTSTRAP_CLUSTERS = 30  # from this many clusters on, the BCa cluster bootstrap; below, the cluster-robust t interval
UNITS = ("document", "question")
BOOTSTRAP_METHOD = "BCa cluster bootstrap"
SMALL_METHOD = "cluster-robust t"
TEST_METHOD = "sign-flip permutation test"


@dataclass(frozen=True)
class Interval:
    """A mean with its interval and the design it was resampled under."""

    estimate: float
    low: float
    high: float
    n: int = 0                           # values with a defined score (questions, or question pairs)
    clusters: int = 0                    # resampling units among them
    design_effect: float | None = None   # clustered / independent variance of the mean; None when undefined
    method: str = ""

    @property
    def crosses_zero(self) -> bool:
        return self.low <= 0.0 <= self.high

    @property
    def effective_n(self) -> float | None:
        """How many independent questions the n clustered ones are worth (n / design effect)."""
        if self.design_effect is None or self.design_effect <= 0:
            return None
        return self.n / self.design_effect

    def fields(self) -> dict:
        """metrics.json's keys for this interval."""
        return {"estimate": self.estimate, "ci_low": self.low, "ci_high": self.high, "n": self.n,
                "clusters": self.clusters, "design_effect": self.design_effect, "effective_n": self.effective_n}


NAN_INTERVAL = Interval(math.nan, math.nan, math.nan)


def cluster_totals(values: Sequence[float], clusters: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster with a defined value: the sum of its values and their count (NaNs dropped)."""
    x, g = np.asarray(values, dtype=float), np.asarray(clusters)
    keep = ~np.isnan(x)
    x, g = x[keep], g[keep]
    if x.size == 0:
        return np.zeros(0), np.zeros(0)
    _, index = np.unique(g, return_inverse=True)
    return np.bincount(index, weights=x), np.bincount(index).astype(float)


def clustered_variance(sums: np.ndarray, counts: np.ndarray) -> float:
    """The cluster-robust (CR1) variance of the mean Σ sums / Σ counts: G/(G−1) Σ_g (s_g − x̄ n_g)² / N²."""
    g, total = sums.size, counts.sum()
    if g < 2:
        return math.nan
    mean = sums.sum() / total
    return float(g / (g - 1) * np.sum((sums - mean * counts) ** 2) / total**2)


def design_effect(values: Sequence[float], clusters: Sequence[int]) -> float | None:
    """Clustered variance of the mean / the variance it would have if the values were independent (None when
    the values do not vary: 0/0)."""
    x = np.asarray(values, dtype=float)
    keep = ~np.isnan(x)
    x = x[keep]
    if x.size < 2:
        return None
    iid = float(np.var(x, ddof=1) / x.size)
    if iid <= 0:
        return None
    sums, counts = cluster_totals(x, np.asarray(clusters)[keep])
    clustered = clustered_variance(sums, counts)
    return None if math.isnan(clustered) else clustered / iid


def _ratio(sums, counts, axis=-1):
    return np.sum(sums, axis=axis) / np.sum(counts, axis=axis)


def _bootstrap(sums, counts, resamples: int, seed: int, level: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():  # a degenerate jackknife gives NaN (handled by the caller), and says so
        warnings.simplefilter("ignore")
        res = stats.bootstrap((sums, counts), _ratio, paired=True, vectorized=True, method=method, axis=-1,
                              n_resamples=resamples, confidence_level=level, rng=np.random.default_rng(seed))
    return np.asarray(res.confidence_interval.low), np.asarray(res.confidence_interval.high)


def t_interval(sums: np.ndarray, counts: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """mean ± t(G−1) × the CR1 standard error, over the last axis: the interval for few clusters."""
    g, total = sums.shape[-1], counts.sum(axis=-1)
    mean = sums.sum(axis=-1) / total
    variance = g / (g - 1) * np.sum((sums - mean[..., None] * counts) ** 2, axis=-1) / total**2
    half = stats.t.ppf(0.5 + level / 2, g - 1) * np.sqrt(variance)
    return mean - half, mean + half


def cluster_interval(sums: np.ndarray, counts: np.ndarray, *, resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[np.ndarray, np.ndarray, str]:
    """(low, high, method) of the mean Σ sums / Σ counts over the last axis (G clusters): the cluster-robust t
    interval below BOOTSTRAP_CLUSTERS, else the BCa cluster bootstrap (percentile where BCa's acceleration is
    undefined). Leading axes are independent samples, computed at once (the coverage tests' hundreds of
    simulated eval sets)."""
    sums, counts = np.asarray(sums, dtype=float), np.asarray(counts, dtype=float)
    if sums.shape[-1] < BOOTSTRAP_CLUSTERS:
        low, high = t_interval(sums, counts, level)
        return low, high, SMALL_METHOD
    low, high = _bootstrap(sums, counts, resamples, seed, level, "BCa")
    bad = np.isnan(low) | np.isnan(high)
    if np.any(bad):  # BCa's acceleration is undefined (a degenerate jackknife): percentile limits there
        p_low, p_high = _bootstrap(sums, counts, resamples, seed, level, "percentile")
        low, high = np.where(bad, p_low, low), np.where(bad, p_high, high)
        return low, high, BOOTSTRAP_METHOD if not np.all(bad) else "percentile cluster bootstrap"
    return low, high, BOOTSTRAP_METHOD


def clustered_mean(values: Sequence[float], clusters: Sequence[Any] | None = None, *, resamples: int = 2000,
                   seed: int = 0, level: float = 0.95) -> Interval:
    """The mean of ``values`` with its interval, resampling ``clusters`` (one label per value; None: each
    value its own cluster): ``cluster_interval``, clipped to the values' range."""
    x = np.asarray(values, dtype=float)
    g = np.arange(x.size) if clusters is None else np.asarray(clusters)
    if g.shape != x.shape:
        raise ValueError(f"one cluster per value: {g.shape} clusters for {x.shape} values")
    n = int((~np.isnan(x)).sum())
    if n == 0:
        return NAN_INTERVAL
    sums, counts = cluster_totals(x, g)
    mean, k = float(sums.sum() / counts.sum()), int(sums.size)
    deff = design_effect(x, g)
    lo_x, hi_x = float(np.nanmin(x)), float(np.nanmax(x))
    if lo_x == hi_x or k < 2:
        return Interval(mean, mean, mean, n, k, deff, "none: no variation")
    low, high, method = cluster_interval(sums, counts, resamples=resamples, seed=seed, level=level)
    return Interval(mean, max(float(low), lo_x), min(float(high), hi_x), n, k, deff, method)


def sign_flip_test(differences: Sequence[float], clusters: Sequence[int] | None = None, *,
                   resamples: int = 9999, seed: int = 0) -> float:
    """Two-sided p-value of "the arms are equally good": each cluster's total paired difference flipped in
    sign at random (scipy's permutation test; exact when 2^clusters ≤ resamples, and exactly binomial when
    every nonzero total has the same size, as McNemar's discordant pairs do)."""
    sums, _ = cluster_totals(differences, np.arange(len(differences)) if clusters is None else clusters)
    t = sums[sums != 0]  # a zero total is the same flipped: it changes no permutation's statistic
    if t.size == 0:
        return 1.0
    if np.all(np.abs(t) == abs(t[0])):
        return float(stats.binomtest(int(np.sum(t > 0)), int(t.size), 0.5).pvalue)
    res = stats.permutation_test((t,), lambda v, axis=-1: np.sum(v, axis=axis), permutation_type="samples",
                                 vectorized=True, n_resamples=resamples, alternative="two-sided",
                                 rng=np.random.default_rng(seed))
    return float(min(1.0, res.pvalue))


def _kappa(n, a, b, ab):
    """Cohen's kappa of two yes/no raters from totals (items, rater a's yes, rater b's yes, both yes); 1 where
    both raters are constant (0/0: they agree on every item)."""
    po = (n - a - b + 2 * ab) / n
    pa, pb = a / n, b / n
    pe = pa * pb + (1 - pa) * (1 - pb)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pe < 1, (po - pe) / (1 - pe), 1.0)


def cohen_kappa(a: Sequence[bool], b: Sequence[bool], clusters: Sequence[Any] | None = None, *,
                resamples: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Cohen's kappa of two raters' yes/no on the same items (scikit-learn), with a percentile bootstrap CI
    resampling ``clusters`` of items (None: each item alone; the resampled kappas from the clusters' totals,
    vectorised). NaN when either rater says the same for every item (kappa is undefined)."""
    from sklearn.metrics import cohen_kappa_score

    x, y = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    if x.shape != y.shape:
        raise ValueError(f"paired ratings need the same items: {x.shape} vs {y.shape}")
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return NAN_INTERVAL
    g = np.arange(x.size) if clusters is None else np.asarray(clusters)
    _, index = np.unique(g, return_inverse=True)
    totals = np.stack([np.bincount(index, weights=w) for w in (np.ones(x.size), x, y, x * y)])  # 4 × G
    k = totals.shape[1]
    draws = np.random.default_rng(seed).integers(0, k, size=(resamples, k))
    kappas = _kappa(*totals[:, draws].sum(axis=-1))
    alpha = (1 - level) / 2
    return Interval(float(cohen_kappa_score(x, y)), float(np.quantile(kappas, alpha)),
                    float(np.quantile(kappas, 1 - alpha)), int(x.size), k, None, "percentile cluster bootstrap")


# --------------------------------------------------------------------------- the design


@dataclass(frozen=True)
class Resampling:
    """How every interval and test of an experiment resamples: the unit (eval.cluster), each question's
    cluster (qid → cluster id; a qid not in it is its own cluster), and the bootstrap settings."""

    unit: str = "question"
    cluster_of: Mapping[str, str] = field(default_factory=dict)
    resamples: int = 2000
    level: float = 0.95
    seed: int = 0

    def clusters(self, qids: Sequence[str]) -> list[str]:
        return [self.cluster_of.get(q, f"question:{q}") for q in qids]

    def mean(self, values: Sequence[float], qids: Sequence[str]) -> Interval:
        """The mean of per-question ``values`` (aligned with ``qids``) and its clustered interval."""
        return clustered_mean(values, self.clusters(qids), resamples=self.resamples, seed=self.seed,
                              level=self.level)

    def test(self, differences: Sequence[float], qids: Sequence[str]) -> float:
        """The clustered sign-flip p-value of per-question paired ``differences``."""
        return sign_flip_test(differences, self.clusters(qids), resamples=max(self.resamples, 9999), seed=self.seed)

    def kappa(self, a: Sequence[bool], b: Sequence[bool], qids: Sequence[str]) -> Interval:
        return cohen_kappa(a, b, self.clusters(qids), resamples=self.resamples, seed=self.seed, level=self.level)

    def settings(self, n_clusters: int, n_questions: int) -> dict:
        """metrics.json's ``inference`` block: what every interval and test of the experiment is."""
        return {"unit": self.unit, "clusters": n_clusters, "questions": n_questions, "min_clusters": MIN_CLUSTERS,
                "reliable": n_clusters >= MIN_CLUSTERS,
                "interval": BOOTSTRAP_METHOD if n_clusters >= BOOTSTRAP_CLUSTERS else SMALL_METHOD,
                "test": f"{TEST_METHOD} over {self.unit}s", "resamples": self.resamples, "confidence": self.level,
                "seed": self.seed}


def clusters_of(questions: Sequence[Mapping], unit: str, where: str) -> dict[str, str]:
    """qid → cluster id under ``unit`` (eval.cluster).

    ``question``: every question is its own cluster. ``document``: a question's cluster is its source document;
    a question with several gold documents (synthbio's "who is older, A or B") joins every question of each of
    them into one cluster (the connected components of "shares a gold document"), since a failure on any of its
    documents can fail them all. A question about no document (synthbio's absent people) is clustered by its
    ``cluster`` field (the person it asks about). A cluster is named by its smallest document id. ``where``: the
    file the questions come from, for the message ("{split}" is filled with a row's split).
    """
    from ragft.io import DataError

    if unit == "question":
        return {str(q["qid"]): f"question:{q['qid']}" for q in questions}
    if unit != "document":
        raise ValueError(f"eval.cluster must be one of {UNITS}, not {unit!r}")
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    keys = {}
    for q in questions:
        own = [str(d) for d in q.get("doc_ids") or []] or ([f"cluster:{q['cluster']}"] if q.get("cluster") else [])
        if not own:
            raise DataError(
                f"{where.format(split=q.get('split', 'eval'))}: question {q['qid']!r} names no source document (field 'doc_ids' is empty), so "
                "eval.cluster=document cannot resample it with the other questions about its document. Fix: give "
                "every question its document (the 'doc_id' column of your QA file), or set eval.cluster=question "
                "(intervals that treat the questions as independent)."
            )
        keys[str(q["qid"])] = own
        for k in own[1:]:
            a, b = find(own[0]), find(k)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {qid: find(own[0]) for qid, own in keys.items()}
