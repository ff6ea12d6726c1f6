"""`ragft tune SEARCH.yaml`: a seeded search over params that tunes on the dev split and reports on eval.

A search file (tune/*.yaml) declares the space (any params.yaml keys: int / float ranges, categorical
choices), the objective (one arm's metric on the dev split, optionally minus a cost penalty from the
decision summary), the trial budget, the workers, the seed, and the overrides every trial shares.

Why Optuna's TPE: a sampler that learns from the trials so far (not a grid, not greedy node by node),
seeded, with an ask-and-tell interface, so the trials can run as DVC experiments on the sweep machinery
(ragft/experiments/sweep.py): each batch of ``jobs`` trials is queued and run with `dvc exp run
--run-all -j jobs`; stages a trial does not change come from DVC's run cache. The default (the shared
overrides alone) runs as one more experiment, so the best trial is compared with it on the same splits.

Honesty: the objective must name the dev split (an eval objective is refused: eval is what is reported),
every choice is made on dev, and the result states the best trial's dev − eval gap (optimism from
selecting on dev). Everything is checked before the first trial: unknown params, empty ranges, a budget
below 1, a param that no stage reads, an arm that is not in the experiment, no dev split.

Writes reports/tune/<name>.json (every trial: params, dev objective, eval score, state, stages run and
reused), reports/tune/<name>.md and its history plot reports/tune/<name>.png, and reports/sweeps/<name>.json
(so `ragft compare --sweep <name>` compares the trials).
"""

from __future__ import annotations

import argparse
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ragft import paths
from ragft.experiments.sweep import Runner

log = logging.getLogger("ragft.experiments.tune")

TUNE_DIR = paths.REPORTS / "tune"
KINDS = ("int", "float", "categorical")
METRICS = ("match", "exact_match", "f1")
# `dvc exp run` output, one line per stage: run, unchanged, or restored from the run cache
RAN = re.compile(r"^Running stage '([^']+)'", re.MULTILINE)
REUSED = re.compile(r"^Stage '([^']+)' (?:didn't change, skipping|is cached - skipping run)", re.MULTILINE)


class TuneError(ValueError):
    """The search cannot start (bad search file): the message names the file, the field and the fix."""


@dataclass(frozen=True)
class Param:
    """One dimension of the search space."""

    key: str                        # a params.yaml key, e.g. retrieval.top_k
    kind: str                       # int | float | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: int | None = None
    choices: tuple = ()

    def distribution(self):
        import optuna.distributions as d

        if self.kind == "int":
            return d.IntDistribution(int(self.low), int(self.high), log=self.log, step=self.step or 1)
        if self.kind == "float":
            return d.FloatDistribution(float(self.low), float(self.high), log=self.log)
        return d.CategoricalDistribution(list(self.choices))

    def extremes(self) -> list[Any]:
        """The values that bound the space (checked against the schema before any trial)."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


@dataclass
class Search:
    """A search file, checked."""

    source: str
    space: list[Param]
    arm: str                        # the objective's arm, e.g. raft-retrieved
    metric: str                     # match | exact_match | f1
    trials: int = 8
    jobs: int = 2
    seed: int = 0
    startup_trials: int = 4         # TPE samples at random this many trials before it models the good ones
    cost_weight: float = 0.0        # objective = 100 × dev metric − cost_weight × USD per 1,000 queries
    fixed: list[str] = field(default_factory=list)   # `-S` overrides every trial (and the default) shares

    @property
    def objective(self) -> str:
        return f"dev.{self.arm}.{self.metric}"


def _error(source: str, fld: str, problem: str, fix: str) -> TuneError:
    return TuneError(f"{source}: field '{fld}' {problem}. Fix: {fix}.")


def parse_objective(source: str, text: Any) -> tuple[str, str]:
    """``dev.<arm>.<metric>`` → (arm, metric); an objective on the eval split is refused."""
    parts = str(text).split(".")
    if parts and parts[0] in ("eval", "arms") or (len(parts) == 2 and parts[1] in METRICS):
        raise _error(source, "objective", f"is {text!r}, a metric of the eval split",
                     "tune on the dev split, e.g. objective: dev.raft-retrieved.match; the eval split is what the "
                     "result reports, and choosing by it would make the reported score optimistic")
    if len(parts) != 3 or parts[0] != "dev" or parts[2] not in METRICS:
        raise _error(source, "objective", f"is {text!r}", f"write dev.<arm>.<metric>, metric one of {list(METRICS)}")
    return parts[1], parts[2]


def parse_param(source: str, key: str, spec: Any) -> Param:
    where = f"space.{key}"
    if not isinstance(spec, dict):
        raise _error(source, where, f"is {spec!r}", "give {type: int|float, low: .., high: ..} or "
                     "{type: categorical, choices: [..]}")
    kind = str(spec.get("type", "categorical" if "choices" in spec else ""))
    if kind not in KINDS:
        raise _error(source, f"{where}.type", f"is {kind!r}", f"use one of {list(KINDS)}")
    unknown = sorted(set(spec) - {"type", "low", "high", "log", "step", "choices"})
    if unknown:
        raise _error(source, where, f"has unknown keys {unknown}", "use type, low, high, log, step or choices")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise _error(source, f"{where}.choices", f"is {choices!r}, an empty space", "list at least one value")
        return Param(key, kind, choices=tuple(choices))
    low, high = spec.get("low"), spec.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise _error(source, where, f"needs numbers low and high (got {low!r}, {high!r})", "give both bounds")
    if kind == "int" and not all(float(v).is_integer() for v in (low, high)):
        raise _error(source, where, f"is an int range with bounds {low!r}, {high!r}", "give integer bounds")
    if not low < high:
        raise _error(source, where, f"is an empty range (low {low} is not below high {high})",
                     "make low < high, or fix the value in 'fixed' instead of searching it")
    use_log = bool(spec.get("log", False))
    if use_log and low <= 0:
        raise _error(source, f"{where}.log", f"needs low > 0 (low is {low})", "raise low or drop log")
    return Param(key, kind, low, high, use_log, spec.get("step"))


def parse_search(data: Any, source: str, trials: int | None = None, jobs: int | None = None) -> Search:
    """A search file's content (a mapping) → Search; ``trials``/``jobs`` from the command line win."""
    if not isinstance(data, dict):
        raise TuneError(f"{source}: expected a mapping with space, objective, trials (see tune/testbed.yaml)")
    unknown = sorted(set(data) - {"space", "objective", "trials", "jobs", "seed", "startup_trials", "cost_weight",
                                  "fixed"})
    if unknown:
        raise _error(source, unknown[0], "is not a search setting",
                     "use space, objective, trials, jobs, seed, startup_trials, cost_weight, fixed")
    space = data.get("space")
    if not isinstance(space, dict) or not space:
        raise _error(source, "space", f"is {space!r}", "declare at least one param, e.g. retrieval.top_k: "
                     "{type: int, low: 1, high: 5}")
    arm, metric = parse_objective(source, data.get("objective"))
    search = Search(source, [parse_param(source, str(k), v) for k, v in space.items()], arm, metric,
                    trials=int(trials if trials is not None else data.get("trials", 8)),
                    jobs=int(jobs if jobs is not None else data.get("jobs", 2)),
                    seed=int(data.get("seed", 0)), startup_trials=int(data.get("startup_trials", 4)),
                    cost_weight=float(data.get("cost_weight", 0.0)), fixed=[str(o) for o in data.get("fixed") or []])
    if search.trials < 1:
        raise _error(source, "trials", f"is {search.trials}, a budget below 1", "give at least one trial")
    if search.jobs < 1:
        raise _error(source, "jobs", f"is {search.jobs}", "give at least one worker")
    if search.cost_weight < 0:
        raise _error(source, "cost_weight", f"is {search.cost_weight}", "give 0 (no cost term) or a positive weight")
    return search


def load_search(path: str | Path, trials: int | None = None, jobs: int | None = None) -> Search:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = Path(path)
    if not path.exists():
        known = sorted(str(p) for p in Path("tune").glob("*.yaml"))
        raise TuneError(f"{path}: no such search file (the repository's: {', '.join(known) or 'none'})")
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except (OmegaConfBaseException, ValueError) as err:
        raise TuneError(f"{path}: not valid YAML ({err})") from None
    return parse_search(data, str(path), trials, jobs)


# --------------------------------------------------------------------------- checks against the pipeline


def stage_params(dvc_yaml: str | Path = "dvc.yaml") -> dict[str, set[str]]:
    """Stage → the params keys it declares (dvc.yaml; a foreach stage's `do` block)."""
    import yaml

    stages = (yaml.safe_load(Path(dvc_yaml).read_text(encoding="utf-8")) or {}).get("stages") or {}
    out: dict[str, set[str]] = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        declared = set()
        for p in body.get("params") or []:
            declared |= {str(k) for k in p} if isinstance(p, dict) else {str(p)}
        out[name] = declared
    return out


def readers(key: str, declared: dict[str, set[str]]) -> list[str]:
    """The stages whose declared params cover ``key`` (a stage declaring `finetune` reads `finetune.lr`)."""
    return sorted(s for s, keys in declared.items()
                  if any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in keys))


def _select(cfg: dict, key: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check_search(search: Search, conf_dir: str | Path = paths.CONF_DIR, dvc_yaml: str | Path = "dvc.yaml") -> dict:
    """Every check that needs the pipeline, before any trial; return the default's composed params."""
    from ragft.arms import product
    from ragft.config import ConfigError, compose_conf, validate
    from ragft.config.compose import diff_keys

    src = search.source
    try:
        base = compose_conf(conf_dir, search.fixed)
    except ConfigError as err:
        raise _error(src, "fixed", f"does not compose ({err})", "correct the override") from None
    if not float(base["dataset"].get("dev_fraction") or 0) > 0:
        raise _error(src, "fixed", "composes a config without a dev split (dataset.dev_fraction is 0)",
                     "add `dataset.dev_fraction=0.25` (or another share) to fixed: tuning looks only at dev")
    arms = [a.name for a in product(base["arms"]["models"], base["arms"]["contexts"])]
    if search.arm not in arms:
        raise _error(src, "objective", f"names the arm {search.arm!r}, which this experiment does not have",
                     f"choose one of {arms}")
    declared = stage_params(dvc_yaml)
    for p in search.space:
        found, _ = _select(base, p.key)
        if not found:
            raise _error(src, f"space.{p.key}", "is not a param of this experiment (not in the composed params.yaml)",
                         "use a key of params.yaml, e.g. retrieval.top_k, finetune.lr, finetune.lora.r, chunking.size")
        # each bound through the schema's own checks; what it changes in params.yaml (a key, or what
        # interpolates it: `seed` moves finetune.seed ...) must be read by some stage
        changed: set[str] = set()
        for value in p.extremes():
            try:
                cfg = compose_conf(conf_dir, [*search.fixed, f"{p.key}={_override_value(value)}"])
                validate(cfg, src)
            except ConfigError as err:
                raise _error(src, f"space.{p.key}", f"includes {value!r}, which the config refuses ({err})",
                             "narrow the range to values the schema accepts") from None
            changed |= diff_keys(base, cfg)
        if not any(readers(k, declared) for k in changed or {p.key}):
            raise _error(src, f"space.{p.key}", "is read by no stage of dvc.yaml, so no trial would change anything",
                         "search a param a stage declares under params: in dvc.yaml")
    return base


def _override_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    return str(value)


def overrides(search: Search, params: dict[str, Any]) -> list[str]:
    """A trial's `-S` overrides: the shared ones, then its sampled values."""
    return [*search.fixed, *(f"{k}={_override_value(v)}" for k, v in params.items())]


# --------------------------------------------------------------------------- scoring a finished experiment


def objective_value(search: Search, metrics: dict | None) -> float | None:
    """The objective of a finished experiment's metrics.json (None: not there, e.g. the experiment failed)."""
    dev = ((metrics or {}).get("dev") or {}).get(search.arm) or {}
    value = dev.get(search.metric)
    if not isinstance(value, (int, float)) or math.isnan(value):
        return None
    score = 100.0 * value
    if search.cost_weight:
        cost = (((metrics or {}).get("decision") or {}).get("arms") or {}).get(search.arm, {}).get("token_cost_per_1k")
        score -= search.cost_weight * float(cost or 0.0)
    return score


def eval_score(search: Search, metrics: dict | None) -> tuple[float | None, list | None]:
    """The objective arm's metric on eval (points) and its CI, for the report (never for a choice)."""
    arm = ((metrics or {}).get("arms") or {}).get(search.arm) or {}
    value, ci = arm.get(search.metric), arm.get(f"{search.metric}_ci")
    if not isinstance(value, (int, float)):
        return None, None
    return 100.0 * value, [100.0 * c for c in ci] if isinstance(ci, list) else None


def dev_ci(search: Search, metrics: dict | None) -> list | None:
    ci = (((metrics or {}).get("dev") or {}).get(search.arm) or {}).get(f"{search.metric}_ci")
    return [100.0 * c for c in ci] if isinstance(ci, list) else None


def stage_counts(log_text: str) -> dict[str, list[str]]:
    """Which stages an experiment ran and which DVC reused (unchanged, or from the run cache), from its log."""
    return {"ran": sorted(set(RAN.findall(log_text))), "reused": sorted(set(REUSED.findall(log_text)))}


# --------------------------------------------------------------------------- the loop


@dataclass
class Trial:
    number: int                    # -1: the default
    name: str                      # the DVC experiment
    params: dict[str, Any]
    state: str = "queued"
    objective: float | None = None
    dev_ci: list | None = None
    eval: float | None = None
    eval_ci: list | None = None
    stages: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("number", "name", "params", "state", "objective", "dev_ci", "eval",
                                              "eval_ci", "stages")}


def _warn(problems: list[str]) -> None:
    if problems:   # the failed trials are told to the sampler as failed; the search goes on
        log.warning("not every experiment of the batch succeeded: %s", "; ".join(problems))


def _read(search: Search, runner: Runner, t: Trial) -> None:
    """Fill a finished trial from its experiment: state, dev objective, eval score, stages run and reused."""
    t.state, doc, text = runner.metrics(t.name)
    t.objective = objective_value(search, doc) if t.state == "success" else None
    t.dev_ci = dev_ci(search, doc)
    t.eval, t.eval_ci = eval_score(search, doc)
    t.stages = stage_counts(text)
    log.info("%s: dev objective %s, eval %s, state %s", t.name, t.objective, t.eval, t.state)


def run_search(search: Search, name: str, runner: Runner | None = None) -> dict[str, Any]:
    """Run the default, then ``search.trials`` trials in batches of ``search.jobs``; return the result record."""
    import optuna

    runner = runner or Runner()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=search.seed, n_startup_trials=min(search.startup_trials, search.trials))
    study = optuna.create_study(direction="maximize", sampler=sampler, study_name=name)
    distributions = {p.key: p.distribution() for p in search.space}
    default = Trial(-1, f"{name}-default", {})
    trials: list[Trial] = []
    started = datetime.now()
    # the default first, alone: its stages fill DVC's run cache, so the trials reuse every stage they do not
    # change (run beside a trial, both would compute the shared ones, such as the base model, at once)
    log.info("the default: %s", default.name)
    _warn(runner.run([(default.name, overrides(search, {}))], 1, name))
    _read(search, runner, default)
    while len(trials) < search.trials:
        asked = [study.ask(distributions) for _ in range(min(search.jobs, search.trials - len(trials)))]
        batch = [Trial(t.number, f"{name}-t{t.number}", dict(t.params)) for t in asked]
        log.info("batch of %d: %s", len(batch), "; ".join(f"{t.name} {t.params}" for t in batch))
        _warn(runner.run([(t.name, overrides(search, t.params)) for t in batch], search.jobs, name))
        for ask, t in zip(asked, batch, strict=True):
            _read(search, runner, t)
            if t.objective is None:
                study.tell(ask, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(ask, t.objective)
        trials += batch
    done = [t for t in trials if t.objective is not None]
    best = max(done, key=lambda t: (t.objective, -t.number)) if done else None
    return {
        "name": name,
        "source": search.source,
        "objective": search.objective,
        "cost_weight": search.cost_weight,
        "sampler": f"optuna TPESampler(seed={search.seed}, n_startup_trials={sampler._n_startup_trials})",
        "space": {p.key: {"type": p.kind, **({"choices": list(p.choices)} if p.choices else
                                              {"low": p.low, "high": p.high, "log": p.log})} for p in search.space},
        "fixed": search.fixed,
        "trials_budget": search.trials,
        "jobs": search.jobs,
        "wall_seconds": round((datetime.now() - started).total_seconds(), 1),
        "default": default.as_dict(),
        "trials": [t.as_dict() for t in trials],
        "best": best.as_dict() if best else None,
        "apply": f"dvc exp apply {best.name}" if best else None,
    }


# --------------------------------------------------------------------------- the result


def optimism(entry: dict | None) -> float | None:
    """dev − eval of one trial, in points: what selecting on dev adds to the dev score."""
    if not entry or entry.get("objective") is None or entry.get("eval") is None:
        return None
    return entry["objective"] - entry["eval"]


def _gap_text(gap: float | None) -> str:
    """What the best trial's dev − eval gap says: selecting the best of many trials on dev inflates its dev score."""
    if gap is None:
        return ""
    if gap > 0:
        return (f"Its dev score is {gap:.1f} points above its eval score: the optimism that selecting the best of "
                "the trials on dev adds, which is why the eval score is the one to quote.")
    return (f"Its dev score is {-gap:.1f} points below its eval score: no optimism from selecting on dev shows at "
            "this size (the two splits hold different people, so their scores differ by chance too).")


def _pts(v: Any) -> str:
    return "—" if v is None else f"{v:.1f}"


def _ci(ci: Any) -> str:
    return f" [{ci[0]:.1f}, {ci[1]:.1f}]" if isinstance(ci, list) and len(ci) == 2 else ""


def reused_total(record: dict) -> tuple[int, int]:
    """(stage runs DVC reused, stage runs executed) over the default and every trial."""
    entries = [record["default"], *record["trials"]]
    return (sum(len(e["stages"].get("reused", [])) for e in entries),
            sum(len(e["stages"].get("ran", [])) for e in entries))


def render(record: dict) -> str:
    """reports/tune/<name>.md: the best trial by dev, its eval beside the default's, the gap, the history."""
    best, default = record["best"], record["default"]
    cost = ", minus cost_weight × USD per 1,000 queries" if record["cost_weight"] else ""
    lines = [f"# Tune `{record['name']}`", "",
             f"Objective: **{record['objective']}** (points{cost}), "
             f"maximised by {record['sampler']} over {len(record['trials'])} trials and {record['jobs']} workers, "
             f"in {record['wall_seconds']:.0f} s. Search file: `{record['source']}`.", ""]
    if best is None:
        lines += ["**No trial finished**: see `dvc queue logs <experiment>` for each.", ""]
    else:
        gap = optimism(best)
        lines += ["## Result", "",
                  "| | dev objective | eval (reported) | dev − eval |", "|---|---|---|---|",
                  f"| best trial `{best['name']}` | {_pts(best['objective'])}{_ci(best['dev_ci'])} | "
                  f"{_pts(best['eval'])}{_ci(best['eval_ci'])} | {_pts(gap)} |",
                  f"| default `{default['name']}` | {_pts(default['objective'])}{_ci(default['dev_ci'])} | "
                  f"{_pts(default['eval'])}{_ci(default['eval_ci'])} | {_pts(optimism(default))} |", "",
                  "The best trial was chosen by its dev score alone; the eval column was looked at by no choice and is "
                  f"the one to report. {_gap_text(gap)} Brackets: 95% bootstrap CIs over questions.", "",
                  "Best params: " + ", ".join(f"`{k}={v}`" for k, v in best["params"].items()), "",
                  f"Adopt it: `{record['apply']}` (then `dvc repro` is a no-op), or compare every trial: "
                  f"`make compare ARGS='--sweep {record['name']}'`.", ""]
    reused, ran = reused_total(record)
    lines += [f"Stages: {ran} run and {reused} reused by DVC (unchanged or from its run cache) over "
              f"{len(record['trials']) + 1} experiments.", "", "## History", "",
              f"![objective by trial]({record['name']}.png)", "",
              "| trial | experiment | params | state | dev objective | eval |", "|---|---|---|---|---|---|"]
    for t in [default, *record["trials"]]:
        shown = (", ".join(f"{k}={v}" for k, v in t["params"].items()) or "(default)").replace("|", "\\|")
        lines.append(f"| {'default' if t['number'] < 0 else t['number']} | `{t['name']}` | {shown} | "
                     f"{t['state']} | {_pts(t['objective'])} | {_pts(t['eval'])} |")
    return "\n".join(lines) + "\n"


def plot(record: dict) -> bytes | None:
    """The search's history: each trial's dev objective, the best so far, the default's as a line."""
    from ragft.reporting import plots

    return plots.render(plots.search_history, record)


def write_results(record: dict, root: Path = Path(".")) -> list[Path]:
    """reports/tune/<name>.{json,md,png} and reports/sweeps/<name>.json (for `ragft compare --sweep`)."""
    from ragft.experiments.sweep import SWEEPS_DIR, write_outputs, write_record

    written = write_outputs(root / TUNE_DIR / record["name"], record, render(record), plot(record))
    entries = [record["default"], *record["trials"]]
    write_record(root / SWEEPS_DIR / f"{record['name']}.json", {
        "name": record["name"], "kind": "tune", "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "overrides": record["fixed"], "jobs": record["jobs"], "baseline_rev": record.get("baseline_rev", ""),
        "wall_seconds": record["wall_seconds"], "drained": True, "problems": [],
        "experiments": [{"name": e["name"], "state": e["state"]} for e in entries]})
    return written


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("search", nargs="?", default="tune/default.yaml", help="the search file (default: %(default)s)")
    parser.add_argument("--trials", type=int, help="the trial budget (overrides the file's)")
    parser.add_argument("-j", "--jobs", type=int, help="parallel DVC queue workers (overrides the file's)")
    parser.add_argument("-n", "--name", help="the search's name (default: tune-<timestamp>)")


def run(args: argparse.Namespace) -> int:
    import os

    from ragft.experiments.sweep import SweepError, claim_name, dvc_root

    try:
        search = load_search(args.search, args.trials, args.jobs)   # the file alone: before anything else
        root = dvc_root()
        os.chdir(root)
        check_search(search)
        name = claim_name(args.name, "tune", TUNE_DIR, lambda n: {f"{n}-default", *(f"{n}-t{i}" for i in
                                                                          range(search.trials))}, root)
        from ragft.tracking.lineage import git_commit

        head = git_commit()
        record = run_search(search, name)
        record["baseline_rev"] = head     # `ragft compare --sweep <name>` reads the trials from this baseline
        written = write_results(record, root)
    except (TuneError, SweepError) as err:
        log.error("%s", err)
        return 2
    print(Path(written[1]).read_text(encoding="utf-8"))
    print("written: " + ", ".join(str(p) for p in written))
    return 0 if record["best"] else 1
