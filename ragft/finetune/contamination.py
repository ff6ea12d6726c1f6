"""Train/eval contamination guard: exact and near-duplicate overlap between texts, by MinHash LSH.

Fine-tuning data that contains an eval question (verbatim or nearly) would turn "knowledge
injection" into memorising the test, so that fails the stage. The retrieval corpus containing the
answers is expected — that is what RAG exploits — so it is measured and reported, never failed.
Near-duplicates: ragft.text.NearDuplicates (word n-gram MinHash LSH, exact Jaccard to confirm).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ragft import paths
from ragft.evaluation.answers import gold_answers
from ragft.io import DataError
from ragft.text import NearDuplicates
from ragft.text import normalize_text as normalize


@dataclass
class Overlap:
    """Which eval items overlap a training source, exactly or nearly."""

    source: str
    n_train: int
    exact: list[str] = field(default_factory=list)          # eval ids with an identical (normalised) training text
    near: list[tuple[str, float]] = field(default_factory=list)  # (eval id, Jaccard) above the threshold

    @property
    def contaminated(self) -> bool:
        return bool(self.exact or self.near)

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "n_train": self.n_train,
            "exact": len(self.exact),
            "near_duplicates": len(self.near),
            "examples": sorted(self.exact)[:5] + [q for q, _ in sorted(self.near)[:5]],
        }


def find_overlap(
    source: str,
    train_texts: Iterable[str],
    eval_items: Mapping[str, str],
    *,
    threshold: float = 0.8,
    ngram: int = 3,
    num_perm: int = 128,
    seed: int = 0,
) -> Overlap:
    """Eval items (id → text) that appear in ``train_texts`` exactly or as near-duplicates."""
    train = [t for t in train_texts if t and t.strip()]
    result = Overlap(source, len(train))
    index = NearDuplicates(threshold=threshold, ngram=ngram, num_perm=num_perm, seed=seed)
    for i, text in enumerate(train):
        index.add(str(i), text)
    for eid, text in sorted(eval_items.items()):
        found = index.match(text)
        if found is None:
            continue
        if found[1] == 1.0 and normalize(text) == normalize(train[int(found[0])]):
            result.exact.append(eid)
        else:
            result.near.append((eid, round(found[1], 4)))
    return result


def answers_in_corpus(answers: Mapping[str, str], documents: Iterable[str]) -> float:
    """Share of eval answers found verbatim (normalised) in the corpus: expected to be high for RAG."""
    corpus = " \n ".join(normalize(d) for d in documents)
    found = sum(1 for a in answers.values() if normalize(a) and normalize(a) in corpus)
    return found / len(answers) if answers else 0.0


def contamination_report(qa: list[dict], chunks: list[dict], trained: dict[str, dict], seed: int = 0) -> dict:
    """What overlaps what: the fine-tuning data vs the eval questions (each finetune stage checked it and
    failed on any overlap; its counts are repeated here), the corpus vs the eval questions (near-duplicate
    questions in the corpus would be a leak of another kind), and the share of eval answers found in the
    corpus (expected: that is RAG)."""
    texts = [c["text"] for c in chunks]
    corpus = find_overlap("corpus", texts, {str(q["qid"]): q["question"] for q in qa}, seed=seed)
    answers = {str(q["qid"]): gold_answers(q["answer"])[0] for q in qa}
    return {
        "eval_questions": len(qa),
        "finetune_vs_eval": {
            m: {"exact": t.get("eval_overlap_exact"), "near_duplicates": t.get("eval_overlap_near")}
            for m, t in sorted(trained.items())
        },
        "corpus_vs_eval_questions": {"exact": len(corpus.exact), "near_duplicates": len(corpus.near)},
        "eval_answers_in_corpus": round(answers_in_corpus(answers, texts), 6),
    }


# --------------------------------------------------------------------------- the fine-tuning guard


def check_no_eval_leak(rows: list[dict], qa_eval: list[dict], source: str) -> None:
    """DataError if any training row carries an eval question (same qid or same normalised text)."""
    eval_qids = {str(r["qid"]) for r in qa_eval}
    eval_texts = {normalize(r["question"]): str(r["qid"]) for r in qa_eval}
    for row in rows:
        if "question" not in row:
            continue
        qid, text = str(row.get("qid")), normalize(row["question"])
        if qid in eval_qids or text in eval_texts:
            raise DataError(
                f"{source}: training question {row.get('qid')!r} ({row['question']!r}) is an eval question "
                f"(qid {qid if qid in eval_qids else eval_texts[text]} of {paths.QA_EVAL} or {paths.QA_DEV.name}). Eval and "
                "dev questions must never be trained on: fix the split (`dvc repro prepare`) so no question is in two."
            )


def contamination_guard(rows: list[dict], qa_eval: list[dict], source: str, seed: int = 0) -> dict:
    """Exact + near-duplicate overlap of the training rows with the eval questions; DataError if any.

    Returns the measured overlap (for the manifest and the report)."""
    check_no_eval_leak(rows, qa_eval, source)
    texts = [r.get("question") or r.get("text") or r.get("prompt") or "" for r in rows]
    overlap = find_overlap(source, texts, {str(q["qid"]): q["question"] for q in qa_eval}, seed=seed)
    if overlap.contaminated:
        shown = sorted(overlap.exact)[:3] + [f"{q} (Jaccard {j})" for q, j in sorted(overlap.near)[:3]]
        raise DataError(
            f"{source}: {len(overlap.exact)} eval question(s) appear verbatim and {len(overlap.near)} as near-duplicates "
            f"in the fine-tuning data, e.g. {shown}. Eval questions must never be trained on: fix the train/eval "
            "split (`dvc repro prepare`) or remove those rows from the training data."
        )
    return overlap.as_dict()
