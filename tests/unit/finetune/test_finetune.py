"""Fine-tuning: every mode trains an adapter that reloads identically, replay mixes in the pretraining
curriculum, bad LoRA targets and eval-question leaks stop the stage before training, and the same
seed gives the same adapter."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

from ragft.config import ConfigError
from ragft.data import prepare
from ragft.finetune.contamination import check_no_eval_leak
from ragft.finetune.lora import finetune, write_loss_curve
from ragft.io import DataError, read_jsonl, write_jsonl
from ragft.model import base
from ragft.model.loading import load_generator
from ragft.text import normalize_text


@pytest.fixture(scope="module")
def prepared(tiny_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    prepare(tiny_cfg.dataset, out)
    return out


@pytest.fixture(scope="module")
def base_dir(tiny_cfg, prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "base"
    out.mkdir()
    built = base.build_base_model(tiny_cfg, out, read_jsonl(prepared / "documents.jsonl"))
    (out / "manifest.json").write_text(json.dumps(built.manifest))
    return out


def cfg_with(cfg, **finetune):
    return OmegaConf.merge(cfg, {"finetune": finetune})


def run(cfg, base_dir, prepared, out):
    out.mkdir(parents=True, exist_ok=True)
    return finetune(cfg, base_dir, prepared, out)


@pytest.mark.parametrize("mode", ["docs", "qa", "docs+qa"])
def test_each_mode_trains_an_adapter_that_reloads_identically(mode, tiny_cfg, base_dir, prepared, tmp_path):
    cfg = cfg_with(tiny_cfg, mode=mode, max_steps=3, replay=0.0)
    result = run(cfg, base_dir, prepared, tmp_path / "ft")
    n_docs = len(read_jsonl(prepared / "documents.jsonl"))
    n_qa = len(read_jsonl(prepared / "qa_train.jsonl"))
    rows = result.manifest["rows"]
    assert rows["doc"] == (n_docs if "docs" in mode else 0)
    assert rows["qa"] == (n_qa if "qa" in mode else 0)
    assert rows["replay"] == 0 and result.manifest["steps"] == 3 == result.metrics["steps"]
    assert 0 < result.metrics["trainable_params"] < result.manifest["total_params"]
    assert result.metrics["train_seconds"] > 0 and result.metrics["train_loss"] > 0
    assert (tmp_path / "ft" / "adapter_model.safetensors").exists()
    assert json.loads((tmp_path / "ft" / "adapter_config.json").read_text())["r"] == tiny_cfg.finetune.lora.r

    model, tokenizer, _ = load_generator(base_dir, tmp_path / "ft", device="cpu")
    ids = tokenizer(["question : where was ada born ? answer :"], return_tensors="pt")
    plain, _, _ = load_generator(base_dir, device="cpu")
    with torch.no_grad():
        reloaded = model(**ids).logits
        trained = result.model(**ids).logits
        assert torch.allclose(reloaded, trained, atol=1e-6)
        assert not torch.allclose(reloaded, plain(**ids).logits), "the adapter must change the model"


def test_paraphrases_and_replay_add_rows(tiny_cfg, base_dir, prepared, tmp_path):
    cfg = cfg_with(tiny_cfg, mode="docs", paraphrases=1, replay=0.5, max_steps=1)
    result = run(cfg, base_dir, prepared, tmp_path / "ft")
    rows = result.manifest["rows"]
    n_docs = len(read_jsonl(prepared / "documents.jsonl"))
    n_paraphrased = len(read_jsonl(prepared / "paraphrases.jsonl"))   # the celebrities' (experiment=tiny: half)
    assert rows["doc"] == n_docs and rows["paraphrase"] == n_paraphrased and 0 < n_paraphrased < n_docs
    assert rows["replay"] == n_docs + n_paraphrased  # replay is half of the final mix


def test_replay_needs_the_pretraining_mix(tiny_cfg, base_dir, prepared, tmp_path):
    no_mix = tmp_path / "base"
    no_mix.mkdir()
    for f in base_dir.iterdir():
        if f.name != "pretrain_mix.jsonl":
            (no_mix / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ConfigError, match=r"finetune\.replay.*pretrain_mix.jsonl.*finetune\.replay=0"):
        run(cfg_with(tiny_cfg, replay=0.3, max_steps=1), no_mix, prepared, tmp_path / "ft")


def test_bad_lora_target_fails_before_training(tiny_cfg, base_dir, prepared, tmp_path):
    cfg = OmegaConf.merge(tiny_cfg, {"finetune": {"lora": {"target_modules": ["c_attn", "q_proj"]}}})
    with pytest.raises(ConfigError, match=r"\['q_proj'\].*c_attn"):
        run(cfg, base_dir, prepared, tmp_path / "ft")
    assert not (tmp_path / "ft" / "adapter_model.safetensors").exists()


def test_eval_questions_are_never_trained_on(tiny_cfg, base_dir, prepared, tmp_path):
    leaky = tmp_path / "leaky"
    leaky.mkdir()
    for f in prepared.iterdir():
        (leaky / f.name).write_bytes(f.read_bytes())
    train, evaluation = read_jsonl(prepared / "qa_train.jsonl"), read_jsonl(prepared / "qa_eval.jsonl")
    stolen = {**evaluation[0], "qid": "train-copy", "question": evaluation[0]["question"].upper() + "  "}
    write_jsonl(leaky / "qa_train.jsonl", [*train, stolen])
    with pytest.raises(DataError, match=r"training data.*leaky.*train-copy.*eval question.*qa_eval.jsonl"):
        run(cfg_with(tiny_cfg, mode="qa", max_steps=1), base_dir, leaky, tmp_path / "ft")
    # docs mode trains on no questions, so the same files pass
    assert (
        run(cfg_with(tiny_cfg, mode="docs", max_steps=1), base_dir, leaky, tmp_path / "ok").manifest["rows"]["qa"] == 0
    )


def test_leak_check_matches_qids_and_normalised_text():
    evaluation = [{"qid": "q1", "question": "Where was Ada born?"}]
    check_no_eval_leak([{"qid": "q2", "question": "Where was Bo born?"}, {"text": "no question"}], evaluation, "x")
    with pytest.raises(DataError):
        check_no_eval_leak([{"qid": "q1", "question": "something else"}], evaluation, "x")
    with pytest.raises(DataError):
        check_no_eval_leak([{"qid": "q9", "question": "where was  ada born"}], evaluation, "x")
    assert normalize_text("Where was Ada born?") == "where was ada born"


def test_same_seed_same_adapter(tiny_cfg, base_dir, prepared, tmp_path):
    cfg = cfg_with(tiny_cfg, mode="docs+qa", max_steps=4)
    a = run(cfg, base_dir, prepared, tmp_path / "a")
    b = run(cfg, base_dir, prepared, tmp_path / "b")
    weights = "adapter_model.safetensors"
    assert (tmp_path / "a" / weights).read_bytes() == (tmp_path / "b" / weights).read_bytes()
    assert a.manifest == b.manifest
    run(cfg_with(tiny_cfg, mode="docs+qa", max_steps=4, seed=1), base_dir, prepared, tmp_path / "c")
    assert (tmp_path / "c" / weights).read_bytes() != (tmp_path / "a" / weights).read_bytes()


def test_loss_curve_csv(tmp_path):
    history = [{"loss": 2.5, "step": 1}, {"loss": 1.25, "step": 2}, {"train_runtime": 1.0, "step": 2}]
    assert write_loss_curve(tmp_path / "loss.csv", history) == 2
    assert (tmp_path / "loss.csv").read_text() == "step,loss\n1,2.500000\n2,1.250000\n"


# --------------------------------------------------------------------------- RAFT


def _chunks(prepared) -> list[dict]:
    """One chunk per document (synthbio biographies fit one chunk)."""
    return [{"chunk_id": f"{d['doc_id']}#0000", "doc_id": d["doc_id"], "text": d["text"]}
            for d in read_jsonl(prepared / "documents.jsonl")]


def test_raft_rows_mix_gold_and_distractors_by_seeded_p(tiny_cfg, prepared):
    from ragft.finetune.raft import raft_rows

    qa_train, chunks = read_jsonl(prepared / "qa_train.jsonl"), _chunks(prepared)
    text = {c["doc_id"]: c["text"] for c in chunks}
    cfg = OmegaConf.merge(tiny_cfg, {"finetune": {"raft": {"p_gold": 0.5, "distractors": 2, "seed": 7}}})
    rows = raft_rows(qa_train, chunks, cfg)
    assert [r["qid"] for r in rows] == sorted(q["qid"] for q in qa_train)
    by_qid = {q["qid"]: q for q in qa_train}
    for row in rows:
        gold = text[by_qid[row["qid"]]["doc_ids"][0]]
        assert (gold in row["prompt"]) is row["gold_in_context"]
        n_passages = sum(t in row["prompt"] for t in text.values())
        assert n_passages == 2 + row["gold_in_context"]  # two distractors, never the gold one twice
        assert row["prompt"].endswith("answer :") and row["answer"] == by_qid[row["qid"]]["answer"]
        assert row["question"] in row["prompt"]
    share = sum(r["gold_in_context"] for r in rows) / len(rows)
    assert 0.25 < share < 0.75  # p_gold = 0.5 over ~40 questions
    assert raft_rows(qa_train, chunks, cfg) == rows  # seeded
    other = raft_rows(qa_train, chunks, OmegaConf.merge(cfg, {"finetune": {"raft": {"seed": 8}}}))
    assert other != rows
    all_gold = raft_rows(qa_train, chunks, OmegaConf.merge(cfg, {"finetune": {"raft": {"p_gold": 1.0}}}))
    assert all(r["gold_in_context"] for r in all_gold)
    with pytest.raises(DataError, match="no chunk of its gold document"):
        raft_rows(qa_train, chunks[:1], cfg)


def test_raft_recipe_trains_an_adapter_with_a_contamination_check(tiny_cfg, base_dir, prepared, tmp_path):
    chunks_file = tmp_path / "chunks.jsonl"
    write_jsonl(chunks_file, _chunks(prepared))
    cfg = cfg_with(tiny_cfg, max_steps=2)
    out = tmp_path / "raft"
    out.mkdir()
    result = finetune(cfg, base_dir, prepared, out, recipe="raft", chunks_file=chunks_file)
    assert (out / "adapter_model.safetensors").exists()
    assert result.manifest["recipe"] == "raft" and result.manifest["rows"]["raft"] == len(
        read_jsonl(prepared / "qa_train.jsonl")
    )
    assert result.manifest["contamination"]["exact"] == 0 and result.metrics["eval_overlap_near"] == 0


def test_contamination_guard_catches_near_duplicate_eval_questions():
    from ragft.finetune.contamination import contamination_guard

    evaluation = [{"qid": "q1", "question": "In which city was Ada Lovelace of Harlow born, and in what year?"}]
    clean = [{"qid": "t1", "question": "Which university did Bo Tidewater attend?"}, {"text": "Ada was born in 1815."}]
    assert contamination_guard(clean, evaluation, "train")["near_duplicates"] == 0
    near = [{"qid": "t2", "question": "In which city was Ada Lovelace of Harlow born and in what year ?!"}]
    with pytest.raises(DataError, match="eval question"):
        contamination_guard(near, evaluation, "train")
    reworded = [{"qid": "t3", "question": "in which city was ada lovelace of harlow born, and in what year exactly"}]
    with pytest.raises(DataError, match="near-duplicates"):
        contamination_guard(reworded, evaluation, "train")


# --------------------------------------------------------------------------- validation and early stopping


def test_validation_split_holds_out_whole_documents_and_questions_seeded():
    from ragft.finetune.recipes import validation_split

    rows = ([{"kind": "doc", "doc_id": f"d{i}", "text": "t"} for i in range(8)]
            + [{"kind": "paraphrase", "doc_id": f"d{i}", "text": "p"} for i in range(8)]
            + [{"kind": "qa", "qid": f"q{i}", "question": "?", "answer": "a"} for i in range(8)]
            + [{"kind": "doc", "doc_id": "r", "text": "replayed", "replay": True}])
    train, held = validation_split(rows, 0.25, 0)
    assert len(held) + len(train) == len(rows) and not [r for r in held if r.get("replay")]
    held_docs = {r["doc_id"] for r in held if r["kind"] != "qa"}
    assert held_docs and not held_docs & {r["doc_id"] for r in train if r["kind"] != "qa"}   # a document is one group
    assert sum(r["kind"] == "paraphrase" for r in held) == sum(r["kind"] == "doc" for r in held)
    assert (train, held) == validation_split(rows, 0.25, 0) and held != validation_split(rows, 0.25, 1)[1]
    assert validation_split(rows, 0.0, 0) == (rows, [])
    with pytest.raises(ConfigError, match=r"finetune.validation.fraction.*nothing would be left"):
        validation_split(rows[:1], 0.4, 0)


def test_early_stopping_keeps_the_best_checkpoint(tiny_cfg, base_dir, prepared, tmp_path):
    """A learning rate that overshoots: the held-out loss stops improving, training stops before its
    planned steps, and the model saved is the best evaluation's (its loss, recomputed, is the best)."""
    from ragft.finetune import recipes
    from ragft.model.loading import load_tokenizer
    from ragft.model.training import ExampleMeanTrainer, padding_collator, rows_dataset, training_args

    cfg = cfg_with(tiny_cfg, mode="docs+qa", max_steps=60, lr=0.3, warmup_ratio=0.0,
                   validation={"fraction": 0.25, "eval_steps": 2, "patience": 2})
    result = run(cfg, base_dir, prepared, tmp_path / "ft")
    v = result.manifest["validation"]
    evals = [(e["step"], e["eval_loss"]) for e in result.log_history if "eval_loss" in e]
    assert v["enabled"] and v["stopped_early"] and result.manifest["steps"] < 60 and v["evaluations"] == len(evals)
    assert (v["best_step"], v["best_eval_loss"]) == min(evals, key=lambda p: (p[1], p[0]))
    assert v["best_step"] < result.manifest["steps"] and result.metrics["validation_best_eval_loss"] == v["best_eval_loss"]

    tokenizer = load_tokenizer(base_dir)
    rows = recipes.task_rows(cfg, recipes.read_prepared(prepared, "finetuned", cfg.finetune), tokenizer)
    train, held = recipes.validation_split(rows, 0.25, cfg.finetune.seed)
    assert v["rows"] == len(held) and result.manifest["rows"]["doc"] + result.manifest["rows"]["qa"] == len(train)
    scorer = ExampleMeanTrainer(model=result.model, args=training_args(str(tmp_path / "ev"), seed=0,
                                                                        per_device_eval_batch_size=8,
                                                                        prediction_loss_only=True),
                                eval_dataset=rows_dataset(held, tokenizer, cfg.finetune.max_length),
                                data_collator=padding_collator(tokenizer))
    assert scorer.evaluate()["eval_loss"] == pytest.approx(v["best_eval_loss"], rel=1e-4)


def test_validation_curve_csv(tmp_path):
    from ragft.finetune.lora import write_validation_curve

    history = [{"loss": 2.5, "step": 2}, {"eval_loss": 2.0, "step": 2}, {"eval_loss": 1.5, "step": 4}]
    assert write_validation_curve(tmp_path / "v.csv", history) == 2
    assert (tmp_path / "v.csv").read_text() == "step,eval_loss\n2,2.000000\n4,1.500000\n"
    assert write_validation_curve(tmp_path / "off.csv", history[:1]) == 0
    assert (tmp_path / "off.csv").read_text() == "step,eval_loss\n"


# --------------------------------------------------------------------------- injection recipes (issue: testbed)


def test_pit_trains_the_training_qa_and_documents_first_then_the_held_out_documents(tiny_cfg, prepared):
    from ragft.finetune import recipes

    cfg = cfg_with(tiny_cfg, mode="pit")
    loaded = recipes.read_prepared(prepared, "finetuned", cfg.finetune)
    rows = recipes.task_rows(cfg, loaded, tokenizer=None)
    first, second = recipes.phases(rows)
    held_out = {d for name in ("qa_eval.jsonl", "qa_dev.jsonl") for q in loaded[name] for d in q["doc_ids"]}
    assert {r["kind"] for r in first} == {"doc", "qa"} and {r["kind"] for r in second} == {"doc"}
    assert not {r["doc_id"] for r in first if r["kind"] == "doc"} & held_out
    assert {r["doc_id"] for r in second} == held_out
    assert len(first) + len(second) == len(recipes.task_rows(cfg_with(tiny_cfg, mode="docs+qa"), loaded, None))
    assert recipes.phases(recipes.task_rows(cfg_with(tiny_cfg, mode="docs"), loaded, None)).__len__() == 1


def test_pit_runs_two_phases_with_one_loss_curve(tiny_cfg, base_dir, prepared, tmp_path):
    cfg = cfg_with(tiny_cfg, mode="pit", max_steps=2, replay=0.5)
    result = run(cfg, base_dir, prepared, tmp_path / "ft")
    assert result.manifest["phases"] == 2 and result.manifest["steps"] == 4 == result.metrics["steps"]
    steps = [e["step"] for e in result.log_history if "loss" in e]
    assert steps == sorted(steps) and max(steps) == 4 and {e["phase"] for e in result.log_history if "loss" in e} == {1, 2}
    assert result.manifest["rows"]["replay"] > 0


def test_full_fine_tuning_saves_a_whole_model_that_loads_and_differs_from_the_base(tiny_cfg, base_dir, prepared, tmp_path):
    cfg = cfg_with(tiny_cfg, mode="docs", method="full", max_steps=3, replay=0.0)
    result = run(cfg, base_dir, prepared, tmp_path / "ft")
    assert result.manifest["method"] == "full" and result.manifest["lora"] is None
    assert result.metrics["trainable_params"] == result.manifest["total_params"]
    assert (tmp_path / "ft" / "model.safetensors").exists() and not (tmp_path / "ft" / "adapter_config.json").exists()
    model, tokenizer, manifest = load_generator(base_dir, tmp_path / "ft", device="cpu")
    assert manifest == json.loads((base_dir / "manifest.json").read_text()), "the manifest stays the base model's"
    plain, _, _ = load_generator(base_dir, device="cpu")
    ids = tokenizer(["question : where was ada born ? answer :"], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model(**ids).logits, result.model(**ids).logits, atol=1e-6)
        assert not torch.allclose(model(**ids).logits, plain(**ids).logits)


def test_lora_can_cover_the_embeddings(tiny_cfg, base_dir, prepared, tmp_path):
    cfg = cfg_with(tiny_cfg, mode="docs", max_steps=1, replay=0.0, lora={"target_modules": ["c_attn", "c_fc", "wte"]})
    with_emb = run(cfg, base_dir, prepared, tmp_path / "emb")
    without = run(cfg_with(tiny_cfg, mode="docs", max_steps=1, replay=0.0, lora={"target_modules": ["c_attn", "c_fc"]}),
                  base_dir, prepared, tmp_path / "no")
    assert with_emb.metrics["trainable_params"] > without.metrics["trainable_params"]
    load_generator(base_dir, tmp_path / "emb", device="cpu")


def test_qlora_with_full_fine_tuning_is_refused(default_cfg):
    from ragft.config import validate

    with pytest.raises(ConfigError, match="finetune.method=lora"):
        validate(OmegaConf.merge(default_cfg, {"finetune": {"method": "full", "qlora": True}}))
