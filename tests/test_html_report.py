"""reports/report.html: built from a synthetic pipeline tree in the layout the stages write; checked
for well-formedness (it parses as XML), its sections, embedded figures, escaping and determinism."""

from __future__ import annotations

import base64
import csv
import json
import random
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ragft import html_report, paths

MODELS = ("base", "finetuned", "raft")
CONTEXTS = ("none", "retrieved", "oracle", "oracle_distractors")
ATTRIBUTES = ("birth_city", "birth_year", "employer", "university", "field")
XSS = "<script>alert(1)</script>"
# how often each arm answers right (the scratch testbed's pattern: reading works, closed-book does not)
P_RIGHT = {"none": 0.03, "retrieved": 0.95, "oracle": 0.98, "oracle_distractors": 0.6}
MODEL_SHIFT = {"base": 0.0, "finetuned": -0.08, "raft": 0.03}


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def _write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_fixture(root: Path, n_questions: int = 60, seed: int = 0) -> None:
    """A pipeline tree as the stages write it: 3 models x 4 contexts, a document with a <script> in it."""
    rng = random.Random(seed)
    arms = [f"{m}-{c}" for m in MODELS for c in CONTEXTS]
    people = [f"Person {i}" for i in range(n_questions // len(ATTRIBUTES) + 1)]
    qa, chunks_by_q = [], {}
    for i in range(n_questions):
        attr = ATTRIBUTES[i % len(ATTRIBUTES)]
        person = people[i // len(ATTRIBUTES)]
        doc = f"doc{i // len(ATTRIBUTES)}"
        answer = f"answer {i}" if i else XSS
        question = f"What is the {attr.replace('_', ' ')} of {person}?" if i else f"Who wrote {XSS} & <b>bold</b>?"
        qa.append({"qid": f"q{i:03d}", "question": question, "answer": answer, "doc_ids": [doc], "attribute": attr})
        gold = {
            "chunk_id": f"{doc}:0",
            "doc_id": doc,
            "text": f"{person}'s {attr} is {answer}. " + "Filler text. " * 20,
        }
        other = {
            "chunk_id": f"doc{(i // 5 + 1) % 12}:1",
            "doc_id": f"doc{(i // 5 + 1) % 12}",
            "text": "Someone else entirely.",
        }
        chunks_by_q[f"q{i:03d}"] = {"retrieved": [gold], "oracle": [gold], "oracle_distractors": [other, gold]}
    _write_jsonl(root / paths.QA_EVAL, qa)
    for ctx in CONTEXTS:
        rows = [{"qid": q["qid"], "question": q["question"], "chunks": chunks_by_q[q["qid"]].get(ctx, [])} for q in qa]
        _write_jsonl(root / paths.context_file(ctx), rows)

    per_arm, table = {}, {k: [] for k in ("qid", "attribute", "question", "gold_answer")}
    for q in qa:
        table["qid"].append(q["qid"])
        table["attribute"].append(q["attribute"])
        table["question"].append(q["question"])
        table["gold_answer"].append(q["answer"])
    for arm in arms:
        model, ctx = arm.split("-", 1)
        p = min(1.0, max(0.0, P_RIGHT[ctx] + MODEL_SHIFT[model]))
        right = [rng.random() < p for _ in qa]
        answers = [
            q["answer"] if r else ("" if j % 7 == 3 else f"wrong {j} <i>{XSS}</i>")
            for j, (q, r) in enumerate(zip(qa, right))
        ]
        table[f"{arm}.answer"] = answers
        table[f"{arm}.exact_match"] = [float(r) for r in right]
        table[f"{arm}.f1"] = [1.0 if r else 0.2 for r in right]
        em = sum(right) / len(right)
        f1 = sum(table[f"{arm}.f1"]) / len(right)
        tokens = 14.0 if ctx == "none" else (60.0 if ctx != "oracle_distractors" else 110.0)
        per_arm[arm] = {
            "exact_match": em,
            "exact_match_ci": [max(0, em - 0.08), min(1, em + 0.08)],
            "f1": f1,
            "f1_ci": [max(0, f1 - 0.07), min(1, f1 + 0.07)],
            "n": len(qa),
            "mean_prompt_tokens": tokens,
            "string_similarity": f1 * 0.9,
            "rouge": f1 * 0.95,
            **({"context_precision": 0.9, "context_recall": None} if ctx != "none" else {}),
        }
        _write_json(
            root / paths.PREDICTIONS / arm / paths.TIMINGS,
            {
                "mean_latency_seconds": 0.002 * tokens / 14 + 0.001 * MODELS.index(model),
                "questions_per_second": 300.0 / (1 + tokens / 50),
                "mean_prompt_tokens": tokens,
                "seconds": 1.0,
            },
        )
    (root / paths.REPORTS).mkdir(parents=True, exist_ok=True)
    with (root / paths.PER_QUESTION).open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(table))
        w.writerows(zip(*table.values()))

    def diff(a, b):
        d = per_arm[a]["exact_match"] - per_arm[b]["exact_match"]
        return {
            "a": a,
            "b": b,
            "metric": "exact_match",
            "diff": d,
            "ci_low": d - 0.1,
            "ci_high": d + 0.1,
            "p_value": 0.001 if abs(d) > 0.1 else 0.5,
            "significant": abs(d) > 0.1,
        }

    effects = {}
    for m in MODELS:
        e = {
            "retrieval_gain": (f"{m}-retrieved", f"{m}-none"),
            "retrieval_gap": (f"{m}-oracle", f"{m}-retrieved"),
            "distractor_cost": (f"{m}-oracle", f"{m}-oracle_distractors"),
        }
        if m != "base":
            e |= {
                "finetuning_gain_closed_book": (f"{m}-none", "base-none"),
                "finetuning_gain_with_retrieval": (f"{m}-retrieved", "base-retrieved"),
            }
        effects[m] = {
            k: {
                "estimate": diff(a, b)["diff"],
                "ci_low": diff(a, b)["ci_low"],
                "ci_high": diff(a, b)["ci_high"],
                "significant": diff(a, b)["significant"],
                "contrast": f"{a} − {b}",
            }
            for k, (a, b) in e.items()
        }
    _write_json(
        root / paths.EVAL_METRICS,
        {
            "arms": per_arm,
            "differences": {
                f"{a} vs {b}": diff(a, b)
                for a, b in [
                    ("base-retrieved", "finetuned-none"),
                    ("finetuned-retrieved", "base-retrieved"),
                    ("raft-oracle_distractors", "base-oracle_distractors"),
                ]
            },
            "effects": effects,
            "bootstrap": {"resamples": 2000, "confidence": 0.95, "seed": 0},
        },
    )
    _write_json(
        root / paths.RETRIEVAL_METRICS,
        {
            "mrr": 0.97,
            "n_questions": n_questions,
            **{f"recall@{k}": min(1.0, 0.9 + 0.02 * k) for k in (1, 3, 5, 10)},
            **{f"ndcg@{k}": min(1.0, 0.88 + 0.02 * k) for k in (1, 3, 5, 10)},
        },
    )
    (root / paths.RECALL_AT_K_PLOT).parent.mkdir(parents=True, exist_ok=True)
    (root / paths.RECALL_AT_K_PLOT).write_text(
        "k,recall\n" + "".join(f"{k},{min(1.0, 0.9 + 0.02 * k)}\n" for k in (1, 3, 5, 10))
    )
    _write_json(root / paths.INDEX_METRICS, {"index_bytes": 307245, "build_seconds": 0.0123})
    for j, m in enumerate(("finetuned", "raft")):
        mdir = root / paths.model_dir(m)
        _write_json(
            mdir / paths.TRAIN_METRICS,
            {
                "train_seconds": 55.2 + 10 * j,
                "train_loss": 1.234 - 0.2 * j,
                "n_examples": 800,
                "trainable_params": 12288,
            },
        )
        (mdir / paths.TRAIN_CURVE).write_text(
            "step,loss\n" + "".join(f"{s},{4.0 * (0.97 + 0.01 * j) ** s + 0.5}\n" for s in range(0, 200, 5))
        )


JUDGE = {
    "settings": {
        "model": "judge-<1>",
        "base_url": "http://127.0.0.1:8000/v1",
        "prompt_version": "ragas-0.4",
        "temperature": 0.0,
        "ragas_version": "0.4.3",
        "metrics": ["faithfulness", "answer_relevancy"],
    },
    "arms": {
        "base-retrieved": {
            "judge_faithfulness": 0.8,
            "judge_faithfulness_n": 10,
            "judge_faithfulness_nan": 2,
            "judge_answer_relevancy": 0.7,
            "judge_answer_relevancy_n": 10,
            "judge_answer_relevancy_nan": 0,
        },
        "base-none": {"judge_answer_relevancy": 0.4, "judge_answer_relevancy_n": 10, "judge_answer_relevancy_nan": 0},
    },
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    write_fixture(root)
    return root


@pytest.fixture(scope="module")
def rendered(tree):
    ctx = html_report.load_context(
        tree,
        verdict=f"RAG wins {XSS}",
        labels={"base-none": "base, closed-book <i>"},
        judge=JUDGE,
        examples=4,
        generator="scratch <gpt2>",
        notes=[f"Testbed note {XSS}"],
    )
    files = html_report.write_report(ctx, tree / "reports/report.html", tree / "reports/plots")
    return ctx, files, (tree / "reports/report.html").read_text(encoding="utf-8")


def _texts(root: ET.Element) -> str:
    return " ".join("".join(el.itertext()) for el in root.iter())


def test_report_is_well_formed_and_has_every_section(rendered):
    ctx, files, page = rendered
    doc = ET.fromstring(page.split("\n", 1)[1])  # the doctype line aside, the page is well-formed XML
    ids = {s.get("id") for s in doc.iter("section")}
    assert ids == {"arms", "differences", "retrieval", "attributes", "finetuning", "costs", "judge", "examples"}
    imgs = [img.get("src") for img in doc.iter("img")]
    names = {p.stem for p in files if p.suffix == ".png"}
    assert names == {
        "metrics_by_arm",
        "ragas_by_arm",
        "effects",
        "recall_at_k",
        "em_by_attribute",
        "finetune_loss",
        "cost_quality",
    }
    assert len(imgs) == len(names)
    for src in imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for p in files:
        assert p.exists()
    # no external resources, no script
    assert not list(doc.iter("script")) and "http://" not in page.replace("http://127.0.0.1:8000/v1", "")
    assert not re.search(r"\b(src|href)=\"(?!data:|#)", page)
    # the arms table: one row per arm with EM% and its CI
    arms_table = next(s for s in doc.iter("section") if s.get("id") == "arms").find("table")
    rows = arms_table.find("tbody").findall("tr")
    assert len(rows) == 12
    em = ctx.arms["base-retrieved"]
    row = next(r for r in rows if "".join(r[0].itertext()) == "base-retrieved")
    assert f"{100 * em['exact_match']:.1f}" in "".join(row[2].itertext())
    assert f"[{100 * em['exact_match_ci'][0]:.1f}, {100 * em['exact_match_ci'][1]:.1f}]" in "".join(row[2].itertext())
    # judge: NaN judgements shown as a count, not folded into the score
    judge = next(s for s in doc.iter("section") if s.get("id") == "judge")
    assert "(2 NaN of 10)" in "".join(judge.itertext())


def test_every_string_from_the_data_is_escaped(rendered):
    _, _, page = rendered
    assert "<script" not in page.lower() and "<i>" not in page and "<b>" not in page and "<gpt2>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    doc = ET.fromstring(page.split("\n", 1)[1])
    text = _texts(doc)
    # rendered as text: the verdict, a question, a gold answer, a model answer, a chunk, a label, the judge's name
    assert f"RAG wins {XSS}" in text
    assert f"Who wrote {XSS} & <b>bold</b>?" in text
    assert "wrong" in text and f"<i>{XSS}</i>" in text
    assert "base, closed-book <i>" in text and "judge-<1>" in text and "scratch <gpt2>" in text


def test_examples_show_answers_and_contexts(rendered):
    ctx, _, page = rendered
    doc = ET.fromstring(page.split("\n", 1)[1])
    examples = [d for d in doc.iter("div") if d.get("class") == "example"]
    assert len(examples) == 4
    first = examples[0]
    # every arm's answer as models (rows) x contexts (columns), and each context's chunks with the gold one marked
    grid = first.find("table")
    assert ["".join(th.itertext()) for th in grid.find("thead").iter("th")][1:] == list(CONTEXTS)
    rows = grid.find("tbody").findall("tr")
    assert ["".join(r[0].itertext()) for r in rows] == list(MODELS)
    q = html_report.pick_examples(ctx)[0]
    cell = "".join(rows[2][2].itertext())  # raft-retrieved
    assert q["answers"]["raft-retrieved"]["answer"] in cell and ("✓" in cell) == (
        q["answers"]["raft-retrieved"]["exact_match"] == 1.0
    )
    summaries = ["".join(s.itertext()) for s in first.iter("summary")]
    assert [s.split(":")[0] for s in summaries] == ["context retrieved", "context oracle", "context oracle_distractors"]
    assert any(sp.get("class") == "gold" for sp in first.iter("span"))
    # disagreements come first
    assert len({a["exact_match"] for a in html_report.pick_examples(ctx)[0]["answers"].values()}) > 1


def test_output_is_deterministic(rendered, tree, tmp_path):
    ctx, files, page = rendered
    again = html_report.load_context(
        tree, verdict=ctx.verdict, labels=ctx.labels, judge=JUDGE, examples=4, generator=ctx.generator, notes=ctx.notes
    )
    files2 = html_report.write_report(again, tmp_path / "report.html", tmp_path / "plots")
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == page
    for a, b in zip(files, files2):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert b"Software" not in files[0].read_bytes() and b"matplotlib" not in files[0].read_bytes()


def test_missing_optional_inputs_are_skipped(tmp_path):
    """Only metrics.json (flat, the older layout): the page still renders, without the empty sections."""
    _write_json(
        tmp_path / paths.EVAL_METRICS,
        {
            "base-none": {"exact_match": 0.1, "f1": 0.2, "n": 10},
            "base-retrieved": {"exact_match": float("nan"), "f1": 0.9, "n": 10},
        },
    )
    ctx = html_report.load_context(tmp_path, verdict="v")
    page = html_report.render_html(ctx)
    doc = ET.fromstring(page.split("\n", 1)[1])
    assert {s.get("id") for s in doc.iter("section")} == {"arms", "costs"}
    assert "NaN" in _texts(doc)
    with pytest.raises(FileNotFoundError, match="dvc repro evaluate"):
        html_report.load_context(tmp_path / "nowhere", verdict="v")


CHROMIUM = next(
    (
        shutil.which(b)
        for b in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
        if shutil.which(b)
    ),
    None,
)


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None, reason="no headless Chromium on this machine (apt-get install chromium-headless-shell)"
)
def test_page_renders_in_headless_chromium(rendered, tmp_path):
    """A real browser lays the page out: the screenshot is non-trivial and the script never ran
    (Chromium's --dump-dom shows the DOM after load: an executed alert() would not change it, so the
    check is that no <script> element exists in the parsed DOM)."""
    _, files, _ = rendered
    page = files[-1]
    shot = tmp_path / "shot.png"
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,2400"]
    subprocess.run(
        [*args, f"--screenshot={shot}", page.resolve().as_uri()], check=True, capture_output=True, timeout=120
    )
    assert shot.stat().st_size > 50_000
    dom = subprocess.run(
        [*args, "--dump-dom", page.resolve().as_uri()], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    assert "<script" not in dom.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
