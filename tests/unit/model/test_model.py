"""The generator: tokenizer coverage, prompt/label masking, the curriculum, the scratch build and its
reload, the hub path on a local tiny GPT-2, and the errors a user can hit."""

from __future__ import annotations

import hashlib
import json
import random

import pytest
import torch
from omegaconf import OmegaConf

from ragft.config import ConfigError
from ragft.data import synthbio
from ragft.model import base, hub, prompts, scratch, training
from ragft.model.loading import load_generator
from ragft.model.tokenizer import train_word_tokenizer, unknown_rate


def documents(n: int = 6) -> list[dict]:
    rng = random.Random(0)
    people = synthbio.generate_people(n, 0, "experiment")
    return [{"doc_id": p.person_id, "title": p.name, "text": synthbio.render_biography(p, rng)} for p in people]


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_cfg):
    people, _ = scratch.pretrain_people(tiny_cfg.model.scratch)
    return train_word_tokenizer(scratch.tokenizer_texts(people, documents(), tiny_cfg))


@pytest.fixture(scope="module")
def tiny_base(tiny_cfg, tmp_path_factory):
    """The tiny scratch base model, built the way the base_model stage builds it."""
    out = tmp_path_factory.mktemp("base") / "base"
    out.mkdir()
    built = base.build_base_model(tiny_cfg, out, documents())
    (out / "manifest.json").write_text(json.dumps(built.manifest))
    return out, built


# --------------------------------------------------------------------------- tokenizer


def test_tokenizer_covers_the_corpus_and_only_it(tiny_tokenizer):
    docs = documents()
    assert unknown_rate(tiny_tokenizer, [d["text"] for d in docs]) == 0.0
    ids = tiny_tokenizer(docs[0]["text"], add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.unk_token_id not in ids
    assert tiny_tokenizer("zyzzyva quokka", add_special_tokens=False)["input_ids"] == [tiny_tokenizer.unk_token_id] * 2
    # word level, lowercased, punctuation split off
    assert tiny_tokenizer.tokenize("Lima, 1972.") == ["lima", ",", "1972", "."]
    assert {tiny_tokenizer.pad_token, tiny_tokenizer.unk_token, tiny_tokenizer.eos_token} == {"[PAD]", "[UNK]", "[EOS]"}


def test_tokenizer_is_deterministic(tiny_cfg, tiny_tokenizer):
    people, _ = scratch.pretrain_people(tiny_cfg.model.scratch)
    again = train_word_tokenizer(scratch.tokenizer_texts(people, documents(), tiny_cfg))
    assert again.get_vocab() == tiny_tokenizer.get_vocab()


# --------------------------------------------------------------------------- prompts


def test_prompts_follow_the_config_templates(tiny_cfg):
    assert prompts.closed_book_prompt(" Where was Ada born? ", tiny_cfg) == "question : Where was Ada born? answer :"
    ctx = prompts.join_contexts(["Ada was born in Lima.", "Bo works for X."], tiny_cfg)
    assert prompts.context_prompt("Where?", ctx, tiny_cfg) == (
        "context : Ada was born in Lima. Bo works for X. question : Where? answer :"
    )
    assert prompts.build_prompt("Where?", tiny_cfg, context="") == "question : Where? answer :"
    custom = OmegaConf.merge(tiny_cfg, {"prompt": {"closed_book_template": "Q: {question}\nA:"}})
    assert prompts.build_prompt("Where?", custom) == "Q: Where?\nA:"


def test_qa_example_puts_the_loss_on_the_answer_and_eos_only(tiny_tokenizer):
    prompt = "question : Where was Nadia Novak born? answer :"
    ids, labels = prompts.qa_example(prompt, "Lima", tiny_tokenizer, max_length=64)
    n_prompt = len(tiny_tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert len(ids) == len(labels) == n_prompt + 2
    assert labels[:n_prompt] == [prompts.IGNORE_INDEX] * n_prompt
    assert (
        labels[n_prompt:]
        == ids[n_prompt:]
        == [tiny_tokenizer.convert_tokens_to_ids("lima"), tiny_tokenizer.eos_token_id]
    )
    # the prompt plus answer tokenizes exactly as the model will see it at inference
    assert ids[:-1] == tiny_tokenizer(prompt + " Lima", add_special_tokens=False)["input_ids"]


def test_qa_example_truncates_the_start_of_the_prompt(tiny_tokenizer):
    prompt = "context : " + "Ada was born in Lima . " * 20 + "question : Where was Ada born? answer :"
    ids, labels = prompts.qa_example(prompt, "June 7, 1972", tiny_tokenizer, max_length=16)
    assert len(ids) == 16
    assert tiny_tokenizer.decode(ids[-5:]) == "june 7 , 1972 [EOS]"
    assert sum(label != prompts.IGNORE_INDEX for label in labels) == 5
    assert tiny_tokenizer.convert_ids_to_tokens(ids[:-5])[-3:] == ["?", "answer", ":"]


def test_lm_examples_cut_long_texts_into_windows(tiny_tokenizer):
    text = " ".join(["lima"] * 25)
    windows = prompts.lm_examples(text, tiny_tokenizer, max_length=10)
    assert [len(ids) for ids, _ in windows] == [10, 10, 6]
    assert all(ids == labels for ids, labels in windows)
    assert windows[-1][0][-1] == tiny_tokenizer.eos_token_id


def test_batched_encoding_equals_one_by_one(tiny_cfg, tiny_tokenizer):
    people, _ = scratch.pretrain_people(tiny_cfg.model.scratch)
    rows = scratch.build_curriculum(people, 30, tiny_cfg) + [{"text": " ".join(["lima"] * 40)}]
    one_by_one = []
    for row in rows:
        if "text" in row:
            one_by_one += prompts.lm_examples(row["text"], tiny_tokenizer, 32)
        else:
            one_by_one.append(prompts.qa_example(row["prompt"], row["answer"], tiny_tokenizer, 32))
    assert prompts.encode_rows(rows, tiny_tokenizer, 32) == one_by_one
    assert [len(ids) for ids, _ in one_by_one[-2:]] == [32, 9]  # 40 words + EOS: two windows


def test_chat_template_wraps_prompts_only_when_asked(tiny_tokenizer):
    from copy import deepcopy

    on, off = OmegaConf.create({"chat_template": True}), OmegaConf.create({"chat_template": False})
    assert prompts.chat_wrap("question : x answer :", tiny_tokenizer, on) == "question : x answer :"  # no template
    chat = deepcopy(tiny_tokenizer)
    chat.chat_template = (
        "{% for m in messages %}<u> {{ m['content'] }}{% endfor %}{% if add_generation_prompt %} <a>{% endif %}"
    )
    assert prompts.chat_wrap("hi", chat, on) == "<u> hi <a>"
    assert prompts.chat_wrap("hi", chat, off) == "hi"


# --------------------------------------------------------------------------- curriculum and loss


def test_curriculum_mixes_kinds_and_is_seeded(tiny_cfg):
    people, heldout = scratch.pretrain_people(tiny_cfg.model.scratch)
    assert not {p.name for p in people} & {p.name for p in heldout}
    rows = scratch.build_curriculum(people, 90, tiny_cfg)
    assert rows == scratch.build_curriculum(people, 90, tiny_cfg)
    kinds = [r["kind"] for r in rows]
    assert {k: kinds.count(k) for k in scratch.KINDS} == {"read": 30, "bio": 30, "recall": 30, "abstain": 0,
                                                                  "derive": 0}
    assert len(set(kinds[:12])) == 3, "kinds are shuffled together, not in blocks"
    half = {p.person_id for p in people[: len(people) // 2]}
    assert {r["person_id"] for r in rows if r["kind"] == "recall"} <= half
    by_id = {p.person_id: p for p in people}
    for r in rows:
        if r["kind"] == "read":
            assert r["prompt"].startswith("context : ") and r["prompt"].endswith("answer :")
            context = r["prompt"].split(" question : ")[0]
            assert by_id[r["person_id"]].name in context
            assert 1 <= sum(p.name in context for p in people) <= 1 + tiny_cfg.model.scratch.read_distractors
            assert r["answer"] in by_id[r["person_id"]].attributes.values()
    weighted = OmegaConf.merge(tiny_cfg, {"model": {"scratch": {"mix": {"read": 2, "bio": 1, "recall": 0}}}})
    kinds = [r["kind"] for r in scratch.build_curriculum(people, 30, weighted)]
    assert (kinds.count("read"), kinds.count("bio"), kinds.count("recall")) == (20, 10, 0)


def test_example_mean_loss_weighs_examples_equally():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[-100, 1, 2, 3, 4], [-100, -100, -100, 5, -100]])
    got = training.example_mean_loss(logits, labels)
    per = []
    for row in range(2):
        tgt = labels[row, 1:]
        keep = tgt != -100
        per.append(torch.nn.functional.cross_entropy(logits[row, :-1][keep], tgt[keep]))
    assert torch.allclose(got, torch.stack(per).mean())
    # the same two examples packed in one row (position ids restart) give the same loss
    packed_logits = torch.cat([logits[0], logits[1, :4]]).unsqueeze(0)
    packed_labels = torch.tensor([[-100, 1, 2, 3, 4, -100, -100, -100, 5]])
    positions = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3]])
    assert torch.allclose(training.example_mean_loss(packed_logits, packed_labels, positions), got)


# --------------------------------------------------------------------------- scratch build


def test_scratch_model_saves_and_reloads_identically(tiny_base, tiny_cfg):
    out, built = tiny_base
    m = built.manifest
    assert m["source"] == "scratch" and m["testbed"] is True
    assert m["tokenizer"]["type"] == "WordLevel" and m["tokenizer"]["vocab_size"] > 100
    digest = hashlib.sha256()   # the manifest's hash, recomputed by its definition: each weight file's name and bytes
    for f in sorted(out.glob("*.safetensors")):
        digest.update(f.name.encode())
        digest.update(f.read_bytes())
    assert m["parameters"] > 0 and m["weights_sha256"] == "sha256:" + digest.hexdigest()
    assert m["pretraining"]["steps"] == tiny_cfg.model.scratch.steps
    assert m["corpus_unknown_token_rate"] == 0.0
    assert set(m["sanity_probe"]) >= {"read_em", "read_among_em", "closed_book_em"}
    assert "seconds" not in json.dumps(m), "timings belong in metrics, not in the deterministic manifest"
    assert built.metrics["train_seconds"] > 0 and built.metrics["steps"] == tiny_cfg.model.scratch.steps
    assert (out / "model.safetensors").exists() and not list(out.glob("*.bin"))
    mix = [json.loads(line) for line in (out / scratch.PRETRAIN_MIX).read_text().splitlines()]
    assert len(mix) == tiny_cfg.model.scratch.steps * tiny_cfg.model.scratch.batch_size

    model, tokenizer, manifest = load_generator(out, device="cpu")
    assert manifest == m and tokenizer.padding_side == "left"
    probe_text = prompts.closed_book_prompt("Where was Nadia Novak born?", tiny_cfg)
    batch = tokenizer([probe_text], return_tensors="pt")
    again, _, _ = load_generator(out, device="cpu")
    with torch.no_grad():
        a = model(**batch).logits
        b = again(**batch).logits
    assert torch.equal(a, b)


def test_scratch_build_is_deterministic(tiny_base, tiny_cfg, tmp_path):
    out, built = tiny_base
    rebuilt = base.build_base_model(tiny_cfg, tmp_path, documents())
    assert rebuilt.manifest == built.manifest
    assert (tmp_path / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
    assert (tmp_path / scratch.PRETRAIN_MIX).read_bytes() == (out / scratch.PRETRAIN_MIX).read_bytes()


# --------------------------------------------------------------------------- hub path


def save_tiny_gpt2(path, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=64,
        n_embd=32,
        n_layer=1,
        n_head=2,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model


def hub_cfg(cfg, **model):
    return OmegaConf.merge(cfg, {"model": {"source": "hub", "revision": None, **model}})


def test_hub_source_copies_a_local_model(tiny_cfg, tiny_tokenizer, tmp_path):
    original = save_tiny_gpt2(tmp_path / "src", tiny_tokenizer)
    out = tmp_path / "base"
    out.mkdir()
    built = base.build_base_model(hub_cfg(tiny_cfg, path=str(tmp_path / "src")), out, [])
    m = built.manifest
    assert m["source"] == "hub" and m["testbed"] is False and m["path"] == str(tmp_path / "src")
    assert m["name"] == "src" and m["architecture"] == "GPT2LMHeadModel"  # what was loaded, not a preset's name
    assert m["revision"] is None and m["weights_sha256"].startswith("sha256:")
    assert m["parameters"] == sum(p.numel() for p in original.parameters())
    assert m["chat_template"] is False and m["trust_remote_code"] is False
    (out / "manifest.json").write_text(json.dumps(m))
    model, tokenizer, manifest = load_generator(out, device="cpu")
    assert manifest["source"] == "hub"
    ids = tokenizer(["question : where ? answer :"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, original.eval()(**ids).logits)


def test_hub_missing_path_names_the_field_and_the_fix(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"model\.path .*does not exist.*Fix"):
        hub.resolve_source(hub_cfg(tiny_cfg, path=str(tmp_path / "nope")).model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="without config.json"):
        hub.resolve_source(hub_cfg(tiny_cfg, path=str(tmp_path / "empty")).model)


def test_hub_id_needs_a_pinned_revision(tiny_cfg):
    with pytest.raises(ConfigError, match=r"model\.revision is empty"):
        hub.resolve_source(hub_cfg(tiny_cfg, path="someorg/some-model").model)
    assert hub.resolve_source(hub_cfg(tiny_cfg, path="someorg/some-model", revision="a" * 40).model) == (
        "someorg/some-model",
        False,
    )


def test_hub_id_unreachable_offline_is_a_config_error(tiny_cfg):
    cfg = hub_cfg(tiny_cfg, path="someorg/not-cached-model", revision="b" * 40)
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE"):
        hub.load_hub_model(cfg.model)


def test_curriculum_knobs_recall_share_renderings_and_abstain(tiny_cfg):
    from omegaconf import OmegaConf

    from ragft.data import synthbio

    cfg = OmegaConf.merge(tiny_cfg, {"model": {"scratch": {
        "pretrain_people": 8, "knowledge_words": True, "recall_fraction": 0.25, "bio_renderings": 3, "permute": False, "fullname": False,
        "mix": {"read": 1.0, "bio": 2.0, "recall": 1.0, "abstain": 1.0}}}})
    scfg = cfg.model.scratch
    people, heldout = scratch.pretrain_people(scfg)
    rows = scratch.build_curriculum(people, 100, cfg)
    assert rows == scratch.build_curriculum(people, 100, cfg)
    kinds = [r["kind"] for r in rows]
    assert {k: kinds.count(k) for k in scratch.KINDS} == {"read": 20, "bio": 40, "recall": 20, "abstain": 20,
                                                           "derive": 0}
    recallers = {p.person_id for p in scratch.recallers(people, scfg)}
    assert len(recallers) == int(len(people) * 0.25)
    assert {r["person_id"] for r in rows if r["kind"] == "recall"} <= recallers
    by_id = {p.person_id: p for p in people}
    bios: dict[str, set] = {}
    for r in rows:
        if r["kind"] == "bio":
            bios.setdefault(r["person_id"], set()).add(r["text"])
            assert r["text"].count(by_id[r["person_id"]].name) == 1, "fullname off: the name once, then He/She"
    assert max(len(v) for v in bios.values()) > 1 and all(len(v) <= 3 for v in bios.values())
    strangers = {p.person_id for p in scratch.strangers(scfg)}
    assert not strangers & {p.person_id for p in people + heldout}
    abstain = [r for r in rows if r["kind"] == "abstain"]
    assert {r["answer"] for r in abstain} == {synthbio.ABSTAIN} and {r["person_id"] for r in abstain} <= strangers
    assert any("context :" in r["prompt"] for r in abstain) and any("context :" not in r["prompt"] for r in abstain)


def test_the_derive_kind_reads_derived_questions_from_the_biographies_in_the_context(tiny_cfg):
    """mix.derive: the dataset's derived questions (same templates, same answers), answerable from the context."""
    from omegaconf import OmegaConf

    from ragft.data import synthbio

    cfg = OmegaConf.merge(tiny_cfg, {"model": {"scratch": {
        "pretrain_people": 12, "knowledge_words": True, "mix": {"read": 1.0, "bio": 1.0, "recall": 0.0, "derive": 2.0}}}})
    people, _ = scratch.pretrain_people(cfg.model.scratch)
    rows = scratch.build_curriculum(people, 80, cfg)
    assert rows == scratch.build_curriculum(people, 80, cfg)
    derive = [r for r in rows if r["kind"] == "derive"]
    assert len(derive) == 40
    by_name = {p.name: p for p in people}
    seen = set()
    for r in derive:
        context, question = r["prompt"].removeprefix("context : ").removesuffix(" answer :").split(" question : ")
        answer = by_name[r["answer"]]
        assert answer.attributes["birth_date"] in context   # the answer can be read from the context
        named = [n for n in by_name if n in question]
        if named:   # compare: the earlier-born of the two named, both biographies in the context
            seen.add("compare")
            assert len(named) == 2 and answer is min((by_name[n] for n in named), key=synthbio.birth_order)
            assert all(n in context for n in named)
        else:       # inverse: the one whose birth date is asked, among 2-3 biographies
            seen.add("inverse")
            assert answer.attributes["birth_date"] in question and 2 <= len({n for n in by_name if n in context}) <= 3
    assert seen == {"inverse", "compare"}


def test_scratch_knobs_are_checked(default_cfg):
    from omegaconf import OmegaConf

    from ragft.config import ConfigError, validate

    for scratch_override, field in [({"mix": {"reed": 1.0}}, "model.scratch.mix"),
                                    ({"recall_fraction": 0.0}, "model.scratch.recall_fraction"),
                                    ({"bio_renderings": 0}, "model.scratch.bio_renderings"),
                                    ({"fullname": False}, "model.scratch.knowledge_words"),
                                    ({"mix": {"derive": 1.0}}, "model.scratch.knowledge_words")]:
        cfg = OmegaConf.merge(default_cfg, {"model": {"source": "scratch", "path": None, "scratch": scratch_override}})
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            validate(cfg)


def test_the_knowledge_words_extend_the_lexicon_only_when_asked():
    plain, extended = set(synthbio.lexicon()), set(synthbio.lexicon(knowledge_words=True))
    assert plain < extended and {"She", "he", "unknown", "Whose", "earlier"} <= extended - plain
