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
        torch.use_deterministic_algorithms(True, warn_only=True)
    except ImportError:
        pass


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
            given = {a.split("=")[0] for a in sys.argv[1:]}
            sys.argv[1:1] = [a for a in HYDRA_QUIET if a.split("=")[0] not in given]

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
                full_name = f"{name}@{cfg.arm.model}-{cfg.arm.context}" if cfg.arm is not None else name
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
