"""Generated questions (`dataset.qa=generate`): question/short-answer pairs written by a generator from a
user's documents, when the user has no QA file.

Each document is cut into passages (consecutive paragraphs, or sentences, up to ``passage_words`` words);
``per_document`` requests per document each show the generator one passage (drawn with the seed, cycled
when the document has fewer) and ask for one question and its answer copied from the text. The
generator runs in process (a GGUF file or a saved model folder, as `model` loads them) or behind an
OpenAI-compatible server (``engine=openai``: a larger served model, one setting away).

A small model writes many unusable pairs, so every pair passes six filters, in this order, and the
count that survives each is recorded (the manifest, metrics/generate_qa.json, MLflow):

1. ``parsed``: the reply has a question and an answer (``Question: ... Answer: ...``);
2. ``short_answer``: the answer has at most ``max_answer_words`` words;
3. ``answer_in_document``: the normalised answer occurs in the normalised source document (so the
   question is answerable from the corpus, and scoring it by match is fair);
4. ``about_document``: the question names something of its document (a word of four or more letters,
   other than question words, that occurs in it): a small model copies the prompt's worked example, or
   asks about another topic, and the answer can still be a number that happens to be in the document;
5. ``not_title_only``: the answer is not in the document's title nor in the question itself (those are
   answered without reading the document);
6. ``not_near_duplicate``: the question is not a near-duplicate (ragft.text.NearDuplicates, word 3-gram
   Jaccard) of a question kept before it, in any document, nor a second question about the same
   document with the same answer (one fact asked twice in other words: "When was X built?" and
   "When did X come into being?" -> 1927).

Why not ragas' testset generator: it needs an embedding model and an LLM behind LangChain/LlamaIndex
wrappers and builds a knowledge graph with several LLM calls per node, far beyond what a 135 M model can
follow offline; ragft's own prompt with strict filters keeps every step visible in candidates.jsonl.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from typing import Any

from ragft.text import NearDuplicates, normalize_answer

log = logging.getLogger(__name__)

FILTERS = ("parsed", "short_answer", "answer_in_document", "about_document", "not_title_only", "not_near_duplicate")
# question words that say nothing about which document a question is about
_QUESTION_WORDS = frozenset("what which when where whom whose does have with from that this there their about into "
                            "text document passage name called many much long year kind type".split())
_QUESTION = re.compile(r"(?:^|\n)\s*\**\s*Q(?:uestion)?\s*\**\s*[:.]\s*\**\s*(?P<q>[^\n]+?)\s*\n+"
                       r"\s*\**\s*A(?:nswer)?\s*\**\s*[:.]\s*\**\s*(?P<a>[^\n]+)", re.IGNORECASE)
PREFIX = "Question:"  # in process, the reply is started with it (a served model is asked for the format)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass
class Ask:
    """One request: a passage of one document."""

    doc_id: str
    index: int      # the request's number within its document
    passage: str


def passages(text: str, words: int) -> list[str]:
    """``text`` as consecutive passages of at most ``words`` words: paragraphs joined while they fit;
    a longer paragraph is split at sentence ends (a longer sentence stands alone)."""
    pieces: list[str] = []
    for para in (p.strip() for p in re.split(r"\n\s*\n", text)):
        if not para:
            continue
        if len(para.split()) <= words:
            pieces.append(" ".join(para.split()))
        else:
            pieces.extend(" ".join(s.split()) for s in _SENTENCE.split(para) if s.strip())
    out: list[str] = []
    for piece in pieces:
        if out and len(out[-1].split()) + len(piece.split()) <= words:
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def plan(documents: list[dict], per_document: int, passage_words: int, seed: int) -> list[Ask]:
    """The requests, in document order: ``per_document`` per document, on passages drawn without
    replacement (then again, in a new order, when a document has fewer). One RNG per document, so a
    document's requests do not depend on the other documents."""
    asks: list[Ask] = []
    for doc in documents:
        pool = passages(doc["text"], passage_words)
        rng = random.Random(f"generate:{seed}:{doc['doc_id']}")
        order: list[str] = []
        while len(order) < per_document:
            order.extend(rng.sample(pool, len(pool)))
        asks.extend(Ask(doc["doc_id"], i, p) for i, p in enumerate(order[:per_document]))
    return asks


def parse(reply: str) -> tuple[str, str] | None:
    """The first ``Question: ... / Answer: ...`` pair of a reply (markdown bold and ``Q:``/``A:`` allowed)."""
    m = _QUESTION.search("\n" + reply.strip())
    if not m:
        return None
    question, answer = m.group("q").strip(" *"), m.group("a").strip(" *")
    answer = answer.rstrip(".").strip().strip('"').strip()
    if not question or not answer:
        return None
    return question, answer


def _contains(haystack: str, needle: str) -> bool:
    """Whole-word containment of normalised texts."""
    return bool(needle) and f" {needle} " in f" {haystack} "


def _about(question: str, doc_words: set[str]) -> bool:
    return any(len(w) >= 4 and w not in _QUESTION_WORDS and w in doc_words for w in question.split())


def screen(asks: list[Ask], replies: list[str], documents: list[dict], cfg: Any) -> tuple[list[dict], list[dict], dict]:
    """Apply the filters (module docstring) in order. Returns (kept QA rows, every candidate with the filter
    that dropped it, the count that survived each filter)."""
    by_id = {d["doc_id"]: d for d in documents}
    normal_docs = {d["doc_id"]: normalize_answer(d["text"]) for d in documents}
    doc_words = {k: set(v.split()) for k, v in normal_docs.items()}
    seen = NearDuplicates(threshold=float(cfg.near_duplicate_threshold))
    same_fact: dict[tuple[str, str], str] = {}  # (document, normalised answer) -> the question kept for it
    survived = dict.fromkeys(("generated", *FILTERS), 0)
    kept, candidates = [], []
    for ask, reply in zip(asks, replies, strict=True):
        survived["generated"] += 1
        pair = parse(reply)
        row = {"doc_id": ask.doc_id, "request": ask.index, "passage": ask.passage, "reply": reply,
               "question": pair[0] if pair else None, "answer": pair[1] if pair else None}
        dropped = None
        if pair is None:
            dropped = "parsed"
        else:
            question, answer = pair
            norm = normalize_answer(answer)
            title = normalize_answer(by_id[ask.doc_id].get("title") or "")
            duplicate = None
            if len(answer.split()) > int(cfg.max_answer_words):
                dropped = "short_answer"
            elif not _contains(normal_docs[ask.doc_id], norm):
                dropped = "answer_in_document"
            elif not _about(normalize_answer(question), doc_words[ask.doc_id]):
                dropped = "about_document"
            elif _contains(title, norm) or _contains(normalize_answer(question), norm):
                dropped = "not_title_only"
            elif (duplicate := same_fact.get((ask.doc_id, norm)) or (seen.match(question) or (None,))[0]):
                dropped = "not_near_duplicate"
                row["duplicate_of"] = duplicate
        for name in FILTERS:
            if name == dropped:
                break
            survived[name] += 1
        row["dropped_by"] = dropped
        candidates.append(row)
        if dropped is None:
            qid = f"gen-{len(kept) + 1:05d}"
            seen.add(qid, row["question"])
            same_fact[(ask.doc_id, normalize_answer(row["answer"]))] = qid
            kept.append({"qid": qid, "question": row["question"], "answer": row["answer"], "doc_id": ask.doc_id})
            row["qid"] = qid
    survived["kept"] = len(kept)
    return kept, candidates, survived


# --------------------------------------------------------------------------- the generators


def _messages(ask: Ask, cfg: Any, title: str) -> list[dict]:
    user = str(cfg.template).replace("{passage}", ask.passage).replace("{title}", title)
    return ([{"role": "system", "content": str(cfg.system)}] if cfg.system else []) + [{"role": "user", "content": user}]


def load_local_generator(gcfg: Any) -> tuple[Any, Any, dict]:
    """The in-process generator (``dataset.generate.model``): (model, tokenizer, identity). Checked first
    (the file, the folder, safetensors), then loaded."""
    import torch

    group = "dataset.generate.model"
    mcfg = gcfg.model
    if str(mcfg.source) == "gguf":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ragft.model import gguf

        source = gguf.locate(mcfg, group)
        directory, name = str(source.file.parent), source.file.name
        log.info("question generator: %s through transformers' GGUF support", source.file)
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
        identity = {"engine": "local", "source": "gguf", "name": source.name, "sha256": gguf.sha256(source.file),
                    "origin": source.origin}
    else:
        from ragft.model import hub

        model, tokenizer, facts = hub.load_hub_model(
            _HubView(mcfg), group)
        identity = {"engine": "local", "source": "hub", "name": str(mcfg.path), **facts}
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model.eval()
    return model, tokenizer, identity


class _HubView:
    """The generator's model fields as ragft.model.hub reads them (it also needs a dtype)."""

    def __init__(self, mcfg: Any) -> None:
        self.path, self.revision, self.trust_remote_code = mcfg.path, mcfg.revision, mcfg.trust_remote_code
        self.dtype = "float32"


def request_seed(ask: Ask, seed: int) -> int:
    """A served request's own sampling seed: two requests on the same passage must not get the same reply."""
    import zlib

    return zlib.crc32(f"{seed}:{ask.doc_id}:{ask.index}".encode())


def _decoding(gcfg: Any) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(max_new_tokens=int(gcfg.max_new_tokens), do_sample=bool(gcfg.do_sample),
                           temperature=float(gcfg.temperature), top_p=float(gcfg.top_p), top_k=int(gcfg.top_k),
                           seed=int(gcfg.seed))


def generate_local(asks: list[Ask], titles: dict[str, str], gcfg: Any) -> tuple[list[str], dict]:
    """Replies of the in-process generator through the infer stage's generation loop (ragft.model.generation:
    batched in the asks' order, sampling seeded per batch, deterministic on CPU). The replies go to the answer
    cache, so a rerun that changes only a filter generates nothing."""
    from ragft.model.answer_cache import AnswerCache, default_dir
    from ragft.model.generation import generate, generation_config

    model, tokenizer, identity = load_local_generator(gcfg)
    gen_cfg = generation_config(_decoding(gcfg), model, tokenizer)
    chat = bool(getattr(tokenizer, "chat_template", None))
    prompts = []
    for ask in asks:
        messages = _messages(ask, gcfg, titles[ask.doc_id])
        if chat:  # the assistant's turn opened with "Question:": a small model then keeps to the format
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            prompts.append(tokenizer(text + PREFIX, add_special_tokens=False)["input_ids"])
        else:  # a model without a chat template gets the turns as plain text
            text = "\n\n".join(m["content"] for m in messages) + "\n" + PREFIX
            prompts.append(tokenizer(text)["input_ids"])
    out = generate(prompts, model, tokenizer, gen_cfg, batch_size=int(gcfg.batch_size), seed=int(gcfg.seed),
                   cache=AnswerCache(default_dir()), identity=identity, decoding={"engine": "generate_qa"},
                   longest_first=False, desc="generate questions")
    cached = len(asks) if out.from_cache else 0
    if cached:
        log.info("%d replies from the answer cache (same generator, prompts and decoding)", cached)
    replies = [f"{PREFIX} {o}" for o in out.texts]
    return replies, {"identity": identity, "seconds": round(out.timings["seconds"], 2), "requests": len(asks),
                     "cached": cached}


def generate_served(asks: list[Ask], titles: dict[str, str], gcfg: Any) -> tuple[list[str], dict]:
    """Replies of a served generator through the serving client (its concurrency, retries, timeouts, and the
    answer cache: a rerun asks only what is not cached)."""
    from ragft.model.answer_cache import AnswerCache, default_dir
    from ragft.serving import client

    ocfg = gcfg.openai
    entry = client.probe(ocfg, str(ocfg.model), where="dataset.generate.openai")
    requests = [client.Request(messages=_messages(a, gcfg, titles[a.doc_id]), seed=request_seed(a, gcfg.seed))
                for a in asks]
    identity = {"engine": "openai", "name": str(ocfg.model), "server": client.public_url(str(ocfg.base_url)),
                "served": entry}
    replies, _, timings = client.answer_requests(requests, ocfg, _decoding(gcfg), str(ocfg.model), identity,
                                             AnswerCache(default_dir()))  # a rerun after a failure resumes
    return replies, {"identity": identity, "seconds": round(timings["seconds"], 2), "requests": len(asks)}


def generate_questions(documents: list[dict], gcfg: Any) -> tuple[list[dict], list[dict], dict]:
    """The kept QA rows, every candidate, and the manifest (generator, settings, survival counts)."""
    asks = plan(documents, int(gcfg.per_document), int(gcfg.passage_words), int(gcfg.seed))
    titles = {d["doc_id"]: d.get("title") or "" for d in documents}
    log.info("asking %s for %d question/answer pairs from %d documents", gcfg.engine, len(asks), len(documents))
    generate = generate_served if str(gcfg.engine) == "openai" else generate_local
    replies, run = generate(asks, titles, gcfg)
    kept, candidates, survived = screen(asks, replies, documents, gcfg)
    log.info("generated %d pairs; survived each filter: %s", len(asks), survived)
    manifest = {"generator": run["identity"], "documents": len(documents), "survived": survived,
                "filters": list(FILTERS),  # their order (the manifest's keys are sorted)
                "survival_rate": round(survived["kept"] / survived["generated"], 4) if survived["generated"] else 0.0,
                "documents_with_questions": len({r["doc_id"] for r in kept})}
    return kept, candidates, {**manifest, "seconds": run["seconds"]}
