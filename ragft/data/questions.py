"""Generated questions (`dataset.qa=generate`): question/short-answer pairs written by a generator from a
user's documents, when the user has no QA file.

Each document is cut into passages (consecutive paragraphs, or sentences, up to ``passage_words`` words);
``per_document`` requests per document each show the generator one passage (drawn with the seed, cycled
when the document has fewer) and ask for one question and its answer copied from the text. The prompt
shows the reply's form with placeholders, never a worked example: a small model copies an example
verbatim ("When did the Kessler bridge open? -> 1931" on every passage). The generator runs in process (a
GGUF file or a saved model folder; by default the best offline one installed: conf/dataset/local.yaml's
``writers``) or behind an OpenAI-compatible server (``engine=openai``: a larger served model).

A small model writes many unusable pairs, so every pair passes seven filters, in this order, and the
count that survives each is recorded (the manifest, metrics/generate_qa.json, MLflow):

1. ``parsed``: the reply has a question and an answer (``Question: ... Answer: ...``);
2. ``short_answer``: the answer has at most ``max_answer_words`` words;
3. ``answer_in_document``: the normalised answer occurs in the normalised source document (so the
   question is answerable from the corpus, and scoring it by match is fair);
4. ``about_document``: the question names something of its document (a word of four or more letters,
   other than question words, that occurs in it): a small model asks about another topic, and the answer
   can still be a number that happens to be in the document;
5. ``not_title_only``: the answer is not in the document's title nor in the question itself (those are
   answered without reading the document);
6. ``roundtrip``: round-trip consistency (Alberti et al. 2019, "Synthetic QA Corpora Generation with
   Roundtrip Consistency"): the generator, shown the same passage and asked the question (greedy), answers
   with the generated answer (SQuAD token F1 >= ``roundtrip_min_f1``). It drops questions that do not pin
   their answer down, and answers that are not what the question asks. No retrieval round trip: keeping
   only questions the retriever answers would bias the eval set toward RAG;
7. ``not_near_duplicate``: the question is not a near-duplicate (ragft.text.NearDuplicates, word 3-gram
   Jaccard) of a question kept before it, in any document, nor a second question about the same
   document with the same answer (one fact asked twice in other words).

Why not ragas' testset generator: it needs an embedding model and an LLM behind LangChain/LlamaIndex
wrappers and builds a knowledge graph with several LLM calls per node, far beyond what a 135 M model can
follow offline; ragft's own prompt with strict filters keeps every step visible in candidates.jsonl.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ragft.text import NearDuplicates, normalize_answer

log = logging.getLogger(__name__)

FILTERS = ("parsed", "short_answer", "answer_in_document", "about_document", "not_title_only", "roundtrip",
           "not_near_duplicate")
# question words that say nothing about which document a question is about
_QUESTION_WORDS = frozenset("what which when where whom whose does have with from that this there their about into "
                            "text document passage name called many much long year kind type".split())
_QUESTION = re.compile(r"(?:^|\n)\s*\**\s*Q(?:uestion)?\s*\**\s*[:.]\s*\**\s*(?P<q>[^\n]+?)\s*\n+"
                       r"\s*\**\s*A(?:nswer)?\s*\**\s*[:.]\s*\**\s*(?P<a>[^\n]+)", re.IGNORECASE)
PREFIX = "Question:"  # in process, the reply is started with it (a served model is asked for the format)
ANSWER_PREFIX = "Answer:"  # the round trip's reply, likewise
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


def screen(asks: list[Ask], replies: list[str], documents: list[dict], cfg: Any,
           roundtrip: Callable[[list[dict]], list[str]] | None = None) -> tuple[list[dict], list[dict], dict]:
    """Apply the filters (module docstring) in order; ``roundtrip`` answers the candidates that survive the
    text filters (None: no round trip). Returns (kept QA rows, every candidate with the filter that dropped
    it, the count that survived each filter)."""
    by_id = {d["doc_id"]: d for d in documents}
    normal_docs = {d["doc_id"]: normalize_answer(d["text"]) for d in documents}
    doc_words = {k: set(v.split()) for k, v in normal_docs.items()}
    candidates = []
    for ask, reply in zip(asks, replies, strict=True):
        pair = parse(reply)
        row = {"doc_id": ask.doc_id, "request": ask.index, "passage": ask.passage, "reply": reply,
               "question": pair[0] if pair else None, "answer": pair[1] if pair else None, "dropped_by": None}
        if pair is None:
            row["dropped_by"] = "parsed"
        else:
            question, answer = pair
            norm = normalize_answer(answer)
            title = normalize_answer(by_id[ask.doc_id].get("title") or "")
            if len(answer.split()) > int(cfg.max_answer_words):
                row["dropped_by"] = "short_answer"
            elif not _contains(normal_docs[ask.doc_id], norm):
                row["dropped_by"] = "answer_in_document"
            elif not _about(normalize_answer(question), doc_words[ask.doc_id]):
                row["dropped_by"] = "about_document"
            elif _contains(title, norm) or _contains(normalize_answer(question), norm):
                row["dropped_by"] = "not_title_only"
        candidates.append(row)
    if roundtrip is not None:
        pending = [r for r in candidates if r["dropped_by"] is None]
        for row, answered in zip(pending, roundtrip(pending) if pending else [], strict=True):
            row["roundtrip_answer"] = answered
            if not consistent(row["answer"], answered, float(cfg.roundtrip_min_f1)):
                row["dropped_by"] = "roundtrip"
    seen = NearDuplicates(threshold=float(cfg.near_duplicate_threshold))
    same_fact: dict[tuple[str, str], str] = {}  # (document, normalised answer) -> the question kept for it
    kept = []
    for row in candidates:
        if row["dropped_by"] is not None:
            continue
        fact = (row["doc_id"], normalize_answer(row["answer"]))
        duplicate = same_fact.get(fact) or (seen.match(row["question"]) or (None,))[0]
        if duplicate:
            row["dropped_by"], row["duplicate_of"] = "not_near_duplicate", duplicate
            continue
        qid = f"gen-{len(kept) + 1:05d}"
        seen.add(qid, row["question"])
        same_fact[fact] = qid
        row["qid"] = qid
        kept.append({"qid": qid, "question": row["question"], "answer": row["answer"], "doc_id": row["doc_id"]})
    applied = [f for f in FILTERS if f != "roundtrip" or roundtrip is not None]
    survived = {"generated": len(candidates)}
    for i, name in enumerate(applied):   # a candidate survives each filter before the one that dropped it
        survived[name] = sum(r["dropped_by"] not in applied[: i + 1] for r in candidates)
    survived["kept"] = len(kept)
    return kept, candidates, survived


# --------------------------------------------------------------------------- the generators


def _messages(text: str, cfg: Any) -> list[dict]:
    return ([{"role": "system", "content": str(cfg.system)}] if cfg.system else []) + [{"role": "user", "content": text}]


def _ask_text(ask: Ask, cfg: Any, title: str) -> str:
    return str(cfg.template).replace("{passage}", ask.passage).replace("{title}", title)


def _roundtrip_text(passage: str, question: str, cfg: Any) -> str:
    return str(cfg.roundtrip_template).replace("{passage}", passage).replace("{question}", question)


class _HubView:
    """The generator's model fields as ragft.model.hub reads them (it also needs a dtype)."""

    def __init__(self, mcfg: Any) -> None:
        self.path, self.revision, self.trust_remote_code = mcfg.path, mcfg.revision, mcfg.trust_remote_code
        self.dtype = "float32"


def request_seed(ask: Ask, seed: int) -> int:
    """A served request's own sampling seed: two requests on the same passage must not get the same reply."""
    import zlib

    return zlib.crc32(f"{seed}:{ask.doc_id}:{ask.index}".encode())


def _decoding(gcfg: Any, *, roundtrip: bool = False) -> Any:
    """The question writer's decoding (sampled with the seed), or the round trip's (greedy, short)."""
    from types import SimpleNamespace

    if roundtrip:
        return SimpleNamespace(max_new_tokens=int(gcfg.roundtrip_max_new_tokens), do_sample=False, temperature=0.0,
                               top_p=1.0, top_k=0, seed=int(gcfg.seed))
    return SimpleNamespace(max_new_tokens=int(gcfg.max_new_tokens), do_sample=bool(gcfg.do_sample),
                           temperature=float(gcfg.temperature), top_p=float(gcfg.top_p), top_k=int(gcfg.top_k),
                           seed=int(gcfg.seed))


class LocalWriter:
    """The in-process generator (``dataset.generate.model``: a GGUF file, checked against its pinned sha256, or
    a saved model folder), loaded once for the questions and their round trip; replies come from the infer
    stage's generation loop (ragft.model.generation: batched in order, sampling seeded per batch,
    deterministic on CPU) through the answer cache, so a rerun that changes only a filter generates nothing."""

    def __init__(self, gcfg: Any) -> None:
        import torch

        group = "dataset.generate.model"
        mcfg = gcfg.model
        if str(mcfg.source) == "gguf":
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from ragft.model import gguf

            source = gguf.locate(mcfg, group)
            directory, name = str(source.file.parent), source.file.name
            log.info("question generator: %s through transformers' GGUF support", source.file)
            self.tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
            self.model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
            self.identity = {"engine": "local", "source": "gguf", "name": source.name,
                             "sha256": gguf.sha256(source.file), "origin": source.origin}
        else:
            from ragft.model import hub

            self.model, self.tokenizer, facts = hub.load_hub_model(_HubView(mcfg), group)
            self.identity = {"engine": "local", "source": "hub", "name": str(mcfg.path), **facts}
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self.model.eval()
        self.gcfg = gcfg

    def write(self, texts: list[str], seeds: list[int], decoding: Any, prefix: str, desc: str) -> tuple[list[str], dict]:
        """Each user turn's reply, the assistant's turn opened with ``prefix`` (a small model then keeps to the
        format; a model without a chat template gets the turns as plain text). ``seeds`` are the served
        writer's; here sampling is seeded per batch by ``decoding.seed``."""
        from ragft.model.answer_cache import AnswerCache, default_dir
        from ragft.model.generation import generate, generation_config

        tok = self.tokenizer
        chat = bool(getattr(tok, "chat_template", None))
        prompts = []
        for text in texts:
            messages = _messages(text, self.gcfg)
            if chat:
                rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                prompts.append(tok(rendered + prefix, add_special_tokens=False)["input_ids"])
            else:
                prompts.append(tok("\n\n".join(m["content"] for m in messages) + "\n" + prefix)["input_ids"])
        out = generate(prompts, self.model, tok, generation_config(decoding, self.model, tok),
                       batch_size=int(self.gcfg.batch_size), seed=int(decoding.seed), cache=AnswerCache(default_dir()),
                       identity=self.identity, decoding={"engine": "generate_qa", "prefix": prefix},
                       longest_first=False, desc=desc)
        if out.from_cache:
            log.info("%s: %d replies from the answer cache (same generator, prompts and decoding)", desc, len(texts))
        return [f"{prefix} {o}" for o in out.texts], {"seconds": out.timings["seconds"], "requests": len(texts),
                                                      "cached": len(texts) if out.from_cache else 0}


class ServedWriter:
    """A generator behind an OpenAI-compatible server (``engine=openai``), through the serving client (its
    concurrency, retries, timeouts, and the answer cache: a rerun asks only what is not cached)."""

    def __init__(self, gcfg: Any) -> None:
        from ragft.serving import client

        ocfg = gcfg.openai
        entry = client.probe(ocfg, str(ocfg.model), where="dataset.generate.openai")
        self.identity = {"engine": "openai", "name": str(ocfg.model), "server": client.public_url(str(ocfg.base_url)),
                         "served": entry}
        self.gcfg = gcfg

    def write(self, texts: list[str], seeds: list[int], decoding: Any, prefix: str, desc: str) -> tuple[list[str], dict]:
        """Each user turn's reply (a served model is asked for the format; ``prefix`` is not sent)."""
        from ragft.model.answer_cache import AnswerCache, default_dir
        from ragft.serving import client

        ocfg = self.gcfg.openai
        requests = [client.Request(messages=_messages(t, self.gcfg), seed=s) for t, s in zip(texts, seeds, strict=True)]
        replies, _, timings = client.answer_requests(requests, ocfg, decoding, str(ocfg.model), self.identity,
                                                     AnswerCache(default_dir()))
        return replies, {"seconds": timings["seconds"], "requests": len(texts)}


def roundtrip(writer: Any, rows: list[dict], gcfg: Any) -> tuple[list[str], float]:
    """The generator's own answer to each candidate's question, shown the same passage (greedy): the
    round-trip check of Alberti et al. (2019); and the seconds it took."""
    texts = [_roundtrip_text(r["passage"], r["question"], gcfg) for r in rows]
    replies, run = writer.write(texts, [int(gcfg.seed)] * len(texts), _decoding(gcfg, roundtrip=True), ANSWER_PREFIX,
                                "round trip")
    return [roundtrip_answer(r) for r in replies], run["seconds"]


def roundtrip_answer(reply: str) -> str:
    """The answer in a round-trip reply: its first line, without an ``Answer:`` label or a final stop."""
    text = reply.strip()
    if text.lower().startswith(ANSWER_PREFIX.lower()):
        text = text[len(ANSWER_PREFIX):]
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line.strip(" *\"'").rstrip(".").strip(" *\"'")


def consistent(generated: str, answered: str, min_f1: float) -> bool:
    """Whether the round trip found the generated answer: token F1 (SQuAD's) of the two at least ``min_f1``."""
    from ragft.evaluation.answers import f1_score

    return f1_score(answered, generated) >= min_f1


def generate_questions(documents: list[dict], gcfg: Any) -> tuple[list[dict], list[dict], dict]:
    """The kept QA rows, every candidate, and the manifest (generator, settings, survival counts)."""
    asks = plan(documents, int(gcfg.per_document), int(gcfg.passage_words), int(gcfg.seed))
    titles = {d["doc_id"]: d.get("title") or "" for d in documents}
    log.info("asking %s for %d question/answer pairs from %d documents", gcfg.engine, len(asks), len(documents))
    writer = ServedWriter(gcfg) if str(gcfg.engine) == "openai" else LocalWriter(gcfg)
    replies, run = writer.write([_ask_text(a, gcfg, titles[a.doc_id]) for a in asks],
                                [request_seed(a, int(gcfg.seed)) for a in asks], _decoding(gcfg), PREFIX,
                                "generate questions")
    seconds = [run["seconds"]]

    def check(rows: list[dict]) -> list[str]:
        answers, spent = roundtrip(writer, rows, gcfg)
        seconds.append(spent)
        return answers

    kept, candidates, survived = screen(asks, replies, documents, gcfg, check if gcfg.roundtrip else None)
    log.info("generated %d pairs; survived each filter: %s", len(asks), survived)
    manifest = {"generator": writer.identity, "documents": len(documents), "survived": survived,
                "filters": [f for f in FILTERS if f != "roundtrip" or gcfg.roundtrip],  # their order
                "survival_rate": round(survived["kept"] / survived["generated"], 4) if survived["generated"] else 0.0,
                "documents_with_questions": len({r["doc_id"] for r in kept})}
    return kept, candidates, {**manifest, "seconds": round(sum(seconds), 2)}
