"""The retrieval-robustness sweep, scored: each model's primary metric in each condition, with its clustered
interval (ragft.evaluation.stats.Resampling),
and the few contrasts that answer "does fine-tuning make the model more robust to bad retrieval?".

Conditions and their contexts: ragft.retrieval.robustness. Each model's answers come from its
infer@<model> stage (data/predictions/<model>/robustness/<condition>/).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from ragft import paths
from ragft.evaluation.stats import Resampling
from ragft.io import read_json

log = logging.getLogger(__name__)


def score(cfg: Any, qa: list[dict], rs: Resampling) -> dict:
    """metrics/robustness.json's document: {enabled, metric, conditions, models: {model: {condition: CI}},
    contrasts: {model: {...}}}; {enabled: false} when the sweep is off."""
    from ragft.evaluation.scoring import read_predictions, score_arm
    from ragft.retrieval import robustness

    models = robustness.models(cfg)
    if not models:
        return {"enabled": False}
    metric = str(cfg.eval.primary_metric)
    conditions = read_json(paths.ROBUSTNESS_CONTEXTS / "conditions.json")
    qids = [q["qid"] for q in qa]
    out: dict[str, dict] = {}
    for model in models:
        out[model] = {}
        for c in conditions:
            preds = read_predictions(paths.robustness_predictions(model, c["name"]), qids, stage=f"infer@{model}")
            rows = score_arm(c["name"], qa, preds, {}, None, use_ragas=False).per_question
            out[model][c["name"]] = rs.mean([r[metric] for r in rows], qids).fields()
        log.info("robustness %s: %s", model, {k: v["estimate"] for k, v in out[model].items()})
    return {"enabled": True, "metric": metric, "confidence": rs.level, "conditions": conditions, "models": out,
            "contrasts": {m: contrasts(out[m], conditions) for m in models}}


def contrasts(by_condition: dict[str, dict], conditions: list[dict]) -> dict[str, float]:
    """Points lost (positive = worse) to each kind of bad retrieval, for one model."""
    est = {k: v["estimate"] for k, v in by_condition.items()}
    groups: dict[str, list[dict]] = {}
    for c in conditions:
        groups.setdefault(c["group"], []).append(c)
    out: dict[str, float] = {}

    def diff(name: str, a: str | None, b: str | None) -> None:
        if a in est and b in est:
            out[name] = round(est[a] - est[b], 6)

    top = groups.get("top_k", [])
    if top:
        diff("k_best_minus_k1", max(top, key=lambda c: est[c["name"]])["name"], top[0]["name"])
    shuffled = groups.get("shuffled", [])
    if shuffled:
        diff("shuffle_cost", f"k{shuffled[0]['size']}", shuffled[0]["name"])
    for kind in ("random", "hard"):
        if groups.get(kind):
            diff(f"{kind}_distractor_cost", "gold", groups[kind][-1]["name"])
    no_gold = groups.get("no_gold", [])
    if no_gold:
        diff("missing_gold_cost", f"k{no_gold[0]['size']}", no_gold[0]["name"])
    return out


def plot_rows(doc: dict) -> list[dict]:
    """plots/robustness.csv: model, condition, group, size, estimate."""
    if not doc.get("enabled"):
        return []
    return [{"model": m, "condition": c["name"], "group": c["group"], "size": c["size"],
             "estimate": doc["models"][m][c["name"]]["estimate"]}
            for m in doc["models"] for c in doc["conditions"] if not math.isnan(doc["models"][m][c["name"]]["estimate"])]
