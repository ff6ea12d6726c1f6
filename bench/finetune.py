"""Fine-tuning: the finetune stage's entry under `accelerate launch` against plain `python`, and tokens/s.

The same entry (``stages/finetune.py +arm.model=finetuned``) runs alternately as dvc.yaml runs it
(``accelerate launch --config_file accelerate/<name>.yaml``) and as a plain ``python`` process,
in a copy of this working tree whose inputs come from ``dvc repro base_model chunk``. Reported: the
launcher's overhead in seconds (wall time difference of the medians) and the training throughput
the stage itself records (tokens/s where the fine-tuning metrics carry ``train_tokens``, else
examples/s), with the device it ran on. On a CUDA machine pass ``--accelerate ddp`` for the GPU run.

    python bench/finetune.py                  # experiment=tiny, 2 rounds
    python bench/finetune.py --experiment null --max-steps 60   # the default model
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.pipeline import timed
from bench.rows import run_script, save_row
from ragft import paths
from tests.helpers import VENV_BIN, PipelineRepo

log = logging.getLogger("bench.finetune")

MODEL = "finetuned"


def device_name() -> tuple[str, str]:
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.cuda.get_device_name(0)
    return "cpu", f"cpu ({os.cpu_count()} cores)"


def throughput(metrics: dict, batch_size: int) -> dict:
    seconds = metrics["train_seconds"]
    out = {"train_seconds": seconds, "steps": metrics["steps"]}
    if metrics.get("train_tokens"):
        out["tokens_per_s"] = round(metrics["train_tokens"] / seconds, 1)
    out["examples_per_s"] = round(metrics["steps"] * batch_size / seconds, 2)
    return out


def run(experiment: str, rounds: int, accelerate: str, max_steps: int | None) -> dict:
    from ragft.config import load_params

    with tempfile.TemporaryDirectory(prefix="ragft-bench-finetune-") as tmp:
        repo = PipelineRepo.create(Path(tmp), experiment=experiment)
        repo.dvc("repro", "base_model", "chunk")
        extra = [f"finetune.max_steps={max_steps}"] if max_steps else []
        entry = ["stages/finetune.py", f"+arm.model={MODEL}", *extra]
        commands = {
            "python": [sys.executable, *entry],
            "accelerate": [str(VENV_BIN / "accelerate"), "launch", "--config_file", f"accelerate/{accelerate}.yaml",
                           "--num_cpu_threads_per_process", str(min(2, os.cpu_count() or 1)), *entry],
        }
        batch = int(load_params(repo.root / paths.PARAMS)["finetune"]["batch_size"])
        walls: dict[str, list[float]] = {k: [] for k in commands}
        train: dict[str, list[dict]] = {k: [] for k in commands}
        loads = []
        for r in range(rounds):
            for how in (["python", "accelerate"] if r % 2 == 0 else ["accelerate", "python"]):
                seconds, _ = timed(commands[how], repo.root, repo.env)
                walls[how].append(round(seconds, 2))
                metrics = json.loads((repo.root / paths.finetune_metrics(MODEL)).read_text())
                train[how].append(throughput(metrics, batch))
                log.info("round %d, %s: %.1f s wall, %s", r + 1, how, seconds, train[how][-1])
            loads.append(round(os.getloadavg()[0], 2))
    kind, name = device_name()
    med = {k: statistics.median(v) for k, v in walls.items()}
    key = "tokens_per_s" if "tokens_per_s" in train["accelerate"][0] else "examples_per_s"
    return {
        "experiment": experiment, "accelerate_config": accelerate, "rounds": rounds, "max_steps": max_steps,
        "wall_seconds": walls, "median_wall": med, "launch_overhead_s": round(med["accelerate"] - med["python"], 2),
        "wall_ratio": round(med["accelerate"] / med["python"], 3), "train": train, "throughput_key": key,
        "throughput": {k: statistics.median(t[key] for t in v) for k, v in train.items()},
        "device": kind, "device_name": name, "load_average_per_round": loads,
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def summarize(res: dict) -> dict:
    key = res["throughput_key"]
    tp = res["throughput"]["accelerate"]
    return {
        "name": "finetune",
        "figures": {"launch_overhead_s": res["launch_overhead_s"], "wall_ratio_accelerate_vs_python": res["wall_ratio"],
                    "wall_python_s": res["median_wall"]["python"], "wall_accelerate_s": res["median_wall"]["accelerate"],
                    key: tp, "device": res["device_name"]},
        "value": f"accelerate launch +{res['launch_overhead_s']} s ({res['wall_ratio']}x wall); {tp} {key.replace('_', ' ')}",
        "ratio": res["wall_ratio"],
        "goal": "context only: the launcher's cost (fine-tuning tokens/s on a GPU in bf16 when a session has one)",
        "met": None,
        "notes": (f"finetune@{MODEL} entry, experiment={res['experiment']}, accelerate/{res['accelerate_config']}.yaml"
                  f", {res['rounds']} alternating rounds, medians, on {res['device_name']}; load average per round "
                  f"{res['load_average_per_round']}."
                  + ("" if key == "tokens_per_s" else " tokens/s not recorded by the finetune stage (train_tokens): "
                     "examples/s shown instead.")),
        "detail": res,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="tiny", help="experiment preset of the copy (null: the default)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--accelerate", default="cpu", help="accelerate/<name>.yaml")
    parser.add_argument("--max-steps", type=int, default=None, help="finetune.max_steps override")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    row = summarize(run(args.experiment, args.rounds, args.accelerate, args.max_steps))
    return save_row(row, args.out)


if __name__ == "__main__":
    run_script(main)
