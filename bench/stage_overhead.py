"""What a stage costs besides its work: the contexts stage (milliseconds of work on experiment=tiny) run as
DVC runs it, against `python -c "import torch"` on the same machine in the same run, alternating.

Everything a stage process does before and after its body counts: the interpreter, ragft's imports,
params.yaml's composition and validation, the freshness check against conf/, the MLflow run (store,
parent, child, params, the inputs' hash from dvc.yaml), writing run.json. Goal: ≤ 2.5 s wall.

    python bench/stage_overhead.py --runs 5
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.rows import run_script, save_row
from tests.helpers import PipelineRepo

log = logging.getLogger("bench.stage_overhead")

GOAL_S = 2.5


def wall(cmd: list[str], cwd: Path, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ragft-overhead-") as tmp:
        repo = PipelineRepo.create(Path(tmp))
        repo.dvc("repro", "contexts")  # its inputs, as DVC leaves them
        stage = [sys.executable, "stages/contexts.py"]
        untracked = [*stage, "tracking.enabled=false"]
        torch_only = [sys.executable, "-c", "import torch"]
        mlflow_only = [sys.executable, "-c", "import mlflow; mlflow.set_tracking_uri('sqlite:///mlflow.db'); "
                       "mlflow.MlflowClient().search_experiments()"]
        wall(stage, repo.root, repo.env)  # warm the OS caches (and create the store)
        times: dict[str, list[float]] = {"stage": [], "untracked": [], "torch": [], "mlflow": []}
        for _ in range(args.runs):
            for name, cmd in (("stage", stage), ("torch", torch_only), ("untracked", untracked), ("mlflow", mlflow_only)):
                times[name].append(wall(cmd, repo.root, repo.env))
    s, t, u, m = (statistics.median(times[k]) for k in ("stage", "torch", "untracked", "mlflow"))
    return save_row({
        "name": "stage_overhead",
        "figures": {"stage_s": round(s, 2), "import_torch_s": round(t, 2), "stage_untracked_s": round(u, 2),
                    "mlflow_sqlite_open_s": round(m, 2)},
        "value": (f"{s:.2f} s a stage with no work (import torch alone: {t:.2f} s; the stage untracked: {u:.2f} s; "
                  f"opening the MLflow SQLite store alone: {m:.2f} s)"),
        "ratio": round(s / t, 2), "goal": f"<= {GOAL_S} s", "met": s <= GOAL_S,
        "notes": (f"contexts on experiment=tiny as DVC runs it (MLflow tracking on, SQLite store), {args.runs} runs "
                  "alternating with `python -c \"import torch\"`, the same stage with tracking.enabled=false, and a "
                  "process that only opens the MLflow SQLite store; medians"),
        "detail": times,
    }, args.out)


if __name__ == "__main__":
    run_script(main)
