"""The long_context arm in the model's window: every document in the prompt, or a refusal before any work.

The contexts stage writes every document, in one seeded order, for every question
(ragft.retrieval.contexts.long_context_contexts). Here, with the model's tokenizer and window: the corpus fits
(the longest question's prompt, its template and `inference.max_new_tokens` included), or, with
`long_context.max_tokens`, the documents are taken in their order up to that budget, or the arm is refused
naming the corpus's token count, the window and the fixes. Nothing is ever cut silently: the infer stage's
usual fitting shortens a context from its end, which here would drop whichever documents happen to be last.
"""

from __future__ import annotations

import logging
from typing import Any

from ragft.io import DataError
from ragft.model import prompts

log = logging.getLogger(__name__)


def _prompt_tokens(question: str, texts: list[str], cfg: Any, tokenizer: Any) -> int:
    from ragft.model.generation import build_prompt

    return len(prompts.encode_prompt(build_prompt(question, texts, cfg, tokenizer), tokenizer))


def fit(rows: list[dict], cfg: Any, tokenizer: Any, window: int, where: str) -> list[dict]:
    """``rows`` (data/contexts/long_context.jsonl) with each question's documents as they fit: all of them, or
    the first ones up to ``long_context.max_tokens``. Refused (DataError naming the numbers and the fixes) when
    they cannot fit. ``where`` names the model in the messages."""
    if not rows:
        return rows
    max_new = int(cfg.inference.max_new_tokens)
    limit = window - max_new
    docs = rows[0]["chunks"]
    texts = [c["text"] for c in docs]
    corpus_tokens = len(tokenizer(prompts.join_contexts(texts, cfg), add_special_tokens=False)["input_ids"])
    longest = max(rows, key=lambda r: len(r["question"]))["question"]
    overhead = _prompt_tokens(longest, ["x"], cfg, tokenizer) - 1   # the template and the longest question
    budget = cfg.long_context.max_tokens
    if budget is None:
        needed = _prompt_tokens(longest, texts, cfg, tokenizer)
        if needed > limit:
            raise DataError(
                f"{where}: the long_context arm needs the whole corpus in the prompt: {len(docs)} documents, "
                f"{corpus_tokens} tokens, {needed} with the template and the longest question, but the model's window "
                f"is {window} tokens less inference.max_new_tokens ({max_new}) = {limit}. Fix: a model with a larger "
                f"window, fewer documents, RAG (drop long_context from arms.contexts), or a budget: "
                f"-S long_context.max_tokens={max(limit - overhead, 1)} (documents are then taken in their seeded "
                "order up to it, and the report states the share of the corpus each question saw)."
            )
        return rows
    budget = int(budget)
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    if lengths[0] > budget:
        raise DataError(
            f"params.yaml: field 'long_context.max_tokens' is {budget}, below the first document of the long-context "
            f"order ({docs[0]['doc_id']}: {lengths[0]} tokens), so no document would be in the prompt. Fix: a budget "
            f"of at least {lengths[0]} (the whole corpus is {corpus_tokens} tokens), or drop long_context from "
            "arms.contexts."
        )
    if budget + overhead > limit:
        raise DataError(
            f"params.yaml: field 'long_context.max_tokens' is {budget}, but with the template and the longest question "
            f"({overhead} tokens) the prompt would exceed {where}'s window of {window} tokens less "
            f"inference.max_new_tokens ({max_new}) = {limit}. Fix: -S long_context.max_tokens={limit - overhead} or less."
        )
    kept, total = 0, 0
    for n in lengths:   # the separator's tokens are small; the exact prompt is checked below
        if total + n > budget:
            break
        total, kept = total + n, kept + 1
    while kept > 1 and len(tokenizer(prompts.join_contexts(texts[:kept], cfg), add_special_tokens=False)["input_ids"]) > budget:
        kept -= 1
    if kept < len(docs):
        log.info("long_context: %d of %d documents fit long_context.max_tokens=%d (the corpus is %d tokens)",
                 kept, len(docs), budget, corpus_tokens)
    return [{**row, "chunks": row["chunks"][:kept]} for row in rows]
