"""Generation: batched against one-question-at-a-time, on the default model, same questions, same answers.

Runs ``ragft.model.generation.answer_questions`` (the infer stage's code) on the same retrieved-context
questions with ``inference.batch_size`` = 1 and = 32, alternating the two in rounds (the machine is
shared: alternation spreads the noise over both), and reports the ratio of median questions/s and
whether greedy decoding gave identical answers for every question.

Needs the base model and the retrieved contexts: `dvc repro base_model contexts` (`make bench` runs it).
On a CUDA machine the model runs in bf16 there and the device name is recorded.

    python bench/generation.py                        # 256 questions, 2 rounds
    python bench/generation.py --questions 64 --rounds 1
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

from bench.rows import run_script, save_row
from ragft import paths
from ragft.io import DataError

log = logging.getLogger("bench.generation")

GOAL_RATIO = 4.0


def device_info(model) -> dict:
    import torch

    device = next(model.parameters()).device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"device": str(device), "device_name": name, "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
            "threads": torch.get_num_threads()}


def load(base_dir: Path, device: str):
    """The base model as the infer stage loads it; bf16 on CUDA (the GPU benchmark's precision)."""
    import torch

    from ragft.model.loading import load_generator

    if not (base_dir / "config.json").exists():
        raise DataError(f"{base_dir}: no base model. Fix: `dvc repro base_model` (make bench runs it first).")
    model, tokenizer, manifest = load_generator(base_dir, device=device)
    if next(model.parameters()).device.type == "cuda":
        model = model.to(torch.bfloat16)
    return model, tokenizer, manifest


def run(root: Path, n_questions: int, batch_size: int, rounds: int, device: str, threads: int | None) -> dict:
    import torch
    from omegaconf import OmegaConf

    from ragft.config import load_params, validate
    from ragft.model.generation import answer_questions, read_contexts

    if threads:
        torch.set_num_threads(threads)
    base_dir, contexts = root / paths.BASE_MODEL, root / paths.context_file("retrieved")
    if not contexts.exists():
        raise DataError(f"{contexts}: not found. Fix: `dvc repro contexts` (make bench runs it first).")
    rows = read_contexts(contexts)[:n_questions]
    if len(rows) < n_questions:
        log.warning("%s has only %d questions (asked for %d)", contexts, len(rows), n_questions)
    cfg = validate(load_params(root / paths.PARAMS))
    model, tokenizer, manifest = load(base_dir, device)
    if cfg.inference.do_sample:
        raise DataError("params.yaml: inference.do_sample is true; this benchmark compares greedy answers. "
                        "Fix: run it with the default (greedy) inference settings.")

    def with_batch(bs: int):
        c = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        c.inference.batch_size = bs
        return c

    settings = {1: with_batch(1), batch_size: with_batch(batch_size)}
    answer_questions(rows[:batch_size], model, tokenizer, settings[batch_size])  # warm-up (allocations, kernels)
    qps: dict[int, list[float]] = {1: [], batch_size: []}
    answers: dict[int, dict[str, str]] = {}
    loads = []
    for r in range(rounds):
        order = [1, batch_size] if r % 2 == 0 else [batch_size, 1]
        for bs in order:
            preds, timings = answer_questions(rows, model, tokenizer, settings[bs])
            qps[bs].append(timings["questions_per_second"])
            got = {p["qid"]: p["answer"] for p in preds}
            if bs in answers and answers[bs] != got:
                raise RuntimeError(f"batch size {bs}: greedy answers changed between rounds")
            answers[bs] = got
            log.info("round %d, batch %d: %.1f questions/s", r + 1, bs, timings["questions_per_second"])
        loads.append(round(os.getloadavg()[0], 2))
    differ = [q for q in answers[1] if answers[1][q] != answers[batch_size][q]]
    one, many = statistics.median(qps[1]), statistics.median(qps[batch_size])
    return {
        "model": manifest.get("name"), "parameters": manifest.get("parameters"), "questions": len(rows),
        "contexts": str(contexts.relative_to(root)), "batch_size": batch_size, "rounds": rounds,
        "qps_batch1": [round(x, 2) for x in qps[1]], f"qps_batch{batch_size}": [round(x, 2) for x in qps[batch_size]],
        "median_qps_batch1": round(one, 2), "median_qps_batched": round(many, 2), "ratio": round(many / one, 2),
        "answers_differ": len(differ), "differing_qids": differ[:10], "load_average_per_round": loads,
        "max_new_tokens": cfg.inference.max_new_tokens, **device_info(model),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def summarize(res: dict) -> dict:
    identical = res["answers_differ"] == 0
    return {
        "name": "generation",
        "figures": {"questions": res["questions"], "qps_batch1": res["median_qps_batch1"],
                    f"qps_batch{res['batch_size']}": res["median_qps_batched"], "ratio": res["ratio"],
                    "answers_differ": res["answers_differ"], "device": res["device_name"], "dtype": res["dtype"]},
        "value": (f"{res['ratio']}x questions/s at batch {res['batch_size']} vs 1; "
                  + ("identical answers" if identical else f"{res['answers_differ']} answers differ")),
        "ratio": res["ratio"],
        "goal": f">= {GOAL_RATIO:g}x questions/s batched vs one at a time, identical greedy answers",
        "met": res["ratio"] >= GOAL_RATIO and identical,
        "notes": (f"{res['model']} ({res['parameters']} parameters) on {res['device_name']} ({res['dtype']}, "
                  f"{res['threads']} threads), {res['questions']} retrieved-context questions, max_new_tokens "
                  f"{res['max_new_tokens']}, {res['rounds']} alternating rounds, medians; load average per round "
                  f"{res['load_average_per_round']}."),
        "detail": res,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="workspace holding params.yaml, models/base, data/contexts")
    parser.add_argument("--questions", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both settings")
    parser.add_argument("--device", default="auto", help="auto (cuda if present) | cpu | cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    row = summarize(run(args.root, args.questions, args.batch_size, args.rounds, args.device, args.threads or None))
    return save_row(row, args.out)


if __name__ == "__main__":
    run_script(main)
