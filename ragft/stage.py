"""The entry-point wrapper every script in stages/ uses.

A stage is a Hydra app whose config is params.yaml (what DVC tracks), so under DVC it sees exactly
the tracked values and, for debugging, `python stages/chunk.py chunking.size=64` overrides one.
Before the stage's work the wrapper: checks params.yaml is fresh against conf/ (outside `dvc exp
run`), validates it against the schema, sets up logging and seeds, and opens the stage's MLflow run.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragft import paths
from ragft.config import ConfigError, check_params_fresh, validate
from ragft.io import DataError

log = logging.getLogger("ragft")

# Hydra must not write outputs/ folders into the repo nor take over logging.
HYDRA_QUIET = [
    "hydra.run.dir=.",
    "hydra.output_subdir=null",
    "hydra/job_logging=disabled",
    "hydra/hydra_logging=disabled",
    "hydra.sweep.dir=multirun",
]


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("RAGFT_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    for logger in logging.root.manager.loggerDict.values():  # Hydra's "disabled" preset disables them
        if isinstance(logger, logging.Logger):
            logger.disabled = False
    for noisy in ("alembic", "mlflow", "urllib3", "httpx", "filelock", "datasets", "git", "absl", "faiss.loader"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def seed_everything(seed: int) -> None:
    """Seed every RNG a stage might touch; CPU runs are then deterministic."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
        # CPU kernels are deterministic already; the switch matters for CUDA, and costs ~2 s per process
        # (it imports torch's compiler stack), so it is only flipped where a GPU is present.
        if torch.cuda.is_available():
            torch.use_deterministic_algorithms(True, warn_only=True)
    except ImportError:
        pass


def check_params_file(path: Path) -> None:
    """Exit with the fix when params.yaml is missing or not a YAML mapping (Hydra would print a traceback)."""
    import yaml

    problem = None
    if not path.exists():
        problem = "not found"
    else:
        try:
            if not isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict):
                problem = "not a YAML mapping of config groups"
        except UnicodeDecodeError as err:
            problem = f"not UTF-8 ({err.reason} at byte {err.start})"
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            problem = f"not valid YAML ({where}{getattr(err, 'problem', None) or err})"
    if problem:
        setup_logging()
        log.error("%s: %s. Fix: run `make params` to compose it from conf/ (or use `dvc exp run`, which composes "
                  "it), then rerun the stage.", path, problem)
        raise SystemExit(2)


def is_main_process() -> bool:
    """False in the non-zero ranks of a distributed launch (`accelerate launch`/torchrun set RANK): those
    train alongside the main process but neither log to MLflow nor write the stage's outputs."""
    return int(os.environ.get("RANK", "0")) == 0


def stage(name: str, inputs: Callable[[Any], list[str]] | list[str] | None = None) -> Callable:
    """Decorate ``fn(cfg, run)`` as the stage ``name``.

    ``cfg`` is the validated, typed config (an OmegaConf DictConfig); ``run`` is the StageRun to log
    to. ``inputs`` lists the paths whose content hash is recorded on the run.
    """

    def decorator(fn: Callable[[Any, Any], Any]) -> Callable[[], None]:
        @functools.wraps(fn)
        def main() -> None:
            import hydra
            from omegaconf import OmegaConf

            # The checkout this script belongs to (a DVC experiment runs in a temp copy of the repo).
            root = Path(sys.argv[0]).resolve().parent.parent
            check_params_file(root / paths.PARAMS)
            given = {a.split("=")[0] for a in sys.argv[1:]}
            quiet = [a for a in HYDRA_QUIET if a.split("=")[0] not in given]
            # Beside the user's overrides (argparse takes one run of them), so `-m a=1,2` and `a=1 --cfg job` work.
            at = next((i for i, a in enumerate(sys.argv[1:], 1) if "=" in a and not a.startswith("-")), len(sys.argv))
            sys.argv[at:at] = quiet

            @hydra.main(version_base=None, config_path=str(root), config_name="params")
            def _run(raw: Any) -> None:
                setup_logging()
                os.chdir(root)  # artifact paths are relative to the repo root
                try:
                    check_params_fresh(root)
                    cfg = validate(raw, source=str(paths.PARAMS))
                except ConfigError as err:
                    log.error("%s", err)
                    raise SystemExit(2) from None
                seed_everything(cfg.seed)
                from ragft.tracking import TrackingError, stage_run

                plain = OmegaConf.to_container(cfg, resolve=True)
                in_paths = inputs(cfg) if callable(inputs) else (inputs or [])
                # A matrix stage's arm is part of its DVC name (infer@base-none): the run takes that name.
                full_name = name
                if cfg.arm is not None:  # matrix stages: infer@<model>-<context>, finetune@<model>
                    full_name += f"@{cfg.arm.model}" + (f"-{cfg.arm.context}" if cfg.arm.context else "")
                if not is_main_process():  # another rank of a distributed launch: work only, no tracking run
                    from ragft.tracking import StageRun

                    log.info("stage %s: rank %s, not the main process: no MLflow run", full_name, os.environ["RANK"])
                    fn(cfg, StageRun(full_name, None, None, None))
                    return
                try:
                    with stage_run(full_name, plain, [str(p) for p in in_paths]) as run:
                        run.log_params(plain)
                        log.info("stage %s: starting (mlflow run %s)", full_name, run.run_id)
                        fn(cfg, run)
                        log.info("stage %s: done", full_name)
                except (ConfigError, DataError, TrackingError) as err:
                    log.error("%s", err)
                    raise SystemExit(2) from None

            _run()

        return main

    return decorator
