"""Text → L2-normalised vectors with any Hugging Face encoder (AutoModel + pooling).

One code path encodes chunks and questions, so the two always live in the same space. The same
model reference also gives the chunker its tokenizer: chunks are budgeted in the embedder's tokens.
Weights load as safetensors only; remote code runs only when the config says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragft.config import ConfigError

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "package:"


def resolve_model_ref(model: str) -> str:
    """`package:<module>` → `<module>.get_model_path()`; a local path or hub id is returned as is."""
    if model.startswith(PACKAGE_PREFIX):
        module = model[len(PACKAGE_PREFIX):]
        try:
            return str(importlib.import_module(module).get_model_path())
        except (ImportError, AttributeError) as err:
            raise ConfigError(
                f"params.yaml: field 'embedder.model' is {model!r} but {module}.get_model_path() is unavailable "
                f"({err}). Fix: install the package that ships the model, or point embedder.model at a local path."
            ) from None
    return model


def _from_pretrained(loader: Any, ecfg: Any, **kwargs: Any) -> Any:
    """Call ``loader.from_pretrained`` on the configured model; turn 'not found' into a ConfigError."""
    ref = resolve_model_ref(ecfg.model)
    is_local = Path(ref).exists()
    if not is_local and not ecfg.revision:
        log.warning("embedder.model %r is a hub id without a pinned revision: results may change upstream", ref)
    try:
        return loader.from_pretrained(
            ref,
            revision=None if is_local else ecfg.revision,
            trust_remote_code=bool(ecfg.trust_remote_code),
            **kwargs,
        )
    except OSError as err:
        raise ConfigError(
            f"params.yaml: field 'embedder.model' is {ecfg.model!r}: cannot load it ({str(err).splitlines()[0]}). "
            "Fix: give a local directory, a `package:<module>` reference, or a hub id that is in the local "
            "Hugging Face cache (the hub is offline unless HF_HUB_OFFLINE=0)."
        ) from None


def load_tokenizer(ecfg: Any) -> Any:
    """The embedder's fast tokenizer (fast: chunking needs its character offsets)."""
    from transformers import AutoTokenizer

    tokenizer = _from_pretrained(AutoTokenizer, ecfg)
    if not tokenizer.is_fast:
        raise ConfigError(
            f"params.yaml: field 'embedder.model' is {ecfg.model!r}, whose tokenizer has no fast (Rust) version; "
            "chunking needs its offset mapping. Fix: choose an encoder with a tokenizer.json."
        )
    return tokenizer


def weights_sha256(model: str) -> str | None:
    """sha256 over the safetensors files of a local model (None for a hub id)."""
    ref = Path(resolve_model_ref(model))
    if not ref.is_dir():
        return None
    digest = hashlib.sha256()
    for f in sorted(ref.glob("*.safetensors")):
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class Encoder:
    """A Hugging Face encoder with mean/cls pooling, as sentence-transformers would compute it.

    ``encode`` tokenizes everything once, sorts by length so each batch pads only to its own
    longest text, and returns rows in the caller's order (float32, L2-normalised if asked).
    """

    def __init__(self, ecfg: Any):
        import torch
        from transformers import AutoModel

        self.cfg = ecfg
        self.tokenizer = load_tokenizer(ecfg)
        self.model = _from_pretrained(AutoModel, ecfg, use_safetensors=True)
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and ecfg.max_length > limit:
            raise ConfigError(
                f"params.yaml: field 'embedder.max_length' is {ecfg.max_length} but {ecfg.name} has only {limit} "
                f"positions. Fix: set embedder.max_length <= {limit}."
            )
        self.device = _resolve_device(ecfg.device)
        dtype = ecfg.dtype
        if dtype == "auto":
            dtype = "bfloat16" if self.device == "cuda" else "float32"
        self.autocast_dtype = None if dtype == "float32" else getattr(torch, dtype)
        self.model.to(self.device).eval()

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _pool(self, hidden: Any, mask: Any) -> Any:
        if self.cfg.pooling == "cls":
            return hidden[:, 0]
        mask = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def encode(self, texts: Sequence[str], *, prefix: str = "", batch_size: int | None = None,
               progress: bool = True, desc: str = "embed") -> np.ndarray:
        import torch
        from tqdm.auto import tqdm

        batch_size = batch_size or self.cfg.batch_size
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        enc = self.tokenizer([prefix + t for t in texts], truncation=True, max_length=self.cfg.max_length)
        features = [{k: enc[k][i] for k in enc} for i in range(len(texts))]
        order = np.argsort([-len(f["input_ids"]) for f in features], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        autocast = (
            torch.autocast(self.device.split(":")[0], dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            for lo in tqdm(range(0, len(texts), batch_size), desc=desc, unit="batch", disable=not progress):
                rows = order[lo : lo + batch_size]
                batch = self.tokenizer.pad([features[i] for i in rows], return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state
                vecs = self._pool(hidden.float(), batch["attention_mask"])
                if self.cfg.normalize:
                    vecs = torch.nn.functional.normalize(vecs, p=2, dim=1)
                out[rows] = vecs.float().cpu().numpy()
        return out

    def manifest(self) -> dict[str, Any]:
        """What the index checks its queries against (no paths, no times: the same on every machine)."""
        c = self.cfg
        return {
            "name": c.name,
            "model": c.model,
            "revision": c.revision,
            "pooling": c.pooling,
            "normalize": bool(c.normalize),
            "max_length": int(c.max_length),
            "query_prefix": c.query_prefix,
            "passage_prefix": c.passage_prefix,
            "dim": self.dim,
            "weights_sha256": weights_sha256(c.model),
        }
