"""How questions, contexts and answers become model inputs: one set of functions for pretraining,
fine-tuning and inference, so that every stage shows the model exactly the same format.

The templates come from the config's ``prompt`` group (``closed_book_template``, ``context_template``,
``chunk_separator``, ``chat_template``).
A training example is the prompt followed by the answer and EOS; the loss is on the answer and EOS only,
which is what inference asks of the model (greedy continuation of the prompt, stopped by EOS). For a chat
model the prompt is the rendered conversation up to the opened assistant turn, so the loss is on the
assistant's turn only (its answer and the end-of-turn token, which is the tokenizer's EOS).
"""

from __future__ import annotations

from typing import Any

IGNORE_INDEX = -100  # labels the loss skips (transformers' convention)


def _templates(cfg: Any) -> Any:
    """Accept the whole config or just its ``prompt`` group."""
    return cfg.prompt if hasattr(cfg, "prompt") else cfg


def closed_book_prompt(question: str, cfg: Any) -> str:
    return _templates(cfg).closed_book_template.format(question=question.strip())


def context_prompt(question: str, context: str, cfg: Any) -> str:
    return _templates(cfg).context_template.format(question=question.strip(), context=context.strip())


def join_contexts(texts: list[str], cfg: Any) -> str:
    """Several passages (retrieved chunks, or biographies) as one context string."""
    return _templates(cfg).chunk_separator.join(t.strip() for t in texts)


def chat_wrap(prompt: str, tokenizer: Any, cfg: Any) -> str:
    """``prompt`` as the user turn of a chat (after the config's system turn, if any), rendered by the
    tokenizer's chat template with the assistant's turn opened, when the config asks for it
    (``prompt.chat_template``) and the tokenizer has a template. The scratch model has none, so its prompts
    pass through unchanged. (SmolLM2's template puts its own system turn in when none is given: ours is.)
    """
    if not uses_chat(tokenizer, cfg):
        return prompt
    return tokenizer.apply_chat_template(chat_messages(prompt, cfg), tokenize=False, add_generation_prompt=True)


def uses_chat(tokenizer: Any, cfg: Any) -> bool:
    """Prompts go through the chat template: the config asks (``prompt.chat_template``) and the tokenizer has one."""
    return bool(_templates(cfg).chat_template and getattr(tokenizer, "chat_template", None))


def chat_messages(prompt: str, cfg: Any) -> list[dict]:
    """The conversation of one prompt: the config's system turn, if any, then ``prompt`` as the user turn
    (what the chat template renders in process, and what a server's chat API receives)."""
    system = getattr(_templates(cfg), "system", None)
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


def question_prompt(question: str, cfg: Any, context: str | None = None) -> str:
    """One question's prompt before any chat wrapping: the context template, or the closed-book one."""
    return context_prompt(question, context, cfg) if context else closed_book_prompt(question, cfg)


def build_prompt(question: str, cfg: Any, *, context: str | None = None, tokenizer: Any = None) -> str:
    """The full prompt of one question: with ``context`` (non-empty) the context template, else the
    closed-book one; chat-wrapped if the config asks and the tokenizer has a template. What inference calls."""
    prompt = question_prompt(question, cfg, context)
    return chat_wrap(prompt, tokenizer, cfg) if tokenizer is not None else prompt


def encode_prompt(prompt: str, tokenizer: Any) -> list[int]:
    """Token ids of a (possibly chat-wrapped) prompt, as inference feeds them.

    Special tokens (e.g. a BOS) are added unless the text already starts with them, as a rendered
    chat template does.
    """
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and prompt.startswith(bos))
    return tokenizer(prompt, add_special_tokens=add_special)["input_ids"]


def _answer_text(prompt: str, answer: str) -> str:
    return ("" if not prompt or prompt[-1].isspace() else " ") + answer.strip()


def _join(prompt_ids: list[int], answer_ids: list[int], max_length: int, answer: str) -> tuple[list[int], list[int]]:
    if len(answer_ids) >= max_length:
        raise ValueError(f"answer {answer!r} needs {len(answer_ids)} tokens; max_length is {max_length}")
    prompt_ids = prompt_ids[max(0, len(prompt_ids) + len(answer_ids) - max_length) :]
    return prompt_ids + answer_ids, [IGNORE_INDEX] * len(prompt_ids) + answer_ids


def qa_example(prompt: str, answer: str, tokenizer: Any, max_length: int) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` for prompt → answer (+ EOS), with the loss on the answer tokens and EOS only.

    A prompt too long for ``max_length`` loses its *beginning* (the start of a long context), so the
    question and the answer are always kept.
    """
    answer_ids = tokenizer(_answer_text(prompt, answer), add_special_tokens=False)["input_ids"]
    return _join(encode_prompt(prompt, tokenizer), answer_ids + [tokenizer.eos_token_id], max_length, answer)


def lm_examples(text: str, tokenizer: Any, max_length: int) -> list[tuple[list[int], list[int]]]:
    """``(input_ids, labels)`` windows of a plain text + EOS (loss on every token); a long text is cut
    into consecutive ``max_length`` windows rather than truncated, so no part of a document is lost."""
    return _windows(tokenizer(text.strip(), add_special_tokens=False)["input_ids"], tokenizer, max_length)


def _windows(ids: list[int], tokenizer: Any, max_length: int) -> list[tuple[list[int], list[int]]]:
    ids = ids + [tokenizer.eos_token_id]
    return [(ids[i : i + max_length], ids[i : i + max_length]) for i in range(0, len(ids), max_length)]


def encode_rows(rows: list[dict], tokenizer: Any, max_length: int) -> list[tuple[list[int], list[int]]]:
    """Training rows → ``(input_ids, labels)`` examples, in row order; the same encoding as qa_example
    and lm_examples, but tokenized in batches (tens of thousands of rows in a second or two).

    A row is ``{"prompt", "answer"}`` (loss on the answer) or ``{"text"}`` (loss on every token), the
    format of pretrain_mix.jsonl and of the fine-tuning rows.
    """
    bos = getattr(tokenizer, "bos_token", None)
    texts = [r["text"].strip() for r in rows if "text" in r]
    qa = [r for r in rows if "text" not in r]
    text_ids = iter(tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else [])
    answers = [_answer_text(r["prompt"], r["answer"]) for r in qa]
    answer_ids = iter(tokenizer(answers, add_special_tokens=False)["input_ids"] if qa else [])
    with_special = [not (bos and r["prompt"].startswith(bos)) for r in qa]
    prompt_ids = [None] * len(qa)
    for flag in (True, False):
        idx = [i for i, f in enumerate(with_special) if f is flag]
        if idx:
            encoded = tokenizer([qa[i]["prompt"] for i in idx], add_special_tokens=flag)["input_ids"]
            for i, ids in zip(idx, encoded):
                prompt_ids[i] = ids
    prompt_iter = iter(prompt_ids)
    out: list[tuple[list[int], list[int]]] = []
    for row in rows:
        if "text" in row:
            out += _windows(next(text_ids), tokenizer, max_length)
        else:
            out.append(_join(next(prompt_iter), next(answer_ids) + [tokenizer.eos_token_id], max_length, row["answer"]))
    return out
