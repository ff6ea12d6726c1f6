"""What produced an experiment's numbers, and how to get it back: code commit, DVC experiment, params
hash, data and model hashes, package versions (``reproducibility_info``, on the summary run); and
the hash of a stage's inputs (on every stage run).

Every stage also writes ``run.json`` (its MLflow run id) into its output directory, so lineage
survives when DVC restores a cached output instead of rerunning the stage.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ragft import paths


def params_hash(cfg: Mapping[str, Any]) -> str:
    """Hash of the experiment's params. `arm` is left out: it selects one foreach stage's model on the
    command line, it is not part of the experiment (every arm must land under the same parent)."""
    tracked = {k: v for k, v in cfg.items() if k != "arm"}
    return hashlib.sha256(json.dumps(tracked, sort_keys=True, default=str).encode()).hexdigest()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def code_commit() -> str:
    """The commit the code came from: a queued DVC experiment runs in a temp copy whose HEAD is not the
    user's commit, so DVC's baseline revision wins when set."""
    return os.environ.get("DVC_EXP_BASELINE_REV") or git_commit()


CODE_PATHS = ("ragft", "stages", "conf", "dvc.yaml", "pyproject.toml")


def _git_dirty(root: Path) -> bool | None:
    """Uncommitted changes to the code or conf/ (params.yaml is covered by the params hash)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


# The stack whose versions change results; recorded on every summary run.
CORE_PACKAGES = (
    "dvc", "hydra-core", "omegaconf", "mlflow", "transformers", "datasets", "peft", "faiss-cpu", "ragas", "torch",
    "numpy",
)
# The data every arm depends on; models/* (base + each fine-tuned adapter) are added by listing.
DATA_DIRS = (paths.PREPARED, paths.CHUNKS, paths.EMBEDDINGS, paths.INDEX)


def package_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in CORE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _locked_outs(lock_file: Path) -> dict[str, str]:
    """{out path: "md5:<hash>"} from dvc.lock: the keys of DVC's cache, so `dvc pull` can fetch exactly them."""
    import yaml

    if not lock_file.exists():
        return {}
    stages = (yaml.safe_load(lock_file.read_text(encoding="utf-8")) or {}).get("stages", {})
    return {
        out["path"]: f"md5:{out['md5']}"
        for stage in stages.values()
        for out in stage.get("outs", [])
        if out.get("md5")
    }


def data_hashes(root: str | os.PathLike = ".") -> dict[str, str]:
    """Hash of each input data folder and model folder. Under DVC (which dumps dvc.lock after every
    stage, so upstream entries are fresh) the dvc.lock md5; otherwise, or when not locked, a content
    sha256 of the folder."""
    from ragft.io import hash_paths

    root = Path(root)
    locked = _locked_outs(root / "dvc.lock") if os.environ.get("DVC_STAGE") else {}
    models = root / paths.MODELS
    model_dirs = sorted(d.relative_to(root) for d in models.iterdir() if d.is_dir()) if models.is_dir() else []
    hashes = {}
    for rel in [*DATA_DIRS, *model_dirs]:
        key = Path(rel).as_posix()
        if key in locked:
            hashes[key] = locked[key]
        elif (root / rel).exists():
            hashes[key] = "sha256:" + hash_paths([root / rel])
    return hashes


def _sha256_json(obj: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def model_revisions(cfg: Mapping[str, Any], root: str | os.PathLike = ".") -> dict[str, Any]:
    """Which generator and embedder: the hub revision (or the scratch config's hash) and weight hashes,
    from the manifests the base_model and embed stages wrote, else from the config."""
    root = Path(root)
    model_cfg, emb_cfg = cfg.get("model", {}) or {}, cfg.get("embedder", {}) or {}

    def manifest(path: Path) -> dict[str, Any]:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    base = manifest(root / paths.BASE_MODEL / "manifest.json")
    source = base.get("source", model_cfg.get("source"))
    generator = {
        "source": source,
        "name": base.get("name", model_cfg.get("name")),
        "path": base.get("path", model_cfg.get("path")),
        "revision": base.get("revision", model_cfg.get("revision")),
        "weights_sha256": base.get("weights_sha256"),
    }
    if source == "scratch":
        generator["scratch_config_sha256"] = _sha256_json(base.get("scratch", model_cfg.get("scratch")))
    emb = manifest(root / paths.EMBEDDINGS_MANIFEST)
    embedder = {k: emb.get(k, emb_cfg.get(k)) for k in ("name", "model", "revision")}
    embedder["weights_sha256"] = emb.get("weights_sha256")
    return {"generator": generator, "embedder": embedder}


def reproducibility_info(cfg: Mapping[str, Any], root: str | os.PathLike = ".") -> dict[str, Any]:
    """Everything needed to say what produced an experiment's numbers, and to get it back."""
    root = Path(root)
    return {
        "git_commit": code_commit(),
        "git_dirty": _git_dirty(root),
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "dvc_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "sweep": os.environ.get("RAGFT_SWEEP", ""),
        "params_hash": params_hash(cfg),
        "data": data_hashes(root),
        "models": model_revisions(cfg, root),
        "packages": package_versions(),
    }


def inputs_hash(inputs: Iterable[str | os.PathLike], root: str | os.PathLike = ".") -> str:
    """One hash of a stage's inputs: an upstream output by the md5 dvc.lock holds for it (DVC computed it
    already; fresh under DVC, which writes the lock after every stage), anything else by its content."""
    from ragft.io import hash_paths

    root = Path(root)
    locked = _locked_outs(root / "dvc.lock") if os.environ.get("DVC_STAGE") else {}
    digest = hashlib.sha256()
    for rel in sorted(Path(p).as_posix() for p in inputs):
        value = locked.get(rel) or ("sha256:" + hash_paths([root / rel]))
        digest.update(f"{rel}\0{value}\n".encode())
    return digest.hexdigest()
