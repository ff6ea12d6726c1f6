"""Atomic file and directory writes, and the JSON/JSONL formats every stage exchanges.

A stage killed mid-way must never leave an output that DVC could cache as finished, so every
output is written under a temporary name in the same directory and renamed into place only once
it is complete (``os.replace`` is atomic on one filesystem). Temp names carry the writer's pid, so
what a SIGKILLed writer left behind is swept by the next write of the same output. Nothing here
ever unpickles.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """Bad input data: the message names the file, the row or field, and the fix."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_temps(path: Path) -> list[Path]:
    """Remove what a killed writer of ``path`` left beside it (SIGKILL skips every cleanup): temp and old
    siblings named after a pid that no longer runs. Never touches a live writer's files."""
    removed = []
    for kind in ("tmp", "old"):
        prefix = f".{path.name}.{kind}-"
        for stale in path.parent.glob(prefix + "*"):
            pid = stale.name[len(prefix):].split("-")[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink(missing_ok=True)
                removed.append(stale)
    return removed


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; outputs are ordinary readable files
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    os.chmod(tmp, 0o644)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys ({"a": {"b": 1}} → {"a.b": 1}): params, metrics."""
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def json_safe(v: Any, digits: int = 6) -> Any:
    """JSON-safe and stable: floats rounded, NaN → null (JSON has no NaN)."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, digits)
    if isinstance(v, (list, tuple)):
        return [json_safe(x, digits) for x in v]
    if isinstance(v, dict):
        return {k: json_safe(x, digits) for k, x in v.items()}
    return v


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_file(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, ensure_ascii=False)
        fh.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found. Run the stage that produces it (`dvc repro`).")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid UTF-8 JSON ({err}). Regenerate it with `dvc repro`.") from err


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_file(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    return n


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found. Run the stage that produces it (`dvc repro`).")
    rows = []
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise DataError(f"{path}:{lineno}: not valid JSON ({err.msg}). Fix or remove the row.") from err
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 ({err.reason} at byte {err.start}). Re-encode the file as UTF-8.") from err
    return rows


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of one file's bytes, read in blocks (indexes and weights can be large)."""
    digest = hashlib.sha256()
    _update(digest, Path(path))
    return digest.hexdigest()


def _update(digest: Any, path: Path) -> None:
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)


def hash_paths(paths: Iterable[str | os.PathLike]) -> str:
    """Content hash (sha256) of files and directory trees, independent of mtimes and order on disk."""
    digest = hashlib.sha256()
    for root in sorted(Path(p) for p in paths):
        files = sorted(f for f in root.rglob("*") if f.is_file()) if root.is_dir() else [root]
        for f in files:
            if not f.exists():
                continue
            digest.update(str(f.relative_to(root.parent) if root.is_dir() else f.name).encode())
            _update(digest, f)
    return digest.hexdigest()
