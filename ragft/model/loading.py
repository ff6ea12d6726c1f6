"""Load a generator saved by the base_model stage (and optionally a LoRA adapter from finetune).

Weights load as safetensors only, and remote code never runs unless the config says so.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ragft.io import DataError, read_json

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")  # weight formats that unpickle (can run code) on load


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str = "auto", device: str = "auto"):
    """`model.dtype` as a torch dtype: auto is bf16 on CUDA (native there, half the memory of fp32) and fp32
    on CPU (CPUs without native bf16 run it tens of times slower, and fp32 keeps CPU results exact)."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if str(dtype) == "auto":
        return torch.bfloat16 if resolve_device(device) == "cuda" else torch.float32
    return getattr(torch, str(dtype))


def require_safetensors(model_dir: Path, rerun: str) -> None:
    """DataError unless ``model_dir`` holds safetensors weights: pickle-based files (.bin/.pt) can run code on load."""
    if not any(model_dir.glob("*.safetensors")):
        found = sorted(f.name for f in model_dir.iterdir() if f.suffix in PICKLE_SUFFIXES)
        raise DataError(
            f"{model_dir}: no *.safetensors weights"
            + (f" (only {found}, which are never loaded: unpickling can run code)" if found else "")
            + f". Fix: `{rerun}` (ragft saves safetensors only)."
        )


def load_tokenizer(base_dir: str | Path):
    """The base model's tokenizer as generation uses it: left padding, a pad token."""
    from transformers import AutoTokenizer

    base_dir = Path(base_dir)
    if not (base_dir / "config.json").exists():
        raise DataError(f"{base_dir}: no model here (config.json missing). Run `dvc repro base_model`.")
    manifest = read_json(base_dir / "manifest.json") if (base_dir / "manifest.json").exists() else {}
    tokenizer = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=bool(manifest.get("trust_remote_code", False)))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def is_full_model(model_dir: str | Path) -> bool:
    """Whether a fine-tuned model's folder holds whole weights (full fine-tuning), not a LoRA adapter."""
    d = Path(model_dir)
    return (d / "config.json").exists() and not (d / "adapter_config.json").exists()


def finetune_method(model_dir: str | Path) -> str:
    """What a fine-tuned model's folder holds: "full" (whole weights) or "lora" (an adapter); its arms' words."""
    return "full" if is_full_model(model_dir) else "lora"


def load_generator(base_dir: str | Path, adapter_dir: str | Path | None = None, *, device: str = "auto",
                   dtype: str = "auto", merge: bool = False, check_adapter=None):
    """Return ``(model, tokenizer, manifest)`` ready for batched generation (left padding, eval mode), in
    ``dtype`` (`model.dtype`) on ``device``. ``adapter_dir``: a fine-tuned model's folder, a LoRA adapter or,
    after full fine-tuning (finetune.method=full), the whole model's weights, loaded instead of the base's.
    ``merge``: fold the LoRA adapter into the weights (generation then costs what the base model's does; a
    trainable adapter must stay unmerged). ``check_adapter(folder, model)``: refuses an adapter that does not fit the
    loaded base (ragft.model.adapters.check_shapes, for adapters trained elsewhere). The manifest is always the base
    model's."""
    from transformers import AutoModelForCausalLM

    base_dir = Path(base_dir)
    tokenizer = load_tokenizer(base_dir)
    require_safetensors(base_dir, "dvc repro base_model")
    manifest = read_json(base_dir / "manifest.json") if (base_dir / "manifest.json").exists() else {}
    trust = bool(manifest.get("trust_remote_code", False))
    weights_dir = base_dir
    if adapter_dir is not None and is_full_model(adapter_dir):
        require_safetensors(adapter_dir, "dvc repro finetune")
        weights_dir, adapter_dir = Path(adapter_dir), None
    model = AutoModelForCausalLM.from_pretrained(weights_dir, use_safetensors=True, trust_remote_code=trust,
                                                 dtype=resolve_dtype(dtype, device))
    if adapter_dir is not None:
        from peft import PeftModel

        adapter_dir = Path(adapter_dir)
        if not (adapter_dir / "adapter_config.json").exists():
            raise DataError(
                f"{adapter_dir}: no LoRA adapter here (adapter_config.json missing). Run `dvc repro finetune`."
            )
        require_safetensors(adapter_dir, "dvc repro finetune")
        if check_adapter is not None:
            check_adapter(adapter_dir, model)
        model = PeftModel.from_pretrained(model, adapter_dir)
        if merge:
            model = model.merge_and_unload()
    model.to(resolve_device(device)).eval()
    return model, tokenizer, manifest
