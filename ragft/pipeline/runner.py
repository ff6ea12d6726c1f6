"""How a stage runs: the one wrapper between DVC's command (stages/<stage>.py) and a stage's body.

A stage body is ``body(cfg, run)``: ``cfg`` the validated, typed config, ``run`` the StageRun it logs
to. Its config is params.yaml (what DVC tracks), so under DVC it sees exactly the tracked values;
for debugging, ``python stages/chunk.py chunking.size=64`` overrides one (Hydra's compose API, as
for any Hydra override). Before the body the wrapper: checks params.yaml is there, fresh against
conf/ (outside `dvc exp run`) and valid against the schema, checks a matrix stage's arm, sets up
logging and seeds, and opens the stage's MLflow run, tagged with the hash of the stage's inputs as
dvc.yaml declares them (one declaration of what a stage reads).
"""

from __future__ import annotations

import logging
import os
import random
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ragft import paths
from ragft.config import ConfigError, check_params_fresh, plain, validate
from ragft.io import DataError

log = logging.getLogger(__name__)

NOISY = ("alembic", "mlflow", "urllib3", "httpx", "filelock", "datasets", "git", "absl", "faiss.loader")


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("RAGFT_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def seed_everything(seed: int, torch_too: bool = False) -> None:
    """Seed the RNGs a stage might touch; CPU runs are then deterministic. torch is seeded for the stages
    that use it (``torch_too``): importing it costs ~1.5 s, which a stage without a model need not pay (and
    every torch user seeds its own draws too: the scratch model's init, LoRA's, the Trainer, sampling)."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    if torch_too:
        import torch

        torch.manual_seed(seed)
        # CPU kernels are deterministic already; the switch matters for CUDA, and costs ~2 s per process
        # (it imports torch's compiler stack), so it is only flipped where a GPU is present.
        if torch.cuda.is_available():
            torch.use_deterministic_algorithms(True, warn_only=True)


def check_params_file(path: Path) -> None:
    """ConfigError with the fix when params.yaml is missing or not a YAML mapping."""
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
        raise ConfigError(f"{path}: {problem}. Fix: run `make params` to compose it from conf/ (or use `dvc exp run`, "
                          "which composes it), then rerun the stage.")


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """Command-line overrides in Hydra's grammar (`a.b=1`, `+arm.model=base`, `~key`), parsed by Hydra's own
    parser and applied to the loaded params.yaml (composing it anew would cost ~0.7 s a stage)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        for o in parsed:
            key = o.key_or_group
            if o.is_delete():
                parent, _, leaf = key.rpartition(".")
                node = OmegaConf.select(cfg, parent) if parent else cfg
                if node is None or leaf not in node:
                    raise ConfigError(f"command line: ~{key}: there is no such key to delete")
                del node[leaf]
            elif o.is_add() or o.is_force_add():
                OmegaConf.update(cfg, key, o.value(), force_add=True)
            else:
                if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
                    raise ConfigError(f"command line: {o.input_line}: params.yaml has no key {key!r}; add one "
                                      f"with +{key}=... or fix its name")
                OmegaConf.update(cfg, key, o.value())
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"command line {overrides}: {str(err).splitlines()[0]}. Fix the override "
                          "(Hydra's grammar: key=value, +key=value to add a key).") from None
    return cfg


def load_config(root: Path, overrides: list[str]) -> Any:
    """params.yaml with command-line overrides (Hydra's grammar: `a.b=1`, `+arm.model=base`), validated."""
    from omegaconf import OmegaConf

    check_params_file(root / paths.PARAMS)
    raw = apply_overrides(OmegaConf.load(root / paths.PARAMS), overrides)
    check_params_fresh(root)
    return validate(raw, source=str(paths.PARAMS))


def check_arm(name: str, cfg: Any, arm: Mapping[str, Iterable[str] | Callable[[Any], Iterable[str]]]) -> str:
    """The stage's full name (``infer@base``, ``finetune@raft``) once its arm fields are given and
    among the choices this stage takes (a list, or a function of the config: params.yaml's `dag`)."""
    given = cfg.arm
    arm = {f: (choices(cfg) if callable(choices) else choices) for f, choices in arm.items()}
    usage = " ".join(f"+arm.{f}=<{'|'.join(map(str, choices))}>" for f, choices in arm.items())
    for f, choices in arm.items():
        value = None if given is None else getattr(given, f)
        if value is None or str(value) not in {str(c) for c in choices}:
            raise ConfigError(f"stage {name} needs its arm on the command line: {usage} (got arm.{f}={value}). "
                              "dvc.yaml passes it; run the stage as `dvc repro <stage>@<arm>`.")
    if not arm:
        return name
    parts = [str(getattr(given, f)) for f in arm]
    return f"{name}@{'-'.join(parts)}"


def is_main_process() -> bool:
    """False in the non-zero ranks of a distributed launch (`accelerate launch`/torchrun set RANK): those
    train alongside the main process but neither log to MLflow nor write the stage's outputs."""
    return int(os.environ.get("RANK", "0")) == 0


def stage_inputs(root: Path, name: str, cfg: Any) -> list[str]:
    """What dvc.yaml declares the stage reads (its deps), resolved as DVC resolves them: `${key}` and
    `${item}` of a foreach, `${item.x}` of a matrix, `${a.b}` from params.yaml. Read with PyYAML and
    OmegaConf's interpolation (the same `${...}` syntax), not DVC's repo API, which costs ~0.6 s a stage."""
    import yaml
    from omegaconf import OmegaConf

    spec = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"][name]
    body, scope = spec.get("do", spec), {}
    if cfg.arm is not None and "foreach" in spec:  # the arm's model is the foreach key (list items are their keys)
        items = OmegaConf.select(cfg, spec["foreach"].strip("${}"))
        model = str(cfg.arm.model)
        scope = {"key": model, "item": items[model] if isinstance(items, Mapping) else model}
    params = plain(cfg)
    resolved = OmegaConf.to_container(OmegaConf.create({**params, **scope, "__deps": list(body.get("deps", []))}),
                                      resolve=True)["__deps"]
    return sorted({str(d) for d in resolved if str(d) != str(paths.PARAMS)})


def stage_main(name: str, body: Callable[[Any, Any], None], *,
               arm: Mapping[str, Iterable[str] | Callable[[Any], Iterable[str]]] | None = None,
               torch: bool = False) -> Callable[[list[str] | None], None]:
    """``main(argv)`` of the stage ``name``: runs ``body(cfg, run)`` as described in the module docstring.

    ``arm``: for a foreach stage, the arm fields its command line must give and the values it takes (or a
    function of the config giving them).
    ``torch``: the stage computes with torch (seed it too).
    A bad setting or bad input exits with status 2 and one line naming the file, the field and the fix.
    """

    def main(argv: list[str] | None = None) -> None:
        from ragft.tracking import StageRun, TrackingError, stage_run

        setup_logging()
        # The checkout the stage script belongs to (a DVC experiment runs in a temp copy of the repo).
        script = Path(sys.argv[0]).resolve()
        root = script.parent.parent if script.parent.name == "stages" else Path.cwd().resolve()
        os.chdir(root)  # artifact paths are relative to the repo root
        try:
            cfg = load_config(root, list(sys.argv[1:] if argv is None else argv))
            full_name = check_arm(name, cfg, arm or {})
            seed_everything(cfg.seed, torch_too=torch)
            if not is_main_process():  # another rank of a distributed launch: work only, no tracking run
                log.info("stage %s: rank %s, not the main process: no MLflow run", full_name, os.environ["RANK"])
                body(cfg, StageRun.disabled(full_name))
                return
            params = plain(cfg)
            with stage_run(full_name, params, lambda: stage_inputs(root, name, cfg)) as run:
                run.log_params(params)
                log.info("stage %s: starting (mlflow run %s)", full_name, run.run_id)
                body(cfg, run)
                log.info("stage %s: done", full_name)
        except (ConfigError, DataError, TrackingError) as err:
            log.error("%s", err)
            raise SystemExit(2) from None

    return main
