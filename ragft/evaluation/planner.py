"""How many eval questions would settle a comparison: the sample-size planner (`ragft plan`, the decision summary).

For each comparison the verdict makes (ragft.evaluation.verdict.comparisons), from the observed per-question
paired differences d and their clusters (G clusters, N questions, m̄ = N / G questions per cluster):

- τ² = G · V, V the cluster-robust variance of the mean difference (what the reported interval rests on): the
  variance one cluster of m̄ questions contributes. With G' clusters of m̄ questions the mean's variance is τ²/G'.
- clusters for an interval of half-width h at confidence 1 − α:  G_h = ⌈(t_{1−α/2, G_h−1} τ / h)²⌉
- clusters for power 1 − β against a difference δ (two-sided):   G_δ = ⌈((t_{1−α/2, G_δ−1} + t_{1−β, G_δ−1}) τ / δ)²⌉
  (a test of the mean cluster-level difference, Donner & Klar 2000, *Design and Analysis of Cluster Randomization
  Trials*, ch. 5; t on G − 1 degrees of freedom, as the cluster-robust interval uses, solved by fixed-point
  iteration from the normal quantiles; with many clusters it is the textbook n = (z σ / h)²); questions =
  clusters × m̄.
- more questions on the same clusters: with the intra-cluster correlation ρ of d (one-way ANOVA estimator) and
  its variance σ², G clusters of m questions give Var = σ²(1 + (m − 1)ρ) / (G m), which cannot fall below σ²ρ/G
  however many questions each gets: the half-width floor t σ √(ρ/G). Below it only new documents help; above
  it, m = σ²(1 − ρ) / (G (h/t)² − σ²ρ) questions per cluster reach h (t on G − 1 degrees of freedom).

Plug-in estimates from the eval set at hand: with few clusters they are rough, and the plan says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from ragft.evaluation.stats import MIN_CLUSTERS, cluster_totals, clustered_variance


def icc(values: Sequence[float], clusters: Sequence[Any]) -> tuple[float | None, float | None]:
    """(ρ, σ²): the one-way ANOVA intra-cluster correlation of ``values`` and their total variance (between +
    within components); None where undefined (one question per cluster, or no variation)."""
    x, g = np.asarray(values, dtype=float), np.asarray(clusters)
    keep = ~np.isnan(x)
    x, g = x[keep], g[keep]
    sums, counts = cluster_totals(x, g)
    k, n = sums.size, x.size
    if k < 2 or n <= k:
        return None, None
    _, index = np.unique(g, return_inverse=True)
    means = sums / counts
    grand = x.mean()
    msb = float(np.sum(counts * (means - grand) ** 2) / (k - 1))
    msw = float(np.sum((x - means[index]) ** 2) / (n - k))
    n0 = (n - np.sum(counts**2) / n) / (k - 1)
    between, within = (msb - msw) / n0, msw
    total = between + within
    if total <= 0:
        return None, None
    return float(between / total), float(total)


def _ceil(x: float) -> int:
    return max(1, math.ceil(x - 1e-9))


def clusters_needed(tau: float, target: float, alpha: float, beta: float | None = None) -> int:
    """The smallest G >= 2 with (t_{1−α/2, G−1} [+ t_{1−β, G−1}]) τ / √G <= target. The left side falls with G
    and is never below its normal counterpart, so the search starts at the normal answer and steps up."""
    def reach(g: int) -> float:
        q = stats.t.ppf(1 - alpha / 2, g - 1) + (stats.t.ppf(1 - beta, g - 1) if beta is not None else 0.0)
        return q * tau / math.sqrt(g)

    z = stats.norm.ppf(1 - alpha / 2) + (stats.norm.ppf(1 - beta) if beta is not None else 0.0)
    g = max(2, _ceil((z * tau / target) ** 2))
    while reach(g) > target:
        g += 1
    return g


def plan_difference(differences: Sequence[float], clusters: Sequence[Any], *, half_width: float, min_effect: float,
                    power: float, confidence: float) -> dict:
    """The plan for one paired difference (values and targets as fractions: 0.05 is 5 points)."""
    x = np.asarray(differences, dtype=float)
    g = np.asarray(clusters)
    keep = ~np.isnan(x)
    sums, counts = cluster_totals(x[keep], g[keep])
    k, n = int(sums.size), int(keep.sum())
    out: dict[str, Any] = {"questions": n, "clusters": k, "per_cluster": n / k if k else None,
                           "reliable": k >= MIN_CLUSTERS, "targets": {"half_width": half_width, "min_effect": min_effect,
                                                                      "power": power, "confidence": confidence}}
    if k < 2:
        return {**out, "reason": "fewer than 2 clusters: the variation between them cannot be estimated"}
    tau2 = k * clustered_variance(sums, counts)
    alpha = 1 - confidence
    t_now = stats.t.ppf(1 - alpha / 2, k - 1)
    out["tau"] = math.sqrt(tau2)
    out["half_width_now"] = t_now * math.sqrt(tau2 / k)  # the cluster-robust t interval's, as reported
    if tau2 <= 0:
        return {**out, "reason": "the paired difference is the same in every cluster, so its variation (what a "
                                 "sample size is computed from) is 0"}
    m_bar = n / k
    for name, target, beta in (("for_half_width", half_width, None), ("for_power", min_effect, 1 - power)):
        needed = clusters_needed(out["tau"], target, alpha, beta)
        out[name] = {"clusters": needed, "questions": _ceil(needed * m_bar), "more_clusters": max(0, needed - k)}
    rho, sigma2 = icc(x[keep], g[keep])
    out["icc"] = rho
    if rho is not None and sigma2 is not None:
        r = max(rho, 0.0)  # a negative correlation is not relied on to shrink a plan
        floor = t_now * math.sqrt(sigma2 * r / k)
        room = k * (half_width / t_now) ** 2 - sigma2 * r
        per = _ceil(sigma2 * (1 - r) / room) if room > 0 else None
        out["same_clusters"] = {"floor": floor, "per_cluster": per, "questions": None if per is None else per * k}
    return out


def plan(per_question: Mapping[str, Sequence[float]], qids: Sequence[str], pairs: Sequence[tuple[str, str]],
         cluster_of: Mapping[str, str], unit: str, *, half_width: float, min_effect: float, power: float,
         confidence: float) -> dict:
    """metrics.json's ``plan``: per comparison (a − b), its observed difference and the plan.
    ``per_question``: arm → the primary metric per question, in ``qids`` order; targets in points."""
    clusters = [cluster_of.get(q, f"question:{q}") for q in qids]
    out = {"unit": unit, "questions": len(qids), "clusters": len(set(clusters)),
           "half_width": half_width, "min_effect": min_effect, "power": power, "confidence": confidence,
           "comparisons": []}
    for a, b in pairs:
        if a not in per_question or b not in per_question:
            continue
        diffs = [x - y for x, y in zip(per_question[a], per_question[b])]
        defined = [d for d in diffs if not math.isnan(d)]
        entry = {"a": a, "b": b, "diff": sum(defined) / len(defined) if defined else None,
                 **plan_difference(diffs, clusters, half_width=half_width / 100, min_effect=min_effect / 100,
                                   power=power, confidence=confidence)}
        out["comparisons"].append(entry)
    return out


def _points(v: float) -> str:
    return f"{100 * v:.1f}"


def plan_lines(block: Mapping, interval: Mapping[str, Any] | None = None) -> list[str]:
    """The plan in sentences: one per comparison, then how it was computed. ``interval``: "a vs b" → the
    reported interval (metrics.json's differences), shown beside the observed difference."""
    unit = block["unit"]
    units = f"{unit}s"
    by_question = unit == "question"
    have = (f"{block['questions']} eval questions, each its own unit (eval.cluster=question)" if by_question
            else f"{block['questions']} eval questions from {block['clusters']} {units}")
    head = (f"You have {have}. Targets (eval.plan): an interval of ±{block['half_width']:g} points, or "
            f"{block['power']:.0%} power to detect a {block['min_effect']:g}-point difference, at "
            f"{100 * block['confidence']:g}% confidence.")
    lines = [head]
    for c in block.get("comparisons", []):
        name = f"{c['a']} − {c['b']}"
        shown = (interval or {}).get(f"{c['a']} vs {c['b']}") or {}
        ci = (f" [{_points(shown['ci_low'])}, {_points(shown['ci_high'])}]"
              if shown.get("ci_low") is not None and shown.get("ci_high") is not None else "")
        observed = "n/a" if c.get("diff") is None else f"{100 * c['diff']:+.1f}{ci}"
        if c.get("reason"):
            lines.append(f"{name}: {observed}; no plan: {c['reason']}.")
            continue
        h, p = c["for_half_width"], c["for_power"]

        def need(x: Mapping) -> str:
            amount = (f"{x['questions']:,} questions" if by_question
                      else f"{x['questions']:,} questions from {x['clusters']:,} {units}")
            return f"{amount}: the eval set has enough" if x["more_clusters"] == 0 else f"about {amount}"

        per = "" if by_question else f" (at {c['per_cluster']:.1f} questions per {unit})"
        text = (f"{name}: {observed} points, ±{100 * c['half_width_now']:.1f} now. For ±{block['half_width']:g}: "
                f"{need(h)}; to detect {block['min_effect']:g} points with {block['power']:.0%} power: {need(p)}{per}.")
        same = c.get("same_clusters")
        if same and h["more_clusters"] > 0:
            if same["per_cluster"] is None:
                text += (f" More questions on the same {c['clusters']} {units} cannot reach ±{block['half_width']:g}: "
                         f"their own variation keeps the interval above ±{100 * same['floor']:.1f}; new {units} "
                         "are needed.")
            else:
                text += (f" Alternatively {same['per_cluster']} questions on each of the same {c['clusters']} "
                         f"{units} ({same['questions']:,} in all).")
        lines.append(text)
    reliable = all(c.get("reliable", True) for c in block.get("comparisons", []))
    lines.append(
        f"Method: the observed variance of the {unit}-level paired differences (cluster-robust), extrapolated to "
        f"more {units} with t quantiles (Donner & Klar 2000)"
        + ("" if by_question else f"; more questions on the same {units} are limited by their intra-cluster "
                                   "correlation")
        + ". Plug-in estimates: a guide, not a guarantee"
        + ("." if reliable else f"; with fewer than {MIN_CLUSTERS} {units} they are rough.")
    )
    return lines
