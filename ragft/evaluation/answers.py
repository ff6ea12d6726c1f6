"""What counts as a correct answer: SQuAD v1.1 exact match and token F1, and answer containment
("match"), each the max over the gold answers.

EM and F1 follow the official SQuAD v1.1 evaluation script (Rajpurkar et al., 2016, "SQuAD: 100,000+
Questions for Machine Comprehension of Text", evaluate-v1.1.py): lowercase, strip punctuation and the
articles a/an/the, collapse whitespace; F1 over the bag of normalised tokens. A chat model answers in
sentences ("Lars Young works for Summit Textiles."), which EM scores 0: match asks whether the normalised
gold answer occurs in the normalised response, as whole words. It cannot tell a right answer from a
response that lists several candidates, so the reports show the mean answer length beside it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ragft.text import normalize_answer


def exact_match_score(prediction: str, ground_truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_score(prediction: str, ground_truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(ground_truth).split()
    num_same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def match_score(prediction: str, ground_truth: str) -> float:
    """1.0 when the normalised gold answer occurs in the normalised response as whole words, else 0.0."""
    gold = normalize_answer(ground_truth)
    return float(bool(gold) and f" {gold} " in f" {normalize_answer(prediction)} ")


def max_over_ground_truths(metric, prediction: str, ground_truths: list[str]) -> float:
    return max(metric(prediction, gt) for gt in ground_truths)


def gold_answers(answer: Any) -> list[str]:
    """A QA row's answer field as a list of acceptable answers."""
    return [answer] if isinstance(answer, str) else list(answer)
