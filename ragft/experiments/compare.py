"""`python -m ragft.experiments.compare [--sweep NAME | --all | EXP ...]`: compare experiments side by side
(no argument: the latest sweep).

The source of truth is `dvc exp show --json` (each experiment's params and metrics). DVC leaves list
values out of its metrics, so each arm's confidence intervals (``match_ci``, ``exact_match_ci``, ``f1_ci``) are read
from the experiment's own committed ``metrics/metrics.json`` (`git show <rev>:...`).

What it prints (and writes to ``reports/sweep_<name>.md`` with a PNG beside it): the params that differ
between the experiments, each arm's headline metrics per experiment (with CIs when present) and,
where experiments differ only in seed-derived params (`make seeds`), the mean ± std across seeds.

A CLI for a person at a terminal: it prints its final result.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragft import paths
from ragft.experiments import expshow
from ragft.experiments.expshow import WORKSPACE, metrics_at
from ragft.io import flatten

log = logging.getLogger("ragft.experiments.compare")

HEADLINE = {"match": "Answer match", "exact_match": "Exact match", "f1": "F1"}


def primary_metric(exps: list[Experiment]) -> str:
    """The experiments' primary metric (eval.primary_metric; exact match for experiments from before it)."""
    return str(exps[0].params.get("eval.primary_metric", "exact_match")) if exps else "exact_match"


def headline(exps: list[Experiment]) -> dict[str, str]:
    """The metrics shown, the primary one first."""
    first = primary_metric(exps)
    return {first: HEADLINE[first], **{k: v for k, v in HEADLINE.items() if k != first}}


class CompareError(RuntimeError):
    """Nothing (sensible) to compare: the message says why and what to run."""


@dataclass
class Experiment:
    name: str
    rev: str
    kind: str  # workspace | baseline | experiment
    state: str  # success | failed | queued | running
    params: dict[str, Any]  # flattened params.yaml
    arms: dict[str, dict[str, Any]]  # arm (e.g. base-retrieved) → its metrics on the eval split
    dev: dict[str, dict[str, Any]] = field(default_factory=dict)  # the same on the dev split (dataset.dev_fraction)


def arms_of(doc: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The per-arm metrics of a metrics/metrics.json document."""
    return dict((doc or {}).get("arms") or {})


def experiments_from_show(show: list[dict[str, Any]]) -> list[Experiment]:
    """Workspace, baselines and their experiments from a `dvc exp show --json` document."""
    return [Experiment(s.name, s.rev, s.kind, s.state, flatten(s.params), arms_of(s.metrics),
                       dict((s.metrics or {}).get("dev") or {})) for s in expshow.parse(show)]


def add_intervals(exp: Experiment, doc: dict[str, Any] | None) -> None:
    """Put the list-valued metrics (the CIs) that `dvc exp show` drops back, from the metrics file."""
    for split, arms in ((exp.arms, arms_of(doc)), (exp.dev, dict((doc or {}).get("dev") or {}))):
        for arm, metrics in arms.items():
            if arm in split:
                for key, value in metrics.items():
                    split[arm].setdefault(key, value)


def varying_params(exps: list[Experiment]) -> list[str]:
    keys = sorted({k for e in exps for k in e.params})
    return [k for k in keys if len({json.dumps(e.params.get(k), sort_keys=True) for e in exps}) > 1]


def seed_derived_keys(conf_dir: str | Path = paths.CONF_DIR) -> set[str]:
    """`seed` and every param conf/ sets to `${seed}` (they change with it: `make seeds` sweeps it)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base=None):
        raw = OmegaConf.to_container(compose(config_name="config"), resolve=False)
    return {"seed"} | {k for k, v in flatten(raw).items() if v == "${seed}"}


@dataclass
class Group:
    """Experiments whose params differ only in seed-derived keys: one setting, several seeds."""

    label: str
    members: list[Experiment]

    def stats(self, arm: str, metric: str) -> tuple[float, float, int]:
        """(mean, sample std, n) of ``metric`` over the members that have it; std is NaN for n=1."""
        values = [e.arms[arm][metric] for e in self.members if _number(e.arms.get(arm, {}).get(metric))]
        if not values:
            return math.nan, math.nan, 0
        std = statistics.stdev(values) if len(values) > 1 else math.nan
        return statistics.fmean(values), std, len(values)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


def _show(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def group_by_setting(exps: list[Experiment], seed_keys: set[str]) -> list[Group]:
    setting = [k for k in varying_params(exps) if k not in seed_keys]
    groups: dict[str, Group] = {}
    for e in exps:
        label = ", ".join(f"{k}={_show(e.params.get(k))}" for k in setting) or "all experiments"
        groups.setdefault(label, Group(label, [])).members.append(e)
    return list(groups.values())


def shown_params(exps: list[Experiment], seed_keys: set[str]) -> list[str]:
    """The differing params, without seed-derived keys that merely follow `seed`."""
    keys = varying_params(exps)
    follow = {k for k in seed_keys - {"seed"} if all(e.params.get(k) == e.params.get("seed") for e in exps)}
    return [k for k in keys if k not in follow]


def sort_by_params(exps: list[Experiment], keys: list[str]) -> list[Experiment]:
    """Experiments in the order of the params that differ (numbers numerically), then by name."""

    def key(e: Experiment) -> tuple:
        values = [e.params.get(k) for k in keys]
        return tuple((0, v, "") if _number(v) else (1, 0, _show(v)) for v in values) + (e.name,)

    return sorted(exps, key=key)


def short_label(e: Experiment, keys: list[str]) -> str:
    """The experiment's name and, when few params differ, their values: `fatal-gaur (retrieval.top_k=2)`."""
    if not keys or len(keys) > 2:
        return e.name
    return f"{e.name} (" + ", ".join(f"{k}={_show(e.params.get(k))}" for k in keys) + ")"


def arm_order(exps: list[Experiment]) -> list[str]:
    order: list[str] = []
    for e in exps:
        order += [a for a in e.arms if a not in order]
    return order


def _pct(v: Any) -> str:
    return f"{100 * v:.1f}" if _number(v) else "—"


def _cell(metrics: dict[str, Any], metric: str) -> str:
    text = _pct(metrics.get(metric))
    ci = metrics.get(f"{metric}_ci")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_number(x) for x in ci):
        text += f" [{_pct(ci[0])}, {_pct(ci[1])}]"
    return text


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _bold_best(values: list[float], cells: list[str]) -> list[str]:
    nums = [v for v in values if _number(v)]
    if len(nums) < 2 or len(set(nums)) == 1:
        return cells
    best = max(nums)
    return [f"**{c}**" if _number(v) and v == best else c for v, c in zip(values, cells, strict=True)]


def render(title: str, exps: list[Experiment], seed_keys: set[str], skipped: list[Experiment] | None = None,
           plot_file: str | None = None, sweep: str | None = None) -> str:
    """The comparison as Markdown: what differs, then each headline metric by arm × experiment."""
    keys = shown_params(exps, seed_keys)
    exps = sort_by_params(exps, keys)
    arms = arm_order(exps)
    names = [e.name for e in exps]
    intro = (
        f"{len(exps)} experiments, from `dvc exp show`. Values in % on the eval split unless a table says dev; "
        "[..] is each arm's confidence interval "
        "(over its clusters, eval.cluster: from the experiment's metrics/metrics.json); the best value per arm "
        "is bold."
    )
    lines = [f"# {title}", "", intro, ""]
    if skipped:
        lines += ["Not compared (did not finish): " + ", ".join(f"`{e.name}` ({e.state})" for e in skipped), ""]
    lines += ["## What differs", ""]
    if keys:
        lines += _table(["experiment", *keys], [[e.name, *(_show(e.params.get(k)) for k in keys)] for e in exps])
    else:
        lines.append("Nothing: the experiments have the same params.")
    lines.append("")
    groups = group_by_setting(exps, seed_keys)
    if any(len(g.members) > 1 for g in groups):
        lines += ["## Mean ± std across seeds", "",
                  "Experiments that differ only in seed-derived params form one setting; std is the sample std.", ""]
        for metric, label in headline(exps).items():
            rows = []
            for arm in arms:
                stats = [g.stats(arm, metric) for g in groups]
                cells = [f"{_pct(m)} ± {_pct(s)} (n={n})" if n else "—" for m, s, n in stats]
                rows.append([arm, *_bold_best([m for m, _, _ in stats], cells)])
            lines += [f"### {label} (%)", "", *_table(["arm", *(g.label for g in groups)], rows), ""]
    lines += ["## By experiment", ""]
    with_dev = any(e.dev for e in exps)
    if with_dev:
        lines += ["Each table names its split: eval (reported, looked at by no choice) or dev (what tuning may look "
                  "at). Choose a setting by dev; report its eval numbers.", ""]
    for split in ("eval", "dev") if with_dev else ("eval",):
        for metric, label in headline(exps).items():
            rows = []
            for arm in arms:
                values = [(e.arms if split == "eval" else e.dev).get(arm, {}) for e in exps]
                rows.append([arm, *_bold_best([v.get(metric, math.nan) for v in values],
                                              [_cell(v, metric) for v in values])])
            lines += [f"### {label} (%), {split} split", "", *_table(["arm", *names], rows), ""]
    if plot_file:
        lines += [f"![{HEADLINE[primary_metric(exps)]} by arm]({plot_file})", ""]
    lines += ["Apply one to the workspace: `dvc exp apply <experiment>`; then `dvc repro` is a no-op."]
    if sweep:
        lines.append(f"MLflow: search runs with ``tags.`ragft.sweep` = '{sweep}'`` and compare the parent runs.")
    return "\n".join(lines) + "\n"


def plot(exps: list[Experiment], seed_keys: set[str], out: Path, title: str) -> None:
    """Grouped bars: the primary metric per arm, one bar per experiment (or per setting, mean ± std over seeds)."""
    from ragft.io import atomic_file
    from ragft.reporting import plots

    keys = shown_params(exps, seed_keys)
    exps = sort_by_params(exps, keys)
    arms = arm_order(exps)
    groups = group_by_setting(exps, seed_keys)
    by_seed = any(len(g.members) > 1 for g in groups)
    metric = primary_metric(exps)
    series = []  # (label, heights, [below, above] error bars)
    if by_seed:
        for g in groups:
            st = [g.stats(a, metric) for a in arms]
            std = [100 * (s if _number(s) else 0) for _, s, _ in st]
            series.append((g.label, [100 * m for m, _, _ in st], [std, std]))
    else:
        for e in exps:
            heights, lo, hi = [], [], []
            for a in arms:
                m = e.arms.get(a, {})
                v = m.get(metric, math.nan)
                ci = m.get(f"{metric}_ci")
                heights.append(100 * v if _number(v) else math.nan)
                ok = isinstance(ci, (list, tuple)) and len(ci) == 2 and _number(v)
                lo.append(100 * (v - ci[0]) if ok else 0)
                hi.append(100 * (ci[1] - v) if ok else 0)
            series.append((short_label(e, keys), heights, [lo, hi]))
    ylabel = f"{HEADLINE[metric].lower()} (%)" + (" — mean ± std over seeds" if by_seed else "")
    png = plots.render(plots.grouped_bars, arms, series, ylabel, title)
    with atomic_file(out, "wb") as fh:
        fh.write(png)


# --------------------------------------------------------------------------- command line


def _exp_show(*args: str) -> list[dict[str, Any]]:
    from ragft.experiments.sweep import dvc, worker_env

    return json.loads(dvc(Path.cwd(), worker_env(), "exp", "show", "--json", *args))


def _metrics_file(exp: Experiment) -> dict[str, Any] | None:
    if exp.kind == WORKSPACE:
        path = paths.EVAL_METRICS
        return json.loads(path.read_text()) if path.exists() else None
    return metrics_at(exp.rev)


def select(args: argparse.Namespace) -> tuple[str, list[Experiment], str | None]:
    """(name, experiments, sweep name) chosen by the command line."""
    if args.sweep:
        from ragft.experiments.sweep import SWEEPS_DIR

        path = SWEEPS_DIR / f"{args.sweep}.json"
        if not path.exists():
            known = sorted(p.stem for p in SWEEPS_DIR.glob("*.json")) if SWEEPS_DIR.is_dir() else []
            raise CompareError(f"{path}: no such sweep record (known: {', '.join(known) or 'none'}). "
                               "Run one with `make sweep ARGS=\"-S 'retrieval.top_k=1,3'\"`.")
        record = json.loads(path.read_text())
        wanted = [e["name"] for e in record["experiments"]]
        everything = experiments_from_show(_exp_show("--rev", record["baseline_rev"]))
        return args.name or args.sweep, _pick(everything, wanted), args.sweep
    if args.all:
        everything = experiments_from_show(_exp_show())
        return args.name or "all", [e for e in everything if e.kind == "experiment"], None
    if not args.experiments:
        from ragft.experiments.sweep import SWEEPS_DIR

        records = sorted(SWEEPS_DIR.glob("*.json"), key=lambda p: json.loads(p.read_text()).get("created", ""))
        if not records:
            raise CompareError("no sweep recorded yet: say what to compare (--sweep NAME, --all, or experiment "
                               "names from `dvc exp show`), or run a sweep (`make sweep`)")
        log.info("comparing the latest sweep, %s (--sweep NAME for another)", records[-1].stem)
        args.sweep = records[-1].stem
        return select(args)
    everything = experiments_from_show(_exp_show())
    if not {e.name for e in everything} >= set(args.experiments):
        everything = experiments_from_show(_exp_show("-A"))
    return args.name or "selected", _pick(everything, args.experiments), None


def _pick(everything: list[Experiment], wanted: list[str]) -> list[Experiment]:
    by_name = {}
    for e in everything:
        by_name.setdefault(e.name, e)
        by_name.setdefault(e.rev, e)
    missing = [w for w in wanted if w not in by_name]
    if missing:
        raise CompareError(f"not in `dvc exp show -A`: {', '.join(missing)}. `dvc exp show` lists the experiments.")
    return [by_name[w] for w in wanted]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`ragft compare`: which experiments, and the report's name."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--sweep", help="the experiments of a sweep (reports/sweeps/<name>.json)")
    which.add_argument("--all", action="store_true", help="every experiment of the current commit")
    parser.add_argument("experiments", nargs="*", help="experiment names (or revs; `workspace` for the workspace)")
    parser.add_argument("--name", help="names the report: reports/sweep_<name>.md (default: the sweep's name)")


def run(args: argparse.Namespace) -> int:
    """Compare the chosen experiments; print the comparison and write it with its plot."""
    from ragft.experiments.sweep import SweepError, dvc_root

    try:
        os.chdir(dvc_root())  # reports/, conf/ and the sweep records are relative to the repo root
        name, chosen, sweep = select(args)
        done = [e for e in chosen if e.state == "success" and e.arms]
        skipped = [e for e in chosen if e not in done]
        if not done:
            raise CompareError(f"no finished experiment with {paths.EVAL_METRICS} among: "
                               + ", ".join(f"{e.name} ({e.state})" for e in chosen))
    except (CompareError, SweepError) as err:
        log.error("%s", err)
        return 2
    for e in done:
        add_intervals(e, _metrics_file(e))
    seed_keys = seed_derived_keys()
    md_path, png_path = paths.REPORTS / f"sweep_{name}.md", paths.REPORTS / f"sweep_{name}.png"
    title = f"Sweep `{name}`" if sweep else f"Comparison `{name}`"
    plot(done, seed_keys, png_path, f"{HEADLINE[primary_metric(done)]} by arm — {name}")
    text = render(title, done, seed_keys, skipped, plot_file=png_path.name, sweep=sweep)
    from ragft.io import atomic_file

    with atomic_file(md_path) as fh:
        fh.write(text)
    print(text)
    print(f"written: {md_path}, {png_path}")
    return 0
