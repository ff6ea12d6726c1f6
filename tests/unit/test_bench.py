"""Benchmarks: the ANN benchmark's measurements on a small set, the runner's rows, the report, the pipeline probes."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from bench import ann, generation, pipeline, report
from bench import run as runner

# --------------------------------------------------------------------------- ANN


def test_recall_at_k_counts_the_shared_neighbours():
    truth = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    found = np.array([[3, 2, 9, 9], [4, 5, 6, 7]])
    assert ann.recall_at_k(found, truth, 4) == pytest.approx((2 / 4 + 1.0) / 2)
    assert ann.recall_at_k(found, truth, 2) == pytest.approx((0 / 2 + 1.0) / 2)  # only the top 2 of each count


def test_clustered_vectors_are_unit_seeded_and_clustered():
    a, centers = ann.clustered_vectors(3000, 32, 20, 0.7, 0.5, np.random.default_rng(1), block=1000)
    b, _ = ann.clustered_vectors(3000, 32, 20, 0.7, 0.5, np.random.default_rng(1), block=1000)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, b)
    nearest_center = (a @ centers.T).max(axis=1)
    assert nearest_center.mean() > 0.7 and (a[:500] @ a[500:1000].T).mean() < 0.2  # near a centre, far from others


def test_index_bytes_is_the_serialized_size():
    import faiss

    index = faiss.IndexFlatIP(16)
    index.add(np.random.default_rng(0).standard_normal((100, 16)).astype(np.float32))
    assert ann.index_bytes(index) == len(faiss.serialize_index(index))


@pytest.fixture(scope="module")
def small_ann():
    return ann.run(n=5000, dim=64, n_queries=100, n_clusters=50, repeats=1, seed=0)


def test_ann_benchmark_shape_and_recall(small_ann):
    res = small_ann
    assert set(res["engines"]) == {"flat", "hnsw", "ivf_flat", "ivf_pq"}
    assert res["engines"]["flat"]["best"]["recall@10"] == 1.0
    assert res["engines"]["hnsw"]["build_s"] > res["engines"]["flat"]["build_s"]  # a graph costs more than a copy
    for eng in res["engines"].values():
        assert eng["bytes"] > 0
        for row in eng["sweep"]:
            assert row["qps"] > 0
            assert row["speedup"] == pytest.approx(row["qps"] / res["flat_qps"], rel=0.01, abs=0.01)
    assert all(row["recall@10"] == 1.0 for row in res["engines"]["flat"]["sweep"])  # exact search finds all 10
    ivf = [r["recall@10"] for r in res["engines"]["ivf_flat"]["sweep"]]
    assert ivf[-1] > ivf[0]  # probing more lists finds more of the exact neighbours
    assert res["engines"]["hnsw"]["best"]["meets_recall"]
    flat_mb, pq_mb = res["engines"]["flat"]["bytes"], res["engines"]["ivf_pq"]["bytes"]
    assert pq_mb < flat_mb / 3  # PQ codes: 8 bytes per vector against 256


def test_ann_row_for_the_runner(small_ann):
    row = ann.summarize(small_ann)
    assert {"name", "figures", "value", "ratio", "goal", "met", "notes", "detail"} <= set(row)
    assert row["name"] == "ann" and isinstance(row["met"], bool)
    best = row["figures"]["best"]
    assert best in {"hnsw", "ivf_flat", "ivf_pq"}
    assert row["ratio"] == small_ann["engines"][best]["best"]["speedup"]
    assert row["met"] == (row["ratio"] >= ann.SPEEDUP_GOAL)
    json.dumps(row)  # the runner writes it as JSON


# --------------------------------------------------------------------------- generation (row logic only)


def _generation_res(ratio: float, differ: int) -> dict:
    return {"questions": 200, "median_qps_batch1": 10.0, "median_qps_batched": 10.0 * ratio, "ratio": ratio,
            "batch_size": 32, "answers_differ": differ, "device_name": "cpu", "dtype": "float32", "model": "m",
            "parameters": 1, "threads": 2, "rounds": 2, "max_new_tokens": 12, "load_average_per_round": [1.0]}


@pytest.mark.parametrize(("ratio", "differ", "met"), [(5.0, 0, True), (5.0, 1, False), (3.0, 0, False)])
def test_generation_goal_needs_speed_and_identical_answers(ratio, differ, met):
    assert generation.summarize(_generation_res(ratio, differ))["met"] is met


# --------------------------------------------------------------------------- pipeline probes


@pytest.mark.slow
def test_noop_repro_is_timed_and_a_real_run_is_refused(tmp_path):
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    bare = pipeline.bare_dvc_project(tmp_path, env)
    seconds = pipeline.noop_seconds(bare, env, 2)
    assert len(seconds) == 2 and all(s > 0 for s in seconds)  # two measured durations (not a speed check)
    (bare / "in.txt").write_text("changed\n")
    with pytest.raises(RuntimeError, match="not a no-op"):
        pipeline.noop_seconds(bare, env, 1)


def test_stage_records_read_seconds_from_the_mlflow_runs(tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("x", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(exp, run_name="chunk", start_time=1_000_000)
    client.set_terminated(run.info.run_id, "FINISHED", end_time=1_004_500)
    (tmp_path / "data" / "chunks").mkdir(parents=True)
    (tmp_path / "data" / "chunks" / "run.json").write_text(json.dumps({"stage": "chunk", "run_id": run.info.run_id}))
    rows = pipeline.stage_records(tmp_path)
    assert rows == [{"stage": "chunk", "record": "data/chunks/run.json", "seconds": 4.5, "peak_rss_mb": None,
                     "status": "FINISHED"}]


# --------------------------------------------------------------------------- runner + report


def test_missing_benchmark_is_a_not_run_row(monkeypatch):
    monkeypatch.setitem(runner.BENCHES, "ghost", ("bench.ghost_does_not_exist", [], []))
    row = runner.run_one("ghost", [])
    assert row["value"] == "not run" and row["met"] is None and "bench/ghost_does_not_exist.py" in row["notes"]


def test_failing_benchmark_is_reported_not_raised(monkeypatch):
    monkeypatch.setitem(runner.BENCHES, "broken", ("bench.ann", [], []))
    row = runner.run_one("broken", ["--n", "-5"])
    assert row["value"] == "failed" and row["met"] is False and "traceback" in row


def test_runner_writes_json_and_markdown_with_plots(small_ann, tmp_path):
    saved = tmp_path / "ann.json"
    saved.write_text(json.dumps(ann.summarize(small_ann)))
    out = tmp_path / "reports"
    results = runner.main(["--only", "ann", "--from", f"ann={saved}", "--out-dir", str(out)])
    assert [r["name"] for r in results["benchmarks"]] == ["ann"]
    data = json.loads((out / "bench.json").read_text())
    assert data["benchmarks"][0]["detail"]["n"] == 5000 and "gpu" in data["environment"]
    md = (out / "bench.md").read_text()
    assert "| benchmark | value | goal | ratio | met |" in md and "| ann |" in md
    assert "| hnsw | HNSW32 |" in md
    for png in ("ratios.png", "ann.png"):
        assert (out / report.PLOTS / png).read_bytes()[:4] == b"\x89PNG"
        assert f"({report.PLOTS}/{png})" in md


def test_report_marks_rows_not_run_and_escapes_cells(tmp_path):
    results = {"environment": runner.environment(),
               "benchmarks": [runner.not_run("embed_incremental", "bench/embed_incremental.py is not in this checkout"),
                              {"name": "x", "value": "a|b", "goal": "g", "ratio": 2.0, "met": False, "notes": "n",
                               "figures": {"k": 1}}]}
    _, md_path = report.write_report(results, tmp_path)
    md = md_path.read_text()
    assert "| embed_incremental | not run |" in md and "a\\|b" in md and "**no**" in md


def test_make_bench_target_runs_the_runner():
    out = subprocess.run(["make", "-n", "bench", "VENV=.venv"], capture_output=True, text=True, check=True).stdout
    assert "bench/run.py" in out and "dvc repro base_model contexts" in out


def test_pipeline_section_lists_each_stage_with_seconds_and_peak_memory(tmp_path):
    stages = [{"stage": "embed", "seconds": 2.7, "peak_rss_mb": 661.7}, {"stage": "prepare", "seconds": 0.1, "peak_rss_mb": None}]
    row = {"name": "pipeline", "value": "v", "goal": "g", "ratio": 2.5, "met": False, "notes": "n",
           "figures": {"noop_repro_s": 1.3}, "detail": {"stages": stages, "workspace": "tiny"}}
    _, md_path = report.write_report({"environment": runner.environment(), "benchmarks": [row]}, tmp_path)
    md = md_path.read_text()
    assert "| stage | seconds | peak RSS (MiB) |" in md and "| embed | 2.7 | 661.7 |" in md and "| prepare | 0.1 |  |" in md


# --------------------------------------------------------------------------- retrieval comparison


def test_retrieval_row_ranks_the_retrievers_on_the_prose_corpus():
    from bench import retrieval

    def row(r1):
        return {"recall@1": r1, "recall@3": 1.0, "recall@5": 1.0, "recall@10": 1.0, "mrr": r1, "n_questions": 47,
                "build_s": 0.01, "query_ms": 0.2}

    res = {"corpora": {"synthbio": {m: row(1.0) for m in retrieval.METHODS},
                       "prose": {"dense": row(0.8), "bm25": row(1.0), "hybrid": row(0.9)}},
           "reranker": None, "ks": [1, 3, 5, 10]}
    got = retrieval.summarize(res)
    assert got["ratio"] == 1.25 and got["met"] and got["value"].startswith("prose: bm25 recall@1 1.0")
    assert set(got["figures"]) == {f"{c}.{m}" for c in ("synthbio", "prose") for m in retrieval.METHODS}
