"""Evaluation: SQuAD EM/F1, ragas' non-LLM metrics (offline), NaN handling, and the evaluate stage's
body end to end on a small fixture pipeline (no Hydra, no DVC)."""

from __future__ import annotations

import csv
import json
import math
import socket
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ragft import paths
from ragft.arms import Arm, dag
from ragft.data.rows import read_questions
from ragft.evaluation import answers, factorial, ragas_metrics, scoring
from ragft.evaluation.stats import Resampling
from ragft.io import DataError, write_json, write_jsonl
from ragft.text import normalize_answer
from tests.helpers import run_evaluate

ARMS = [Arm("base", "none"), Arm("base", "retrieved"), Arm("finetuned", "none"), Arm("finetuned", "retrieved")]

QA = [
    {"qid": "q1", "question": "Where was Ada born?", "answer": "Paris", "doc_ids": ["d1"], "attribute": "birth_city"},
    {"qid": "q2", "question": "Where does Bo work?", "answer": "Acme Corp", "doc_ids": ["d2"], "attribute": "employer"},
    {"qid": "q3", "question": "What did Cy study?", "answer": "physics", "doc_ids": ["d3"], "attribute": "major"},
]
CHUNKS = [
    {"chunk_id": "d1-0", "doc_id": "d1", "text": "Ada Lovelace was born in Paris in 1990.", "start": 0, "end": 39},
    {"chunk_id": "d2-0", "doc_id": "d2", "text": "Bo Chen works for Acme Corp as an engineer.", "start": 0, "end": 43},
    {"chunk_id": "d3-0", "doc_id": "d3", "text": "Cy Diaz studied physics at Rome University.", "start": 0, "end": 43},
]
# answers per arm, in QA order: the retrieved arms do better, fine-tuning adds one more on top of RAG
ANSWERS = {
    "base-none": ["London", "Globex", "history"],
    "base-retrieved": ["Paris", "Acme", "history"],
    "finetuned-none": ["Paris", "Globex", "history"],
    "finetuned-retrieved": ["Paris", "Acme Corp", "physics"],
}
RETRIEVED = {"q1": ["d1-0", "d2-0"], "q2": ["d2-0"], "q3": ["d1-0"]}


def write_fixture(root: Path, manifest: dict | None = None) -> None:
    """The inputs of the evaluate stage, as upstream stages write them, under ``root``."""
    write_jsonl(root / paths.QA_EVAL, QA)
    write_jsonl(root / paths.QA_DEV, [])
    write_jsonl(root / paths.CHUNKS_FILE, CHUNKS)
    by_id = {c["chunk_id"]: c for c in CHUNKS}
    write_jsonl(root / paths.context_file("retrieved"), [
        {"qid": q["qid"], "question": q["question"], "chunks": [{**by_id[c], "score": 0.5} for c in RETRIEVED[q["qid"]]]}
        for q in QA])
    for a in ARMS:
        arm, model, context = a.name, a.model, a.context
        out = root / paths.predictions_dir(model, context)
        write_jsonl(
            out / paths.PREDICTIONS_FILE,
            [
                {
                    "qid": q["qid"],
                    "answer": a,
                    "chunk_ids": RETRIEVED[q["qid"]] if context == "retrieved" else [],
                    "scores": [],
                    "prompt_tokens": 30 if context == "retrieved" else 8,
                    "output_tokens": 2 * len(a.split()),
                }
                for q, a in zip(QA, ANSWERS[arm])
            ],
        )
        base = manifest or {"name": "scratch-gpt2", "source": "scratch", "testbed": True}
        write_json(out / paths.ARM_INFO, {"arm": arm, "model": model, "context": context, "base_model": base})
        write_json(out / paths.TIMINGS, {"mean_latency_seconds": 0.01, "questions_per_second": 100.0})
    write_json(root / paths.RETRIEVAL_METRICS, {"recall@1": 0.67, "recall@10": 1.0, "mrr": 0.8, "ndcg@10": 0.85})
    write_json(root / paths.INDEX_METRICS, {"index_bytes": 4608, "build_seconds": 0.01})
    write_json(root / paths.model_dir("finetuned") / paths.TRAIN_METRICS,
               {"train_seconds": 12.5, "eval_overlap_exact": 0, "eval_overlap_near": 0})


# --------------------------------------------------------------------------- SQuAD


def test_squad_normalisation_and_scores():
    assert normalize_answer("The  Eiffel-Tower,\n in PARIS!") == "eiffeltower in paris"
    assert normalize_answer("an apple a day") == "apple day"
    assert answers.exact_match_score("the Denver Broncos", "Denver Broncos.") == 1.0
    assert answers.exact_match_score("Denver", "Denver Broncos") == 0.0
    assert answers.f1_score("the cat sat", "cat sat down") == pytest.approx(0.8)  # P 2/2, R 2/3
    assert answers.f1_score("x y z", "y z w") == pytest.approx(2 / 3)
    assert answers.f1_score("a b c", "b c d") == pytest.approx(0.8)  # "a" is an article: dropped
    assert answers.f1_score("", "Paris") == 0.0 and answers.f1_score("London", "Paris") == 0.0
    assert answers.max_over_ground_truths(answers.exact_match_score, "NYC", ["New York", "nyc"]) == 1.0


# --------------------------------------------------------------------------- ragas


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_ragas_non_llm_metrics_on_a_toy(no_network):
    samples = [
        {
            "response": "Paris",
            "reference": "Paris",
            "retrieved_contexts": [CHUNKS[0]["text"]],
            "reference_contexts": [CHUNKS[0]["text"]],
        },
        {
            "response": "Acme",
            "reference": "Acme Corp",
            "retrieved_contexts": [CHUNKS[0]["text"], CHUNKS[1]["text"]],
            "reference_contexts": [CHUNKS[1]["text"]],
        },
        {
            "response": "zzzz",
            "reference": "physics",
            "retrieved_contexts": [CHUNKS[0]["text"]],
            "reference_contexts": [CHUNKS[2]["text"]],
        },
    ]
    scores = ragas_metrics.ragas_scores(samples, ragas_metrics.ANSWER_METRICS + ragas_metrics.CONTEXT_METRICS)
    assert sorted(scores) == sorted(ragas_metrics.ANSWER_METRICS + ragas_metrics.CONTEXT_METRICS)
    # by hand: "Acme" vs "Acme Corp" is 5 deletions of 9 characters and ROUGE-L P = 1, R = 1/2, F = 2/3;
    # "zzzz" vs "physics" shares no character in place and no word
    assert scores["string_similarity"] == pytest.approx([1.0, 1 - 5 / 9, 0.0])
    assert scores["rouge"] == pytest.approx([1.0, 2 / 3, 0.0])
    assert scores["context_precision"][0] == pytest.approx(1.0) and scores["context_recall"][0] == 1.0
    assert scores["context_precision"][1] == pytest.approx(0.5)  # the gold chunk is ranked 2nd
    assert scores["context_recall"][1] == 1.0
    assert scores["context_precision"][2] == 0.0 and scores["context_recall"][2] == 0.0


def test_undefined_context_scores_stay_nan(no_network):
    preds = {q["qid"]: {"qid": q["qid"], "answer": q["answer"], "chunk_ids": RETRIEVED[q["qid"]]} for q in QA}
    texts, _ = scoring.chunk_texts(CHUNKS)
    gold = {"q1": [CHUNKS[0]["text"]], "q2": [], "q3": []}  # q2, q3: no gold chunks → undefined
    arm = scoring.score_arm("x-retrieved", QA, preds, texts, gold)
    assert arm.metrics["exact_match"] == 1.0 and arm.metrics["f1"] == 1.0
    assert math.isnan(arm.per_question[1]["context_recall"]) and math.isnan(arm.per_question[2]["context_precision"])
    assert arm.metrics["context_recall"] == 1.0  # the mean over defined scores, not dragged to 0 by NaN
    without_ragas = scoring.score_arm("x-retrieved", QA, preds, texts, gold, use_ragas=False)
    assert set(without_ragas.metrics) == {"n", "match", "exact_match", "f1", "mean_answer_words", "mean_prompt_tokens"}
    none_defined = scoring.score_arm("y-retrieved", QA, preds, texts, {})
    assert math.isnan(none_defined.metrics["context_precision"])
    assert factorial.metrics_table({"y-retrieved": none_defined})["y-retrieved"]["context_precision"] is None


# --------------------------------------------------------------------------- inputs


def test_missing_or_partial_predictions_fail_with_the_command_to_run(tmp_path):
    write_fixture(tmp_path)
    with pytest.raises(DataError, match=r"dvc repro infer@base`"):
        scoring.read_predictions(tmp_path / paths.predictions_dir("base", "none"), ["q1", "q2", "q3", "q4"])
    with pytest.raises(DataError, match=r"infer@nope`"):
        scoring.read_predictions(tmp_path / paths.predictions_dir("nope", "none"), ["q1"])
    write_jsonl(tmp_path / "qa.jsonl", [{"qid": "q1", "question": "x"}])
    with pytest.raises(DataError, match=r"qa.jsonl:1: field 'answer' is missing or not a string or a non-empty list"):
        read_questions(tmp_path / "qa.jsonl", ("question", "answer"))


def test_evaluate_arms_on_fixture(tmp_path, no_network):
    write_fixture(tmp_path)
    scores, _ = scoring.evaluate_arms(ARMS, QA, CHUNKS, tmp_path / paths.PREDICTIONS)
    metrics = factorial.metrics_table(scores)
    assert list(metrics) == ["base-none", "base-retrieved", "finetuned-none", "finetuned-retrieved"]
    assert metrics["base-none"]["exact_match"] == 0.0
    assert metrics["base-retrieved"]["exact_match"] == pytest.approx(1 / 3, abs=1e-6)
    assert metrics["base-retrieved"]["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3, abs=1e-6)
    assert metrics["finetuned-retrieved"]["exact_match"] == 1.0 and metrics["finetuned-retrieved"]["rouge"] == 1.0
    assert "context_recall" not in metrics["base-none"]  # not applicable without a context
    assert metrics["base-retrieved"]["context_recall"] == pytest.approx(2 / 3, abs=1e-6)  # q3 retrieved the wrong doc
    assert metrics["base-retrieved"]["mean_prompt_tokens"] == 30.0 and metrics["base-none"]["n"] == 3
    comparisons = factorial.compare_arms(scores)
    assert set(comparisons) == {  # the factorial neighbours (shared model or context) + RAG vs fine-tuning
        "base-retrieved vs base-none",
        "finetuned-none vs base-none",
        "finetuned-retrieved vs base-retrieved",
        "finetuned-retrieved vs finetuned-none",
        "base-retrieved vs finetuned-none",
    }
    both = comparisons["finetuned-retrieved vs base-retrieved"]
    assert both["diff"] == pytest.approx(2 / 3) and (both["only_a"], both["only_b"]) == (2, 0)
    assert both["ci_low"] <= both["diff"] <= both["ci_high"] and both["p_value"] == pytest.approx(0.5)
    # 3 questions, each its own cluster: the t interval (2 df) of differences (1, 1, 0) is 2/3 ± 4.303 × 0.333,
    # clipped to the values' range [0, 1]: it includes 0, so no significance from 3 questions
    assert (both["ci_low"], both["ci_high"]) == (0.0, 1.0) and both["significant"] is False
    # effects are per-question contrasts; the interaction is the difference in differences
    eff = factorial.effects(scores)["finetuned"]
    em = {a: s.metrics["exact_match"] for a, s in scores.items()}
    assert eff["finetuning_gain_closed_book"]["estimate"] == pytest.approx(em["finetuned-none"] - em["base-none"])
    assert eff["interaction"]["estimate"] == pytest.approx(
        (em["finetuned-retrieved"] - em["base-retrieved"]) - (em["finetuned-none"] - em["base-none"])
    )
    assert "retrieval_gap" not in eff  # no oracle arm in this fixture
    doc = factorial.metrics_document(scores, Resampling(resamples=200, level=0.9, seed=1))
    assert set(doc) == {"arms", "differences", "effects", "inference", "primary_metric"}  # + the stage's verdict
    lo, hi = doc["arms"]["base-retrieved"]["exact_match_ci"]
    assert lo <= doc["arms"]["base-retrieved"]["exact_match"] <= hi
    table = scoring.per_question_table(QA, scores)
    assert list(table.columns[:4]) == ["qid", "attribute", "question", "gold_answer"]
    assert table["finetuned-retrieved.answer"].tolist() == ["Paris", "Acme Corp", "physics"]


# --------------------------------------------------------------------------- the stage body


def test_evaluate_stage_writes_outputs_and_mlflow_summary(tmp_path, monkeypatch, default_cfg, no_network):
    from mlflow.tracking import MlflowClient

    from ragft import tracking

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    write_fixture(tmp_path)
    cfg = OmegaConf.merge(default_cfg, {"eval": {"examples": 2}})
    cfg.arms.models, cfg.arms.contexts = ["base", "finetuned"], ["none", "retrieved"]
    cfg.dag = dag(cfg.arms.models, OmegaConf.to_container(cfg.candidates), {})
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    with tracking.stage_run("evaluate", plain) as run:
        doc = run_evaluate(tmp_path, cfg, run)

    assert doc["arms"]["finetuned-retrieved"]["exact_match"] == 1.0
    assert doc["contamination"]["finetune_vs_eval"] == {"finetuned": {"exact": 0, "near_duplicates": 0}}
    assert doc["effects"]["finetuned"]["interaction"]["contrast"].startswith("(finetuned-retrieved")
    first = Path(paths.EVAL_METRICS).read_bytes()
    with open(paths.PER_QUESTION, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["qid"] for r in rows] == ["q1", "q2", "q3"] and rows[1]["base-retrieved.answer"] == "Acme"
    assert Path(paths.METRIC_BY_ARM_PLOT).read_text().splitlines()[0] == "arm,match,exact_match,f1"
    report = Path(paths.COMPARISON_REPORT).read_text()
    assert "**Verdict:** On this corpus, RAG (base + retrieved) and LoRA fine-tuning" in report
    assert "testbed, not a real LLM" in report
    assert "<!DOCTYPE html>" in Path(paths.HTML_REPORT).read_text()[:200]
    assert json.loads((Path(paths.REPORTS) / paths.RUN_RECORD).read_text())["run_id"] == run.run_id

    client = MlflowClient(tracking.tracking_uri())
    child, parent = client.get_run(run.run_id), client.get_run(run.parent_id)
    assert child.data.metrics["arms.base-retrieved.exact_match"] == pytest.approx(1 / 3, abs=1e-6)
    assert parent.data.metrics["finetuned-retrieved.exact_match"] == 1.0
    assert parent.data.params["retrieval.top_k"] == str(cfg.retrieval.top_k)
    artifacts = {a.path for a in client.list_artifacts(run.run_id)}
    assert {"per_question.json", "comparison.md"} <= artifacts

    run_evaluate(tmp_path, cfg)
    assert Path(paths.EVAL_METRICS).read_bytes() == first, "metrics.json must be deterministic"


def test_evaluate_stage_with_the_judge_logs_scores_and_settings_not_the_key(tmp_path, monkeypatch, default_cfg, judge_server):
    """eval.judge.enabled: the stage judges every arm through the (real, local) OpenAI-compatible server."""
    from ragft import tracking
    from tests.helpers import KEY as key
    from tests.helpers import judge_cfg

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.setenv("RAGFT_TEST_JUDGE_KEY", key)
    write_fixture(tmp_path)
    cfg = OmegaConf.merge(default_cfg, {"eval": {"judge": judge_cfg(f"http://127.0.0.1:{judge_server.server_port}/v1")}})
    cfg.arms.models, cfg.arms.contexts = ["base", "finetuned"], ["none", "retrieved"]
    cfg.dag = dag(cfg.arms.models, OmegaConf.to_container(cfg.candidates), {})
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    with tracking.stage_run("evaluate", plain) as run:
        doc = run_evaluate(tmp_path, cfg, run)
    assert doc["judge"]["settings"]["model"] == "judge-1"
    scored = doc["arms"]["base-retrieved"]
    assert any(k.startswith("judge_") for k in scored)
    # the stand-in's canned judgements: 1 of 2 statements supported (faithfulness 0.5), 1 of 2 claims each way
    # (factual correctness 0.5), the context gives the answer (precision 1.0), the generated question is the
    # asked one, embedded by the stand-in's own /embeddings (relevancy ~1)
    assert {k: scored[k] for k in ("judge_faithfulness", "judge_factual_correctness", "judge_context_precision")} == {
        "judge_faithfulness": 0.5, "judge_factual_correctness": 0.5, "judge_context_precision": 1.0}
    assert scored["judge_answer_relevancy"] == pytest.approx(1.0, abs=0.01)
    assert all(scored[f"judge_{m}_n"] == 3 and scored[f"judge_{m}_nan"] == 0 for m in
               ("faithfulness", "answer_relevancy", "context_precision", "factual_correctness"))
    everything = Path(paths.EVAL_METRICS).read_text() + Path(paths.HTML_REPORT).read_text()
    assert key not in everything


# --------------------------------------------------------------------------- free-form answers: match, the primary metric


@pytest.mark.parametrize(("prediction", "gold", "expected"), [
    ("Lars Young is employed by Summit Textiles.", "Summit Textiles", 1.0),   # a sentence holding the answer
    ("summit  textiles", "Summit Textiles", 1.0),                           # normalised
    ("The answer is Summit.", "Summit Textiles", 0.0),                      # part of the answer is not the answer
    ("He was born in 19501.", "1950", 0.0),                                 # whole words only
    ("Born on December 21, 1950 in Oslo", "December 21, 1950", 1.0),
    ("anything", "", 0.0),                                                  # an empty gold never matches
    ("the", "The", 0.0),                                                    # normalises to nothing
])
def test_match_is_containment_of_the_normalised_gold_as_whole_words(prediction, gold, expected):
    assert answers.match_score(prediction, gold) == expected


def test_match_takes_the_best_gold_and_every_arm_reports_answer_length(no_network):
    assert answers.max_over_ground_truths(answers.match_score, "It is NYC, of course", ["New York", "nyc"]) == 1.0
    preds = {q["qid"]: {"qid": q["qid"], "answer": f"I think the answer is {q['answer']}."} for q in QA}
    arm = scoring.score_arm("x-none", QA, preds, {}, None, use_ragas=False)
    assert arm.metrics["match"] == 1.0 and arm.metrics["exact_match"] == 0.0
    assert arm.metrics["mean_answer_words"] == pytest.approx((6 + 7 + 6) / 3)


def _scores(columns: dict[str, dict[str, list[float]]]) -> dict:
    return {arm: scoring.ArmScores(arm, {}, [{"qid": f"q{i}", **dict(zip(cols, values))}
                                             for i, values in enumerate(zip(*cols.values()))])
            for arm, cols in columns.items()}


def test_the_primary_metric_decides_differences_effects_and_the_test():
    # match says the retrieved arm wins 3 of 4; EM says nothing differs (both arms answer in sentences)
    scores = _scores({
        "base-none": {"match": [0, 0, 0, 1], "exact_match": [0, 0, 0, 0], "f1": [0.1, 0.1, 0.1, 0.5]},
        "base-retrieved": {"match": [1, 1, 1, 1], "exact_match": [0, 0, 0, 0], "f1": [0.5, 0.5, 0.5, 0.5]},
    })
    boot = Resampling(resamples=200)
    by_match = factorial.compare_arms(scores, boot, metric="match")["base-retrieved vs base-none"]
    assert by_match["metric"] == "match" and by_match["diff"] == 0.75 and (by_match["only_a"], by_match["only_b"]) == (3, 0)
    by_em = factorial.compare_arms(scores, boot, metric="exact_match")["base-retrieved vs base-none"]
    assert by_em["diff"] == 0.0 and by_em["p_value"] == 1.0
    by_f1 = factorial.compare_arms(scores, boot, metric="f1")["base-retrieved vs base-none"]
    # F1 is not right-or-wrong: no discordant pairs to count, but the sign-flip test applies to any metric
    assert by_f1["diff"] == pytest.approx(0.3) and by_f1["only_a"] is None
    assert by_f1["p_value"] == pytest.approx(0.25)  # 3 of 4 questions differ, all in one direction: 2 / 2**3
    assert factorial.effects(scores, boot, metric="match")["base"]["retrieval_gain"]["estimate"] == 0.75
    doc = factorial.metrics_document(scores, boot, metric="match")
    assert doc["primary_metric"] == "match" and doc["differences"]["base-retrieved vs base-none"]["diff"] == 0.75


def test_the_evaluate_stage_speaks_of_its_primary_metric(tmp_path, default_cfg, no_network):
    write_fixture(tmp_path)
    cfg = OmegaConf.merge(default_cfg, {"eval": {"ragas": False, "primary_metric": "f1"}})
    cfg.arms.models, cfg.arms.contexts = ["base", "finetuned"], ["none", "retrieved"]
    cfg.dag = dag(cfg.arms.models, OmegaConf.to_container(cfg.candidates), {})
    doc = run_evaluate(tmp_path, cfg)
    assert doc["primary_metric"] == "f1" and doc["verdict"]["metric"] == "f1"
    assert " F1 points" in doc["verdict"]["text"] and "EM points" not in doc["verdict"]["text"]
    assert all(d["metric"] == "f1" for d in doc["differences"].values())
    md = (tmp_path / paths.COMPARISON_REPORT).read_text()
    assert "The primary metric is **token F1**" in md and "| F1 points |" in md


def test_clustering_by_document_refuses_questions_without_one_before_scoring(tmp_path, default_cfg, no_network,
                                                                            monkeypatch):
    """eval.cluster=document needs every question's source document: a QA row without one fails the stage before
    any scoring, naming the file, the field and the fix; eval.cluster=question scores the same rows."""
    write_fixture(tmp_path)
    write_jsonl(tmp_path / paths.QA_EVAL, [QA[0], {**QA[1], "doc_ids": []}, QA[2]])
    cfg = OmegaConf.merge(default_cfg, {"eval": {"ragas": False}})
    cfg.arms.models, cfg.arms.contexts = ["base", "finetuned"], ["none", "retrieved"]
    cfg.dag = dag(cfg.arms.models, OmegaConf.to_container(cfg.candidates), {})
    scored = []
    monkeypatch.setattr(scoring, "score_arm", lambda *a, **k: scored.append(a) or pytest.fail("scored"))
    with pytest.raises(DataError, match=r"data/prepared/qa_eval\.jsonl: question 'q2' names no source document "
                                        r"\(field 'doc_ids' is empty\).*Fix: .*eval\.cluster=question"):
        run_evaluate(tmp_path, cfg)
    assert scored == []
    monkeypatch.undo()
    doc = run_evaluate(tmp_path, OmegaConf.merge(cfg, {"eval": {"cluster": "question"}}))
    assert doc["inference"]["unit"] == "question" and doc["inference"]["clusters"] == 3
    assert doc["arms"]["base-retrieved"]["match_clusters"] == 3
