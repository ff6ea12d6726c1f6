"""Composing conf/ into params.yaml, checking params.yaml is fresh, and validating a config.

``conf/`` holds the Hydra config groups; ``params.yaml`` is their composition (``make params`` or
``dvc exp run``), and it is what every stage reads, because it is what DVC tracks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ragft import paths
from ragft.config.schema import ConfigError, StageConfig, register

FIX = "Fix the value in conf/ and run `make params`."


def validate(cfg: DictConfig | dict, source: str = "params.yaml") -> DictConfig:
    """Type-check ``cfg`` against the schema and apply its rules; return the typed config.

    Raises ConfigError naming ``source``, the field and the fix, before any stage does work. (Hydra's
    composition type-checks too; this also covers params.yaml as read by a stage, and `+key=` additions.)
    """
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    try:
        typed = OmegaConf.merge(OmegaConf.structured(StageConfig), cfg)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        msg = str(err).splitlines()[0]
        if key.startswith("arm."):  # a matrix stage's command line, not a setting
            raise ConfigError(f"{source}: the stage's arm: field '{key}': {msg}. Fix the stage command "
                              "(dvc.yaml runs it as +arm.model=<model> +arm.context=<context>).") from None
        if "Key '" in msg and "not in" in msg:
            fix = "remove or rename it (see the groups in conf/ for the known settings)"
        else:
            fix = "give it a value of the type the schema in ragft/config/schema.py declares"
        raise ConfigError(f"{source}: field '{key}': {msg}. Fix: {fix}, then run `make params`.") from None
    try:
        OmegaConf.to_object(typed)  # builds the dataclasses: their __post_init__ rules run here
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}. {FIX}") from None
    except OmegaConfBaseException as err:  # a mandatory value left unset (???)
        key = getattr(err, "full_key", None) or "?"
        raise ConfigError(f"{source}: field '{key}' has no value. {FIX}") from None
    return typed


def plain(cfg: DictConfig) -> dict:
    """A validated config as plain data (enums as their names), without an unset ``arm``: what is logged."""
    out = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    if out.get("arm") is None:
        out.pop("arm", None)
    return out


def compose_conf(conf_dir: str | os.PathLike = paths.CONF_DIR, overrides: list[str] | None = None) -> dict:
    """Compose ``conf/config.yaml`` with Hydra, resolved, as `dvc exp run` does (enums as their names)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base=None):
            cfg = compose(config_name="config", overrides=overrides or [])
        return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    except (HydraException, OmegaConfBaseException) as err:
        # Hydra says which override or file; the schema's own words are in the cause
        lines = [line.strip() for e in (err, err.__cause__) if e is not None for line in str(e).splitlines()]
        detail = " ".join(dict.fromkeys(x for x in lines if x and not x.startswith(("reference_type", "object_type"))))
        if "Could not find" in detail or "Could not load" in detail:
            fix = "choose an option that exists (the files of that group in conf/)"
        elif "not in '" in detail:
            fix = "remove or rename it (the schemas in ragft/config/schema.py list the known settings)"
        else:
            fix = "give the field a value of the type ragft/config/schema.py declares, or one of its choices"
        where = f"{conf_dir}/ (composed{' with ' + ' '.join(overrides) if overrides else ''})"
        raise ConfigError(f"{where}: {detail}. Fix: {fix}.") from None


def load_params(path: str | os.PathLike = paths.PARAMS) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found. Run `make params` to compose it from conf/.")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


FRESH_MEMO = Path(".cache/ragft/params_fresh")   # under the repository root, like the other caches


def _inputs_digest(root: Path) -> str:
    """sha256 over everything the composition depends on: conf/, the schemas, params.yaml, Hydra's version."""
    import hashlib
    from importlib.metadata import version

    digest = hashlib.sha256(version("hydra-core").encode())
    files = [*sorted((root / paths.CONF_DIR).rglob("*.yaml")), root / paths.PARAMS,
             Path(__file__).with_name("schema.py")]
    for f in files:
        digest.update(f"\0{f.relative_to(root) if f.is_relative_to(root) else f.name}\0".encode() + f.read_bytes())
    return digest.hexdigest()


def check_params_fresh(root: str | os.PathLike = ".") -> None:
    """Fail if params.yaml is stale against conf/ (someone edited conf/ and ran `dvc repro`).

    Skipped inside `dvc exp run`, whose params.yaml is conf/ plus the -S overrides by design. A check that
    passed is remembered by a digest of its inputs (composing conf/ costs ~0.6 s a stage): the same files
    need no second composition.
    """
    if os.environ.get("DVC_EXP_NAME"):
        return
    root = Path(root)
    memo = root / FRESH_MEMO
    digest = _inputs_digest(root)
    if memo.exists() and memo.read_text(encoding="utf-8").strip() == digest:
        return
    fresh = compose_conf(root / paths.CONF_DIR)
    current = load_params(root / paths.PARAMS)
    if fresh == current:
        from ragft.io import atomic_file

        with atomic_file(memo) as fh:
            fh.write(digest + "\n")
        return
    if fresh != current:
        diff = sorted(diff_keys(fresh, current))
        raise ConfigError(
            f"{root / paths.PARAMS} is stale against conf/ (differs at: {', '.join(diff[:8])}). "
            "Run `make params` to recompose it (or use `dvc exp run`, which composes for you), then `dvc repro`."
        )


def diff_keys(a: Any, b: Any, prefix: str = "") -> set[str]:
    """The dotted keys at which two composed configs differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: set[str] = set()
        for k in set(a) | set(b):
            out |= diff_keys(a.get(k, object()), b.get(k, object()), f"{prefix}{k}.")
        return out
    return set() if a == b else {prefix.rstrip(".")}


def write_params(path: str | os.PathLike = paths.PARAMS, conf_dir: str | os.PathLike = paths.CONF_DIR) -> dict:
    """Compose conf/, validate it, and write params.yaml (atomically)."""
    from ragft.io import atomic_file

    cfg = compose_conf(conf_dir)
    validate(cfg, source=f"{conf_dir}/ (composed)")
    with atomic_file(path) as fh:
        fh.write("# Generated from conf/ by `make params` (or `dvc exp run`). Edit conf/, not this file.\n")
        fh.write(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    return cfg


def for_base(cfg: DictConfig, base: str) -> DictConfig:
    """``cfg`` with `model` set to the base model named ``base`` (`bases.<base>`; ``base`` is `model` itself): what
    base_model@<base> builds, and what a candidate on that base loads and trains."""
    from ragft.arms import DEFAULT_BASE

    if base == DEFAULT_BASE:
        return cfg
    out = cfg.copy()
    out.model = cfg.bases[base]
    return out


def for_candidate(cfg: DictConfig, name: str) -> DictConfig:
    """``cfg`` as the candidate ``name`` sees it: `model` is its base's, `finetune` carries its own overrides
    (`candidates.<name>.finetune`)."""
    declared = cfg.candidates[name] or {}
    out = for_base(cfg, str(declared.get("base") or "base"))
    overrides = declared.get("finetune") or {}
    if overrides:
        out = out.copy() if out is cfg else out
        out.finetune = OmegaConf.merge(cfg.finetune, overrides)
    return out
