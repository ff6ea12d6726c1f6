"""What each arm costs per query and what fine-tuning costs once: the numbers someone choosing between RAG,
fine-tuning or both weighs against quality.

RAG pays for its retrieved context on every query (a longer prompt); a closed-book fine-tuned model pays
once (its training) and then answers from a short prompt. The choice is then a query volume, the
break-even: the queries after which the fine-tuned arm's saving per query has paid for its training, if
its quality holds up (a fine-tuned arm that is significantly worse never pays off, whatever the volume).

Two steps keep metrics/metrics.json deterministic:

- ``decision``: deterministic inputs only (scores and CIs, token counts, prices): metrics.json's
  ``decision`` block, costs priced by tokens;
- ``measured``: that block plus what depends on measured times (each fine-tuning run's train_seconds,
  each arm's seconds per question, which vary from run to run): training costs, time-priced costs per
  query (``eval.costs.gpu_hour``) and the break-even volumes. The reports and `ragft summary` show it.

``summary_lines`` says a measured block in words, every assumption beside the numbers. All functions are
pure, over plain dicts (metrics.json's arms, differences and verdict, timings.json, train_metrics.json).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ragft.arms import DEFAULT_CANDIDATES, RAG, Arm, Context, Design, label, ordered
from ragft.evaluation.verdict import METRIC_WORDS, paired

PRICE_KEYS = ("input_per_million", "output_per_million", "gpu_hour", "train_gpu_hour", "currency")  # eval.costs
PER = 1000  # costs are stated per 1,000 queries: per query they are fractions of a cent


def _num(v: Any) -> float | None:
    """``v`` as a float; None when missing or NaN (metrics.json writes NaN as null)."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        return None
    return float(v)


# --------------------------------------------------------------------------- the arithmetic


def output_tokens(rows: Iterable[Mapping]) -> float | None:
    """One arm's mean output tokens per answer, as its prediction rows counted them (``output_tokens``: the
    generated token ids without the end of sequence, or a server's usage.completion_tokens; checked where the
    predictions are read, ragft.evaluation.scoring.read_predictions): what a provider bills."""
    counts = [r["output_tokens"] for r in rows]
    return sum(counts) / len(counts) if counts else None


def token_cost(prompt_tokens: Any, output_tokens: Any, input_per_million: float,
               output_per_million: float) -> float | None:
    """One query priced by tokens, as a hosted API bills it: prompt and output tokens at their prices."""
    p, o = _num(prompt_tokens), _num(output_tokens)
    if p is None or o is None:
        return None
    return (p * input_per_million + o * output_per_million) / 1e6


def time_cost(seconds: Any, per_hour: float | None) -> float | None:
    """``seconds`` of a machine rented at ``per_hour`` (serving one query, or one training run)."""
    s = _num(seconds)
    if s is None or per_hour is None:
        return None
    return s * per_hour / 3600.0


def seconds_per_query(timings: Mapping) -> float | None:
    """An arm's measured seconds per question (its timings.json): the mean latency, else 1 / throughput."""
    s = _num(timings.get("mean_latency_seconds"))
    if s is not None:
        return s
    qps = _num(timings.get("questions_per_second"))
    return 1.0 / qps if qps else None


def break_even(training_cost: Any, rag_per_query: Any, tuned_per_query: Any) -> float | None:
    """Queries after which a fine-tuned arm that is cheaper per query has paid for its training:
    training cost / (RAG's cost per query − the fine-tuned arm's). None when it is not cheaper (never) or
    a number is missing."""
    t, r, f = _num(training_cost), _num(rag_per_query), _num(tuned_per_query)
    if t is None or r is None or f is None or r - f <= 0:
        return None
    return t / (r - f)


def pairs(arms: Iterable[str], design: Design | None = None) -> list[tuple[str, str, str]]:
    """(fine-tuned arm, RAG arm, kind) the break-even compares, RAG being the tuned candidate's own base with
    retrieval (base-retrieved for today's three): each tuned candidate closed-book ("closed_book": it saves the
    retrieved context on every query) and with retrieval ("same_prompt": the same retrieved prompt as RAG, so only
    shorter answers can pay the training back)."""
    names = list(arms)
    design = design or Design.from_json(None, names)
    out = []
    for model in ordered((Arm.parse(n).model for n in names), design.names):
        rag = design.rag(model) if design.is_tuned(model) else None
        if rag not in names:
            continue
        for context, kind in ((Context.none, "closed_book"), (Context.retrieved, "same_prompt")):
            arm = Arm(model, context)
            if arm.name in names:
                out.append((arm.name, rag, kind))
    return out


def _best(arms: Mapping[str, Mapping], names: Iterable[str], metric: str, design: Design | None = None) -> list[dict]:
    """The arms ``names`` with their score and interval; a declared candidate's arm with its label in words (today's
    three are labelled from their names when shown)."""
    out = []
    for a in names:
        if a not in arms:
            continue
        entry = {"arm": a, "score": _num(arms[a].get(metric)), "ci": arms[a].get(f"{metric}_ci"),
                 "clusters": arms[a].get(f"{metric}_clusters")}
        model = Arm.parse(a).model
        if design is not None and design.get(model) != DEFAULT_CANDIDATES.get(model):
            entry["label"] = design.label(a)
        out.append(entry)
    return out


def decision(arms: Mapping[str, Mapping], differences: Mapping | None, verdict: Mapping,
             output: Mapping[str, float | None], prices: Mapping, metric: str, confidence: float,
             unit: str | None = None, design: Design | None = None,
             cached_prompt: Mapping[str, float] | None = None) -> dict:
    """metrics.json's ``decision`` block, from deterministic inputs only: the verdict's best deployable arm(s)
    (``best``) with their interval, the oracle arms as ``ceilings``, each arm's token counts and cost per 1,000
    queries priced by tokens, and for each fine-tuned arm against RAG its quality difference (paired interval)
    and its token saving. ``output``: arm → mean counted output tokens; ``prices``: eval.costs (PRICE_KEYS);
    ``unit``: what the intervals are over (eval.cluster), said beside them. ``cached_prompt``: arm → the prompt
    tokens every query shares (a long_context arm's corpus), priced at ``cached_input_per_million`` in the arm's
    ``cached_token_cost_per_1k`` (a provider's prompt caching); absent when no arm shares a prefix."""
    cached_prompt = {a: n for a, n in (cached_prompt or {}).items() if n and a in arms}
    cached_price = prices.get("cached_input_per_million")
    prices = {k: prices.get(k) for k in PRICE_KEYS} | ({"cached_input_per_million": cached_price} if cached_prompt else {})
    block: dict[str, Any] = {"metric": metric, "confidence": confidence, "prices": prices, "unit": unit,
                             "rag": RAG if RAG in arms else None}
    block["best"] = _best(arms, verdict.get("best_arms") or [], metric, design)
    ceilings = sorted((verdict.get("ceilings") or {}), key=lambda a: (-(_num(arms[a].get(metric)) or 0), a))
    block["ceilings"] = _best(arms, ceilings, metric, design)
    block["arms"] = {}
    for arm, m in arms.items():
        tokens = output.get(arm)
        cost = token_cost(m.get("mean_prompt_tokens"), tokens, prices["input_per_million"],
                          prices["output_per_million"])
        block["arms"][arm] = {"score": _num(m.get(metric)), "prompt_tokens": _num(m.get("mean_prompt_tokens")),
                              "output_tokens": _num(tokens), "token_cost_per_1k": None if cost is None else PER * cost}
        if arm in cached_prompt and cost is not None and cached_price is not None:
            shared = float(cached_prompt[arm])
            block["arms"][arm]["cached_prompt_tokens"] = shared
            block["arms"][arm]["cached_token_cost_per_1k"] = PER * (cost - shared * (prices["input_per_million"]
                                                                                     - cached_price) / 1e6)
    block["comparisons"] = []
    for tuned, rag, kind in pairs(arms, design):
        d = paired(differences, tuned, rag)
        quality = ({"diff": _num(d["diff"]), "ci_low": _num(d["ci_low"]), "ci_high": _num(d["ci_high"]),
                    "clusters": d.get("clusters")}
                   if d and _num(d.get("diff")) is not None else None)
        lo, hi = (quality["ci_low"], quality["ci_high"]) if quality else (None, None)
        t, r = block["arms"][tuned]["token_cost_per_1k"], block["arms"][rag]["token_cost_per_1k"]
        block["comparisons"].append({
            "tuned": tuned, "rag": rag, "model": Arm.parse(tuned).model, "kind": kind, "quality": quality,
            "worse": hi is not None and hi < 0, "better": lo is not None and lo > 0,  # the CI excludes 0
            "token_saving_per_1k": None if t is None or r is None else r - t,
        })
    return block


def measured(block: Mapping, train_seconds: Mapping[str, Any], seconds: Mapping[str, Any]) -> dict:
    """``block`` (``decision``'s) plus what depends on measured times: the basis of the costs ("gpu_hour"
    when eval.costs.gpu_hour is set, else "tokens"), each arm's cost per 1,000 queries on it, each
    fine-tuning run's one-off cost (``train_seconds``: model → seconds), and each comparison's break-even:
    ``break_even_queries`` or ``never`` ("worse", "not_cheaper"); neither when a number
    is missing. ``seconds``: arm → measured seconds per question."""
    out = copy.deepcopy(dict(block))
    prices = out["prices"]
    basis = "gpu_hour" if prices.get("gpu_hour") is not None else "tokens"
    out["basis"] = basis
    for arm, a in out["arms"].items():
        a["seconds_per_query"] = _num(seconds.get(arm))
        if basis == "gpu_hour":
            c = time_cost(a["seconds_per_query"], prices["gpu_hour"])
            a["cost_per_1k"] = None if c is None else PER * c
        else:
            a["cost_per_1k"] = a["token_cost_per_1k"]
            if "cached_token_cost_per_1k" in a:
                a["cached_cost_per_1k"] = a["cached_token_cost_per_1k"]
    models = sorted(set(train_seconds) | {c["model"] for c in out["comparisons"]})
    out["training"] = {m: {"seconds": _num(train_seconds.get(m)),
                           "cost": time_cost(train_seconds.get(m), prices["train_gpu_hour"])} for m in models}
    for c in out["comparisons"]:
        t_cost, r_cost = out["arms"][c["tuned"]]["cost_per_1k"], out["arms"][c["rag"]]["cost_per_1k"]
        c["training_cost"] = out["training"][c["model"]]["cost"]
        c["saving_per_1k"] = None if t_cost is None or r_cost is None else r_cost - t_cost
        c["break_even_queries"], c["never"] = None, None
        if c["worse"]:
            c["never"] = "worse"
        elif c["saving_per_1k"] is not None and c["saving_per_1k"] <= 0:
            c["never"] = "not_cheaper"
        elif c["saving_per_1k"] is not None:
            c["break_even_queries"] = break_even(c["training_cost"], r_cost / PER, t_cost / PER)
    return out


# --------------------------------------------------------------------------- in words


def money(value: Any, currency: str = "") -> str:
    """'USD 0.00921': three significant digits below 1 (these are fractions of a cent), cents above;
    without ``currency`` the number alone (a column whose header names it)."""
    v = _num(value)
    if v is None:
        return "n/a"
    digits = 2 if v == 0 or abs(v) >= 1 else min(9, max(2, 2 - math.floor(math.log10(abs(v)))))
    return f"{currency} {v:,.{digits}f}".strip()


def _over(clusters: Any, unit: str | None) -> str:
    """', 12 documents': the clusters an interval is over, beside it."""
    return f", {clusters} {unit}s" if clusters and unit else ""


def _ci(q: Mapping, level: str, unit: str | None = None) -> str:
    if q.get("ci_low") is None or q.get("ci_high") is None:
        return ""
    return f" ({level} CI {100 * q['ci_low']:.1f} to {100 * q['ci_high']:.1f}{_over(q.get('clusters'), unit)})"


def _best_text(best: list[dict], level: str, methods: Mapping[str, str] | None = None, unit: str | None = None) -> str:
    def one(b: dict) -> str:
        ci = b["ci"] if isinstance(b.get("ci"), (list, tuple)) and len(b["ci"]) == 2 and None not in b["ci"] else None
        score = "n/a" if b["score"] is None else f"{100 * b['score']:.1f}%"
        interval = (f" ({level} CI {100 * ci[0]:.1f} to {100 * ci[1]:.1f}{_over(b.get('clusters'), unit)})"
                    if ci else "")
        return f"{b['arm']} ({b.get('label') or label(b['arm'], methods)}), {score}{interval}"
    return "; ".join(one(b) for b in best)


def _quality(c: Mapping, unit: str, level: str, verdict: bool = True, cluster_unit: str | None = None) -> str:
    """'+1.7 match points (95% CI -3.3 to 6.7, 12 documents), no significant difference': the fine-tuned arm −
    RAG."""
    q = c.get("quality")
    if not q:
        return f"no paired {unit} difference in metrics.json"
    said = "better" if c["better"] else ("worse" if c["worse"] else "no significant difference")
    return f"{100 * q['diff']:+.1f} {unit} points{_ci(q, level, cluster_unit)}" + (f", {said}" if verdict else "")


def comparison_text(c: Mapping, block: Mapping) -> str:
    """One break-even in a sentence: the volume (or never, and why), the numbers it comes from, the quality."""
    cur, unit = block["prices"]["currency"], METRIC_WORDS.get(block["metric"], block["metric"])
    level = f"{100 * block['confidence']:g}%"
    tuned, rag = block["arms"][c["tuned"]], block["arms"][c["rag"]]
    head = f"{c['tuned']} instead of {c['rag']}"
    costs = f"{money(tuned['cost_per_1k'], cur)} vs {money(rag['cost_per_1k'], cur)} per 1,000 queries"
    tokens = f"{tuned['prompt_tokens'] or 0:.1f} vs {rag['prompt_tokens'] or 0:.1f} prompt tokens"
    training = money(c["training_cost"], cur)
    quality = _quality(c, unit, level, cluster_unit=block.get("unit"))
    if c["never"] == "worse":
        worse = _quality(c, unit, level, verdict=False, cluster_unit=block.get("unit"))
        return (f"{head}: never: it is worse on {unit}, {worse}, a CI excluding 0, "
                f"so no query volume makes up for it ({costs}; {tokens}; one-off training {training}).")
    if c["never"] == "not_cheaper":
        return (f"{head}: never: it is not cheaper per query ({costs}; {tokens}), so its one-off training "
                f"({training}) is never paid back. Quality: {quality}.")
    if c["break_even_queries"] is None:
        why = "no measured training time" if c["training_cost"] is None else "a cost per query is missing"
        return f"{head}: break-even unknown: {why} ({costs}; one-off training {training}). Quality: {quality}."
    same = " (the same retrieved prompt: the saving is its shorter answers)" if c["kind"] == "same_prompt" else ""
    return (f"{head}: pays for its training after {round(c['break_even_queries']):,} queries{same} (one-off "
            f"training {training}; {costs}; {tokens}). Quality: {quality}.")


def price(value: Any, currency: str) -> str:
    """A price as configured: 'USD 0.15', 'USD 2.00'."""
    v = _num(value)
    return "n/a" if v is None else f"{currency} {v:,.2f}" if v >= 1 or v == 0 else f"{currency} {v:g}"


def summary_lines(block: Mapping, methods: Mapping[str, str] | None = None) -> dict:
    """A measured block in words: {"best", "break_even" (sentences), "assumptions" (sentences), "currency",
    "basis"}; what both reports and `ragft summary` print. ``methods``: fine-tuned model → finetune.method."""
    p, cur = block["prices"], block["prices"]["currency"]
    unit, level = METRIC_WORDS.get(block["metric"], block["metric"]), f"{100 * block['confidence']:g}%"
    best, ceilings, cluster_unit = block.get("best") or [], block.get("ceilings") or [], block.get("unit")
    best_text = (f"Best deployable arm{'s (tied)' if len(best) > 1 else ''} on {unit}: "
                 f"{_best_text(best, level, methods, cluster_unit)}." if best else f"No deployable arm has a {unit} score.")
    if ceilings:
        top = ceilings[0]["score"]
        shown = [c for c in ceilings if c["score"] == top]
        best_text += (f" Ceiling, with the gold document handed to the model (not deployable): "
                      f"{_best_text(shown, level, methods, cluster_unit)}.")
    rag = block.get("rag") or RAG
    lines = [comparison_text(c, block) for c in block.get("comparisons", [])]
    if not lines:
        lines = [f"No break-even: it needs the RAG arm ({RAG}) and a fine-tuned arm (finetuned-none, raft-none)."]
    prices = (f"Prices (eval.costs; placeholder list prices, set your own): {price(p['input_per_million'], cur)} per "
              f"million input tokens, {price(p['output_per_million'], cur)} per million output tokens, "
              f"{price(p['train_gpu_hour'], cur)} per hour of the training machine")
    if block.get("basis") == "gpu_hour":
        prices += f", {price(p['gpu_hour'], cur)} per hour of the serving machine"
        basis = (f"Cost per query = the arm's measured seconds per question × {price(p['gpu_hour'], cur)} per hour "
                 "(eval.costs.gpu_hour is set, so the token prices are not used); measured times vary from run to run.")
    else:
        basis = ("Cost per query = the arm's mean prompt tokens × the input price + its mean output tokens × the "
                 "output price (prompt tokens as the generator's tokenizer counted them, retrieved chunks included).")
    output = ("Output tokens: counted, each answer's generated tokens without the end of sequence (a server's "
              "usage.completion_tokens when an arm was served).")
    runs = [f"{m} {t['seconds']:.1f} s ({money(t['cost'], cur)})" for m, t in block.get("training", {}).items()
            if t.get("seconds") is not None]
    training = (f"One-off training cost = the run's measured train_seconds × {price(p['train_gpu_hour'], cur)} "
                f"per hour (eval.costs.train_gpu_hour): {', '.join(runs) if runs else 'no fine-tuning run measured'}; "
                "training times vary from run to run.")
    rule = (f"Break-even = training cost / ({rag} cost per query − the fine-tuned arm's cost per query): the queries "
            f"after which its shorter prompt has paid for its training. Never when the fine-tuned arm is worse on "
            f"{unit} with a {level} CI excluding 0, or not cheaper per query. A fine-tuned model is assumed to cost "
            "the same per token as the base model; the index's build and storage are left out.")
    assumptions = [prices + ".", basis, output, training, rule]
    cached = {a: d["cached_prompt_tokens"] for a, d in block.get("arms", {}).items() if d.get("cached_prompt_tokens")}
    if cached and p.get("cached_input_per_million") is not None:
        shared = ", ".join(f"{a} {n:,.0f}" for a, n in cached.items())
        assumptions.append(
            f"With prompt caching: the prompt tokens every query shares (the long-context corpus: {shared}) at "
            f"{price(p['cached_input_per_million'], cur)} per million (eval.costs.cached_input_per_million, a "
            "provider's price for cached input; placeholder), the rest at the input price. It assumes the cache stays "
            "warm: queries often enough that the provider keeps the prefix.")
    return {"best": best_text, "break_even": lines, "assumptions": assumptions,
            "currency": cur, "basis": block.get("basis", "tokens")}
