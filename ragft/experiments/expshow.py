"""The one reader of `dvc exp show --json`: the workspace, each baseline and its experiments, with their
state, params and eval metrics. Sweeps read it for the drain check, comparisons for the numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragft import paths

WORKSPACE = "workspace"
DONE, WAITING = "success", ("queued", "running")


@dataclass
class Shown:
    name: str
    rev: str
    baseline: str                   # the baseline's rev ("workspace" for the workspace itself)
    kind: str                       # workspace | baseline | experiment
    state: str                      # success | failed | queued | running
    params: dict[str, Any] = field(default_factory=dict)   # params.yaml, nested
    metrics: dict[str, Any] | None = None                  # metrics/metrics.json (DVC leaves out list values)


def _data(rev: dict[str, Any], kind: str, file: str) -> Any:
    return (((rev.get("data") or {}).get(kind) or {}).get(file) or {}).get("data")


def _entry(rev: dict[str, Any], name: str, baseline: str, kind: str, state: str) -> Shown:
    return Shown(name, rev.get("rev", ""), baseline, kind, state, _data(rev, "params", str(paths.PARAMS)) or {},
                 _data(rev, "metrics", str(paths.EVAL_METRICS)))


def parse(show: list[dict[str, Any]]) -> list[Shown]:
    """Every entry of a `dvc exp show --json` document. An experiment's state is its queue executor's; one
    with no executor (run in the workspace) succeeded unless its revision carries an error."""
    found = []
    for baseline in show:
        kind = WORKSPACE if baseline.get("rev") == WORKSPACE else "baseline"
        name = WORKSPACE if kind == WORKSPACE else (baseline.get("name") or baseline["rev"][:7])
        found.append(_entry(baseline, name, baseline.get("rev", ""), kind, "failed" if baseline.get("error") else DONE))
        for exp in baseline.get("experiments") or []:
            rev = (exp.get("revs") or [{}])[0]
            state = (exp.get("executor") or {}).get("state") or ("failed" if rev.get("error") else DONE)
            if rev.get("error") and state == DONE:
                state = "failed"
            name = exp.get("name") or rev.get("name") or rev.get("rev", "")[:7]
            found.append(_entry(rev, name, baseline.get("rev", ""), "experiment", state))
    return found


def experiments(show: list[dict[str, Any]]) -> list[Shown]:
    """The experiments only (not the workspace nor the baselines)."""
    return [s for s in parse(show) if s.kind == "experiment"]


def metrics_at(rev: str, root: str | Path = ".") -> dict[str, Any] | None:
    """metrics/metrics.json as committed at ``rev`` (an experiment's commit) in the repository at ``root``;
    None when that revision has none or it is not JSON (a failed experiment)."""
    import json
    import subprocess

    proc = subprocess.run(["git", "show", f"{rev}:{paths.EVAL_METRICS.as_posix()}"], cwd=root,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None
