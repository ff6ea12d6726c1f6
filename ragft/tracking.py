"""The one module that talks to MLflow.

- The store: ``$MLFLOW_TRACKING_URI``, else a SQLite file at the *real* repository root (``$DVC_ROOT``
  inside queued DVC experiments, which run in temp copies of the repo), from an absolute path.
- The store and the experiment are created once, under a file lock, before any stage logs: a fresh
  SQLite store raced by several creators was seen corrupted on these machines.
- One parent run per experiment (DVC experiment name, else git commit + params hash); each stage
  run is a child of it. The evaluate stage writes the experiment's summary onto the parent.
- Every stage writes ``run.json`` (the run id) into its output directory, so lineage survives when
  DVC restores a cached output instead of rerunning the stage.
- The summary (parent) run carries ``reproducibility_info()``: code commit, DVC experiment, params
  hash, data and model hashes, package versions; the summary's ``run.json`` holds the same block.
- ``local_server()`` runs one ``mlflow server`` on 127.0.0.1 in front of the SQLite store, so many
  parallel writers (a sweep's DVC workers) go through one process instead of racing on the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ragft import paths

log = logging.getLogger(__name__)

# A key is secret-looking when its last dotted part *is* a secret name (hf_token, api_key, password),
# not when it merely contains one (max_new_tokens, api_key_env: the name of a variable, not its value).
SECRET_KEY = re.compile(
    r"(?:^|\.)(?:[\w-]*[_-])?(api[_-]?key|access[_-]?key|token|secret|password|passwd|credentials?|auth)$",
    re.IGNORECASE,
)
SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{8,}|Bearer\s+\S+"
    r"|(?<=://)[^/@\s:]+:[^/@\s]+(?=@)"  # user:password@ in a URL
    r"|(?<=[?&]api_key=)[^&\s]+|(?<=[?&]apikey=)[^&\s]+|(?<=[?&]token=)[^&\s]+"  # ?api_key=... in a URL
    r"|(?<=[?&]access_token=)[^&\s]+|(?<=[?&]key=)[^&\s]+|(?<=[?&]auth=)[^&\s]+)",
    re.IGNORECASE,
)
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


def redact_uri(uri: str) -> str:
    """A URI without its password (postgresql://user:pw@host/db → postgresql://user:***@host/db)."""
    return re.sub(r"(//[^/:@]*:)[^/]*@", r"\1***@", uri)


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def local_server(backend_uri: str, artifacts: str | os.PathLike, timeout: float = 180.0) -> Iterator[str]:
    """Run ``mlflow server`` on 127.0.0.1 (a free port) in front of ``backend_uri``; yield its URL.

    The server is always stopped on exit (its whole process group: uvicorn runs in a child). Create
    the store first (``ensure_experiment``): the server's own migrations then find it ready.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", str(Path(artifacts).resolve()),
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",  # one process owns the SQLite file; requests are served by its threads
    ]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no background job runner process
    with tempfile.NamedTemporaryFile(prefix="mlflow-server-", suffix=".log", delete=False) as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.info("mlflow server %s (pid %d) in front of %s", url, proc.pid, backend_uri)
        healthy = False
        try:
            _wait_for_health(url, proc, timeout, Path(log_file.name))
            healthy = True
            yield url
        finally:
            crashed = proc.poll() is not None
            _stop_process_group(proc)
            if healthy and not crashed:
                Path(log_file.name).unlink(missing_ok=True)
            else:
                log.warning("mlflow server %s failed; its log: %s", url, log_file.name)


def _wait_for_health(url: str, proc: subprocess.Popen, timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise TrackingError(f"mlflow server exited with code {proc.returncode} before it was ready:\n{tail}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TrackingError(f"mlflow server {url} did not answer /health within {timeout:.0f} s (log: {log_path})")


def _stop_process_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def experiment_key(cfg: Mapping[str, Any]) -> tuple[str, str]:
    """(key, display name) of the experiment this stage run belongs to."""
    exp_name = os.environ.get("DVC_EXP_NAME")
    if exp_name:
        return f"dvc-exp:{exp_name}", exp_name
    h = params_hash(cfg)[:10]
    return f"workspace:{git_commit()[:10]}:{h}", f"workspace-{h}"


def _lineage_tags(cfg: Mapping[str, Any]) -> dict[str, str]:
    sweep = {"ragft.sweep": os.environ["RAGFT_SWEEP"]} if os.environ.get("RAGFT_SWEEP") else {}
    return {
        **sweep,
        "git_commit": code_commit(),
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
        self.reproducibility: dict[str, Any] | None = None  # set by log_summary
        self._record_dirs: list[Path] = []

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
        """What goes into run.json next to the stage's outputs (the summary's also says how to reproduce it)."""
        record = {
            "stage": self.stage,
            "run_id": self.run_id,
            "parent_run_id": self.parent_id,
            "experiment_id": self.experiment_id,
        }
        if self.reproducibility is not None:
            record["reproducibility"] = self.reproducibility
        return record

    def write_record(self, out_dir: str | os.PathLike) -> None:
        from ragft.io import write_json

        self._record_dirs.append(Path(out_dir))
        write_json(Path(out_dir) / paths.RUN_RECORD, self.record())

    def log_summary(self, params: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """Write the experiment summary (full config, every arm's metrics, reproducibility info as
        ``repro.*`` tags) onto the parent run; add the reproducibility block to this stage's run.json."""
        if not (self.active and self.parent_id):
            return
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri())
        flat = mask_secrets(flatten(params))
        existing = client.get_run(self.parent_id).data.params

        now = int(time.time() * 1000)
        new_params = [Param(k, str(v)[:6000]) for k, v in flat.items() if k not in existing]
        clean = {
            metric_name(k): float(v) for k, v in flatten(metrics).items() if isinstance(v, (int, float)) and not math.isnan(v)
        }
        metric_objs = [Metric(k, v, now, 0) for k, v in clean.items()]
        self.reproducibility = reproducibility_info(params)
        # Tags, not params: params are immutable, and a rerun of evaluate (new data hashes) must update them.
        tags = [RunTag(f"repro.{k}", str(v)[:5000]) for k, v in mask_secrets(flatten(self.reproducibility)).items()]
        for i in range(0, max(len(new_params), len(metric_objs), len(tags)), 100):
            client.log_batch(
                self.parent_id, metrics=metric_objs[i : i + 100], params=new_params[i : i + 100], tags=tags[i : i + 100]
            )
        from ragft.io import write_json

        for out_dir in self._record_dirs:  # run.json written before the summary: rewrite it with the block
            write_json(out_dir / paths.RUN_RECORD, self.record())


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


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
        handle.log_metrics({"peak_rss_mb": peak_rss_mb()})   # the stage's memory, beside its seconds
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        mlflow.end_run(status=status)
        signal.signal(signal.SIGTERM, previous)
