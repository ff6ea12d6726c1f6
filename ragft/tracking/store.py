"""The MLflow store: where it is, and creating it (and the experiment) once.

- The store: ``$MLFLOW_TRACKING_URI``, else a SQLite file at the *real* repository root (``$DVC_ROOT``
  inside queued DVC experiments, which run in temp copies of the repo), from an absolute path.
- The store and the experiment are created once, under a file lock, before any stage logs: a fresh
  SQLite store raced by several creators was seen corrupted on these machines.
- The experiment is tagged ``mlflow.experimentKind=custom_model_development``, so MLflow 3's UI opens
  it on the runs table rather than on its (empty) GenAI overview.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


class TrackingError(RuntimeError):
    """The tracking store cannot be used: the message says which URI and what to do."""


def repo_root() -> Path:
    """The real repository root: DVC_ROOT inside DVC (also in queued temp copies), else this checkout."""
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast (seconds, not MLflow's minutes of retries) when a tracking server is down."""
    if not is_server(uri):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
            if resp.status >= 500:
                raise TrackingError(f"MLflow server {uri} answered HTTP {resp.status} on /health")
    except (urllib.error.URLError, OSError) as err:
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable ({err}). Start it, fix MLFLOW_TRACKING_URI, "
            "or unset MLFLOW_TRACKING_URI to use the local SQLite store."
        ) from None


@contextlib.contextmanager
def store_lock() -> Iterator[None]:
    uri = tracking_uri()
    # Beside a SQLite store (so every process using that file shares the lock), else at the repo root.
    lock_dir = Path(uri[len("sqlite:///"):]).parent if uri.startswith("sqlite:///") else repo_root()
    lock_path = lock_dir / ".mlflow.lock"
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_experiment(name: str) -> str:
    """Create the store and the experiment once (under a lock); return the experiment id."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    _check_reachable(uri)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    mlflow.set_tracking_uri(uri)
    with store_lock():
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name(name)
        if exp:
            return exp.experiment_id
        # With a local store, artifacts go beside it at the real root (not into a DVC temp copy's cwd).
        location = (repo_root() / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
        return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
