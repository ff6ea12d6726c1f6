"""What the models know, beyond answering the eval questions: three measurements of knowledge injection.

- storage: does a model continue a fact's document with the fact (the storage probe, eval.storage_probe)?
  Beside the same model's closed-book score on those questions it separates "stored" from "extractable"
  (Allen-Zhu & Li, Physics of LMs 3.1: fine-tuning can store a biography without making it answerable).
- abstention: on questions about people absent from the corpus (dataset.absent_people) every arm is right
  only by abstaining; a confident answer is a hallucination. Fine-tuning on new facts tends to raise it
  (Gekhman et al. 2024), retrieval of a wrong document too.
- groups: each arm's score per question group (synthbio's celebrity and minority people: the people who got
  the augmentation and the ones who did not, Allen-Zhu & Li 3.1 §6).

All fractions in [0, 1] with clustered intervals (ragft.evaluation.stats.Resampling), in metrics.json.
"""

from __future__ import annotations

from typing import Any

from ragft.evaluation.stats import Resampling
from ragft.text import normalize_answer

# What counts as abstaining: the testbed's trained word, and what instruction-tuned models say instead.
ABSTENTIONS = ("unknown", "i don't know", "i do not know", "not known", "no information", "cannot answer",
               "can't answer", "not mentioned", "not provided", "no record")


def is_abstention(answer: str) -> bool:
    """Whether an answer declines (one of ABSTENTIONS, as whole words of the normalised answer)."""
    words = f" {normalize_answer(answer)} "
    return any(f" {normalize_answer(p)} " in words for p in ABSTENTIONS)


def _share(values: list[float], qids: list[str], rs: Resampling) -> dict:
    """The mean of per-question values (flags count as 0/1) with its clustered interval and the counts."""
    return rs.mean([float(v) for v in values], qids).fields()


def storage(probes: list[dict], completions: dict[str, list[dict]], closed_book: dict[str, dict[str, float]],
            rs: Resampling) -> dict[str, dict]:
    """model → {"completion": share of probes continued with the answer, "closed_book": the model's
    closed-book exact match on the same questions (None when the experiment has no closed-book arm),
    "stored_not_extractable": share completed but not answered}. ``completions``: model → infer's rows;
    ``closed_book``: model → qid → exact match (0/1) of its closed-book arm."""
    from ragft.io import DataError
    from ragft.model.probe import completion_hit

    answer = {p["qid"]: p["answer"] for p in probes}
    out: dict[str, dict] = {}
    for model, rows in completions.items():
        got = {r["qid"]: r["completion"] for r in rows}
        if set(got) != set(answer):
            raise DataError(f"data/predictions/{model}/storage_probe.jsonl: its completions are not the probe's "
                            f"{len(answer)} questions. Fix: `dvc repro infer@{model}`.")
        qids = sorted(answer)
        hits = [completion_hit(got[q], answer[q]) for q in qids]
        entry = {"completion": _share(hits, qids, rs), "closed_book": None, "stored_not_extractable": None}
        if model in closed_book:
            em = [bool(closed_book[model][q]) for q in qids]
            entry["closed_book"] = _share(em, qids, rs)
            entry["stored_not_extractable"] = _share([h and not e for h, e in zip(hits, em)], qids, rs)
        out[model] = entry
    return out


def abstention(questions: list[dict], predictions: dict[str, dict[str, dict]], rs: Resampling) -> dict[str, dict]:
    """arm → {"abstained": share of the absent people's questions declined, "answered": the share answered
    anyway (confident wrong answers: no document holds these people)}."""
    out = {}
    qids = [q["qid"] for q in questions]
    for arm, by_qid in predictions.items():
        declined = [is_abstention(by_qid[q]["answer"]) for q in qids]
        out[arm] = {"abstained": _share(declined, qids, rs), "answered": _share([not d for d in declined], qids, rs)}
    return out


def groups(questions: list[dict], per_question: dict[str, list[dict]], metric: str, rs: Resampling) -> dict:
    """group → arm → ``metric`` with CI, over the eval questions that carry a "group" (empty when none do)."""
    names = sorted({q["group"] for q in questions if q.get("group")})
    out: dict[str, dict] = {}
    for name in names:
        idx = [i for i, q in enumerate(questions) if q.get("group") == name]
        qids = [questions[i]["qid"] for i in idx]
        out[name] = {arm: _share([rows[i][metric] for i in idx], qids, rs) for arm, rows in per_question.items()}
    return out


def summary_rows(doc: dict[str, Any]) -> dict[str, Any]:
    """The three blocks of metrics.json this module fills, flattened for MLflow and `dvc exp show`."""
    flat: dict[str, Any] = {}
    for model, entry in (doc.get("storage") or {}).items():
        flat[f"storage.{model}.completion"] = entry["completion"]["estimate"]
        if entry["stored_not_extractable"]:
            flat[f"storage.{model}.stored_not_extractable"] = entry["stored_not_extractable"]["estimate"]
    for arm, entry in (doc.get("absent") or {}).items():
        flat[f"absent.{arm}.abstained"] = entry["abstained"]["estimate"]
    for group, arms in (doc.get("groups") or {}).items():
        for arm, entry in arms.items():
            flat[f"groups.{group}.{arm}"] = entry["estimate"]
    return flat
