"""Train/eval contamination guard: exact and near-duplicate overlap between texts, by MinHash LSH.

Fine-tuning data that contains an eval question (verbatim or nearly) would turn "knowledge
injection" into memorising the test, so that fails the stage. The retrieval corpus containing the
answers is expected — that is what RAG exploits — so it is measured and reported, never failed.
Near-duplicates: word n-gram shingles, MinHash LSH (datasketch) for candidates, exact Jaccard to confirm.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from datasketch import MinHash, MinHashLSH

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def shingles(text: str, n: int = 3) -> set[str]:
    words = normalize(text).split()
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def _minhash(sh: set[str], num_perm: int, seed: int) -> MinHash:
    m = MinHash(num_perm=num_perm, seed=seed)
    for s in sorted(sh):
        m.update(s.encode("utf-8"))
    return m


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
    exact_train = {normalize(t) for t in train}
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    train_shingles = []
    for i, text in enumerate(train):
        sh = shingles(text, ngram)
        train_shingles.append(sh)
        if sh:
            lsh.insert(str(i), _minhash(sh, num_perm, seed))
    for eid, text in sorted(eval_items.items()):
        if normalize(text) in exact_train:
            result.exact.append(eid)
            continue
        sh = shingles(text, ngram)
        if not sh:
            continue
        best = 0.0
        for cand in lsh.query(_minhash(sh, num_perm, seed)):
            other = train_shingles[int(cand)]
            best = max(best, len(sh & other) / len(sh | other))
        if best >= threshold:
            result.near.append((eid, round(best, 4)))
    return result


def answers_in_corpus(answers: Mapping[str, str], documents: Iterable[str]) -> float:
    """Share of eval answers found verbatim (normalised) in the corpus: expected to be high for RAG."""
    corpus = " \n ".join(normalize(d) for d in documents)
    found = sum(1 for a in answers.values() if normalize(a) and normalize(a) in corpus)
    return found / len(answers) if answers else 0.0
