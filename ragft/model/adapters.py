"""Adapters trained elsewhere (LLaMA-Factory, unsloth, axolotl, peft itself): checked against the candidate's base
before any work, so a wrong folder fails with the file, the field and the fix instead of a shape error mid-stage.

Two checks:

- ``check_adapter`` (when params.yaml is read, every stage): the folder is a PEFT adapter (adapter_config.json),
  its weights are safetensors (pickled ``adapter_model.bin`` is never loaded: unpickling can run code), and the
  base it names (``base_model_name_or_path``) is the candidate's base. The names match when the adapter's base is
  the base's folder (``models/<base>``), or when one name contains the other once both are reduced to lower-case
  letters and digits, the organisation and a ``.gguf``/quantisation suffix dropped ("HuggingFaceTB/SmolLM2-135M-
  Instruct" matches the GGUF file "SmolLM2-135M-Instruct.Q4_1.gguf").
- ``check_shapes`` (infer, once the base is loaded, before generating): every module the adapter targets exists
  in the base, and each LoRA matrix fits it (lora_A: r × in_features, lora_B: out_features × r).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ragft.config.schema import ConfigError

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
PICKLED = ("adapter_model.bin", "adapter_model.pt", "adapter_model.pth")


def _words(name: str) -> str:
    """A model name reduced for comparison: its last path part, without .gguf and a Q4_1-style suffix, letters
    and digits only, lower case."""
    last = re.split(r"[/\\:]", str(name).rstrip("/\\"))[-1]
    last = re.sub(r"\.gguf$", "", last, flags=re.IGNORECASE)
    last = re.sub(r"[.-](q\d\w*|f16|f32|bf16)$", "", last, flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]", "", last.lower())


def base_names(base_cfg: Any, base: str) -> list[str]:
    """What the candidate's base may be called: its folder, its path (hub id, folder, GGUF file), the GGUF file."""
    names = [f"models/{base}"]
    for key in ("path", "gguf_file"):
        value = getattr(base_cfg, key, None) if not isinstance(base_cfg, dict) else base_cfg.get(key)
        if value:
            names.append(str(value))
    manifest = Path("models") / base / "manifest.json"
    if manifest.exists():  # the built base's own name (scratch models are known by it)
        names.append(str(json.loads(manifest.read_text(encoding="utf-8")).get("name") or ""))
    return [n for n in names if n]


def names_match(adapter_base: str, names: list[str]) -> bool:
    resolved = Path(adapter_base)
    for name in names:
        if name.startswith("models/") and resolved.resolve() == Path(name).resolve():
            return True
        a, b = _words(adapter_base), _words(name)
        if a and b and (a in b or b in a):
            return True
    return False


def read_config(folder: str | Path, field_name: str) -> dict:
    """The adapter's adapter_config.json, after the folder's checks (ConfigError naming ``field_name``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"field '{field_name}' is {str(folder)!r}: no such folder. Fix: give the folder a PEFT "
                          "adapter was saved to (`model.save_pretrained(folder)`), relative to the repository root")
    if not (folder / CONFIG).exists():
        raise ConfigError(f"field '{field_name}': {folder / CONFIG} is missing: not a PEFT adapter folder. Fix: point "
                          "it at the folder `save_pretrained` wrote (adapter_config.json + adapter_model.safetensors)")
    if not (folder / WEIGHTS).exists():
        pickled = [p for p in PICKLED if (folder / p).exists()]
        detail = (f"only {pickled}, pickled weights, which ragft never loads (unpickling can run code)" if pickled
                  else f"no {WEIGHTS}")
        raise ConfigError(f"field '{field_name}': {folder} has {detail}. Fix: save the adapter with safetensors "
                          "(`save_pretrained(folder, safe_serialization=True)`, the default of recent peft)")
    return json.loads((folder / CONFIG).read_text(encoding="utf-8"))


def check_adapter(folder: str | Path, base_cfg: Any, base: str, field_name: str) -> dict:
    """ConfigError unless ``folder`` is a safetensors PEFT adapter trained on the base named ``base``."""
    config = read_config(folder, field_name)
    adapter_base = str(config.get("base_model_name_or_path") or "")
    names = base_names(base_cfg, base)
    if adapter_base and not names_match(adapter_base, names):
        raise ConfigError(
            f"field '{field_name}': the adapter in {folder} was trained on {adapter_base!r} "
            f"({Path(folder) / CONFIG}: base_model_name_or_path), but the candidate's base {base!r} is "
            f"{names[1] if len(names) > 1 else names[0]!r}. Fix: set the candidate's base to the model it was trained "
            "on (declare it in `bases`), or use an adapter trained on this base")
    return config


def check_shapes(folder: str | Path, model: Any, field_name: str) -> None:
    """ConfigError unless every LoRA matrix of the adapter fits the module of ``model`` (the loaded base) it targets."""
    from safetensors import safe_open

    folder = Path(folder)
    modules = dict(model.named_modules())
    problems = []
    with safe_open(str(folder / WEIGHTS), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            m = re.match(r"(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.\w+)?\.weight$", key)
            if not m:
                continue
            target, which = m.group(1), m.group(2)
            module = modules.get(target)
            if module is None:
                problems.append(f"{target} (not a module of the base)")
                continue
            shape = tuple(f.get_slice(key).get_shape())
            size = _in_out(module)
            if size is None:
                continue
            n_in, n_out = size
            if (which == "A" and shape[1] != n_in) or (which == "B" and shape[0] != n_out):
                problems.append(f"{key} {list(shape)} against {target} ({n_in} in, {n_out} out)")
    if problems:
        raise ConfigError(f"field '{field_name}': the adapter in {folder} does not fit the candidate's base: "
                          f"{'; '.join(problems[:3])}{' …' if len(problems) > 3 else ''}. Fix: use an adapter "
                          "trained on this base, or set the candidate's base to the one it was trained on")


def _in_out(module: Any) -> tuple[int, int] | None:
    """(in_features, out_features) of a Linear, a GPT-2 Conv1D or an Embedding; None for other modules."""
    if hasattr(module, "in_features") and hasattr(module, "out_features"):
        return int(module.in_features), int(module.out_features)
    if type(module).__name__ == "Conv1D":  # transformers' GPT-2 projection: weight is (in, out)
        n_in, n_out = module.weight.shape
        return int(n_in), int(n_out)
    if hasattr(module, "num_embeddings"):  # LoRA on an embedding: A is r × vocabulary, B is dim × r
        return int(module.num_embeddings), int(module.embedding_dim)
    return None
