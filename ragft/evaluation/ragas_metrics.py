"""ragas (0.4.x) metrics that need no LLM and no network: string similarity and ROUGE-L of the answer,
and context precision/recall of the chunks in the prompt against the gold documents' chunks.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

ANSWER_METRICS = ("string_similarity", "rouge")
CONTEXT_METRICS = ("context_precision", "context_recall")


def _ragas_metrics(names: tuple[str, ...]) -> dict[str, Any]:
    """ragas' classic metric objects: the only ones its evaluate() accepts in 0.4.x (importing them
    from ragas.metrics warns of deprecation; the collections API has no non-LLM context metrics)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ragas.metrics import (
            NonLLMContextPrecisionWithReference,
            NonLLMContextRecall,
            NonLLMStringSimilarity,
            RougeScore,
        )
    make = {
        "string_similarity": NonLLMStringSimilarity,
        "rouge": RougeScore,
        "context_precision": NonLLMContextPrecisionWithReference,
        "context_recall": NonLLMContextRecall,
    }
    return {name: make[name]() for name in names}


def ragas_scores(samples: list[dict], names: tuple[str, ...]) -> dict[str, list[float]]:
    """Per-sample scores of ragas metrics ``names`` for ragas SingleTurnSample dicts (response,
    reference, retrieved_contexts, reference_contexts), in the order of ``samples``."""
    if not samples:
        return {name: [] for name in names}
    from ragas import EvaluationDataset, evaluate
    from ragas.metrics.base import MetricWithEmbeddings, MetricWithLLM

    metrics = _ragas_metrics(names)
    if any(isinstance(m, (MetricWithLLM, MetricWithEmbeddings)) for m in metrics.values()):
        raise AssertionError("only metrics that need no LLM or embeddings may run here (no network)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = evaluate(
            EvaluationDataset.from_list(samples),
            metrics=list(metrics.values()),
            show_progress=False,
            raise_exceptions=True,
        )
    out: dict[str, list[float]] = {}
    for name, metric in metrics.items():
        # ROUGE's column is "rouge_score(mode=fmeasure)": match the metric name as a prefix
        key = next(k for k in result.scores[0] if k == metric.name or k.startswith(metric.name + "("))
        out[name] = [float(row[key]) if row[key] is not None else math.nan for row in result.scores]
    return out
