"""Probes of a generator: can it read, can it recall, has it stored a document's facts?

The people probe is a quick sanity check right after a model is built or fine-tuned (the scratch base
model answers from a biography in its prompt), not the experiment's evaluation. The storage probe
(``storage_rows`` + ``completion_hit``) is part of the evaluation (eval.storage_probe): each eval
question's gold document up to its answer, which the model must continue with the answer. A model that
completes the document but cannot answer the question closed-book has stored the fact without being
able to extract it (Allen-Zhu & Li, Physics of LMs 3.1): measured per model, beside closed-book QA.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from ragft.model import prompts
from ragft.text import normalize_answer

log = logging.getLogger(__name__)


def greedy_answers(
    model: Any, tokenizer: Any, prompt_texts: list[str], max_new_tokens: int = 12, batch_size: int = 32
) -> list[str]:
    """Greedy continuations of ``prompt_texts`` (left-padded batches), decoded without special tokens."""
    import torch

    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    out: list[str] = []
    model.eval()
    for i in range(0, len(prompt_texts), batch_size):
        ids = [prompts.encode_prompt(p, tokenizer) for p in prompt_texts[i : i + batch_size]]
        batch = tokenizer.pad({"input_ids": ids}, return_tensors="pt").to(device)
        with torch.no_grad():
            gen = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new = gen[:, batch["input_ids"].shape[1] :]
        out += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return out


def exact_match(predictions: list[str], answers: list[str]) -> float:
    """Percentage of predictions equal to their answer after normalisation."""
    if not answers:
        return float("nan")
    hits = sum(normalize_answer(p) == normalize_answer(a) for p, a in zip(predictions, answers, strict=True))
    return 100.0 * hits / len(answers)


def people_probe(
    model: Any,
    tokenizer: Any,
    people: list,
    cfg: Any,
    *,
    distractors: int = 2,  # as many other biographies as top-3 retrieval would add
    seed: int = 0,
) -> dict[str, float]:
    """EM (%) on every attribute of ``people``: with the person's biography in the prompt ("read"),
    with it among ``distractors`` other biographies of ``people`` ("read_among"), as top-k retrieval
    would give it, and closed-book ("closed_book")."""
    from ragft.data import synthbio

    rng = random.Random(f"probe:{seed}")
    kinds: dict[str, list[str]] = {"read": [], "read_among": [], "closed_book": []}
    answers = []
    for person in people:
        others = [p for p in people if p is not person]
        for qa in synthbio.make_questions(person, rng):
            group = [person, *rng.sample(others, min(distractors, len(others)))]
            rng.shuffle(group)
            bios = [synthbio.render_biography(p, rng) for p in group]
            contexts = {
                "read": synthbio.render_biography(person, rng),
                "read_among": prompts.join_contexts(bios, cfg),
                "closed_book": None,
            }
            for kind, context in contexts.items():
                kinds[kind].append(prompts.build_prompt(qa.question, cfg, context=context, tokenizer=tokenizer))
            answers.append(qa.answer)
    n_new = 12  # fixed, not inference.max_new_tokens: the probe must not depend on the decoding settings
    out = {
        f"{kind}_em": exact_match(greedy_answers(model, tokenizer, ps, n_new), answers) for kind, ps in kinds.items()
    }
    out["n_questions"] = len(answers)
    return out


def heldout_probe(model: Any, tokenizer: Any, scfg: Any, cfg: Any) -> dict[str, float]:
    """The scratch testbed's probe: the held-out pretraining-pool people of ``scfg`` (model.scratch),
    with the probe's sampling seeded from it; empty when the config holds none out."""
    from ragft.model.scratch import pretrain_people

    _, heldout = pretrain_people(scfg)
    return people_probe(model, tokenizer, heldout, cfg, seed=scfg.seed) if heldout else {}


STORAGE_NEW_TOKENS = 12   # fixed, like the people probe: the probe must not depend on the decoding settings


def storage_rows(questions: list[dict], documents: list[dict]) -> list[dict]:
    """One probe per question whose gold answer occurs in one of its gold documents: ``{"qid", "prompt",
    "answer"}``, the prompt being that document's text (what fine-tuning on documents trains on) up to the
    answer's first occurrence. Questions whose answer is not written out after some text are skipped."""
    from ragft.evaluation.answers import gold_answers

    texts = {d["doc_id"]: d["text"] for d in documents}
    rows = []
    for q in questions:
        for doc_id in q.get("doc_ids") or []:
            text = texts.get(doc_id, "")
            found = [(text.find(a), a) for a in gold_answers(q["answer"]) if a and text.find(a) > 0]
            if found:
                at, answer = min(found)
                rows.append({"qid": q["qid"], "prompt": text[:at].rstrip(), "answer": answer})
                break
    return rows


def completion_hit(completion: str, answer: str) -> bool:
    """Whether ``completion`` begins with ``answer`` (normalised, whole words)."""
    got, want = normalize_answer(completion).split(), normalize_answer(answer).split()
    return bool(want) and got[: len(want)] == want


def complete(model: Any, tokenizer: Any, rows: list[dict], batch_size: int = 32, max_positions: int | None = None) -> list[dict]:
    """Greedy continuations of the probe prompts (plain text: no chat template), each kept to its last
    ``max_positions - STORAGE_NEW_TOKENS`` tokens: ``{"qid", "completion"}`` in row order."""
    prompts_text = [r["prompt"] for r in rows]
    if max_positions:
        keep = max_positions - STORAGE_NEW_TOKENS
        ids = tokenizer(prompts_text, add_special_tokens=False)["input_ids"]
        prompts_text = [tokenizer.decode(i[-keep:]) if len(i) > keep else t for i, t in zip(ids, prompts_text)]
    out = greedy_answers(model, tokenizer, prompts_text, STORAGE_NEW_TOKENS, batch_size)
    return [{"qid": r["qid"], "completion": c} for r, c in zip(rows, out, strict=True)]
