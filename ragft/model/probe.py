"""A quick sanity probe of a generator: can it read, can it recall? Exact match on a few people.

Not the experiment's evaluation (that is the evaluate stage, on the eval split): this only checks,
right after a model is built or fine-tuned, that it does what the experiment assumes (e.g. the
scratch base model answers from a biography in its prompt), with greedy decoding.
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
