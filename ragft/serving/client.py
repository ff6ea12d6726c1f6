"""inference.engine=openai: an arm's prompts answered by an OpenAI-compatible server.

The prompts are the in-process engine's, fitted to the model with its own tokenizer (models/base): a chat
model gets the same system and user turns, which the server renders with the same chat template; a model
without one gets the same prompt text through the completions API. Decoding is greedy (temperature 0, the
experiment's seed), at most ``inference.max_new_tokens`` tokens, stopped by the model's end of turn, as
in process.

Requests go out ``inference.openai.concurrency`` at a time through ``openai.AsyncOpenAI``, whose own retry
(exponential backoff with jitter on connection errors, timeouts, 408/409/429 and 5xx; ``max_retries``) and
per-request ``timeout`` are used as its authors intend. Every answer is written to the answer cache
(ragft.model.answer_cache) as it arrives, keyed by the served model's identity, the full request and the
decoding: a rerun with nothing changed sends no request, and an arm whose server died half-way resumes
with the questions it had not got. The API key comes from the environment variable named by
``inference.openai.api_key_env``; it is never logged or written, and URLs are logged without credentials.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ragft.config import ConfigError

log = logging.getLogger(__name__)

NO_KEY = "EMPTY"  # what vLLM's docs pass when a local server wants no key (the OpenAI client needs some string)
PROBE_TIMEOUT = 5.0  # seconds for the reachability check before any work


class ServingError(ConfigError):
    """The server failed mid-arm (after the client's retries); the message names the URL and says what a
    rerun resumes from. A ConfigError, so a stage reports it as one line (the server or
    inference.openai.* is what to fix)."""


def public_url(url: str) -> str:
    """``url`` without user:password@ or a query string (either could carry a credential)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def served_model(ocfg: Any, model: str) -> str:
    """The name the server knows arm model ``model`` by (``inference.openai.models``), or a ConfigError."""
    models = dict(ocfg.models or {})
    if not ocfg.base_url:
        raise ConfigError("field 'inference.openai.base_url' must be set when inference.engine is openai "
                          "(e.g. http://127.0.0.1:8000/v1; `ragft serve` prints the line to use)")
    if not models.get(model):
        raise ConfigError(
            f"field 'inference.openai.models.{model}' is not set: name the served model that answers the "
            f"{model} arms (the base model's name or path on the server; a fine-tuned model by its vLLM adapter "
            "name or its merged folder, e.g. -S inference.openai.models.finetuned=finetuned)"
        )
    return str(models[model])


def _field(ocfg: Any, name: str, default: Any = None) -> Any:
    """An endpoint setting from a config node or a plain dict (the judge's tests give one)."""
    return ocfg.get(name, default) if isinstance(ocfg, dict) else getattr(ocfg, name, default)


def api_key(ocfg: Any) -> str:
    return os.environ.get(str(_field(ocfg, "api_key_env") or "")) or NO_KEY


def client(ocfg: Any):
    """The one OpenAI client of ragft, for every endpoint it calls (served arms, served question writers, the
    judge): ``base_url``, the key from ``api_key_env``, the client's own retries and per-request timeout."""
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=str(_field(ocfg, "base_url")), api_key=api_key(ocfg),
                       max_retries=int(_field(ocfg, "max_retries", 2)), timeout=float(_field(ocfg, "timeout", 60.0)))


def probe(ocfg: Any, model: str, where: str = "inference.openai") -> dict:
    """The server's entry for ``model`` from ``GET /models``, checked before any work: an unreachable URL
    or a refused key fails here, in seconds, naming the URL. A server that does not list the model (vLLM
    lists its adapters; `transformers serve` lists only loaded models), or has no /models, is logged, not
    refused."""
    import httpx

    url = str(_field(ocfg, "base_url")).rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key(ocfg)}"}
    try:
        response = httpx.get(url, headers=headers, timeout=PROBE_TIMEOUT)
    except httpx.HTTPError as err:
        raise ConfigError(
            f"{where}.base_url: {public_url(url)} is unreachable ({type(err).__name__}: {err}). Start the "
            f"server (`make serve` for the pipeline's own models) or fix {where}.base_url."
        ) from None
    if response.status_code in (401, 403):
        raise ConfigError(f"{public_url(url)} refused the API key (HTTP {response.status_code}): set the "
                          f"environment variable {_field(ocfg, 'api_key_env')} ({where}.api_key_env).")
    if response.status_code == 404:
        log.warning("%s has no /models endpoint; going on", public_url(url))
        return {"id": model}
    if response.status_code >= 400:
        raise ConfigError(f"{public_url(url)} answered HTTP {response.status_code}; is {where}.base_url "
                          "an OpenAI-compatible /v1 endpoint?")
    entries = response.json().get("data") or []
    entry = next((e for e in entries if e.get("id") == model), None)
    if entry is None:
        log.info("%s does not list %r (yet): a server that loads models on demand lists them once loaded",
                 public_url(url), model)
        return {"id": model}
    return {k: entry[k] for k in ("id", "owned_by", "root", "parent") if k in entry}


@dataclass
class Request:
    """One question's request: chat turns (``messages``) or a prompt text (``prompt``)."""

    messages: list[dict] | None = None
    prompt: str | None = None
    seed: int | None = None          # this request's sampling seed, instead of the config's (generated questions)

    def body(self) -> dict:
        return {"messages": self.messages} if self.messages is not None else {"prompt": self.prompt}


def decoding(icfg: Any) -> dict:
    """The request's decoding fields: greedy at temperature 0 unless the config samples, the seed, the
    token limit. (The server stops at the model's end of turn, as the in-process engine does.)"""
    settings = {"max_tokens": int(icfg.max_new_tokens), "seed": int(icfg.seed)}
    if icfg.do_sample:
        settings.update(temperature=float(icfg.temperature), top_p=float(icfg.top_p))
    else:
        settings["temperature"] = 0.0
    return settings


def request_key(identity: dict, request: Request, settings: dict) -> str:
    settings = _settings_of(request, settings)
    payload = {"identity": identity, "request": request.body(), "decoding": settings, "engine": "openai"}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _settings_of(request: Request, settings: dict) -> dict:
    return settings if request.seed is None else {**settings, "seed": int(request.seed)}


def answer_requests(requests: list[Request], ocfg: Any, icfg: Any, model: str, identity: dict,
                    cache: Any, warm_first: bool = False) -> tuple[list[str], list[int | None], dict]:
    """Every request's answer and its output tokens as the server counted them (``usage.completion_tokens``;
    None where the server reports no usage), in order, and the timings: ``requests`` sent, ``from_cache``, wall
    seconds. ``warm_first``: requests sharing a long prefix (long_context) are sent one first, alone, then the
    rest concurrently, so a server's prefix cache (vLLM --enable-prefix-caching, llama.cpp's cache_prompt, on
    by default in its server) holds the prefix before the others arrive."""
    return asyncio.run(_answer_all(requests, ocfg, icfg, model, identity, cache, warm_first))


async def _answer_all(requests, ocfg, icfg, model, identity, cache,
                      warm_first: bool = False) -> tuple[list[str], list[int | None], dict]:
    from openai import APIConnectionError, APIStatusError, APITimeoutError
    from tqdm.auto import tqdm

    settings = decoding(icfg)
    keys = [request_key(identity, r, settings) for r in requests]
    answers: list[str | None] = [None] * len(requests)
    counts: list[int | None] = [None] * len(requests)
    latencies: dict[int, float] = {}
    for i, k in enumerate(keys):
        hit = cache.get(k) if cache is not None else None
        if hit is not None and len(hit["answers"]) == 1:
            answers[i], counts[i] = hit["answers"][0], hit["output_tokens"][0]
            latencies[i] = float(hit["timings"].get("seconds", 0.0))
    todo = [i for i, a in enumerate(answers) if a is None]
    cached = len(requests) - len(todo)
    if cached:
        log.info("%d of %d answers from the answer cache; asking the server for %d", cached, len(requests), len(todo))
    api = client(ocfg)
    limit = asyncio.Semaphore(max(1, int(ocfg.concurrency)))
    progress = tqdm(total=len(todo), desc=f"ask {public_url(str(ocfg.base_url))}", unit="q")
    sent = 0

    async def ask(i: int) -> None:
        nonlocal sent
        request = requests[i]
        async with limit:
            t0 = time.perf_counter()
            sent += 1
            if request.messages is not None:
                response = await api.chat.completions.create(model=model, messages=request.messages,
                                                             **_settings_of(request, settings))
                text = response.choices[0].message.content or ""
            else:
                response = await api.completions.create(model=model, prompt=request.prompt,
                                                        **_settings_of(request, settings))
                text = response.choices[0].text or ""
            seconds = time.perf_counter() - t0
        usage = getattr(response, "usage", None)
        answers[i], latencies[i] = text.strip(), seconds
        counts[i] = getattr(usage, "completion_tokens", None) if usage is not None else None
        if cache is not None:
            cache.put(keys[i], [answers[i]], {"seconds": seconds}, [counts[i]])
        progress.update(1)

    start = time.perf_counter()
    try:
        if warm_first and len(todo) > 1:   # the shared prefix is computed once and cached by the server
            await ask(todo[0])
            todo_rest = todo[1:]
        else:
            todo_rest = todo
        async with asyncio.TaskGroup() as group:
            for i in todo_rest:
                group.create_task(ask(i))
    except* (APIConnectionError, APITimeoutError, APIStatusError) as errors:
        err = errors.exceptions[0]
        done = sum(a is not None for a in answers)
        status = getattr(err, "status_code", None)
        raise ServingError(
            f"{public_url(str(ocfg.base_url))} failed for model {model!r} after {ocfg.max_retries} retries "
            f"({type(err).__name__}{f' HTTP {status}' if status else ''}: {err}). {done} of {len(requests)} answers "
            "are in the answer cache: rerun once the server is back and only the others are asked."
        ) from None
    finally:
        progress.close()
        await api.close()
    total = time.perf_counter() - start
    n = len(requests)
    timings = {
        "questions": n,
        "requests": sent,
        "cached_requests": cached,
        "seconds": total,
        "questions_per_second": len(todo) / total if todo and total > 0 else float("nan"),
        "mean_latency_seconds": sum(latencies.values()) / n if n else float("nan"),
        "latency_note": "per question = its request's wall time (from the cache: when it was asked)",
        "concurrency": int(ocfg.concurrency),
        "device": f"server {public_url(str(ocfg.base_url))}",
    }
    return [a or "" for a in answers], counts, timings


def build_requests(fitted: list, cfg: Any, tokenizer: Any) -> list[Request]:
    """The requests of fitted prompts (ragft.model.generation.fit_prompts): chat turns when the model has a
    chat template and the config uses it (or ``inference.openai.api`` says chat), else the prompt text."""
    from ragft.model import prompts

    api = str(cfg.inference.openai.api)
    chat = prompts.uses_chat(tokenizer, cfg) if api == "auto" else api == "chat"
    out = []
    for f in fitted:
        context = prompts.join_contexts(f.texts, cfg) if f.texts else None
        text = prompts.question_prompt(f.question, cfg, context)
        # completions: the very text the in-process engine tokenizes (chat-rendered when the model has a template)
        out.append(Request(messages=prompts.chat_messages(text, cfg)) if chat else
                   Request(prompt=prompts.build_prompt(f.question, cfg, context=context, tokenizer=tokenizer)))
    return out


def answer_served(rows: list[dict], tokenizer: Any, limit: int, cfg: Any, model: str, identity: dict,
                  cache: Any) -> tuple[list[dict], dict]:
    """``answer_questions`` through the server: the same fitted prompts and prediction rows."""
    from ragft.model.generation import fit_prompts, prediction_rows, shared_prefix

    fitted = fit_prompts(rows, cfg, tokenizer, limit)
    requests = build_requests(fitted, cfg, tokenizer)
    prefix = shared_prefix([f.input_ids for f in fitted])
    reuse = int(cfg.inference.prefix_reuse_min_tokens)
    prefix = prefix if reuse and prefix >= reuse else 0
    answers, counts, timings = answer_requests(requests, cfg.inference.openai, cfg.inference, model, identity, cache,
                                               warm_first=bool(prefix))
    timings["shared_prefix_tokens"] = prefix
    missing = sum(c is None for c in counts)
    if missing:  # a server without usage: the answer's tokens by the model's own tokenizer (what it decoded from)
        log.warning("%s reported no usage for %d of %d answers: their output tokens are counted with the model's "
                    "tokenizer", public_url(str(cfg.inference.openai.base_url)), missing, len(counts))
        counts = [len(tokenizer(a, add_special_tokens=False)["input_ids"]) if c is None else c
                  for a, c in zip(answers, counts)]
    predictions = prediction_rows(fitted, answers, counts)
    n = len(predictions)
    timings.update(mean_prompt_tokens=sum(p["prompt_tokens"] for p in predictions) / n if n else 0.0,
                   mean_output_tokens=sum(counts) / n if n else 0.0, output_tokens_from_usage=n - missing,
                   truncated_prompts=sum(f.truncated for f in fitted), api="chat" if requests and
                   requests[0].messages is not None else "completions",
                   from_cache=timings["requests"] == 0)
    return predictions, timings
