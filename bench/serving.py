"""Serving: questions/s through `transformers serve` (the openai engine) against in process, same model,
same questions, same prompts, with the answers compared.

In process: ``ragft.model.generation.answer_questions`` at ``--batch-size``. Served: the openai engine's
client (``ragft.serving.client.answer_served``) against `transformers serve` on 127.0.0.1, with
``--batch-size`` requests in flight (the server has no continuous batching on CPU, so it answers them
one generate() at a time). The answer cache is off for both. Needs the base model and the retrieved
contexts: `dvc repro base_model contexts` (`make bench` runs it).

    python bench/serving.py                      # 64 questions
    python bench/serving.py --questions 16
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.rows import run_script, save_row
from ragft import paths
from ragft.io import DataError

log = logging.getLogger("bench.serving")


def run(root: Path, n_questions: int, batch_size: int, threads: int) -> dict:
    import socket

    import torch
    from omegaconf import OmegaConf

    from ragft.config import load_params, validate
    from ragft.model.generation import answer_questions, max_positions, read_contexts
    from ragft.model.loading import load_generator
    from ragft.serving import local
    from ragft.serving.client import answer_served

    torch.set_num_threads(threads)
    base_dir, contexts = (root / paths.BASE_MODEL).resolve(), root / paths.context_file("retrieved")
    if not contexts.exists() or not (base_dir / "config.json").exists():
        raise DataError(f"{base_dir} or {contexts} missing. Fix: `dvc repro base_model contexts` (make bench runs it).")
    rows = read_contexts(contexts)[:n_questions]
    cfg = OmegaConf.create(OmegaConf.to_container(validate(load_params(root / paths.PARAMS)), resolve=True))
    cfg.inference.batch_size = batch_size
    model, tokenizer, manifest = load_generator(base_dir, device="cpu")
    answer_questions(rows[:batch_size], model, tokenizer, cfg)  # warm-up
    t0 = time.perf_counter()
    local_preds, _ = answer_questions(rows, model, tokenizer, cfg)
    local_s = time.perf_counter() - t0
    limit = max_positions(model, tokenizer) - cfg.inference.max_new_tokens
    del model

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg.inference.openai.base_url = f"http://127.0.0.1:{port}/v1"
    cfg.inference.openai.concurrency = batch_size
    with tempfile.TemporaryDirectory() as tmp:
        # the server gets the same threads as the in-process engine had
        import os

        os.environ["OMP_NUM_THREADS"] = str(threads)
        proc = local.start(port, Path(tmp) / "serve.log")
        try:
            answer_served(rows[:2], tokenizer, limit, cfg, str(base_dir), {"bench": "warm-up"}, None)  # loads the model
            t0 = time.perf_counter()
            served_preds, timings = answer_served(rows, tokenizer, limit, cfg, str(base_dir), {}, None)
            served_s = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    same = sum(a["answer"] == b["answer"] for a, b in zip(local_preds, served_preds))
    n = len(rows)
    return {"model": manifest.get("name"), "questions": n, "batch_size": batch_size, "threads": threads,
            "in_process_qps": round(n / local_s, 2), "served_qps": round(n / served_s, 2),
            "ratio": round((n / served_s) / (n / local_s), 3), "answers_identical": same,
            "served_mean_latency_s": round(timings["mean_latency_seconds"], 3), "api": timings.get("api")}


def summarize(res: dict) -> dict:
    return {
        "name": "serving",
        "figures": {k: res[k] for k in ("questions", "in_process_qps", "served_qps", "ratio", "answers_identical")},
        "value": (f"transformers serve {res['served_qps']} questions/s vs in process {res['in_process_qps']} "
                  f"({res['ratio']}x); {res['answers_identical']} of {res['questions']} answers identical"),
        "ratio": res["ratio"],
        "goal": "context only: what a local server costs against in-process batched generate (CPU)",
        "met": None,
        "notes": (f"{res['model']}, {res['questions']} retrieved-context questions, in process at batch "
                  f"{res['batch_size']} vs {res['batch_size']} requests in flight to `transformers serve` on "
                  f"127.0.0.1 ({res['api']} API, no continuous batching on CPU), {res['threads']} threads each."),
        "detail": res,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    return save_row(summarize(run(args.root, args.questions, args.batch_size, args.threads)), args.out)


if __name__ == "__main__":
    run_script(main)
