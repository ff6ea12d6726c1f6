"""Text normalisation: one definition of "the same answer" (evaluation, training probes) and of "the same
text" (the contamination guard)."""

from __future__ import annotations

import re
import string

_PUNCTUATION = frozenset(string.punctuation)
_PUNCTUATION_RUN = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (SQuAD v1.1)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def normalize_text(s: str) -> str:
    """Lowercase, punctuation → spaces, single spaces: trivially different spellings of a text collide."""
    return " ".join(_PUNCTUATION_RUN.sub(" ", s.lower()).split())


def shingles(text: str, n: int = 3) -> set[str]:
    """The word n-grams of the normalised text (the whole text if it is shorter than n words)."""
    words = normalize_text(text).split()
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


class NearDuplicates:
    """Texts "nearly the same" as ones added before: exact after normalisation, or word n-gram Jaccard >=
    ``threshold``. MinHash LSH (datasketch) proposes candidates; the exact Jaccard confirms them, so the
    answer does not depend on the hashing's luck. One definition for the contamination guard and for
    the generated-question filter."""

    def __init__(self, threshold: float = 0.8, ngram: int = 3, num_perm: int = 128, seed: int = 0) -> None:
        from datasketch import MinHashLSH

        self.threshold, self.ngram, self.num_perm, self.seed = threshold, ngram, num_perm, seed
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._exact: dict[str, str] = {}
        self._shingles: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._shingles)

    def _minhash(self, sh: set[str]):
        from datasketch import MinHash

        m = MinHash(num_perm=self.num_perm, seed=self.seed)
        for s in sorted(sh):
            m.update(s.encode("utf-8"))
        return m

    def add(self, key: str, text: str) -> None:
        sh = shingles(text, self.ngram)
        self._exact.setdefault(normalize_text(text), key)
        self._shingles[key] = sh
        if sh:
            self._lsh.insert(key, self._minhash(sh))

    def match(self, text: str) -> tuple[str, float] | None:
        """``(key, Jaccard)`` of the closest added text that ``text`` duplicates (1.0 when exact), or None."""
        exact = self._exact.get(normalize_text(text))
        if exact is not None:
            return exact, 1.0
        sh = shingles(text, self.ngram)
        if not sh or not self._shingles:
            return None
        best: tuple[str, float] | None = None
        for key in sorted(self._lsh.query(self._minhash(sh))):
            other = self._shingles[key]
            jaccard = len(sh & other) / len(sh | other)
            if jaccard >= self.threshold and (best is None or jaccard > best[1]):
                best = (key, jaccard)
        return best
