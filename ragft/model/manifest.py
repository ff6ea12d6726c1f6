"""What a model folder is: the manifest written next to the weights, so every downstream stage (and
the report) knows which model it used without reloading it.

Manifests are deterministic (no timestamps, no timings): the same config gives byte-identical files.
Timings go to MLflow and the metrics files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragft.io import hash_paths

MANIFEST = "manifest.json"


def weights_hash(model_dir: str | Path) -> str:
    """sha256 of the safetensors weight files of ``model_dir`` (content, not mtimes)."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no *.safetensors weights")
    return "sha256:" + hash_paths(files)


def count_parameters(model: Any, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def tokenizer_info(tokenizer: Any) -> dict[str, Any]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    kind = type(backend.model).__name__ if backend is not None else type(tokenizer).__name__
    return {"type": kind, "vocab_size": len(tokenizer), "class": type(tokenizer).__name__}


def base_manifest(
    *,
    source: str,
    name: str,
    model: Any,
    tokenizer: Any,
    model_dir: str | Path,
    path: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of a base model folder (written by the base_model stage)."""
    return {
        "source": source,
        "name": name,
        "path": path,
        "revision": revision,
        "weights_sha256": weights_hash(model_dir),
        "architecture": type(model).__name__,
        "parameters": count_parameters(model),
        "tokenizer": tokenizer_info(tokenizer),
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),  # the tokenizer has one
        "trust_remote_code": bool(trust_remote_code),
        "testbed": source == "scratch",
        **(extra or {}),
    }
