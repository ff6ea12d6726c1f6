"""`reranker=cross_encoder`: a sentence-transformers CrossEncoder rescoring each question's first-stage top
`retrieval.depth` chunks (one batched pass over every (question, chunk) pair, with a progress bar).

The reranker is checked before any work: a local folder must hold a sequence-classification config with
one output and safetensors weights; a hub id should be pinned to a revision. Weights load as safetensors
only and remote code runs only when `reranker.trust_remote_code` says so. The raw logit is the score
(no sigmoid: it only squeezes distinct logits together); ties keep the first-stage order.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ragft.config import ConfigError

log = logging.getLogger(__name__)

FIX = ("Fix: set reranker.path to a cross-encoder folder (config.json with a *ForSequenceClassification "
       "architecture and one label, safetensors weights, a tokenizer), or reranker=none.")


def check(rcfg: Any) -> dict[str, Any]:
    """What the reranker is (path, revision, architecture, weights hash), refusing anything that is not a
    loadable cross-encoder, before a model is loaded."""
    from ragft.io import read_json
    from ragft.retrieval.embedding import weights_sha256

    ref = str(rcfg.path)
    local = Path(ref)
    if ref.startswith((".", "/", "~")) or local.exists():
        local = local.expanduser()
        if not local.is_dir():
            raise ConfigError(f"params.yaml: field 'reranker.path' is {ref!r}: no such folder. {FIX}")
        if not (local / "config.json").is_file():
            raise ConfigError(f"params.yaml: field 'reranker.path' is {ref!r}: {local / 'config.json'} not found. {FIX}")
        config = read_json(local / "config.json")
        archs = config.get("architectures") or []
        if not any(str(a).endswith("ForSequenceClassification") for a in archs):
            raise ConfigError(f"params.yaml: field 'reranker.path' is {ref!r}: {local / 'config.json'} declares "
                              f"architectures {archs}, not a cross-encoder (*ForSequenceClassification). {FIX}")
        labels = len(config.get("id2label") or {}) or int(config.get("num_labels", 1))
        if labels != 1:
            raise ConfigError(f"params.yaml: field 'reranker.path' is {ref!r}: the classifier has {labels} labels; a "
                              f"reranker scores with one. {FIX}")
        if not list(local.glob("*.safetensors")):
            raise ConfigError(f"params.yaml: field 'reranker.path' is {ref!r}: no *.safetensors weights in {local} "
                              f"(ragft loads no pickled weights). {FIX}")
        return {"path": str(local.resolve()), "revision": None, "architecture": archs[0],
                "weights_sha256": weights_sha256(str(local))}
    if not rcfg.revision:
        log.warning("reranker.path %r is a hub id without a pinned reranker.revision: results may change upstream", ref)
    return {"path": ref, "revision": rcfg.revision, "architecture": None, "weights_sha256": None}


class CrossEncoderReranker:
    """The configured cross-encoder, loaded once."""

    def __init__(self, rcfg: Any):
        import torch
        from sentence_transformers import CrossEncoder

        self.cfg = rcfg
        self.identity = check(rcfg)
        device = str(rcfg.device)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.model = CrossEncoder(
                self.identity["path"], revision=rcfg.revision, trust_remote_code=bool(rcfg.trust_remote_code),
                device=device, max_length=int(rcfg.max_length), activation_fn=torch.nn.Identity(),
                model_kwargs={"use_safetensors": True})
        except (OSError, ValueError) as err:
            raise ConfigError(f"params.yaml: field 'reranker.path' is {rcfg.path!r}: cannot load it as a "
                              f"cross-encoder ({str(err).splitlines()[0]}). {FIX}") from None

    def rerank(self, questions: dict[str, str], ranked: list[dict], texts: dict[str, str]) -> list[dict]:
        """``ranked`` rows reordered by the cross-encoder: ``scores`` become its scores; the first stage's
        scores and ranks are kept beside them (``retriever_scores``, ``retriever_ranks``, 1-based)."""
        pairs = [(questions[r["qid"]], texts[c]) for r in ranked for c in r["chunk_ids"]]
        log.info("reranking %d (question, chunk) pairs with %s", len(pairs), self.identity["path"])
        flat = self.model.predict(pairs, batch_size=int(self.cfg.batch_size), show_progress_bar=True,
                                  convert_to_numpy=True) if pairs else []
        out, at = [], 0
        for r in ranked:
            n = len(r["chunk_ids"])
            scores = [float(s) for s in flat[at:at + n]]
            at += n
            order = sorted(range(n), key=lambda i: (-scores[i], i))
            row = {**r, "chunk_ids": [r["chunk_ids"][i] for i in order], "doc_ids": [r["doc_ids"][i] for i in order],
                   "scores": [round(scores[i], 6) for i in order],
                   "retriever_scores": [r["scores"][i] for i in order], "retriever_ranks": [i + 1 for i in order]}
            row.pop("ranks", None)
            if "ranks" in r:
                row["retriever_component_ranks"] = {k: [v[i] for i in order] for k, v in r["ranks"].items()}
            out.append(row)
        return out
