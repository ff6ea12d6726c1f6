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
