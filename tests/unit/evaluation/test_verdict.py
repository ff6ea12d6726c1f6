"""The verdict: one sentence from the arms' scores and the paired CIs, at the configured confidence level."""

from __future__ import annotations

from ragft.evaluation.verdict import verdict


def arms(base_none, rag, ft, both) -> dict[str, dict]:
    em = {"base-none": base_none, "base-retrieved": rag, "finetuned-none": ft, "finetuned-retrieved": both}
    return {arm: {"exact_match": v, "f1": v, "n": 200} for arm, v in em.items()}


def text(*args, **kwargs) -> str:
    return verdict(*args, **kwargs)["text"]


def test_rag_wins_and_finetuning_adds():
    out = text(arms(0.05, 0.62, 0.30, 0.66))
    assert out.startswith(
        "On this corpus, RAG (base + retrieved) beats LoRA fine-tuning (finetuned, closed-book) by 32.0 EM points; "
        "fine-tuning on the documents added 4.0 points on top of RAG."
    )
    assert "Best arm: finetuned-retrieved" in out and "66.0%" in out


def test_finetuning_wins_and_costs_on_top_of_rag():
    out = text(arms(0.05, 0.40, 0.55, 0.385))
    assert out.startswith(
        "On this corpus, LoRA fine-tuning (finetuned, closed-book) beats RAG (base + retrieved) by 15.0 EM points; "
        "fine-tuning on the documents on top of RAG lost 1.5 points."
    )
    assert "Best arm: finetuned-none" in out


def test_no_difference_and_ties():
    out = text(arms(0.1, 0.5, 0.5, 0.5))
    assert "RAG (base + retrieved) and LoRA fine-tuning (finetuned, closed-book): no significant difference" in out
    assert "fine-tuning on the documents on top of RAG: no significant difference (+0.0 points)" in out
    assert "Best arms (tied): base-retrieved (RAG: base + retrieved), finetuned-none" in out
    assert "and finetuned-retrieved (both: finetuned + retrieved), EM 50.0%." in out
    assert text(arms(0.0, 0.0, 0.0, 0.0)).endswith("All arms tie at EM 0.0%.")


CI = {
    "base-retrieved vs finetuned-none": {"diff": -0.15, "ci_low": -0.20, "ci_high": -0.10},
    "finetuned-retrieved vs base-retrieved": {"diff": -0.015, "ci_low": -0.04, "ci_high": 0.01},
}


def test_carries_the_paired_confidence_interval():
    out = text(arms(0.05, 0.40, 0.55, 0.385), CI)
    assert "beats RAG (base + retrieved) by 15.0 EM points (95% CI 10.0 to 20.0);" in out
    # a CI spanning 0 is called what it is
    assert "fine-tuning on the documents on top of RAG: no significant difference (-1.5 points (95% CI -4.0 to 1.0))" in out
    # the verdict finds a difference stored either way round
    flipped = {"finetuned-none vs base-retrieved": {"diff": 0.15, "ci_low": 0.10, "ci_high": 0.20}}
    assert "by 15.0 EM points (95% CI 10.0 to 20.0)" in text(arms(0.05, 0.40, 0.55, 0.385), flipped)


def test_says_the_configured_confidence_level():
    out = verdict(arms(0.05, 0.40, 0.55, 0.385), CI, confidence=0.9)
    assert "(90% CI 10.0 to 20.0)" in out["text"] and "95%" not in out["text"]
    assert out["confidence"] == 0.9 and out["metric"] == "exact_match"


def test_with_only_some_arms():
    only = {"base-none": {"exact_match": 0.2}, "base-retrieved": {"exact_match": 0.7}}
    out = verdict(only)
    assert out["text"] == "Best arm: base-retrieved (RAG: base + retrieved), EM 70.0%."
    assert out["best_arms"] == ["base-retrieved"] and out["best_score"] == 0.7


def test_the_words_name_the_fine_tuning_method_each_model_was_trained_with():
    from ragft.arms import label

    out = text(arms(0.05, 0.62, 0.30, 0.66), methods={"finetuned": "full"})
    assert out.startswith("On this corpus, RAG (base + retrieved) beats full fine-tuning (finetuned, closed-book)")
    assert "LoRA" not in out
    assert label("finetuned-none") == "LoRA fine-tuning: finetuned, closed-book"
    assert label("finetuned-none", {"finetuned": "full"}) == "full fine-tuning: finetuned, closed-book"
    assert label("finetuned-oracle", {"finetuned": "full"}) == "full fine-tuning on the documents, gold document (oracle)"
    assert label("raft-none", {"finetuned": "full"}) == "RAFT (LoRA, reading among distractors), closed-book"
    assert label("raft-none", {"raft": "full"}) == "RAFT (full fine-tuning, reading among distractors), closed-book"


def test_a_fine_tuned_models_method_is_read_from_what_its_folder_holds(tmp_path):
    from ragft.model.loading import finetune_method

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "config.json").write_text("{}")
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "adapter_config.json").write_text("{}")
    assert finetune_method(tmp_path / "full") == "full" and finetune_method(tmp_path / "lora") == "lora"


def test_the_best_arm_is_deployable_and_an_oracle_arm_is_a_ceiling():
    """raft-oracle scores highest, but it is handed the gold document: the best arm is raft-retrieved, and the
    oracle arm is named as the ceiling (the default experiment's case, where they tied at 88.3)."""
    scored = {**arms(0.0, 0.733, 0.0, 0.583), "raft-retrieved": {"exact_match": 0.883},
              "raft-oracle": {"exact_match": 0.95}, "base-oracle_distractors": {"exact_match": 0.99}}
    out = verdict(scored, design={"unit": "document", "clusters": 12, "questions": 60})
    assert out["best_arms"] == ["raft-retrieved"] and out["best_score"] == 0.883
    assert out["ceilings"] == {"raft-oracle": 0.95, "base-oracle_distractors": 0.99}
    assert ("Best arm: raft-retrieved (RAFT (LoRA, reading among distractors), retrieved chunks), EM 88.3%. "
            "Ceiling with the gold document in the prompt (not deployable): base-oracle_distractors, EM 99.0%. "
            "Intervals are over the 12 eval documents (60 questions).") in out["text"]
    only_oracles = verdict({"base-oracle": {"exact_match": 0.5}})
    assert only_oracles["best_arms"] == [] and "No deployable arm" in only_oracles["text"]


def test_candidates_on_two_bases_are_each_measured_against_their_own_base():
    from ragft.arms import Candidate, Design
    from ragft.evaluation.factorial import factorial_pairs
    from ragft.evaluation.verdict import comparisons

    design = Design((Candidate("base"), Candidate("raft", recipe="raft"), Candidate("qwen", base="qwen"),
                     Candidate("qwen_raft", base="qwen", recipe="raft"), Candidate("mine", adapter="adapters/mine")))
    names = [f"{m}-{c}" for m in design.names for c in ("none", "retrieved")]
    # "RAG or fine-tuning?" is asked of the adapter (a team's own fine-tune), not of RAFT (a reading recipe); "on
    # top of RAG" of every tuned candidate, each against its own base's RAG arm
    assert comparisons(names, design) == [("base-retrieved", "mine-none"), ("raft-retrieved", "base-retrieved"),
                                          ("qwen_raft-retrieved", "qwen-retrieved"),
                                          ("mine-retrieved", "base-retrieved")]
    pairs = factorial_pairs(names, design)
    assert ("qwen-retrieved", "qwen_raft-none") in pairs and ("base-retrieved", "qwen_raft-none") not in pairs
    assert ("qwen-none", "base-none") in pairs   # across bases on the same questions: what the model does
    score = {"base-none": 0.0, "base-retrieved": 0.7, "raft-none": 0.0, "raft-retrieved": 0.8, "qwen-none": 0.05,
             "qwen-retrieved": 0.9, "qwen_raft-none": 0.05, "qwen_raft-retrieved": 0.85, "mine-none": 0.1,
             "mine-retrieved": 0.6}
    out = verdict({a: {"exact_match": v} for a, v in score.items()}, candidates=design)
    assert out["text"].startswith(
        "On this corpus, RAG (base + retrieved) beats the adapter (mine, closed-book) by 60.0 EM points; "
        "RAFT fine-tuning added 10.0 points on top of RAG; RAFT fine-tuning (qwen_raft) on top of RAG lost 5.0 points; "
        "the adapter mine on top of RAG lost 10.0 points.")
    assert out["best_arms"] == ["qwen-retrieved"]
    assert design.label("qwen-retrieved") == "qwen (qwen, untuned), retrieved chunks"
    assert design.label("base-retrieved") == "RAG: base + retrieved"   # today's cells keep their words
    assert design.reference("qwen_raft") == "qwen" and design.reference("mine") == "base"
