"""The scratch generator: a small GPT-2 built here and pretrained to read and to recall.

It stands in for a real LLM (a testbed, not a real LLM) so that the experiment runs on a laptop
with no hub access, on people no model has ever seen. Its pretraining curriculum, on synthbio's
"pretrain" pool (disjoint from the experiment's people), gives it the two skills the experiment
compares:
  read   - context (the person's biography, freshly rendered; `read_distractors` > 0 puts other
           people's biographies around it, as top-k retrieval would) + question → answer: what
           RAG relies on;
  bio    - the biographies as plain text (LM loss): how facts get stored, as fine-tuning on
           documents does;
  recall - closed-book question → answer for a share of the people (`recall_fraction`, half by
           default; the others only have their biographies): the format that extracts stored facts,
           without which no fine-tuning on documents could ever show up in closed-book answers. Its
           share of the mix is the QA ratio of Allen-Zhu & Li's mixed training;
  abstain - `mix.abstain` > 0: a question about someone the model never saw, closed-book or with
           another person's biography as the context → "unknown", so that the model can abstain
           (Gekhman et al.: fine-tuning on new facts teaches confident guessing).
  derive - `mix.derive` > 0: a derived question (synthbio.DERIVED: "who was born on <date>?" among
           2-3 biographies, "who is older, A or B?" with both) read from the biographies in the context,
           so that retrieval-augmented arms can answer the dataset's `derived` questions at all; closed-book
           recall of them stays untaught, as in Allen-Zhu & Li 3.2 (inverse search).
Each person has `bio_renderings` fixed biographies (resampled templates, sentences permuted unless
`permute` is off, the full name in each sentence unless `fullname` is off): the bioS augmentations
that make stored facts extractable.
The kinds are mixed (shares `mix`, equal by default) in one shuffled, seeded dataset; that exact text
is saved (pretrain_mix.jsonl) because fine-tuning replays it to keep the reading skill. Measured: the
reading skill appears suddenly (an induction-like phase change) after ~20k reading examples; with
distractor biographies it had not appeared after 32k, so the default has none.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragft.model import prompts

log = logging.getLogger(__name__)

KINDS = ("read", "bio", "recall", "abstain", "derive")
PRETRAIN_MIX = "pretrain_mix.jsonl"


@dataclass
class PretrainResult:
    """What pretraining did: deterministic facts for the manifest, timings and curves for MLflow."""

    steps: int
    final_loss: float
    train_seconds: float
    n_examples: int
    log_history: list[dict] = field(default_factory=list)


# --------------------------------------------------------------------------- people and curriculum


def pretrain_people(scfg: Any) -> tuple[list, list]:
    """The training people and the held-out people of the pretrain pool (the latter only for probes)."""
    from ragft.data import synthbio

    people = synthbio.generate_people(scfg.pretrain_people + scfg.heldout_people, scfg.seed, pool="pretrain")
    return people[: scfg.pretrain_people], people[scfg.pretrain_people :]


def strangers(scfg: Any) -> list:
    """Pretrain-pool people beyond the training and held-out ones: never seen, so the abstain rows ask
    about them (as many as there are training people, or what the pool has left)."""
    from ragft.data import synthbio

    seen = scfg.pretrain_people + scfg.heldout_people
    n = min(scfg.pretrain_people, len(synthbio.pool_names("pretrain")) - seen)
    return synthbio.generate_people(seen + n, scfg.seed, pool="pretrain")[seen:]


def recallers(people: list, scfg: Any) -> list:
    """The training people whose closed-book QA the curriculum holds (the first `recall_fraction` of them)."""
    return people[: int(len(people) * float(scfg.recall_fraction))]


def _reading_row(person, people: list, max_distractors: int, rng: random.Random, cfg: Any) -> dict:
    """Context (the person's biography, freshly rendered, among 0..max_distractors others) + question → answer."""
    from ragft.data import synthbio

    qa = rng.choice(synthbio.make_questions(person, rng))
    n = rng.randint(0, max_distractors) if max_distractors else 0
    group = [person, *[p for p in rng.sample(people, min(len(people), n + 1)) if p is not person][:n]]
    rng.shuffle(group)
    context = prompts.join_contexts([synthbio.render_biography(p, rng) for p in group], cfg)
    prompt = prompts.context_prompt(qa.question, context, cfg)
    return {"kind": "read", "person_id": person.person_id, "prompt": prompt, "answer": qa.answer}


def _abstain_row(stranger, people: list, rng: random.Random, cfg: Any) -> dict:
    """A question about ``stranger`` → synthbio.ABSTAIN: closed-book, or (half the time) with a known
    person's biography as the context, as when retrieval finds the wrong document."""
    from ragft.data import synthbio

    qa = rng.choice(synthbio.make_questions(stranger, rng))
    if rng.random() < 0.5:
        prompt = prompts.closed_book_prompt(qa.question, cfg)
    else:
        prompt = prompts.context_prompt(qa.question, synthbio.render_biography(rng.choice(people), rng), cfg)
    return {"kind": "abstain", "person_id": stranger.person_id, "prompt": prompt, "answer": synthbio.ABSTAIN}


def _derive_row(people: list, rng: random.Random, cfg: Any) -> dict:
    """A derived question about 2-3 people (synthbio.derived_questions, so the same templates and answers as
    the dataset's) with their biographies, shuffled, as the context."""
    from ragft.data import synthbio

    while True:   # a draw whose people share a birth date has no question; draw again
        kind = rng.choice(synthbio.DERIVED)
        group = rng.sample(people, min(len(people), 2 if kind == "compare" else rng.randint(2, 3)))
        candidates = synthbio.derived_questions(group, [kind], rng.randrange(2**31))
        if candidates:
            break
    qa = rng.choice(candidates)
    rng.shuffle(group)
    context = prompts.join_contexts([synthbio.render_biography(p, rng) for p in group], cfg)
    return {"kind": "derive", "person_id": qa.person_ids[0], "prompt": prompts.context_prompt(qa.question, context, cfg),
            "answer": qa.answer}


def _kind_schedule(n_rows: int, mix: Any, rng: random.Random) -> list[str]:
    """``n_rows`` kinds in the proportions of ``mix`` (weights by kind; a kind it omits has none), shuffled."""
    weights = {k: float(mix.get(k, 0.0)) for k in KINDS}
    total = sum(weights.values())
    counts = {k: int(n_rows * weights[k] / total) for k in KINDS}
    counts["read"] += n_rows - sum(counts.values())
    kinds = [k for k in KINDS for _ in range(counts[k])]
    rng.shuffle(kinds)
    return kinds


def build_curriculum(people: list, n_rows: int, cfg: Any) -> list[dict]:
    """``n_rows`` curriculum rows in the proportions of `mix`, in a seeded shuffled order.

    Each person has `bio_renderings` fixed biographies (their "documents", cycled through as the bio
    rows repeat); reading rows render fresh biographies, with 0..read_distractors other people's
    biographies around the right one; recall rows ask the `recallers` (random question template each
    time); abstain rows ask about `strangers`; derive rows read derived questions from 2-3 biographies.
    """
    from ragft.data import synthbio

    scfg = cfg.model.scratch
    rng = random.Random(f"curriculum:{scfg.seed}")
    style = {"permute": bool(scfg.permute), "fullname": bool(scfg.fullname)}
    docs = {p.person_id: synthbio.render_biography(p, rng, **style) for p in people}
    extra = {p.person_id: [synthbio.render_biography(p, random.Random(f"curriculum:{scfg.seed}:{p.person_id}:{i}"),
                                                     **style) for i in range(1, int(scfg.bio_renderings))]
             for p in people}
    kinds = _kind_schedule(n_rows, scfg.mix, rng)
    bio_order = list(people)
    recall_pairs = [(p, a) for p in recallers(people, scfg) for a in p.attributes]
    unknown = strangers(scfg) if "abstain" in kinds else []
    rng.shuffle(bio_order)
    rng.shuffle(recall_pairs)
    rows, n_bio, n_recall = [], 0, 0
    for kind in kinds:
        if kind == "read":
            rows.append(_reading_row(rng.choice(people), people, scfg.read_distractors, rng, cfg))
        elif kind == "abstain":
            rows.append(_abstain_row(rng.choice(unknown), people, rng, cfg))
        elif kind == "derive":
            rows.append(_derive_row(people, rng, cfg))
        elif kind == "bio":
            person = bio_order[n_bio % len(bio_order)]
            texts = [docs[person.person_id], *extra[person.person_id]]
            rows.append({"kind": "bio", "person_id": person.person_id,
                         "text": texts[(n_bio // len(bio_order)) % len(texts)]})
            n_bio += 1
        else:
            person, attribute = recall_pairs[n_recall % len(recall_pairs)]
            n_recall += 1
            qa = synthbio.make_questions(person, rng, [attribute])[0]
            prompt = prompts.closed_book_prompt(qa.question, cfg)
            rows.append({"kind": "recall", "person_id": person.person_id, "prompt": prompt, "answer": qa.answer})
    return rows


def tokenizer_texts(people: list, documents: list[dict], cfg: Any) -> list[str]:
    """Everything the scratch tokenizer must cover: the templates, synthbio's lexicon, the pretrain
    people's biographies and questions, and the experiment's documents (vocabulary only)."""
    from ragft.data import synthbio

    rng = random.Random(f"tokenizer:{cfg.model.scratch.seed}")
    texts = [cfg.prompt.closed_book_template, cfg.prompt.context_template, *synthbio.lexicon(bool(cfg.model.scratch.knowledge_words))]
    for p in people:
        texts.append(synthbio.render_biography(p, rng))
        texts += [qa.question + " " + qa.answer for qa in synthbio.make_questions(p, rng)]
    texts += [d.get("title", "") + " " + d["text"] for d in documents]
    return texts


# --------------------------------------------------------------------------- model and training


def build_model(scfg: Any, tokenizer: Any):
    """A randomly initialised GPT-2 (seeded) sized by ``model.scratch``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=scfg.n_positions,
        n_embd=scfg.n_embd,
        n_layer=scfg.n_layer,
        n_head=scfg.n_head,
        resid_pdrop=scfg.dropout,
        embd_pdrop=scfg.dropout,
        attn_pdrop=scfg.dropout,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(scfg.seed)
    model = GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def pretrain(model: Any, tokenizer: Any, rows: list[dict], scfg: Any) -> PretrainResult:
    """Train ``model`` on the curriculum with transformers.Trainer (AdamW, linear warmup and decay)."""
    import tempfile

    import torch

    from ragft.model.training import ExampleMeanTrainer, PackingCollator, final_loss, rows_dataset, training_args

    if scfg.threads > 0:
        torch.set_num_threads(scfg.threads)
    dataset = rows_dataset(rows, tokenizer, scfg.n_positions)
    work_dir = tempfile.TemporaryDirectory(prefix="ragft-pretrain-")  # Trainer wants one; nothing is saved there
    args = training_args(
        work_dir.name,
        per_device_train_batch_size=scfg.batch_size,
        max_steps=scfg.steps,
        learning_rate=scfg.lr,
        warmup_steps=scfg.warmup_steps,
        weight_decay=scfg.weight_decay,
        seed=scfg.seed,
        logging_steps=max(1, scfg.steps // 40),
    )
    collator = PackingCollator(tokenizer.eos_token_id, scfg.n_positions)
    trainer = ExampleMeanTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    log.info("pretraining: %d examples, %d steps of %d", len(dataset), scfg.steps, scfg.batch_size)
    start = time.perf_counter()
    out = trainer.train()
    seconds = time.perf_counter() - start
    history = trainer.state.log_history
    work_dir.cleanup()
    log.info("pretraining: %.0f s, final loss %.4f", seconds, final_loss(history))
    model.eval()
    return PretrainResult(out.global_step, final_loss(history), seconds, len(dataset), history)


def build_scratch_model(cfg: Any, out_dir: str | Path, documents: list[dict]) -> tuple[Any, Any, PretrainResult]:
    """Tokenizer + pretrained model + curriculum, saved into ``out_dir``; returns (model, tokenizer, result)."""
    from ragft.io import write_jsonl
    from ragft.model.tokenizer import train_word_tokenizer

    scfg = cfg.model.scratch
    out_dir = Path(out_dir)
    people, _ = pretrain_people(scfg)
    tokenizer = train_word_tokenizer(tokenizer_texts(people, documents, cfg), model_max_length=scfg.n_positions)
    rows = build_curriculum(people, scfg.steps * scfg.batch_size, cfg)
    model = build_model(scfg, tokenizer)
    result = pretrain(model, tokenizer, rows, scfg)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_jsonl(out_dir / PRETRAIN_MIX, rows)
    return model, tokenizer, result
