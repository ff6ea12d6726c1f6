"""Answer the eval questions of one arm: render prompts, fit them into the model, generate in batches.

Decoding is held constant across arms (greedy by default), so that the arms differ only in the model
(base or base + LoRA) and in the context put in the prompt. Prompt formatting comes from
ragft.model.prompts, the same functions training uses, so the model sees at inference the format it
was trained on.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragft.io import DataError, read_jsonl
from ragft.model import prompts

log = logging.getLogger(__name__)


@dataclass
class FittedPrompt:
    """One question's model input: token ids that fit the model, and the chunks that made it in."""

    qid: str
    input_ids: list[int]
    chunk_ids: list[str]
    scores: list[float | None]  # retrieval scores (None for oracle chunks, which were not ranked)
    truncated: bool
    question: str = ""
    texts: list[str] | None = None  # the context texts as they made it in (the last one possibly cut)


# --------------------------------------------------------------------------- input


def read_contexts(path: str | Path) -> list[dict]:
    """The rows of ``data/contexts/<context>.jsonl``, checked before any model is loaded."""
    rows = read_jsonl(path)
    if not rows:
        raise DataError(f"{path}: no questions. Rerun the contexts stage (`dvc repro contexts`).")
    seen: set[str] = set()
    for lineno, row in enumerate(rows, 1):
        where = f"{path}: row {lineno}"
        for key, kind in (("qid", str), ("question", str), ("chunks", list)):
            if not isinstance(row.get(key), kind):
                raise DataError(
                    f"{where}: field '{key}' must be a {kind.__name__}. Regenerate it with `dvc repro contexts`."
                )
        if row["qid"] in seen:
            raise DataError(f"{where}: qid {row['qid']!r} appears twice. Each question must appear once.")
        seen.add(row["qid"])
        for j, chunk in enumerate(row["chunks"]):
            if not (
                isinstance(chunk, dict)
                and isinstance(chunk.get("chunk_id"), str)
                and isinstance(chunk.get("text"), str)
            ):
                raise DataError(
                    f"{where}: chunks[{j}] needs string fields 'chunk_id' and 'text'. Regenerate it with `dvc repro contexts`."
                )
    return rows


# --------------------------------------------------------------------------- prompts


def build_prompt(question: str, chunks: list[str], cfg: Any, tokenizer: Any) -> str:
    """The prompt text of one question: closed-book without chunks, else the context template."""
    context = prompts.join_contexts(chunks, cfg) if chunks else None
    return prompts.build_prompt(question, cfg, context=context, tokenizer=tokenizer)


def max_positions(model: Any, tokenizer: Any) -> int:
    """The longest sequence (prompt + answer) the model accepts."""
    config = model.config
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 1_000_000:  # tokenizers without a limit report ~1e30
        return value
    raise DataError("the model config declares no maximum length (max_position_embeddings); cannot fit prompts.")


def fit_prompt(question: str, chunks: list[str], cfg: Any, tokenizer: Any,
               limit: int) -> tuple[list[int], list[str], bool]:
    """Token ids of the prompt, shortened to at most ``limit`` tokens by cutting the CONTEXT only.

    Chunks come ranked best first, so the lowest-ranked text goes first: whole chunks from the end,
    then the end of the last one kept. The question and the template are never cut. Returns
    ``(ids, the context texts kept (the last one possibly cut), truncated?)``.
    """

    def encode(texts: list[str]) -> list[int]:
        return prompts.encode_prompt(build_prompt(question, texts, cfg, tokenizer), tokenizer)

    texts = list(chunks)
    ids = encode(texts)
    if len(ids) <= limit:
        return ids, texts, False
    while len(texts) > 1 and len(ids) > limit:
        texts.pop()
        ids = encode(texts)
    if texts and len(ids) > limit:
        last = texts[-1]
        offsets = tokenizer(last, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        keep = len(offsets) - (len(ids) - limit)
        while keep > 0:
            texts[-1] = last[: offsets[keep - 1][1]]
            ids = encode(texts)
            if len(ids) <= limit:
                break
            keep -= max(1, len(ids) - limit)
        else:
            texts, ids = [], []
    if not texts:
        raise DataError(
            f"question {question[:80]!r} does not fit the model even without context ({limit} prompt tokens "
            "allowed = max positions - inference.max_new_tokens). Lower inference.max_new_tokens or shorten the question."
        )
    return ids, texts, True


def fit_prompts(rows: list[dict], cfg: Any, tokenizer: Any, limit: int) -> list[FittedPrompt]:
    """Every question's fitted prompt, before any generation (a too-long question fails fast)."""
    fitted = []
    for row in rows:
        chunks = row["chunks"]
        try:
            ids, texts, truncated = fit_prompt(row["question"], [c["text"] for c in chunks], cfg, tokenizer, limit)
        except DataError as err:
            raise DataError(f"qid {row['qid']}: {err}") from None
        kept = len(texts)
        fitted.append(
            FittedPrompt(
                qid=row["qid"],
                input_ids=ids,
                chunk_ids=[c["chunk_id"] for c in chunks[:kept]],
                scores=[None if c.get("score") is None else float(c["score"]) for c in chunks[:kept]],  # oracle: none
                truncated=truncated,
                question=row["question"],
                texts=texts,
            )
        )
    n_trunc = sum(f.truncated for f in fitted)
    if n_trunc:
        log.warning("%d of %d prompts had their context shortened to fit %d tokens", n_trunc, len(fitted), limit)
    return fitted


# --------------------------------------------------------------------------- generation


def generation_config(icfg: Any, model: Any, tokenizer: Any):
    """The decoding settings, all explicit: transformers fills unset fields from the model's own
    generation_config (a hub model may ship sampling or a repetition penalty), which would make the
    arms' decoding depend on the checkpoint rather than on the config."""
    from transformers import GenerationConfig

    eos = getattr(model.generation_config, "eos_token_id", None)
    settings: dict[str, Any] = {
        "max_new_tokens": icfg.max_new_tokens,
        "do_sample": bool(icfg.do_sample),
        "num_beams": 1,
        "repetition_penalty": 1.0,
        "no_repeat_ngram_size": 0,
        "eos_token_id": eos if eos is not None else tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if icfg.do_sample:
        settings.update(temperature=icfg.temperature, top_p=icfg.top_p, top_k=icfg.top_k)
    return GenerationConfig(**settings)


def new_token_counts(new_ids: Any, eos_token_id: Any) -> list[int]:
    """Per row of generated ids, the tokens before its end of sequence (the EOS itself and the padding after
    it excluded): what the model produced, and what a provider bills as output tokens."""
    eos = set(eos_token_id if isinstance(eos_token_id, (list, tuple)) else [eos_token_id]) - {None}
    counts = []
    for row in new_ids.tolist():
        counts.append(next((i for i, t in enumerate(row) if t in eos), len(row)))
    return counts


def generate_batch(model: Any, tokenizer: Any, batch: list[list[int]], gen_cfg: Any) -> tuple[list[str], list[int]]:
    """Greedy/sampled continuation of a left-padded batch: only the new tokens, decoded and stripped, and how
    many each answer generated (end of sequence excluded)."""
    import torch

    enc = tokenizer.pad({"input_ids": batch}, padding=True, return_tensors="pt")
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model.generate(
            input_ids=enc["input_ids"].to(device),
            attention_mask=enc["attention_mask"].to(device),
            generation_config=gen_cfg,
        )
    new = out[:, enc["input_ids"].shape[1] :]
    texts = [text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return texts, new_token_counts(new, gen_cfg.eos_token_id)


@dataclass
class Generated:
    """What ``generate`` returns: one text and one output-token count per prompt, in the prompts' order, the
    generation's timings (measured then, when read from the cache) and whether they came from the cache."""

    texts: list[str]
    output_tokens: list[int]
    timings: dict
    from_cache: bool


def shared_prefix(prompts: list[list[int]]) -> int:
    """How many leading tokens every prompt shares (each keeps at least one token of its own)."""
    if len(prompts) < 2:
        return 0
    first, n = prompts[0], min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        k = 0
        while k < n and p[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


def generate_on_prefix(prompts: list[list[int]], model: Any, tokenizer: Any, gen_cfg: Any, prefix: int,
                       batch_size: int, desc: str) -> tuple[list[str], list[int], list[float]]:
    """Greedy continuations of prompts that share their first ``prefix`` tokens: the prefix's KV cache is computed
    once, by one forward pass (transformers' prompt reuse: a DynamicCache filled once, copied per batch and
    repeated over the batch's rows); each batch then prefills only its prompts' own tokens, left-padded between the
    prefix and them and masked (the positions come from the attention mask, so each suffix continues the prefix).
    Returns texts, output-token counts and per-prompt seconds (the prefix's pass spread over the prompts)."""
    import copy

    import torch
    from tqdm.auto import tqdm
    from transformers import DynamicCache

    device = next(model.parameters()).device
    t0 = time.perf_counter()
    with torch.inference_mode():
        shared = DynamicCache()
        model(input_ids=torch.tensor([prompts[0][:prefix]], device=device), past_key_values=shared, use_cache=True)
    setup = time.perf_counter() - t0
    pad = tokenizer.pad_token_id
    texts, counts, seconds = [], [], []
    for b in tqdm(range(0, len(prompts), batch_size), desc=f"{desc} (shared prefix of {prefix} tokens)", unit="batch"):
        batch = [p[prefix:] for p in prompts[b:b + batch_size]]
        width = max(len(s) for s in batch)
        ids = [prompts[b][:prefix] + [pad] * (width - len(s)) + s for s in batch]
        mask = [[1] * prefix + [0] * (width - len(s)) + [1] * len(s) for s in batch]
        t0 = time.perf_counter()
        cache = copy.deepcopy(shared)
        if len(batch) > 1:
            cache.batch_repeat_interleave(len(batch))
        with torch.inference_mode():
            out = model.generate(input_ids=torch.tensor(ids, device=device),
                                 attention_mask=torch.tensor(mask, device=device), past_key_values=cache,
                                 generation_config=gen_cfg)
        new = out[:, prefix + width:]
        texts += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
        counts += new_token_counts(new, gen_cfg.eos_token_id)
        seconds += [(time.perf_counter() - t0) / len(batch) + setup / len(prompts)] * len(batch)
    return texts, counts, seconds


def generate(prompts: list[list[int]], model: Any, tokenizer: Any, gen_cfg: Any, *, batch_size: int, seed: int,
             cache: Any = None, identity: dict | None = None, decoding: dict | None = None,
             longest_first: bool = True, desc: str = "generate", prefix_min: int = 0) -> Generated:
    """Every prompt's continuation, in batches: the one generation loop of ragft (the infer stage's answers,
    the generated questions). Sampling is seeded per batch (``seed`` and the batch's position), so the same
    prompts give the same texts on one CPU. ``longest_first`` batches long prompts together (less padding; a
    batch too big for the device fails at the start rather than at the end).

    With ``cache`` (ragft.model.answer_cache) and the generator's ``identity``, prompts generated before with
    the same decoding (``gen_cfg`` plus ``decoding``: what else the texts depend on) are read back, counts and
    timings included, instead of generated; new ones are written there.

    With ``prefix_min`` > 0, greedy decoding, and prompts that all share at least that many leading tokens (the
    long_context arm: the whole corpus, then the question), the shared prefix is computed once
    (``generate_on_prefix``); the answers are the same, the timings are the reuse's."""
    from tqdm.auto import tqdm

    bs = max(1, int(batch_size))
    prefix = shared_prefix(prompts) if prefix_min > 0 and not gen_cfg.do_sample else 0
    prefix = prefix if prefix >= prefix_min else 0
    cache_key = None
    if cache is not None and identity is not None:
        from ragft.model.answer_cache import key

        settings = {**gen_cfg.to_diff_dict(), "batch_size": bs, "seed": seed if gen_cfg.do_sample else None,
                    "longest_first": longest_first, **(decoding or {}), **({"shared_prefix": prefix} if prefix else {})}
        cache_key = key(identity, prompts, settings)
        hit = cache.get(cache_key)
        if hit is not None and len(hit["answers"]) == len(prompts):
            log.info("%d answers from the answer cache (generated before with this model, prompts and decoding)",
                     len(prompts))
            return Generated(hit["answers"], hit["output_tokens"], hit["timings"], True)

    order = (sorted(range(len(prompts)), key=lambda i: -len(prompts[i])) if longest_first
             else list(range(len(prompts))))
    texts: dict[int, str] = {}
    counts: dict[int, int] = {}
    latencies: list[float] = []
    start = time.perf_counter()
    if prefix:
        out_texts, out_counts, latencies = generate_on_prefix(prompts, model, tokenizer, gen_cfg, prefix, bs, desc)
        texts, counts = dict(enumerate(out_texts)), dict(enumerate(out_counts))
    else:
        for b in tqdm(range(0, len(order), bs), desc=desc, unit="batch"):
            idx = order[b : b + bs]
            if gen_cfg.do_sample:
                from transformers import set_seed

                set_seed(int(seed) * 100_003 + b)
            t0 = time.perf_counter()
            out, n_new = generate_batch(model, tokenizer, [prompts[i] for i in idx], gen_cfg)
            per_q = (time.perf_counter() - t0) / len(idx)
            latencies += [per_q] * len(idx)
            texts.update(zip(idx, out))
            counts.update(zip(idx, n_new))
    total = time.perf_counter() - start
    n = len(prompts)
    timings = {
        "questions": n,
        "seconds": total,
        "questions_per_second": n / total if total > 0 else math.nan,
        "mean_latency_seconds": sum(latencies) / n if n else math.nan,
        "latency_note": ("per question = batch wall time / batch size + the shared prefix's pass / questions"
                         if prefix else "per question = batch wall time / batch size"),
        "batch_size": bs,
        "shared_prefix_tokens": prefix,
        "device": str(next(model.parameters()).device),
    }
    result = Generated([texts[i] for i in range(n)], [counts[i] for i in range(n)], timings, False)
    if cache_key is not None:
        cache.put(cache_key, result.texts, timings, result.output_tokens)
    return result


def answer_questions(rows: list[dict], model: Any, tokenizer: Any, cfg: Any, cache: Any = None,
                     identity: dict | None = None) -> tuple[list[dict], dict]:
    """Answer every question of ``rows`` (contexts rows); return (prediction rows in input order, timings).

    Per-question latency is the batch's wall time divided by its size (questions of a batch are answered
    together). With ``cache`` and the model's ``identity``, a context whose prompts, model and decoding were
    answered before is read back (with the timings measured then) instead of generated (``generate``).
    """
    icfg = cfg.inference
    if tokenizer.padding_side != "left" or tokenizer.pad_token_id is None:
        raise DataError(
            "the tokenizer must pad on the left and have a pad token (load it with ragft.model.loading.load_generator)"
        )
    limit = max_positions(model, tokenizer) - icfg.max_new_tokens
    if limit <= 0:
        raise DataError(f"inference.max_new_tokens ({icfg.max_new_tokens}) leaves no room for a prompt in this model.")
    fitted = fit_prompts(rows, cfg, tokenizer, limit)
    out = generate([f.input_ids for f in fitted], model, tokenizer, generation_config(icfg, model, tokenizer),
                   batch_size=icfg.batch_size, seed=icfg.seed, cache=cache, identity=identity,
                   prefix_min=int(icfg.prefix_reuse_min_tokens))
    predictions = prediction_rows(fitted, out.texts, out.output_tokens)
    n = len(predictions)
    timings = {**out.timings,
               "mean_prompt_tokens": sum(p["prompt_tokens"] for p in predictions) / n if n else math.nan,
               "mean_output_tokens": sum(out.output_tokens) / n if n else math.nan,
               "truncated_prompts": sum(f.truncated for f in fitted), "from_cache": out.from_cache}
    return predictions, timings


def prediction_rows(fitted: list[FittedPrompt], answers: list[str], output_tokens: list[int]) -> list[dict]:
    """The predictions.jsonl rows of one arm (either engine): the answer, what was in the prompt, its length,
    and the answer's length in generated tokens (end of sequence excluded)."""
    return [
        {"qid": f.qid, "answer": a, "chunk_ids": f.chunk_ids, "scores": f.scores, "prompt_tokens": len(f.input_ids),
         "output_tokens": int(n)}
        for f, a, n in zip(fitted, answers, output_tokens)
    ]
