"""Long-context prefix reuse: the whole corpus in every prompt, its KV cache computed once against prefilled
per question, on the default model and corpus, same questions, same answers.

Builds the long_context arm's rows as the contexts stage does (every document of data/prepared, in the seeded
order) and runs ``ragft.model.generation.answer_questions`` (the infer stage's code) with
``inference.prefix_reuse_min_tokens`` on (the shared prefix computed once, each question continuing from a copy of
its cache) and off (each batch prefilling the whole corpus), alternating the two in rounds. Reports the ratio
of median answers/s and whether greedy decoding gave identical answers for every question.

Needs the base model and the prepared corpus: `dvc repro base_model prepare` (`make bench` runs them).

    python bench/prefix_reuse.py                       # 48 questions, 2 rounds
    python bench/prefix_reuse.py --questions 16 --rounds 1
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.generation import device_info, load
from bench.rows import run_script, save_row
from ragft import paths
from ragft.io import DataError

log = logging.getLogger("bench.prefix_reuse")

GOAL_RATIO = 5.0


def run(root: Path, n_questions: int, rounds: int, device: str, threads: int | None) -> dict:
    import torch
    from omegaconf import OmegaConf

    from ragft.config import load_params, validate
    from ragft.data.rows import read_documents, read_scored_questions, split_rows
    from ragft.model import long_context
    from ragft.model.generation import answer_questions, max_positions
    from ragft.retrieval.contexts import long_context_contexts

    if threads:
        torch.set_num_threads(threads)
    prepared = root / paths.PREPARED
    if not (prepared / "documents.jsonl").exists():
        raise DataError(f"{prepared}: no prepared corpus. Fix: `dvc repro prepare` (make bench runs it first).")
    cfg = validate(load_params(root / paths.PARAMS))
    if cfg.inference.do_sample:
        raise DataError("params.yaml: inference.do_sample is true; this benchmark compares greedy answers. "
                        "Fix: run it with the default (greedy) inference settings.")
    questions = split_rows(read_scored_questions(prepared, ("question", "doc_ids")), "eval")[:n_questions]
    documents = read_documents(prepared / "documents.jsonl")
    model, tokenizer, manifest = load(root / paths.BASE_MODEL, device)
    rows = long_context.fit(long_context_contexts(questions, documents, int(cfg.long_context.seed)), cfg, tokenizer,
                            max_positions(model, tokenizer), "the base model")

    def with_reuse(on: bool):
        c = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        c.inference.prefix_reuse_min_tokens = 256 if on else 0
        return c

    settings = {True: with_reuse(True), False: with_reuse(False)}
    answer_questions(rows[:2], model, tokenizer, settings[True])   # warm-up (allocations, kernels)
    qps: dict[bool, list[float]] = {True: [], False: []}
    answers: dict[bool, dict[str, str]] = {}
    prefix, prompt_tokens, loads = 0, 0.0, []
    for r in range(rounds):
        for on in ([True, False] if r % 2 == 0 else [False, True]):
            preds, timings = answer_questions(rows, model, tokenizer, settings[on])
            qps[on].append(timings["questions_per_second"])
            prefix = max(prefix, timings["shared_prefix_tokens"])
            prompt_tokens = timings["mean_prompt_tokens"]
            answers[on] = {p["qid"]: p["answer"] for p in preds}
            log.info("round %d, reuse %s: %.2f answers/s", r + 1, "on" if on else "off", timings["questions_per_second"])
        loads.append(round(os.getloadavg()[0], 2))
    differ = [q for q in answers[True] if answers[True][q] != answers[False][q]]
    on, off = statistics.median(qps[True]), statistics.median(qps[False])
    return {
        "model": manifest.get("name"), "parameters": manifest.get("parameters"), "questions": len(rows),
        "documents": len(documents), "shared_prefix_tokens": prefix, "mean_prompt_tokens": round(prompt_tokens, 1),
        "batch_size_without_reuse": int(cfg.inference.batch_size), "rounds": rounds,
        "qps_reuse": [round(x, 3) for x in qps[True]], "qps_no_reuse": [round(x, 3) for x in qps[False]],
        "median_qps_reuse": round(on, 3), "median_qps_no_reuse": round(off, 3), "ratio": round(on / off, 2),
        "answers_differ": len(differ), "differing_qids": differ[:10], "load_average_per_round": loads,
        "max_new_tokens": cfg.inference.max_new_tokens, **device_info(model), "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def summarize(res: dict) -> dict:
    identical = res["answers_differ"] == 0
    return {
        "name": "long_context_prefix_reuse",
        "figures": {"questions": res["questions"], "shared_prefix_tokens": res["shared_prefix_tokens"],
                    "qps_reuse": res["median_qps_reuse"], "qps_no_reuse": res["median_qps_no_reuse"],
                    "ratio": res["ratio"], "answers_differ": res["answers_differ"], "device": res["device_name"]},
        "value": (f"{res['ratio']}x answers/s with the corpus prefix reused vs prefilled per batch; "
                  + ("identical answers" if identical else f"{res['answers_differ']} answers differ")),
        "ratio": res["ratio"],
        "goal": f">= {GOAL_RATIO:g}x answers/s with prefix reuse, identical greedy answers",
        "met": res["ratio"] >= GOAL_RATIO and identical,
        "notes": (f"{res['model']} ({res['parameters']} parameters) on {res['device_name']} ({res['dtype']}, "
                  f"{res['threads']} threads), long_context arm over {res['documents']} documents (shared prefix "
                  f"{res['shared_prefix_tokens']} tokens, {res['mean_prompt_tokens']} per prompt), {res['questions']} "
                  f"questions, without reuse batches of {res['batch_size_without_reuse']}, max_new_tokens "
                  f"{res['max_new_tokens']}, {res['rounds']} alternating rounds, medians; load average per round "
                  f"{res['load_average_per_round']}."),
        "detail": res,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="workspace holding params.yaml, models/base, data/prepared")
    parser.add_argument("--questions", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both settings")
    parser.add_argument("--device", default="auto", help="auto (cuda if present) | cpu | cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    row = summarize(run(args.root, args.questions, args.rounds, args.device, args.threads or None))
    return save_row(row, args.out)


if __name__ == "__main__":
    run_script(main)
