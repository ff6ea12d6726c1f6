"""MLflow runs: one parent run per experiment (DVC experiment name, else git commit + params hash),
each stage run a child of it; the evaluate stage writes the experiment's summary onto the parent.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ragft import paths
from ragft.io import flatten
from ragft.tracking.lineage import code_commit, git_commit, inputs_hash, params_hash, reproducibility_info
from ragft.tracking.redact import mask_secrets
from ragft.tracking.store import ensure_experiment, store_lock, tracking_uri

log = logging.getLogger(__name__)


def metric_name(name: str) -> str:
    """MLflow refuses '@' in metric names: recall@5 is logged as recall_at_5 (DVC files keep recall@5)."""
    return name.replace("@", "_at_")


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
    with store_lock():
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

    @classmethod
    def disabled(cls, stage: str) -> StageRun:
        """A handle that logs nothing (tracking off, or a non-main rank of a distributed launch)."""
        return cls(stage, None, None, None)

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
def stage_run(stage: str, cfg: Mapping[str, Any], inputs: Callable[[], list[str]] | None = None) -> Iterator[StageRun]:
    """Open the MLflow child run of ``stage``; end it FINISHED, FAILED, or KILLED (SIGTERM/SIGINT).
    ``inputs()`` lists what the stage reads (their hash tags the run); called only when tracking is on."""
    tracking = cfg.get("tracking", {})
    if not tracking.get("enabled", True):
        yield StageRun.disabled(stage)
        return

    import mlflow
    from mlflow.tracking import MlflowClient

    experiment_id = ensure_experiment(tracking.get("experiment", "ragft"))
    client = MlflowClient(tracking_uri())
    parent_id = parent_run(client, experiment_id, cfg)
    key, _ = experiment_key(cfg)
    _mark_stale_runs(client, experiment_id, stage, key)
    input_hash = inputs_hash(inputs() if inputs else [])
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
