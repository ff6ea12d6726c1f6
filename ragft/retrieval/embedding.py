"""Text → L2-normalised vectors with any Hugging Face encoder (AutoModel + pooling).

One code path encodes chunks and questions, so the two always live in the same space. The same
model reference also gives the chunker its tokenizer: chunks are budgeted in the embedder's tokens.
Weights load as safetensors only; remote code runs only when the config says so.

A text's vector depends on its own tokens only, never on which other texts share its batch: each
text is padded to a width that depends on its own length alone (``length_batches``) and batched
with texts of the same width. That is what lets the per-chunk cache (ragft.retrieval.embed_cache) and the Ray
engine (ragft.retrieval.ray_engine) write exactly the bytes a plain in-process run writes. Tested on CPU, in
fp32 and bf16; on CUDA, kernels chosen by matrix shape may still differ in the last bits.
``Embedder`` puts the configured engine behind the cache.

`dtype: bfloat16` also works on CPU: on CPUs with native bf16 (AVX512-BF16, AMX) it measured ~2x
the fp32 throughput, with cosine >= 0.9999 against fp32 (bench/embed_throughput.py); `auto` keeps
fp32 on CPU so that the default vectors are the same on every CPU.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import itertools
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
    files = sorted(ref.glob("*.safetensors"))
    return _sha256_files(tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))


@functools.lru_cache(maxsize=8)
def _sha256_files(files: tuple[tuple[str, int, int], ...]) -> str:
    """Hashed once per process per (path, size, mtime): the manifest and the cache identity both need it."""
    digest = hashlib.sha256()
    for name, _, _ in files:
        with open(name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


# Texts are padded to their own length rounded up to PAD_MULTIPLE (and to at least MIN_WIDTH tokens) and
# batched only with texts of the same padded length. On one thread, multiples 1, 4 and 8 cost the same
# CPU time (~10% less than sentence-transformers' sort-and-pad-to-the-longest) and 16 more; 8 makes
# far fewer, fuller batches than 1 on corpora of many distinct lengths (bench/embed_throughput.py).
# MIN_WIDTH: a lone text of fewer than ~12 tokens makes matrix products so small that the CPU
# kernels sum in another order (last-bit differences against the same text in a batch); from 16
# rows up the result no longer depends on the batch.
PAD_MULTIPLE = 8
MIN_WIDTH = 16

# Bump when the way vectors are computed changes (batching, pooling code): cached vectors then stop matching.
ENCODING_VERSION = 2          # 2: PAD_MULTIPLE 1 -> 8


def compute_target(ecfg: Any) -> tuple[str, str]:
    """(device type, dtype) the vectors are computed with: what `device`/`dtype: auto` resolve to.

    auto → cuda (bf16) where a GPU is present (for the Ray engine: where actors get a GPU), else cpu (fp32).
    """
    device = ecfg.device
    if device == "auto":
        if ecfg.engine == "ray":
            device = "cuda" if ecfg.ray.num_gpus_per_actor > 0 else "cpu"
        else:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = ecfg.dtype
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device.split(":")[0], dtype


def model_dim(ecfg: Any) -> int:
    """The encoder's output width, from its config alone (no weights loaded)."""
    from transformers import AutoConfig

    return int(_from_pretrained(AutoConfig, ecfg).hidden_size)


def manifest(ecfg: Any, dim: int | None = None) -> dict[str, Any]:
    """What the index checks its queries against (no paths, no times: the same on every machine).

    Engine and cache settings are left out on purpose: they do not change a single byte of the vectors.
    """
    return {
        "name": ecfg.name,
        "model": ecfg.model,
        "revision": ecfg.revision,
        "pooling": ecfg.pooling,
        "normalize": bool(ecfg.normalize),
        "max_length": int(ecfg.max_length),
        "query_prefix": ecfg.query_prefix,
        "passage_prefix": ecfg.passage_prefix,
        "dim": int(dim if dim is not None else model_dim(ecfg)),
        "weights_sha256": weights_sha256(ecfg.model),
    }


def identity(ecfg: Any, dim: int | None = None) -> dict[str, Any]:
    """Everything that decides the bytes of a vector besides its text: the per-chunk cache's key.

    The model (reference, revision, weights hash), pooling, normalisation, max length, the device
    type and dtype vectors are computed in, the encoding scheme, and the torch/transformers versions
    (their kernels decide the last bits). Prefixes are part of the text that is keyed.
    """
    import torch
    import transformers

    device, dtype = compute_target(ecfg)
    return {
        **{k: v for k, v in manifest(ecfg, dim).items() if k not in ("query_prefix", "passage_prefix")},
        "device": device,
        "dtype": dtype,
        "encoding_version": ENCODING_VERSION,
        "pad_multiple": PAD_MULTIPLE,
        "min_width": MIN_WIDTH,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def length_batches(lengths: Sequence[int], batch_size: int, multiple: int = PAD_MULTIPLE,
                   cap: int | None = None, min_width: int = MIN_WIDTH) -> list[tuple[int, np.ndarray]]:
    """(padded length, row indices) batches: each text with others of the same padded length.

    A text's padded length is its length rounded up to ``multiple`` and to at least ``min_width`` (at
    most ``cap``): a function of the text alone, so its vector never depends on its batch-mates.
    Longest first; stable.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    padded = np.maximum(-(-lengths // multiple) * multiple, min_width)
    if cap is not None:
        padded = np.maximum(lengths, np.minimum(padded, cap))
    order = np.argsort(-padded, kind="stable")
    batches = []
    for width in np.unique(padded)[::-1]:
        rows = order[padded[order] == width]
        batches += [(int(width), rows[lo : lo + batch_size]) for lo in range(0, len(rows), batch_size)]
    return batches


class Encoder:
    """A Hugging Face encoder with mean/cls pooling, as sentence-transformers would compute it.

    ``encode`` tokenizes everything once, batches texts of the same padded length (see
    ``length_batches``), and returns rows in the caller's order (float32, L2-normalised if asked).
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
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(
                "params.yaml: field 'embedder.device' is 'cuda' but torch sees no GPU. "
                "Fix: set embedder.device=auto (or cpu)."
            )
        dtype = ecfg.dtype
        if dtype == "auto":
            dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
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
        batches = length_batches([len(f["input_ids"]) for f in features], batch_size, cap=self.cfg.max_length)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        autocast = (
            torch.autocast(self.device.split(":")[0], dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            for width, rows in tqdm(batches, desc=desc, unit="batch", disable=not progress):
                batch = self.tokenizer.pad([features[i] for i in rows], padding="max_length", max_length=width,
                                           return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state
                vecs = self._pool(hidden.float(), batch["attention_mask"])
                if self.cfg.normalize:
                    vecs = torch.nn.functional.normalize(vecs, p=2, dim=1)
                out[rows] = vecs.float().cpu().numpy()
        return out

    def manifest(self) -> dict[str, Any]:
        return manifest(self.cfg, self.dim)


class Embedder:
    """What the embed stage calls: the configured engine (in-process or Ray) behind the per-chunk cache.

    The model is loaded only when some text misses the cache, and once for all calls. Use as a
    context manager so a Ray instance it started is shut down. ``stats`` counts hits and misses.
    """

    def __init__(self, ecfg: Any, cache: Any = None, progress: bool = True):
        self.cfg = ecfg
        self.cache = cache
        self.progress = progress
        self._engine: Any = None
        self.stats = {"texts": 0, "cache_hits": 0, "encoded": 0, "corrupt": 0}
        self.encoded_per_group: list[int] = []      # texts encoded per group of the last embed_many call

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._engine is not None and hasattr(self._engine, "close"):
            self._engine.close()
        self._engine = None

    def _encode(self, texts: list[str], desc: str) -> np.ndarray:
        if self._engine is None:
            if self.cfg.engine == "ray":
                from ragft.retrieval.ray_engine import RayEncoder

                self._engine = RayEncoder(self.cfg)
            else:
                self._engine = Encoder(self.cfg)
        return self._engine.encode(texts, progress=self.progress, desc=desc)

    def embed(self, texts: Sequence[str], prefix: str = "", desc: str = "embed") -> np.ndarray:
        """Vectors of ``prefix + text`` for each text, in order: cached ones looked up, the rest encoded."""
        return self.embed_many([(texts, prefix)], desc=desc)[0]

    def embed_many(self, groups: Sequence[tuple[Sequence[str], str]], desc: str = "embed") -> list[np.ndarray]:
        """``embed`` for several (texts, prefix) groups with one encoder call for all their cache misses
        (one Ray actor pool, not one per group)."""
        full = [[prefix + t for t in texts] for texts, prefix in groups]
        flat = [t for g in full for t in g]
        self.stats["texts"] += len(flat)
        if self.cache is None:
            vectors, miss = None, np.arange(len(flat))
        else:
            vectors, hit = self.cache.get(flat)
            self.stats["corrupt"] += self.cache.last_corrupt
            miss = np.flatnonzero(~hit)
        self.stats["cache_hits"] += len(flat) - len(miss)
        self.stats["encoded"] += len(miss)
        if vectors is None:
            vectors = self._encode(flat, desc)
        elif len(miss):
            fresh = self._encode([flat[i] for i in miss], desc)
            vectors[miss] = fresh
            self.cache.put([flat[i] for i in miss], fresh)
        if self.cache is not None:
            log.info("%s: %d of %d from the cache, %d encoded", desc, len(flat) - len(miss), len(flat), len(miss))
        bounds = np.cumsum([0] + [len(g) for g in full])
        self.encoded_per_group = np.bincount(np.searchsorted(bounds, miss, side="right") - 1,
                                             minlength=len(full)).tolist()
        return [vectors[lo:hi] for lo, hi in itertools.pairwise(bounds)]
