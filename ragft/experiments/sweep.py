"""`python -m ragft.experiments.sweep run|seeds`: queue a DVC experiment sweep and run it until the queue is drained.

Why not `dvc queue start -j N`: it was seen leaving experiments queued forever here (dvc#10673,
#10398); `dvc exp run --run-all -j N` runs them all. Around that, a sweep:

1. refuses a busy queue (queued/running experiments, or workers left from an earlier run: they would
   run this sweep with their own, stale environment);
2. queues the experiments (`dvc exp run --queue -S ...`, Hydra sweep syntax `-S 'a=1,2'`);
3. creates the MLflow store and experiment once, before any parallel work (racing creators corrupted a
   fresh SQLite store here), then starts one `mlflow server` on 127.0.0.1 in front of it, so the
   parallel workers (each in a temp copy of the repo) all log into the one store at the real root.
   A remote MLFLOW_TRACKING_URI (http/https) is used as it is;
4. runs `dvc exp run --run-all -j N`, stops the server (always), and checks every queued experiment
   succeeded and nothing is left queued or running; `dvc exp run --run-all` itself exits 0 when an
   experiment failed, so this check is what makes a failed sweep fail;
5. records the sweep (`reports/sweeps/<name>.json`: overrides, experiment names, states, timings), so
   `python -m ragft.experiments.compare --sweep <name>` compares exactly these experiments.

A CLI for a person at a terminal: it prints its final result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ragft import paths
from ragft.experiments.expshow import DONE, WAITING, Shown, experiments

log = logging.getLogger("ragft.experiments.sweep")

SWEEPS_DIR = paths.REPORTS / "sweeps"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
WAITING_TASK = re.compile(r"^\S+\s+(\S+)\s+.*\s(Queued|Running)\s*$", re.MULTILINE)  # a `dvc queue status` row
WORKERS = re.compile(r"Worker status: (\d+) active, (\d+) idle")


class SweepError(RuntimeError):
    """The sweep cannot start, or did not finish cleanly: the message says what and what to do."""


def drain_problems(states: list[Shown], names: list[str]) -> list[str]:
    """What keeps the sweep from being drained: its experiments not succeeded, anything still waiting."""
    by_name = {s.name: s for s in states}
    problems = []
    for name in names:
        st = by_name.get(name)
        if st is None:
            problems.append(f"{name}: missing from `dvc exp show`")
        elif st.state != DONE:
            problems.append(f"{name}: {st.state}")
    others = [s for s in states if s.state in WAITING and s.name not in names]
    problems += [f"{s.name}: still {s.state} in the queue" for s in others]
    return problems


# --------------------------------------------------------------------------- running DVC


def dvc_root() -> Path:
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Path(Repo.find_root()).resolve()
    except NotDvcRepoError as err:
        raise SweepError(f"{Path.cwd()}: not inside a DVC repository ({err}). Run the sweep from the repo.") from None


def worker_env() -> dict[str, str]:
    """The environment of `dvc` and the queue workers it spawns (they run `dvc` and `python` from PATH,
    so this interpreter's bin comes first). Importing ragft put the offline switches in os.environ."""
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    if env.get("PATH", "").split(os.pathsep)[0] != venv_bin:
        env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    return env


def dvc(root: Path, env: dict[str, str], *args: str, capture: bool = True, timeout: float | None = 600) -> str:
    cmd = [str(Path(sys.executable).with_name("dvc")), *args]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=capture, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip()[-3000:] if capture else "(see the output above)"
        raise SweepError(f"`dvc {' '.join(args)}` failed with exit code {proc.returncode}:\n{detail}")
    return proc.stdout if capture else ""


def exp_show(root: Path, env: dict[str, str], rev: str | None = None) -> list[dict]:
    return json.loads(dvc(root, env, "exp", "show", "--json", *(["--rev", rev] if rev else [])))


def parse_queue_status(text: str) -> tuple[list[tuple[str, str]], int, int]:
    """`dvc queue status` → ([(name, status) of tasks still Queued or Running], active workers, idle workers).
    It has no --json; it also sees tasks queued on other baselines, which `dvc exp show` leaves out."""
    waiting = [(m.group(1), m.group(2).lower()) for m in WAITING_TASK.finditer(text)]
    match = WORKERS.search(text)
    active, idle = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    return waiting, active, idle


def queue_status(root: Path, env: dict[str, str]) -> tuple[list[tuple[str, str]], int, int]:
    return parse_queue_status(dvc(root, env, "queue", "status"))


def check_queue_idle(root: Path, env: dict[str, str], wait: float = 30.0) -> None:
    """Refuse to start on a busy queue. Idle workers exit ~10 s after their last task, so wait for them."""
    waiting, _, _ = queue_status(root, env)
    if waiting:
        listing = ", ".join(f"{name} ({state})" for name, state in waiting)
        raise SweepError(
            f"the DVC experiment queue is not empty: {listing}. A sweep runs only its own experiments: "
            "run those first (`dvc exp run --run-all`) or drop them (`dvc queue remove --queued`; "
            "`dvc queue kill <name>` for running ones), then start the sweep again."
        )
    deadline = time.monotonic() + wait
    _, active, idle = queue_status(root, env)
    while active + idle and time.monotonic() < deadline:
        time.sleep(3)
        _, active, idle = queue_status(root, env)
    if active or idle:
        raise SweepError(
            f"{active + idle} DVC queue worker(s) still running from an earlier run; they would run this sweep "
            "without its MLflow server. Stop them with `dvc queue stop` (or wait ~10 s), then start the sweep again."
        )


# --------------------------------------------------------------------------- the sweep


@dataclass
class SweepResult:
    name: str
    record_path: Path
    record: dict[str, Any]
    problems: list[str]


@contextlib.contextmanager
def tracking_server(root: Path, store: str, experiments: set[str]) -> Iterator[str]:
    """Yield the URI the workers log to: ``store`` itself if it is a server, else a local server in front
    of it. The store and its experiments are created first, by this one process."""
    from ragft import tracking

    for name in sorted(experiments):
        tracking.ensure_experiment(name)  # creates a fresh SQLite store once, before any parallel writer
    if tracking.is_server(store):
        log.info("logging to the tracking server %s", store)
        yield store
        return
    if not store.startswith("sqlite:///"):
        raise SweepError(f"MLFLOW_TRACKING_URI={store}: a sweep needs an http(s) server or a sqlite:/// store")
    with tracking.local_server(store, root / "mlartifacts") as url:
        yield url


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_queue(root: Path, env: dict[str, str]) -> None:
    """After an interrupt: the workers would go on without the (stopped) MLflow server, so stop them."""
    for args in (("queue", "stop", "--kill"), ("queue", "remove", "--queued")):
        try:
            dvc(root, env, *args, timeout=120)
        except (SweepError, subprocess.TimeoutExpired) as err:
            log.warning("%s", err)


def run_sweep(overrides: list[str], jobs: int = 2, name: str | None = None, kind: str = "sweep",
              named: list[tuple[str, list[str]]] | None = None, record: bool = True) -> SweepResult:
    """Queue ``overrides`` (`dvc exp run -S` syntax, one queue call: `a=1,2` sweeps), or else each of ``named``
    ((experiment name, its overrides): `ragft tune`'s trials), run them with ``jobs`` workers, check the queue
    drained. ``record``: write reports/sweeps/<name>.json (a tune writes one record for all its batches)."""
    if not overrides and not named:
        raise SweepError("nothing to sweep: give at least one -S override, e.g. -S 'retrieval.top_k=1,3'")
    if jobs < 1:
        raise SweepError(f"-j {jobs}: the number of parallel workers must be at least 1")
    name = name or f"{kind}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if not NAME.match(name):
        raise SweepError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (it names {SWEEPS_DIR}/<name>.json)")
    root = dvc_root()
    os.chdir(root)  # the tracking store's default location is the repo root
    env = worker_env()
    record_path = root / SWEEPS_DIR / f"{name}.json"
    if record and record_path.exists():
        raise SweepError(f"{record_path.relative_to(root)} exists: pick another --name, or delete the file to reuse it")

    check_queue_idle(root, env)
    if named:
        for exp_name, exp_overrides in named:
            log.info("queueing %s: %s", exp_name, " ".join(f"-S {o!r}" for o in exp_overrides))
            dvc(root, env, "exp", "run", "--queue", "--name", exp_name, *[a for o in exp_overrides for a in ("-S", o)])
    else:
        log.info("queueing %s", " ".join(f"-S {o!r}" for o in overrides))
        dvc(root, env, "exp", "run", "--queue", *[a for o in overrides for a in ("-S", o)])
    queued = [s for s in experiments(exp_show(root, env)) if s.state == "queued"]
    if not queued:
        raise SweepError("`dvc exp run --queue` queued nothing: check the overrides")
    names = [s.name for s in queued]
    baseline = queued[0].baseline
    log.info("queued %d experiments: %s", len(names), ", ".join(names))
    tracked = {str(s.params.get("tracking", {}).get("experiment", "ragft")) for s in queued
               if s.params.get("tracking", {}).get("enabled", True)}

    from ragft.tracking import TrackingError, redact_uri, tracking_uri

    store = tracking_uri()
    env["RAGFT_SWEEP"] = os.environ.get("RAGFT_SWEEP") or name  # tags each experiment's MLflow parent run
    start = time.monotonic()
    interrupted = False
    with _sigterm_as_interrupt():
        try:
            with tracking_server(root, store, tracked) if tracked else contextlib.nullcontext(store) as uri:
                env["MLFLOW_TRACKING_URI"] = uri
                log.info("running with %d worker(s): dvc exp run --run-all -j %d", jobs, jobs)
                dvc(root, env, "exp", "run", "--run-all", "-j", str(jobs), capture=False, timeout=None)
        except KeyboardInterrupt:
            interrupted = True
            log.error("interrupted: stopping the queue workers and dropping this sweep's queued experiments")
            _stop_queue(root, env)
        except (SweepError, TrackingError) as err:
            log.error("%s", err)  # the drain check below says which experiments are affected
    wall = time.monotonic() - start

    states = experiments(exp_show(root, env))
    problems = drain_problems(states, names)
    seen = {p.split(":")[0] for p in problems}
    problems += [f"{n}: still {st} in the queue" for n, st in queue_status(root, env)[0] if n not in seen]
    if interrupted:
        problems.insert(0, "interrupted (Ctrl-C / SIGTERM)")
    by_name = {s.name: s for s in states}
    entry = {
        "name": name,
        "kind": kind,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "overrides": overrides if not named else [o for _, exp_overrides in named for o in exp_overrides],
        "jobs": jobs,
        "baseline_rev": baseline,
        "tracking_store": redact_uri(store),
        "wall_seconds": round(wall, 1),
        "experiments": [_exp_entry(n, by_name.get(n)) for n in names],
        "drained": not problems,
        "problems": problems,
    }
    if record:
        write_record(record_path, entry)
    return SweepResult(name, record_path, entry, problems)


class Runner:
    """How a batch of named experiments (`ragft tune`'s trials, `ragft injection`'s settings) runs and is read
    back; the real one uses DVC's queue through run_sweep (tests pass a stand-in)."""

    def __init__(self, kind: str = "tune"):
        self.kind = kind

    def run(self, batch: list[tuple[str, list[str]]], jobs: int, tag: str) -> list[str]:
        """Run the named experiments; return the problems (empty: every one succeeded)."""
        os.environ["RAGFT_SWEEP"] = tag   # every experiment's MLflow parent run carries the search's name
        result = run_sweep([], jobs=jobs, name=f"{tag}-batch", kind=self.kind, named=batch, record=False)
        return result.problems

    def metrics(self, name: str) -> tuple[str, dict | None, str]:
        """(state, metrics/metrics.json, the experiment's log) of a finished experiment."""
        from ragft.experiments.expshow import metrics_at

        root, env = dvc_root(), worker_env()
        found = {s.name: s for s in experiments(exp_show(root, env))}.get(name)
        if found is None:
            return "missing", None, ""
        doc = metrics_at(found.rev, root)
        try:
            text = dvc(root, env, "queue", "logs", name, timeout=120)
        except Exception as err:  # the log is only for the reuse count: a missing one must not fail the search
            log.warning("no queue log for %s (%s): its stage counts are unknown", name, err)
            text = ""
        return found.state, doc, text


def claim_name(name: str | None, prefix: str, results_dir: Path, experiment_names, root: Path) -> str:
    """The name of a search or knob sweep (default <prefix>-<timestamp>), refused (SweepError) before anything
    runs when it is not a name, when <results_dir>/<name>.json exists, or when any of
    ``experiment_names(name)`` (the DVC experiments it would create) exists already."""
    name = name or f"{prefix}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if not NAME.match(name):
        raise SweepError(f"--name {name!r}: use letters, digits, '.', '_' and '-'")
    if (results_dir / f"{name}.json").exists():
        raise SweepError(f"{results_dir / name}.json exists: pick another --name")
    taken = {s.name for s in experiments(exp_show(root, worker_env()))} & set(experiment_names(name))
    if taken:
        raise SweepError(f"experiments {sorted(taken)} exist already: pick another --name")
    return name


def write_outputs(base: Path, record: dict[str, Any], markdown: str, png: bytes | None) -> list[Path]:
    """A search's or a knob sweep's result files: <base>.json (the record), <base>.md and, when there is a
    figure, <base>.png, each written atomically; returns the paths written."""
    from ragft.io import atomic_file, write_json

    write_json(base.with_suffix(".json"), record)
    with atomic_file(base.with_suffix(".md")) as fh:
        fh.write(markdown)
    written = [base.with_suffix(".json"), base.with_suffix(".md")]
    if png:
        with atomic_file(base.with_suffix(".png"), "wb") as fh:
            fh.write(png)
        written.append(base.with_suffix(".png"))
    return written


def write_record(path: Path, entry: dict[str, Any]) -> None:
    """reports/sweeps/<name>.json: what `ragft compare --sweep <name>` compares."""
    from ragft.io import write_json

    write_json(path, entry)


def record_knob_sweep(root: Path, record: dict[str, Any], kind: str) -> None:
    """reports/sweeps/<name>.json of a knob sweep (`ragft injection`, `ragft crossover`): its shared overrides
    (``record["fixed"]``) and experiments (``record["experiments"]``: name, state), for `ragft compare --sweep`."""
    write_record(root / SWEEPS_DIR / f"{record['name']}.json", {
        "name": record["name"], "kind": kind, "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "overrides": record["fixed"], "jobs": record["jobs"], "baseline_rev": record.get("baseline_rev", ""),
        "wall_seconds": record["wall_seconds"], "drained": not record["problems"], "problems": record["problems"],
        "experiments": record["experiments"]})


def _exp_entry(name: str, state: Shown | None) -> dict[str, Any]:
    return {"name": name, "rev": state.rev, "state": state.state} if state else {"name": name, "state": "missing"}


def seed_overrides(extra: list[str]) -> list[str]:
    """`-S seed=<s1>,<s2>,...` from eval.seeds in conf/ (the top-level seed; finetune/inference/retrieval
    seeds interpolate it; dataset and base model keep their own seeds), plus any extra overrides."""
    from ragft.config import compose_conf

    seeds = compose_conf(dvc_root() / paths.CONF_DIR)["eval"]["seeds"]
    if not seeds:
        raise SweepError("eval.seeds is empty in conf/eval/: list the seeds to run, e.g. seeds: [0, 1, 2]")
    return [f"seed={','.join(str(s) for s in seeds)}", *extra]


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`ragft sweep` and `ragft seeds`: the overrides, the workers, the name."""
    parser.add_argument("-S", "--set-param", dest="overrides", action="append", default=[],
                        help="a `dvc exp run -S` override; comma lists sweep: -S 'chunking.size=64,128'")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel DVC queue workers (default 2)")
    parser.add_argument("-n", "--name", help="the sweep's name (default: <command>-<timestamp>)")


def run(args: argparse.Namespace, kind: str = "sweep") -> int:
    """Run the sweep (``kind`` sweep: the -S overrides; seeds: every seed of eval.seeds, plus the overrides)."""
    try:
        overrides = seed_overrides(args.overrides) if kind == "seeds" else args.overrides
        result = run_sweep(overrides, jobs=args.jobs, name=args.name, kind=kind)
    except SweepError as err:
        log.error("%s", err)
        return 2
    rec = result.record
    n = len(rec["experiments"])
    print(f"\nsweep {result.name}: {n} experiments, {rec['jobs']} workers, {rec['wall_seconds']} s")
    for exp in rec["experiments"]:
        print(f"  {exp['name']:<24} {exp['state']}")
    print(f"record: {result.record_path}")
    if result.problems:
        print("NOT DRAINED: " + "; ".join(result.problems))
        print("Logs: `dvc queue logs <name>`; `dvc exp show` lists what ran. Fix and rerun the failed settings.")
        return 1
    print(f"queue drained. Compare: `make compare ARGS='--sweep {result.name}'`")
    return 0
