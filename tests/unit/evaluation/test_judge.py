"""ragft.evaluation.judge against a real HTTP server speaking the OpenAI API on 127.0.0.1 (no mocked client):
ragas' own requests go over the wire and its parsers read the replies."""

from __future__ import annotations

import json
import logging
import math

import pytest
from omegaconf import OmegaConf

from ragft.config import ConfigError
from ragft.evaluation import judge
from tests.helpers import CANNED, GARBAGE, KEY, FakeJudge, judge_cfg

CTX = ["Ada Lovelace was born in Paris in 1815."]
SAMPLES = {
    "base-retrieved": [
        {"question": "Where was Ada born?", "answer": "Paris", "contexts": CTX, "reference": "Paris"},
        {"question": "Where was Ada born?", "answer": f"{GARBAGE} Paris", "contexts": CTX, "reference": "Paris"},
        {"question": "When was Ada born?", "answer": "1815", "contexts": CTX, "reference": "1815"},
    ],
    "base-none": [
        {"question": "Where was Ada born?", "answer": "London", "contexts": [], "reference": "Paris"},
        {"question": "When was Ada born?", "answer": "1815", "contexts": [], "reference": "1815"},
    ],
}


def test_judge_arms_scores_counts_nan_and_keeps_the_key_out(judge_server, monkeypatch, caplog):
    monkeypatch.setenv("RAGFT_TEST_JUDGE_KEY", KEY)
    url = f"http://127.0.0.1:{judge_server.server_port}/v1"
    with caplog.at_level(logging.DEBUG):
        result = judge.judge_arms(judge_cfg(url), SAMPLES)

    rag, closed = result["arms"]["base-retrieved"], result["arms"]["base-none"]
    # every parseable judgement is a score in [0, 1]; the canned NLI says 1 of 2 statements is supported
    assert rag["judge_faithfulness"] == pytest.approx(0.5)
    assert rag["judge_context_precision"] == pytest.approx(1.0)
    assert 0.0 < rag["judge_answer_relevancy"] <= 1.0
    for arm in result["per_question"].values():
        for scores in arm.values():
            assert all(s is None or math.isnan(s) or 0.0 <= s <= 1.0 + 1e-9 for s in scores)
    # the garbage reply for the second question is a NaN, counted, and left out of the mean (not a 0)
    for metric in ("faithfulness", "answer_relevancy", "factual_correctness"):
        assert rag[f"judge_{metric}_n"] == 3
        assert rag[f"judge_{metric}_nan"] == 1, metric
        assert math.isnan(result["per_question"]["base-retrieved"][metric][1])
    assert result["failures"]["base-retrieved"]["faithfulness"]
    # context precision judges the reference against the context, not the garbage answer
    assert rag["judge_context_precision_nan"] == 0
    # closed-book: nothing to be faithful to, no context to rank; answer metrics still judged
    assert "judge_faithfulness" not in closed and "judge_context_precision" not in closed
    assert closed["judge_answer_relevancy_n"] == 2 and closed["judge_answer_relevancy_nan"] == 0
    assert result["per_question"]["base-none"]["faithfulness"] == [None, None]

    # the key reached the server on every request, and nowhere else
    assert FakeJudge.requests and all(r["auth"] == f"Bearer {KEY}" for r in FakeJudge.requests)
    assert any(r["path"].endswith("/embeddings") for r in FakeJudge.requests)
    assert KEY not in json.dumps(result, default=str)
    assert KEY not in caplog.text
    s = result["settings"]
    assert s["base_url"] == url and s["model"] == "judge-1" and s["prompt_version"] == "ragas-0.4"
    assert s["temperature"] == 0.0 and s["ragas_version"].startswith("0.")
    assert len(s["prompts_sha256"]) == 64
    assert "api_key_env" not in s
    # the configured decoding reached the server
    chat = [r["body"] for r in FakeJudge.requests if r["path"].endswith("/chat/completions")]
    assert {b["model"] for b in chat} == {"judge-1"} and {b["temperature"] for b in chat} == {0.0}
    assert {b["max_tokens"] for b in chat} == {256}


def test_max_questions_and_subset_of_metrics(judge_server, monkeypatch):
    monkeypatch.setenv("RAGFT_TEST_JUDGE_KEY", KEY)
    url = f"http://127.0.0.1:{judge_server.server_port}/v1"
    # as the evaluate stage passes it: cfg.eval.judge, an OmegaConf node
    cfg = OmegaConf.create(judge_cfg(url, metrics=["factual_correctness"], max_questions=1))
    result = judge.judge_arms(cfg, SAMPLES)
    for arm in ("base-retrieved", "base-none"):
        row = result["arms"][arm]
        assert set(row) == {"judge_factual_correctness", "judge_factual_correctness_n", "judge_factual_correctness_nan"}
        assert row["judge_factual_correctness_n"] == 1 and row["judge_factual_correctness_nan"] == 0
        # canned NLI: 1 of the 2 claims supported each way, so precision = recall = F1 = 0.5
        assert row["judge_factual_correctness"] == pytest.approx(0.5)
    asked = {
        t
        for r in FakeJudge.requests
        if "body" in r
        for t in CANNED
        if f'"title": "{t}"' in r["body"]["messages"][0]["content"]
    }
    assert asked == {"ClaimDecompositionOutput", "NLIStatementOutput"}
    assert not any(r["path"].endswith("/embeddings") for r in FakeJudge.requests)


def test_refused_key_and_unreachable_server_fail_before_judging(judge_server, monkeypatch):
    monkeypatch.setenv("RAGFT_TEST_JUDGE_KEY", "sk-wrong-key-000000")
    url = f"http://127.0.0.1:{judge_server.server_port}/v1"
    with pytest.raises(judge.JudgeError, match="RAGFT_TEST_JUDGE_KEY"):
        judge.judge_arms(judge_cfg(url), SAMPLES)
    assert not any(r["path"].endswith("/chat/completions") for r in FakeJudge.requests)

    port = judge_server.server_port
    judge_server.shutdown()
    judge_server.server_close()
    with pytest.raises(judge.JudgeError, match="unreachable"):
        judge.judge_arms(judge_cfg(f"http://127.0.0.1:{port}/v1", timeout=2.0), SAMPLES)


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="eval.judge.metrics"):
        judge.check_config(judge_cfg("http://127.0.0.1:1/v1", metrics=["faithfulness", "vibes"]))
    with pytest.raises(ConfigError, match="eval.judge.base_url"):
        judge.check_config(judge_cfg(None))


def test_settings_strip_credentials_from_the_url():
    s = judge.settings(judge_cfg("https://user:sk-secret-123456789@judge.example:8443/v1?api_key=sk-other-1234567890"))
    assert s["base_url"] == "https://judge.example:8443/v1"
    assert "sk-" not in json.dumps(s)


@pytest.mark.slow
def test_default_embeddings_are_the_packaged_minilm_offline(judge_server, monkeypatch):
    """Answer relevancy with no embedding_model: ragas' HuggingFaceEmbeddings over the packaged model."""
    monkeypatch.setenv("RAGFT_TEST_JUDGE_KEY", KEY)
    url = f"http://127.0.0.1:{judge_server.server_port}/v1"
    samples = {"base-retrieved": SAMPLES["base-retrieved"][:1]}
    result = judge.judge_arms(judge_cfg(url, metrics=["answer_relevancy"], embedding_model=None), samples)
    # the canned judge regenerates the very question asked: MiniLM's cosine of a text with itself is 1
    assert result["arms"]["base-retrieved"]["judge_answer_relevancy"] == pytest.approx(1.0, abs=1e-5)
    assert result["settings"]["embeddings"] == judge.DEFAULT_EMBEDDINGS
    assert not any(r["path"].endswith("/embeddings") for r in FakeJudge.requests)


def test_build_samples_from_the_evaluate_stage_data():
    qa = [
        {"qid": "q1", "question": "Where?", "answer": ["Paris", "paris"]},
        {"qid": "q2", "question": "When?", "answer": "1815"},
    ]
    preds = {
        "base-retrieved": {
            "q1": {"answer": "Paris", "chunk_ids": ["c1", "c2"]},
            "q2": {"answer": "", "chunk_ids": ["c2"]},
        },
        "base-none": {"q2": {"answer": "1900", "chunk_ids": []}, "q1": {"answer": "Rome"}},
    }
    samples = judge.build_samples(qa, preds, {"c1": "Ada was born in Paris.", "c2": "Ada was born in 1815."})
    assert samples["base-retrieved"] == [
        {
            "question": "Where?",
            "answer": "Paris",
            "contexts": ["Ada was born in Paris.", "Ada was born in 1815."],
            "reference": "Paris",
        },
        {"question": "When?", "answer": "", "contexts": ["Ada was born in 1815."], "reference": "1815"},
    ]
    assert [s["answer"] for s in samples["base-none"]] == ["Rome", "1900"]  # eval order, not the predictions' order
    assert all(s["contexts"] == [] for s in samples["base-none"])


def test_judge_arms_keeps_only_the_chosen_arms(judge_server, monkeypatch):
    monkeypatch.setenv("RAGFT_TEST_JUDGE_KEY", KEY)
    url = f"http://127.0.0.1:{judge_server.server_port}/v1"
    cfg = OmegaConf.create({**judge_cfg(url, metrics=["factual_correctness"], max_questions=1),
                            "arms": ["base-none"]})
    result = judge.judge_arms(cfg, SAMPLES)
    assert set(result["arms"]) == {"base-none"} and result["settings"]["arms"] == ["base-none"]
    with pytest.raises(ConfigError, match="eval.judge.arms"):
        judge.check_config({**judge_cfg(url), "arms": []})


def test_agreement_with_match_is_kappa_over_the_defined_judgements():
    from ragft.evaluation.stats import Resampling

    per_question = {"a": {"answer_accuracy": [1.0, 0.0, math.nan, 0.75, None]},
                    "b": {"answer_accuracy": [0.0, 0.25, 1.0, 1.0, 0.0]}}
    correct = {"a": [True, False, True, False, True], "b": [False, False, True, True, True]}
    out = judge.agreement(per_question, correct, Resampling(resamples=200), ["q1", "q2", "q3", "q4", "q5"])
    a = out["answer_accuracy"]
    # pairs (judge >= 0.5, match): a: (T,T) (F,F) (T,F); b: (F,F) (F,F) (T,T) (T,T) (F,T)
    assert a["n"] == 8 and a["judge_right"] == 4 and a["match_right"] == 4 and a["both"] == 6
    assert a["kappa"] == pytest.approx(0.5) and "factual_correctness" not in out
    assert a["clusters"] == 5  # a question's judgements in both arms are resampled together
