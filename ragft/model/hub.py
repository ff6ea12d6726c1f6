"""`model.source=hub`: any causal LM by Hugging Face id (pinned revision) or from a local directory,
copied into the base model folder so that every downstream stage loads one self-contained folder.

A hub id must name a commit (`model.revision`): "main" moves, and the experiment must not. Weights
load as safetensors only; remote code runs only if the config says so.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from ragft.config import ConfigError
from ragft.model.loading import PICKLE_SUFFIXES

log = logging.getLogger(__name__)

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
DTYPES = {"auto": "auto", "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def resolve_source(mcfg: Any, group: str = "model") -> tuple[str, bool]:
    """``(path, is_local)`` for ``<group>.path``, or a ConfigError naming the field and the fix."""
    path = mcfg.path
    if not path:
        raise ConfigError(
            f"params.yaml: {group}.path is empty; {group}.source=hub needs a Hugging Face id or a local model directory."
        )
    local = Path(path).expanduser()
    if local.is_dir():
        if not (local / "config.json").exists():
            raise ConfigError(
                f"params.yaml: {group}.path {path!r} is a directory without config.json. "
                f"Fix: point {group}.path at a folder saved with save_pretrained."
            )
        if not any(local.glob("*.safetensors")):
            pickled = sorted(f.name for f in local.iterdir() if f.suffix in PICKLE_SUFFIXES)
            raise ConfigError(
                f"params.yaml: {group}.path {path!r} has no *.safetensors weights"
                + (f" (only {pickled}: pickle-based weights are never loaded, they can run code)" if pickled else "")
                + ". Fix: convert it once where you trust its source (load it, then save_pretrained() writes "
                "safetensors)."
            )
        return str(local), True
    if not HUB_ID.match(path) or path.startswith((".", "/", "~")):
        raise ConfigError(
            f"params.yaml: {group}.path {path!r} does not exist. "
            f"Fix: set {group}.path to a directory saved with save_pretrained, "
            f"or to a Hugging Face id with {group}.revision pinned to a commit."
        )
    if not mcfg.revision:
        raise ConfigError(
            f"params.yaml: {group}.path {path!r} is not a local directory, so it is read as a Hugging Face id, "
            f"and {group}.revision is empty. "
            f"Fix: pin {group}.revision to the model's commit sha (the hub's 'Files and versions' history), "
            f"or point {group}.path at a local directory."
        )
    return path, False


def load_hub_model(mcfg: Any, group: str = "model") -> tuple[Any, Any, dict[str, Any]]:
    """Load the model and tokenizer of ``<group>.path``; return them with the manifest facts about the source."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, is_local = resolve_source(mcfg, group)
    kwargs = {"trust_remote_code": bool(mcfg.trust_remote_code)}
    if not is_local:
        kwargs["revision"] = mcfg.revision
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, dtype=DTYPES[mcfg.dtype], **kwargs)
    except (OSError, ValueError) as err:
        where = "directory" if is_local else f"hub id (revision {mcfg.revision})"
        if "trust_remote_code" in str(err):
            fix = ("Fix: the model ships its own Python code, which ragft runs only when told to: read that code, and "
                   f"if you trust it set {group}.trust_remote_code=true (conf/model/).")
        else:
            fix = ("Fix: the hub is offline here (HF_HUB_OFFLINE=1): run with HF_HUB_OFFLINE=0 where the hub is "
                   f"reachable, or download the model and set {group}.path to its directory; weights must be safetensors.")
        raise ConfigError(
            f"params.yaml: {group}.path {path!r}: could not load it as a causal LM {where}: "
            f"{str(err).splitlines()[0].rstrip(' .')}. {fix}"
        ) from None
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    resolved = getattr(model.config, "_commit_hash", None) if not is_local else None
    if not is_local and COMMIT.match(str(mcfg.revision)) and resolved and resolved != mcfg.revision:
        log.warning("%s.revision %s resolved to commit %s", group, mcfg.revision, resolved)
    facts = {
        "path": mcfg.path,
        "revision": resolved or (mcfg.revision if not is_local else None),
        "trust_remote_code": bool(mcfg.trust_remote_code),
    }
    return model, tokenizer, facts


def fetch_hub_model(mcfg: Any, out_dir: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """Load ``model.path`` and save model (safetensors) + tokenizer into ``out_dir``."""
    model, tokenizer, facts = load_hub_model(mcfg)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    log.info("hub model %s (revision %s) saved to %s", mcfg.path, facts["revision"], out_dir)
    return model, tokenizer, facts
