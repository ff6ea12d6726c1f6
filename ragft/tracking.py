"""The one module that talks to MLflow.

- The store: ``$MLFLOW_TRACKING_URI``, else a SQLite file at the *real* repository root (``$DVC_ROOT``
  inside queued DVC experiments, which run in temp copies of the repo), from an absolute path.
- The store and the experiment are created once, under a file lock, before any stage logs: a fresh
  SQLite store raced by several creators was seen corrupted on these machines.
- One parent run per experiment (DVC experiment name, else git commit + params hash); each stage
  run is a child of it. The evaluate stage writes the experiment's summary onto the parent.
- Every stage writes ``run.json`` (the run id) into its output directory, so lineage survives when
  DVC restores a cached output instead of rerunning the stage.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ragft import paths

log = logging.getLogger(__name__)

SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password|passwd|credential|auth)", re.IGNORECASE)
SECRET_VALUE = re.compile(r"(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{8,}|Bearer\s+\S+)")
MASK = "***"


class TrackingError(RuntimeError):
    """The tracking store cannot be used: the message says which URI and what to do."""


def repo_root() -> Path:
    """The real repository root: DVC_ROOT inside DVC (also in queued temp copies), else this checkout."""
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def mask_secrets(params: Mapping[str, Any]) -> dict[str, Any]:
    """Replace values of secret-looking keys, and secret-looking values, by ***."""
    out = {}
    for key, value in params.items():
        if SECRET_KEY.search(str(key)) and value not in (None, "", False):
            out[key] = MASK
        elif isinstance(value, str):
            out[key] = SECRET_VALUE.sub(MASK, value)
        else:
            out[key] = value
    return out


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def metric_name(name: str) -> str:
    """MLflow refuses '@' in metric names: recall@5 is logged as recall_at_5 (DVC files keep recall@5)."""
    return name.replace("@", "_at_")


def params_hash(cfg: Mapping[str, Any]) -> str:
    """Hash of the experiment's params. `arm` is left out: it selects one infer@ stage's arm on the
    command line, it is not part of the experiment (every arm must land under the same parent)."""
    tracked = {k: v for k, v in cfg.items() if k != "arm"}
    return hashlib.sha256(json.dumps(tracked, sort_keys=True, default=str).encode()).hexdigest()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast (seconds, not MLflow's minutes of retries) when a tracking server is down."""
    if not uri.startswith(("http://", "https://")):
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
def _store_lock() -> Iterator[None]:
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
    with _store_lock():
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name(name)
        if exp:
            return exp.experiment_id
        # With a local store, artifacts go beside it at the real root (not into a DVC temp copy's cwd).
        location = (repo_root() / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
        return client.create_experiment(name, artifact_location=location)


def experiment_key(cfg: Mapping[str, Any]) -> tuple[str, str]:
    """(key, display name) of the experiment this stage run belongs to."""
    exp_name = os.environ.get("DVC_EXP_NAME")
    if exp_name:
        return f"dvc-exp:{exp_name}", exp_name
    h = params_hash(cfg)[:10]
    return f"workspace:{git_commit()[:10]}:{h}", f"workspace-{h}"


def _lineage_tags(cfg: Mapping[str, Any]) -> dict[str, str]:
    return {
        "git_commit": git_commit(),
        "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "params_hash": params_hash(cfg),
    }


def parent_run(client: Any, experiment_id: str, cfg: Mapping[str, Any]) -> str:
    """The id of the experiment's parent run, created once."""
    key, display = experiment_key(cfg)
    with _store_lock():
        found = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`ragft.experiment_key` = '{key}' and tags.`ragft.kind` = 'experiment'",
            max_results=1,
        )
        if found:
            return found[0].info.run_id
        run = client.create_run(
            experiment_id,
            run_name=display,
            tags={"ragft.experiment_key": key, "ragft.kind": "experiment", **_lineage_tags(cfg)},
        )
        client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id


class StageRun:
    """Handle a stage uses to log; a no-op when tracking is disabled."""

    def __init__(self, stage: str, run_id: str | None, parent_id: str | None, experiment_id: str | None):
        self.stage, self.run_id, self.parent_id, self.experiment_id = stage, run_id, parent_id, experiment_id

    @property
    def active(self) -> bool:
        return self.run_id is not None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.active:
            import mlflow

            clean = {
                metric_name(k): float(v) for k, v in flatten(metrics).items() if isinstance(v, (int, float)) and not math.isnan(v)
            }
            mlflow.log_metrics(clean, step=step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self.active:
            import mlflow

            flat = mask_secrets(flatten(params))
            mlflow.log_params({k: str(v)[:6000] for k, v in flat.items()})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.active:
            import mlflow

            mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        if self.active and Path(path).exists():
            import mlflow

            if Path(path).is_dir():
                mlflow.log_artifacts(str(path), artifact_path)
            else:
                mlflow.log_artifact(str(path), artifact_path)

    def log_table(self, data: Any, artifact_file: str) -> None:
        if self.active:
            import mlflow

            mlflow.log_table(data=data, artifact_file=artifact_file)

    def record(self) -> dict[str, Any]:
        """What goes into run.json next to the stage's outputs."""
        return {
            "stage": self.stage,
            "run_id": self.run_id,
            "parent_run_id": self.parent_id,
            "experiment_id": self.experiment_id,
        }

    def write_record(self, out_dir: str | os.PathLike) -> None:
        from ragft.io import write_json

        write_json(Path(out_dir) / paths.RUN_RECORD, self.record())

    def log_summary(self, params: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """Write the experiment summary (full config, every arm's metrics) onto the parent run."""
        if not (self.active and self.parent_id):
            return
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri())
        flat = mask_secrets(flatten(params))
        existing = client.get_run(self.parent_id).data.params
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        new_params = [Param(k, str(v)[:6000]) for k, v in flat.items() if k not in existing]
        clean = {
            metric_name(k): float(v) for k, v in flatten(metrics).items() if isinstance(v, (int, float)) and not math.isnan(v)
        }
        metric_objs = [Metric(k, v, now, 0) for k, v in clean.items()]
        for i in range(0, max(len(new_params), len(metric_objs)), 100):
            client.log_batch(self.parent_id, metrics=metric_objs[i : i + 100], params=new_params[i : i + 100])


def _mark_stale_runs(client: Any, experiment_id: str, stage: str, key: str) -> None:
    """A stage killed with SIGKILL cannot end its own run: mark such leftovers KILLED."""
    stale = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`ragft.stage` = '{stage}' and tags.`ragft.experiment_key` = '{key}' and attributes.status = 'RUNNING'"
        ),
    )
    for run in stale:
        log.warning("marking run %s of stage %s KILLED (left RUNNING by an earlier, killed attempt)", run.info.run_id, stage)
        client.set_terminated(run.info.run_id, "KILLED")


@contextlib.contextmanager
def stage_run(stage: str, cfg: Mapping[str, Any], inputs: list[str] | None = None) -> Iterator[StageRun]:
    """Open the MLflow child run of ``stage``; end it FINISHED, FAILED, or KILLED (SIGTERM/SIGINT)."""
    tracking = cfg.get("tracking", {})
    if not tracking.get("enabled", True):
        yield StageRun(stage, None, None, None)
        return

    import mlflow
    from mlflow.tracking import MlflowClient

    experiment_id = ensure_experiment(tracking.get("experiment", "ragft"))
    client = MlflowClient(tracking_uri())
    parent_id = parent_run(client, experiment_id, cfg)
    key, _ = experiment_key(cfg)
    _mark_stale_runs(client, experiment_id, stage, key)
    input_hash = __import__("ragft.io", fromlist=["hash_paths"]).hash_paths(inputs or [])
    run = client.create_run(
        experiment_id,
        run_name=stage,
        tags={
            "mlflow.parentRunId": parent_id,
            "ragft.stage": stage,
            "ragft.experiment_key": key,
            "ragft.kind": "stage",
            "ragft.input_hash": input_hash,
            **_lineage_tags(cfg),
        },
    )
    handle = StageRun(stage, run.info.run_id, parent_id, experiment_id)

    def _on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _on_term)
    mlflow.start_run(run_id=run.info.run_id)
    status = "FAILED"
    try:
        yield handle
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        mlflow.end_run(status=status)
        signal.signal(signal.SIGTERM, previous)
