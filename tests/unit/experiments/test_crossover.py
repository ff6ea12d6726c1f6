"""`ragft crossover`: one DVC experiment per corpus size (a stand-in runner here), each size's RAG and
long-context quality and cost read from its metrics.json, the first size at which RAG is better or cheaper,
the table, the figure, and bad sizes refused before anything runs."""

from __future__ import annotations

import argparse

from ragft.experiments import crossover


def doc(people: int) -> dict:
    """metrics.json of one size: long context wins small, RAG large; long context's cost grows with the corpus."""
    long_score = max(0.0, 0.8 - people / 100)
    tokens = 61.0 * people
    return {
        "primary_metric": "match",
        "arms": {"base-retrieved": {"match": 0.6, "match_ci": [0.5, 0.7], "n": 5 * people // 2},
                 "base-long_context": {"match": long_score, "match_ci": [long_score - 0.1, long_score + 0.1],
                                       "n": 5 * people // 2}},
        "differences": {"base-long_context vs base-retrieved": {
            "a": "base-long_context", "b": "base-retrieved", "diff": long_score - 0.6,
            "ci_low": long_score - 0.7, "ci_high": long_score - 0.5}},
        "decision": {"arms": {
            "base-retrieved": {"prompt_tokens": 200.0, "token_cost_per_1k": 0.04},
            "base-long_context": {"prompt_tokens": tokens, "token_cost_per_1k": tokens * 0.15 / 1000,
                                  "cached_token_cost_per_1k": tokens * 0.075 / 1000}}},
    }


class StandIn:
    def __init__(self):
        self.ran: list[tuple[str, list[str]]] = []

    def run(self, batch, jobs, tag):
        self.ran += batch
        return []

    def metrics(self, name):
        return "success", doc(int(name.rsplit("-p", 1)[1])), ""


def test_each_size_runs_alone_with_the_shared_overrides_and_the_crossover_is_found():
    runner = StandIn()
    record = crossover.run_sizes([12, 24, 48, 72], ["inference.batch_size=8"], "cx", runner)
    assert [name for name, _ in runner.ran] == ["cx-p12", "cx-p24", "cx-p48", "cx-p72"]
    assert runner.ran[0][1] == ["arms.models=[base]", "arms.contexts=[retrieved,long_context]",
                                "inference.batch_size=8", "dataset.n_people=12"]
    row = record["rows"][1]
    assert row["rag"]["estimate"] == 0.6 and row["long"]["prompt_tokens"] == 61.0 * 24
    assert row["rag_minus_long"]["diff"] == 0.6 - 0.56 and row["rag_minus_long"]["ci_low"] < 0
    c = record["crossover"]
    assert c["better_estimate"] == 24 and c["better_significant"] == 48   # 0.8-0.48=0.32: RAG +0.28 [0.18, 0.38]
    assert c["cheaper"] == 12 and c["cheaper_cached"] == 12 and c["largest"] == 72
    text = crossover.render(record)
    assert "| 48 | 2,928 | 60.0 [50.0, 70.0] | 32.0 [22.0, 42.0] | +28.0 [18.0, 38.0] |" in text
    assert "RAG is better than long context from 48 people on (paired CI above 0)" in text
    assert crossover.plot(record)[:4] == b"\x89PNG"


def test_a_size_that_failed_is_shown_and_leaves_the_finding_to_the_others():
    rows = [{"people": 12, **crossover.read_size(doc(12), 12)}, {"people": 200, "state": "failed"}]
    c = crossover.crossover(rows)
    assert c["largest"] == 12 and c["better_estimate"] is None
    assert crossover.statement({"crossover": c}).startswith("RAG never scored higher than long context up to 12")


def test_bad_sizes_are_refused_before_anything_runs(caplog):
    args = argparse.Namespace(sizes="12,lots", overrides=[], name=None)
    assert crossover.run(args) == 2 and "give comma-separated integers" in caplog.text
    assert crossover.run(argparse.Namespace(sizes="1", overrides=[], name=None)) == 2


def test_the_result_files_and_the_sweep_record_for_ragft_compare(tmp_path):
    import json

    record = crossover.run_sizes([12, 48], [], "cx", StandIn())
    written = crossover.write_results(record, tmp_path)
    assert sorted(p.suffix for p in written) == [".json", ".md", ".png"]
    sweep = json.loads((tmp_path / "reports/sweeps/cx.json").read_text())
    assert sweep["kind"] == "crossover" and [e["name"] for e in sweep["experiments"]] == ["cx-p12", "cx-p48"]
    assert sweep["overrides"] == crossover.FIXED and sweep["drained"]
