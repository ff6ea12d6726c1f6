"""End to end: the real `dvc repro` of the tiny experiment in a temp copy of the repo, and the rerun rules.

One module-scoped repro (~minutes) backs every test here; each rerun test resets the copy afterwards.
"""

from __future__ import annotations

import json
import sqlite3
import sys

import pytest
import yaml

from ragft import paths
from tests.helpers import VENV_BIN, PipelineRepo, cluster_t_interval, save_tiny_cross_encoder, stage_names

pytestmark = pytest.mark.slow

MODELS, CONTEXTS = ("base", "finetuned", "raft"), ("none", "retrieved", "oracle", "oracle_distractors")
ARMS = {f"{m}-{c}" for m in MODELS for c in CONTEXTS}
INFERS = {f"infer@{m}" for m in MODELS}        # one stage per model answers all its contexts
FINETUNES = {"finetune@finetuned", "finetune@raft"}
TUNED_INFERS = INFERS - {"infer@base"}


@pytest.fixture(scope="module")
def repo(tiny_repo):
    return tiny_repo  # the session's one tiny repro (tests/conftest.py), shared with test_remote and test_sweep


def declared_outputs(repo: PipelineRepo) -> list[str]:
    lock = yaml.safe_load((repo.root / "dvc.lock").read_text())
    return sorted({o["path"] for stage in lock["stages"].values() for o in stage.get("outs", [])})


def test_repro_runs_every_stage(repo):
    assert repo.ran(repo.first_output) == stage_names(repo)


def test_every_declared_output_was_written_by_its_stages_run(repo):
    """Each declared output is there, and a folder output's run record names the FINISHED MLflow run of the stage
    that declares it (what lineage relies on), not just any run."""
    lock = yaml.safe_load((repo.root / "dvc.lock").read_text())["stages"]
    producer = {o["path"]: stage for stage, st in lock.items() for o in st.get("outs", [])}
    assert {"data/prepared", "data/chunks", "data/embeddings", "data/index", "models/base", "models/finetuned",
            "models/raft", "data/contexts/oracle_distractors.jsonl"} <= set(producer)
    with sqlite3.connect(repo.root / "mlflow.db") as con:
        runs = dict(con.execute("select r.run_uuid, t.value || ':' || r.status from runs r join tags t "
                                "on t.run_uuid = r.run_uuid where t.key = 'ragft.stage'").fetchall())
    for out, stage in producer.items():
        path = repo.root / out
        assert path.exists(), out
        if path.is_dir() and out != "reports/plots":      # plots: the report's PNGs only
            record = json.loads((path / paths.RUN_RECORD).read_text())
            assert record["stage"] == stage and runs[record["run_id"]] == f"{stage}:FINISHED", out


def per_question(repo: PipelineRepo) -> tuple[dict[str, list[float]], list[str]]:
    """reports/per_question.csv's primary metric per arm, and each question's document (data/prepared)."""
    import csv

    with (repo.root / paths.PER_QUESTION).open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    docs = {json.loads(line)["qid"]: json.loads(line)["doc_ids"][0]
            for line in (repo.root / paths.QA_EVAL).read_text().splitlines()}
    scores = {arm: [float(r[f"{arm}.exact_match"]) for r in rows] for arm in ARMS}
    return scores, [docs[r["qid"]] for r in rows]


def test_the_arms_score_what_a_model_that_reads_scores(repo):
    """experiment=tiny_reads: the base model reads a biography in its prompt (pretrained on reading alone) and
    knows no fact closed-book. So every retrieved and oracle arm answers, no closed-book arm does, and
    distractors around the gold document confuse it (its reading-among-distractors probe is low)."""
    doc = json.loads((repo.root / paths.EVAL_METRICS).read_text())
    assert set(doc["arms"]) == ARMS
    em = {arm: m["exact_match"] for arm, m in doc["arms"].items()}
    for model in MODELS:
        assert em[f"{model}-retrieved"] >= 0.9 and em[f"{model}-oracle"] >= 0.9, em   # measured: 1.0 each
        assert em[f"{model}-none"] <= 0.05, em                                          # measured: 0.0 each
        assert em[f"{model}-oracle_distractors"] < em[f"{model}-oracle"] - 0.5, em    # measured: 0.05-0.075
    retrieval = json.loads((repo.root / paths.RETRIEVAL_METRICS).read_text())
    assert retrieval["recall@1"] == 1.0   # one biography per person, named in the question
    assert doc["contamination"]["finetune_vs_eval"]["raft"] == {"exact": 0, "near_duplicates": 0}
    assert {"finetuning_gain_closed_book", "interaction", "retrieval_gap", "distractor_cost"} <= set(doc["effects"]["raft"])


def test_every_interval_is_the_cluster_robust_t_interval_over_the_documents(repo):
    """8 eval documents (fewer than 30: the t interval; fewer than 10: flagged unreliable): every arm's interval
    and every paired difference's, recomputed here from the per-question scores by the textbook formula."""
    doc = json.loads((repo.root / paths.EVAL_METRICS).read_text())
    scores, docs = per_question(repo)
    assert doc["inference"] == {**doc["inference"], "unit": "document", "clusters": 8, "questions": 40,
                                "interval": "cluster-robust t", "reliable": False}
    for arm, values in scores.items():
        m = doc["arms"][arm]
        assert m["exact_match"] == pytest.approx(sum(values) / len(values), abs=1e-6)
        assert m["exact_match_ci"] == pytest.approx(list(cluster_t_interval(values, docs)), abs=1e-6), arm
        assert m["exact_match_clusters"] == 8
    for name, d in doc["differences"].items():
        diffs = [x - y for x, y in zip(scores[d["a"]], scores[d["b"]])]
        assert [d["ci_low"], d["ci_high"]] == pytest.approx(list(cluster_t_interval(diffs, docs)), abs=1e-6), name
        assert d["significant"] is (d["ci_low"] > 0 or d["ci_high"] < 0) and d["clusters"] == 8
    md = (repo.root / paths.COMPARISON_REPORT).read_text()
    assert "Only 8 clusters, fewer than 10: no interval is reliable with so few" in md


def test_the_verdict_and_the_decision_name_deployable_arms(repo):
    doc = json.loads((repo.root / paths.EVAL_METRICS).read_text())
    verdict = doc["verdict"]
    assert verdict["confidence"] == 0.95 and verdict["metric"] == "exact_match"
    headline = doc["differences"]["base-retrieved vs finetuned-none"]
    # every one of the 8 documents' 5 questions: RAG right, fine-tuning closed-book wrong. The sign-flip test
    # over documents is then exact: 2 of the 2^8 sign patterns are as extreme, p = 2/256
    assert headline["diff"] == 1.0 and headline["significant"] and headline["p_value"] == pytest.approx(2 / 256, abs=1e-6)
    assert verdict["text"].startswith("On this corpus, RAG (base + retrieved) beats LoRA fine-tuning (finetuned, "
                                      "closed-book) by 100.0 EM points")
    assert "base-retrieved" in verdict["best_arms"] and not [a for a in verdict["best_arms"] if "oracle" in a]
    assert set(verdict["ceilings"]) == {f"{m}-{c}" for m in MODELS for c in ("oracle", "oracle_distractors")}
    assert [b["arm"] for b in doc["decision"]["best"]] == verdict["best_arms"]
    assert "**Verdict:** " in (repo.root / paths.COMPARISON_REPORT).read_text()
    assert verdict["text"].split(";")[0].replace("&", "&amp;") in (repo.root / paths.HTML_REPORT).read_text()


def test_the_knowledge_blocks_measure_storage_abstention_and_groups(repo):
    """A base pretrained on reading alone never saw a biography as text nor said "unknown": nothing is stored
    or abstained on, and every arm answers the absent people anyway (known values, beside the counts)."""
    doc = json.loads((repo.root / paths.EVAL_METRICS).read_text())
    assert doc["split"]["absent"] == 10                       # 2 absent people x 5 questions
    assert set(doc["storage"]) == set(MODELS)
    assert doc["storage"]["base"]["completion"]["estimate"] == 0.0
    for entry in doc["storage"].values():
        assert entry["completion"]["n"] == entry["closed_book"]["n"] == doc["split"]["eval"]
    probes = len((repo.root / paths.STORAGE_PROBE).read_text().splitlines())
    for model in MODELS:
        assert len((repo.root / paths.storage_completions(model)).read_text().splitlines()) == probes
    assert set(doc["absent"]) == ARMS and all(a["abstained"]["n"] == 10 for a in doc["absent"].values())
    assert all(a["answered"]["estimate"] == 1.0 and a["answered"]["clusters"] == 2 for a in doc["absent"].values())
    assert set(doc["groups"]) == {"celebrity", "minority"} and set(doc["groups"]["minority"]) == ARMS
    assert doc["groups"]["minority"]["base-retrieved"]["estimate"] == 1.0
    html = (repo.root / paths.HTML_REPORT).read_text()
    md = (repo.root / paths.COMPARISON_REPORT).read_text()
    assert 'id="knowledge"' in html and "## Stored versus extractable" in md
    assert "## Questions about people absent from the corpus" in md and "by group of people" in md


def test_mlflow_holds_a_run_for_every_stage(repo):
    db = repo.root / "mlflow.db"
    assert db.exists(), "the default store is a SQLite file at the repo root"
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "select t.value, r.status from runs r join tags t on t.run_uuid = r.run_uuid where t.key = 'ragft.stage'"
        ).fetchall()
        parents = con.execute(  # the workspace's own parent (sweeps in this shared repo add their own)
            "select count(*) from tags k join tags e on k.run_uuid = e.run_uuid where k.key = 'ragft.kind' "
            "and k.value = 'experiment' and e.key = 'ragft.experiment_key' and e.value like 'workspace:%'"
        ).fetchone()[0]
    stages = {s for s, status in rows if status == "FINISHED"}
    assert stage_names(repo) - {"check_params"} <= stages
    assert parents == 1


def test_nothing_changed_runs_nothing(repo):
    out = repo.dvc("repro").stdout
    assert repo.ran(out) == set()
    assert repo.dvc("status").stdout.strip().startswith("Data and pipelines are up to date")


def exp_run(repo: PipelineRepo, *overrides: str, targets: tuple[str, ...] = ()) -> set[str]:
    try:
        args = [a for o in overrides for a in ("-S", o)]
        return repo.ran(repo.dvc("exp", "run", *args, *targets).stdout)
    finally:
        repo.reset()


UPSTREAM_OF_MODEL = {"prepare", "chunk", "embed", "index", "retrieve", "contexts"}


def test_overrides_reach_their_stages_and_rerun_only_downstream(repo):
    """`dvc exp run -S key=value` and `-S group=option` reach the stages that read them (run up to embed)."""
    out = repo.dvc(
        "exp", "run", "-S", "chunking.size=48", "-S", "chunking.overlap=8", "-S", "embedder=minilm_cls", "embed"
    ).stdout
    chunks = json.loads((repo.root / "data/chunks/manifest.json").read_text())
    embeddings = json.loads((repo.root / "data/embeddings/manifest.json").read_text())
    repo.reset()
    ran = repo.ran(out)
    assert ran == {"chunk", "embed"}
    assert (chunks["size"], chunks["overlap"]) == (48, 8), chunks
    assert embeddings["pooling"] == "cls" and embeddings["max_length"] == 128


def test_chunking_change_reaches_raft_but_not_the_document_finetune(repo):
    changed = changed_params(repo, {"chunking": {"size": 48}})
    assert changed == {"chunk"}
    users = downstream(repo, "chunk")
    assert "finetune@raft" in users and "finetune@finetuned" not in users
    assert not users & {"prepare", "base_model@base"}


def test_index_change_reruns_index_not_chunk_or_embed(repo):
    ran = exp_run(repo, "index=hnsw", targets=("retrieve",))
    assert ran == {"index", "retrieve"}


DOWNSTREAM_OF_RETRIEVAL = {"check_params", "index", "retrieve", "contexts", "evaluate"} | INFERS


def test_bm25_and_the_robustness_sweep_rerun_retrieval_and_what_follows(repo):
    """One `dvc exp run -S retriever=bm25 -S robustness.enabled=true` (one run for two features: the suite's
    time): the index and everything after it, nothing before (no re-embedding); every robustness condition
    answered and plotted; the arms' own answers from the answer cache (the top-1 chunk is the same)."""
    try:
        out = repo.dvc("exp", "run", "-S", "retriever=bm25", "-S", "robustness.enabled=true",
                       "-S", "robustness.models=[raft]").stdout
        metrics = json.loads((repo.root / paths.RETRIEVAL_METRICS).read_text())
        manifest = json.loads((repo.root / paths.INDEX_MANIFEST).read_text())
        report = (repo.root / paths.COMPARISON_REPORT).read_text()
        doc = json.loads((repo.root / paths.ROBUSTNESS_METRICS).read_text())
        plots = sorted(p.name for p in (repo.root / paths.REPORT_PLOTS).glob("robustness_*.png"))
        html = (repo.root / paths.HTML_REPORT).read_text()
        csv_rows = (repo.root / paths.ROBUSTNESS_PLOT).read_text().splitlines()
    finally:
        repo.reset()
    assert repo.ran(out) == DOWNSTREAM_OF_RETRIEVAL
    assert metrics["method"] == "bm25" and metrics["reranker"] == "none" and metrics["recall@1"] == 1.0   # measured
    assert set(manifest["components"]) == {"bm25"} and manifest["bm25"]["variant"] == "lucene"
    assert len(manifest["corpus_sha256"]) == 64
    assert "Retriever: BM25." in report
    assert doc["enabled"] and set(doc["models"]) == {"raft"}
    names = [c["name"] for c in doc["conditions"]]
    assert names[:5] == ["k1", "k3", "k5", "k10", "k10-shuffled"] and "gold+4hard" in names and names[-1] == "no-gold"
    rows = doc["models"]["raft"]
    assert all(r["n"] == 40 and r["clusters"] == 8 and r["ci_low"] <= r["estimate"] <= r["ci_high"] for r in rows.values())
    # the model reads one biography: the gold alone (and bm25's top 1, which is the gold) are all right; any
    # distractor beside it, or a context without it, and it mostly fails (measured: 2.5-27.5%; no gold 5%)
    assert rows["gold"]["estimate"] == rows["k1"]["estimate"] == 1.0, rows
    assert all(r["estimate"] < 0.5 for name, r in rows.items() if name not in ("gold", "k1")), rows
    assert doc["contrasts"]["raft"]["missing_gold_cost"] >= 0.8
    assert set(doc["contrasts"]["raft"]) == {"k_best_minus_k1", "shuffle_cost", "random_distractor_cost",
                                            "hard_distractor_cost", "missing_gold_cost"}
    assert plots == ["robustness_raft.png"] and 'id="robustness"' in html and len(csv_rows) == 1 + len(names)
    assert "## Robustness to retrieval" in report
    assert json.loads((repo.root / paths.ROBUSTNESS_METRICS).read_text()) == {"enabled": False}   # reset: off


def test_hybrid_with_a_cross_encoder_reranks_the_first_stage(repo, tmp_path):
    ce = save_tiny_cross_encoder(tmp_path / "ce")
    try:
        out = repo.dvc("exp", "run", "-S", "retriever=hybrid", "-S", "reranker=cross_encoder",
                       "-S", f"reranker.path={ce}", "retrieve")
        metrics = json.loads((repo.root / paths.RETRIEVAL_METRICS).read_text())
        rows = [json.loads(line) for line in (repo.root / paths.RANKED).read_text().splitlines()]
        record = json.loads((repo.root / paths.RETRIEVAL / "reranker.json").read_text())
        stale = set(json.loads(repo.dvc("status", "--json").stdout))
    finally:
        repo.reset()
    assert repo.ran(out.stdout) == {"index", "retrieve"}
    assert "contexts" in stale and not stale & {"prepare", "chunk", "embed", "index", "retrieve"}  # what follows waits
    assert metrics["method"] == "hybrid" and metrics["reranker"] == "cross_encoder"
    assert set(metrics["first_stage"]) >= {"recall@1", "mrr"}
    first = rows[0]
    assert sorted(first["retriever_ranks"]) == list(range(1, len(first["chunk_ids"]) + 1))
    assert first["scores"] == sorted(first["scores"], reverse=True)
    assert set(first["retriever_component_ranks"]) == {"dense", "bm25"}
    assert record["architecture"] == "BertForSequenceClassification" and len(record["weights_sha256"]) == 64


def test_top_k_change_regenerates_only_the_retrieved_arms(repo):
    """contexts rewrites its files, so every infer@<model> reruns; only retrieved.jsonl changed, so the other
    contexts' answers come from the answer cache and only the retrieved arms are generated again.
    (check_params reads the whole params.yaml, so any override reruns it: it takes a second.)"""
    try:
        ran = repo.ran(repo.dvc("exp", "run", "-S", "retrieval.top_k=2").stdout)
        cached = {f"{m}-{c}": json.loads((repo.root / paths.predictions_dir(m, c) / paths.TIMINGS).read_text())
                  ["from_cache"] for m in MODELS for c in CONTEXTS}
        top_k = json.loads((repo.root / paths.predictions_dir("base", "retrieved") / paths.PREDICTIONS_FILE)
                           .read_text().splitlines()[0])["chunk_ids"]
    finally:
        repo.reset()
    assert ran == {"check_params", "contexts", "evaluate"} | INFERS
    assert {a for a, hit in cached.items() if not hit} == {f"{m}-retrieved" for m in MODELS}
    assert len(top_k) == 2


def test_selecting_long_context_reruns_contexts_infer_and_evaluate_only(repo):
    """The long_context arm (every document in the prompt, one seeded order): selecting it reruns contexts (which
    now writes long_context.jsonl), every infer@ (the other contexts' answers from the answer cache) and evaluate.
    The tiny corpus does not fit the scratch model's 256 positions: without a budget the infer stages refuse it
    before loading a model; with long_context.max_tokens the documents are taken in their order up to it, and
    metrics.json scores each arm by where the gold document sat and how much of the corpus each question saw."""
    contexts = "arms.contexts=[none,retrieved,oracle,oracle_distractors,long_context]"
    try:
        ran = repo.ran(repo.dvc("exp", "run", "-S", contexts, "-S", "long_context.max_tokens=200").stdout)
        cached = {f"{m}-{c}": json.loads((repo.root / paths.predictions_dir(m, c) / paths.TIMINGS).read_text())
                  ["from_cache"] for m in MODELS for c in CONTEXTS}
        metrics = json.loads((repo.root / paths.EVAL_METRICS).read_text())
        first = json.loads((repo.root / paths.predictions_dir("base", "long_context") / paths.PREDICTIONS_FILE)
                           .read_text().splitlines()[0])
        html = (repo.root / paths.HTML_REPORT).read_text()
        repo.reset()
        refused = repo.dvc("exp", "run", "-S", contexts, check=False)
    finally:
        repo.reset()
    assert refused.returncode != 0
    assert "the long_context arm needs the whole corpus" in refused.stdout + refused.stderr
    assert "-S long_context.max_tokens=" in refused.stdout + refused.stderr
    assert ran == {"check_params", "contexts", "evaluate"} | INFERS
    assert all(cached.values())                                   # the other arms: the same answers, from the cache
    block = metrics["long_context"]
    assert set(block) == {f"{m}-long_context" for m in MODELS}
    lc = block["base-long_context"]
    n = metrics["arms"]["base-long_context"]["n"]
    assert 0 < lc["corpus_share"] < 1 and "not in prompt" in lc["position"]          # the budget left documents out
    assert sum(p["questions"] for p in lc["position"].values()) == n
    assert lc["gold_in_prompt"] == pytest.approx(1 - lc["position"]["not in prompt"]["questions"] / n)
    assert all(c.startswith("doc:") for c in first["chunk_ids"]) and first["prompt_tokens"] <= 256 - 6
    assert 'id="long_context"' in html and "by where the answer sits" in html


def test_finetune_change_reruns_finetuned_arms_not_base_arms(repo):
    assert changed_params(repo, {"finetune": {"lr": 0.002}}) == FINETUNES
    users = set().union(*(downstream(repo, f) for f in FINETUNES))
    assert users == TUNED_INFERS | {"evaluate"}


def changed_stages(repo: PipelineRepo, conf_file: str, old: str, new: str) -> set[str]:
    """Edit conf/ as a user would, recompose params.yaml, and ask `dvc status` which stages changed."""
    path = repo.root / "conf" / conf_file
    text = path.read_text()
    assert old in text, f"{old!r} not in {conf_file}"
    path.write_text(text.replace(old, new, 1))
    try:
        repo.run(sys.executable, "-m", "ragft.config", "compose")
        return set(json.loads(repo.dvc("status", "--json").stdout)) - {"check_params"}
    finally:
        repo.reset()


def changed_params(repo: PipelineRepo, patch: dict) -> set[str]:
    """Patch params.yaml as `dvc exp run -S` would, and ask `dvc status` which stages changed."""
    from omegaconf import OmegaConf

    path = repo.root / "params.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.merge(OmegaConf.load(path), patch)))
    try:
        return set(json.loads(repo.dvc("status", "--json").stdout)) - {"check_params"}
    finally:
        repo.reset()


def downstream(repo: PipelineRepo, stage: str) -> set[str]:
    """Every stage that depends, directly or not, on ``stage``'s outputs (from dvc.lock)."""
    lock = yaml.safe_load((repo.root / "dvc.lock").read_text())["stages"]
    outs = {name: [o["path"] for o in st.get("outs", [])] for name, st in lock.items()}
    deps = {name: [d["path"] for d in st.get("deps", [])] for name, st in lock.items()}

    def uses(user: str, producer: str) -> bool:
        return any(d == o or d.startswith(o + "/") or o.startswith(d + "/") for d in deps[user] for o in outs[producer])

    found, frontier = set(), {stage}
    while frontier:
        new = {u for u in lock if u not in found and any(uses(u, p) for p in frontier)}
        found |= new
        frontier = new
    return found


def test_model_change_touches_base_model_only_upstream_of_its_users(repo):
    assert changed_stages(repo, "experiment/tiny_reads.yaml", "steps: 800", "steps: 700") == {"base_model@base"}
    users = downstream(repo, "base_model@base")
    assert FINETUNES | {"evaluate"} | INFERS <= users
    assert not users & UPSTREAM_OF_MODEL


def test_dataset_change_touches_prepare_and_everything_downstream(repo):
    assert changed_stages(repo, "experiment/tiny.yaml", "n_people: 16", "n_people: 12") == {"prepare"}
    assert downstream(repo, "prepare") == stage_names(repo) - {"prepare", "check_params", "generate_qa"}


def changed_by_editing(repo: PipelineRepo, path: str) -> set[str]:
    """Edit a code file (a comment), and ask `dvc status` which stages changed."""
    file = repo.root / path
    file.write_text(file.read_text() + "\n# an edit\n")
    try:
        return set(json.loads(repo.dvc("status", "--json").stdout))
    finally:
        repo.reset()


PREPARED_READERS = {"chunk", "embed", "retrieve", "contexts", "base_model@base", "evaluate"} | FINETUNES


@pytest.mark.parametrize(("path", "stages"), [
    ("ragft/pipeline/contexts.py", {"contexts"}),                        # a stage's body: that stage
    ("stages/contexts.py", {"contexts"}),
    ("ragft/retrieval/search.py", {"retrieve"}),
    ("ragft/model/prompts.py", {"base_model@base"} | FINETUNES | INFERS),    # the generator package
    ("ragft/finetune/raft.py", FINETUNES),
    ("ragft/reporting/templates/report.html.j2", {"evaluate"}),
    ("ragft/arms.py", {"evaluate"}),
    ("ragft/data/rows.py", {"prepare"} | PREPARED_READERS),             # prepare: all of ragft/data
    ("ragft/config/schema.py", {"check_params"}),
])
def test_editing_code_reruns_exactly_its_stages(repo, path, stages):
    assert changed_by_editing(repo, path) == stages


def test_editing_conf_without_recomposing_is_refused(repo):
    path = repo.root / "conf" / "retrieval" / "default.yaml"
    path.write_text(path.read_text() + "top_k: 2\n")
    try:
        proc = repo.dvc("repro", check=False)
    finally:
        repo.reset()
    assert proc.returncode != 0
    assert "stale" in proc.stdout + proc.stderr and "make params" in proc.stdout + proc.stderr


def test_a_folder_without_a_qa_file_generates_questions_and_prepares_them(repo, tmp_path, judge_server):
    """Issue 16's new user: a folder of PDF, DOCX, HTML and Markdown and no QA file → `ragft init` → the printed
    `dvc exp run` with the question writer served (a stand-in for a larger served model: tests.helpers) →
    generated questions, split by document by prepare. The stages after prepare are the tiny experiment's own
    (this module's other tests); the reports' and the summary's note on generated questions is
    tests/unit/reporting/test_report.py's."""
    from tests.helpers import KEY, QUESTION_WRITER, write_own_corpus

    docs = write_own_corpus(tmp_path / "my-docs")
    url = f"http://127.0.0.1:{judge_server.server_address[1]}/v1"
    repo.env.update(RAGFT_GENERATOR_API_KEY=KEY, RAGFT_ANSWER_CACHE=str(tmp_path / "answers"))
    try:
        printed = repo.run(str(VENV_BIN / "ragft"), "init", str(docs)).stdout
        assert "dvc exp run -S dataset=local -S dataset.qa=generate" in printed
        proc = repo.dvc("exp", "run", "-S", "dataset=local", "-S", "dataset.qa=generate",
                        "-S", "dataset.generate.engine=openai", "-S", f"dataset.generate.openai.base_url={url}",
                        "-S", f"dataset.generate.openai.model={QUESTION_WRITER}", "prepare")
        assert repo.ran(proc.stdout) == {"generate_qa", "prepare"}   # check_params is no target of prepare
        generated = json.loads((repo.root / paths.GENERATED_MANIFEST).read_text())
        survived = generated["survived"]
        assert survived["generated"] == 8 * 4 and 8 <= survived["kept"] < survived["generated"]   # some duplicates
        assert generated["documents_with_questions"] == 8 and generated["generator"]["engine"] == "openai"
        assert json.loads((repo.root / paths.GENERATE_QA_METRICS).read_text())["kept"] == survived["kept"]
        prepared = json.loads((repo.root / paths.PREPARED_MANIFEST).read_text())
        assert prepared["source"] == "local" and prepared["counts"]["questions"] == survived["kept"]
        assert prepared["counts"]["documents"] == 8
        counts = prepared["counts"]
        assert counts["qa_train"] + counts["qa_dev"] + counts["qa_eval"] == survived["kept"] and counts["qa_eval"] > 0
    finally:
        for key in ("RAGFT_GENERATOR_API_KEY", "RAGFT_ANSWER_CACHE"):
            repo.env.pop(key, None)
        repo.run("git", "clean", "-fdq", "data/raw")
        repo.reset()
