"""`ragft injection [PLAN.yaml]`: when does fine-tuning inject knowledge? One setting per knob, run as DVC
experiments, each compared with the reference setting and with what the literature found.

A plan file (injection/*.yaml) names the overrides every setting shares (`fixed`, e.g. experiment=injection),
the arm whose closed-book score is the injection measure (finetuned-none), and one setting per knob value:
its overrides, the direction the published finding predicts against the reference (higher | lower | same),
and the finding in a sentence. The reference runs first, alone, so the settings reuse its stages from DVC's
run cache; then the settings run in batches of `jobs` (the sweep machinery: ragft/experiments/sweep.py).

For each setting the result gives the injection arm's score with its CI, the storage probe (does the model
complete the document?), the RAG arms beside it, the absent people's confident-answer rate, the difference
from the reference, and whether the direction matches the published one (only "matches" when the two CIs
are apart; overlapping CIs say "not resolved"). Everything is checked before the first experiment: the file's
fields, unique names, and that every setting composes into a valid params.yaml.

Writes reports/injection/<name>.{json,md,png} and reports/sweeps/<name>.json (`ragft compare --sweep <name>`).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ragft import paths
from ragft.experiments.sweep import NAME, Runner

log = logging.getLogger("ragft.experiments.injection")

INJECTION_DIR = paths.REPORTS / "injection"
DIRECTIONS = ("higher", "lower", "same")


class PlanError(ValueError):
    """The plan cannot run: the message names the file, the field and the fix."""


@dataclass(frozen=True)
class Setting:
    name: str                      # the DVC experiment is <plan name>-<setting name>
    knob: str                      # what it varies, in words ("documents per person")
    overrides: tuple[str, ...]
    expect: str | None = None      # the published direction against the reference: higher | lower | same
    finding: str = ""              # the published finding, in a sentence, with its source


@dataclass
class Plan:
    source: str
    fixed: list[str]
    arm: str
    metric: str
    jobs: int
    settings: list[Setting] = field(default_factory=list)


def _error(source: str, fld: str, problem: str, fix: str) -> PlanError:
    return PlanError(f"{source}: field '{fld}' {problem}. Fix: {fix}.")


def parse_plan(data: Any, source: str, jobs: int | None = None) -> Plan:
    """A plan from its YAML document; a PlanError names the field and the fix."""
    if not isinstance(data, dict):
        raise PlanError(f"{source}: not a mapping. Fix: see injection/testbed.yaml for the format.")
    unknown = sorted(set(data) - {"fixed", "arm", "metric", "jobs", "settings"})
    if unknown:
        raise _error(source, unknown[0], "is not a plan field", "use fixed, arm, metric, jobs, settings")
    fixed = data.get("fixed", [])
    if not isinstance(fixed, list) or not all(isinstance(o, str) for o in fixed):
        raise _error(source, "fixed", "is not a list of overrides", "write `-S` overrides, e.g. [experiment=injection]")
    metric = data.get("metric", "exact_match")
    if metric not in ("match", "exact_match", "f1"):
        raise _error(source, "metric", f"is {metric!r}", "use match, exact_match or f1")
    jobs = int(jobs if jobs is not None else data.get("jobs", 2))
    if jobs < 1:
        raise _error(source, "jobs", f"is {jobs}", "use 1 or more parallel workers")
    raw = data.get("settings")
    if not isinstance(raw, list) or not raw:
        raise _error(source, "settings", "is missing or empty", "list the settings, each with name, knob, overrides")
    settings, names = [], set()
    for i, s in enumerate(raw):
        where = f"settings[{i}]"
        if not isinstance(s, dict) or not isinstance(s.get("name"), str) or not NAME.match(s["name"]):
            raise _error(source, f"{where}.name", "is missing or not a name", "use letters, digits, '.', '_', '-'")
        if s["name"] in names:
            raise _error(source, f"{where}.name", f"repeats {s['name']!r}", "give every setting its own name")
        names.add(s["name"])
        overrides = s.get("overrides", [])
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise _error(source, f"{where}.overrides", "is not a list of overrides", "write `-S` overrides")
        expect = s.get("expect")
        if expect is not None and expect not in DIRECTIONS:
            raise _error(source, f"{where}.expect", f"is {expect!r}", f"use one of {list(DIRECTIONS)} or leave it out")
        settings.append(Setting(s["name"], str(s.get("knob", s["name"])), tuple(overrides), expect,
                                str(s.get("finding", ""))))
    if settings[0].overrides or settings[0].expect:
        raise _error(source, "settings[0]", "is not a reference", "make the first setting the reference: no "
                     "overrides and no expect (every other setting is compared with it)")
    return Plan(source, list(fixed), str(data.get("arm", "finetuned-none")), metric, jobs, settings)


def load_plan(path: str | Path, jobs: int | None = None) -> Plan:
    import yaml

    path = Path(path)
    if not path.exists():
        raise PlanError(f"{path}: no such plan file. Fix: give one of injection/*.yaml, or write one like them.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise PlanError(f"{path}: not valid YAML ({err}). Fix: correct the syntax.") from None
    return parse_plan(data, str(path), jobs)


def select(plan: Plan, names: list[str]) -> Plan:
    """The reference and the settings named in ``names`` (`--only`), in the plan's order: to measure some
    knobs again, or for the first time, without rerunning the rest."""
    known = [s.name for s in plan.settings]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise PlanError(f"{plan.source}: --only names {unknown[0]!r}, which is not a setting. Fix: choose from "
                        f"{known[1:]}.")
    keep = [plan.settings[0], *[s for s in plan.settings[1:] if s.name in names]]
    return Plan(plan.source, plan.fixed, plan.arm, plan.metric, plan.jobs, keep)


def check_plan(plan: Plan, conf_dir: str | Path = paths.CONF_DIR) -> None:
    """Compose and validate every setting's params before any experiment runs; the injection arm must exist."""
    from ragft.arms import product
    from ragft.config import ConfigError, compose_conf, validate

    for s in plan.settings:
        try:
            cfg = validate(compose_conf(conf_dir, [*plan.fixed, *s.overrides]))
        except ConfigError as err:
            raise PlanError(f"{plan.source}: setting {s.name!r} does not compose: {err}") from None
        except Exception as err:   # Hydra's override errors
            raise PlanError(f"{plan.source}: setting {s.name!r}: bad override ({err}). Fix: `-S key=value` syntax "
                            "with params.yaml keys.") from None
        arms = {a.name for a in product(cfg.arms.models, cfg.arms.contexts)}
        if plan.arm not in arms:
            raise _error(plan.source, "arm", f"{plan.arm!r} is not an arm of setting {s.name!r}",
                         f"choose from {sorted(arms)}")


# --------------------------------------------------------------------------- running and reading


def _score(doc: dict | None, arm: str, metric: str) -> dict | None:
    entry = (doc or {}).get("arms", {}).get(arm)
    if not entry or metric not in entry:
        return None
    low, high = entry.get(f"{metric}_ci", [None, None])
    return {"estimate": entry[metric], "ci_low": low, "ci_high": high}


def _share(block: dict | None) -> dict | None:
    return {k: block[k] for k in ("estimate", "ci_low", "ci_high")} if block else None


def read_setting(doc: dict | None, plan: Plan) -> dict[str, Any]:
    """One setting's row from its metrics.json: the injection arm, the storage probe, the RAG arms, abstention."""
    model = plan.arm.split("-")[0]
    storage = ((doc or {}).get("storage") or {}).get(model) or {}
    absent = (doc or {}).get("absent") or {}
    return {
        "injected": _score(doc, plan.arm, plan.metric),
        "base_closed_book": _score(doc, "base-none", plan.metric),
        "rag": _score(doc, "base-retrieved", plan.metric),
        "finetuned_rag": _score(doc, f"{model}-retrieved", plan.metric),
        "completion": _share(storage.get("completion")),
        "answered_absent": _share((absent.get(plan.arm) or {}).get("answered")),
        "base_answered_absent": _share((absent.get("base-none") or {}).get("answered")),
    }


def direction(row: dict | None, reference: dict | None, expect: str | None) -> str:
    """How a setting's injection score compares with the reference's, against the published ``expect``."""
    if expect is None or not row or not reference:
        return ""
    a, b = row, reference
    apart = a["ci_low"] is not None and b["ci_low"] is not None and (a["ci_low"] > b["ci_high"] or a["ci_high"] < b["ci_low"])
    seen = "same" if not apart else ("higher" if a["estimate"] > b["estimate"] else "lower")
    if expect == "same":
        return "matches" if seen == "same" else f"contradicts ({seen})"
    if seen == "same":
        return "not resolved (CIs overlap)"
    return "matches" if seen == expect else f"contradicts ({seen})"


def run_plan(plan: Plan, name: str, runner: Runner | None = None) -> dict[str, Any]:
    """Run the reference alone, then the other settings in batches of ``plan.jobs``; return the record."""
    runner = runner or Runner("injection")
    started = datetime.now()
    exp = {s.name: f"{name}-{s.name}" for s in plan.settings}
    overrides = {s.name: [*plan.fixed, *s.overrides] for s in plan.settings}
    reference, rest = plan.settings[0], plan.settings[1:]
    log.info("the reference: %s", exp[reference.name])
    problems = runner.run([(exp[reference.name], overrides[reference.name])], 1, name)
    for i in range(0, len(rest), plan.jobs):
        batch = rest[i : i + plan.jobs]
        log.info("batch: %s", ", ".join(exp[s.name] for s in batch))
        problems += runner.run([(exp[s.name], overrides[s.name]) for s in batch], plan.jobs, name)
    rows = []
    for s in plan.settings:
        state, doc, _ = runner.metrics(exp[s.name])
        rows.append({"name": s.name, "experiment": exp[s.name], "knob": s.knob, "overrides": list(s.overrides),
                     "expect": s.expect, "finding": s.finding, "state": state, **read_setting(doc, plan)})
    ref = rows[0]["injected"]
    for row in rows:
        inj = row["injected"]
        row["difference"] = inj["estimate"] - ref["estimate"] if inj and ref else None
        row["direction"] = direction(inj, ref, row["expect"])
    return {"name": name, "source": plan.source, "fixed": plan.fixed, "arm": plan.arm, "metric": plan.metric,
            "jobs": plan.jobs, "wall_seconds": round((datetime.now() - started).total_seconds(), 1),
            "problems": problems, "settings": rows}


# --------------------------------------------------------------------------- the result


def _pct(block: dict | None) -> str:
    if not block or block.get("estimate") is None:
        return "–"
    ci = f" [{100 * block['ci_low']:.1f}, {100 * block['ci_high']:.1f}]" if block.get("ci_low") is not None else ""
    return f"{100 * block['estimate']:.1f}{ci}"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def render(record: dict) -> str:
    """reports/injection/<name>.md: one row per setting, then one sentence per knob."""
    m = {"exact_match": "EM", "match": "match", "f1": "F1"}[record["metric"]]
    lines = [f"# When does fine-tuning inject knowledge? `{_md(record['name'])}`", "",
             f"Plan: `{_md(record['source'])}`; every setting shares `{_md(' '.join(record['fixed']))}`. "
             f"Injection measure: `{_md(record['arm'])}` ({m}, %, with 95% CIs). "
             f"Wall time: {record['wall_seconds'] / 60:.1f} min with {record['jobs']} worker(s).", "",
             f"| setting | knob | closed-book {m} after fine-tuning | vs reference | completes the document | "
             f"base closed-book | RAG (base + retrieved) | fine-tuned + retrieved | answers absent people: base → "
             "fine-tuned | published direction | seen |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["settings"]:
        diff = "–" if r["difference"] is None else f"{100 * r['difference']:+.1f}"
        lines.append(f"| `{_md(r['name'])}` | {_md(r['knob'])} | {_pct(r['injected'])} | {diff} | "
                     f"{_pct(r['completion'])} | {_pct(r['base_closed_book'])} | {_pct(r['rag'])} | "
                     f"{_pct(r['finetuned_rag'])} | {_pct(r['base_answered_absent'])} → {_pct(r['answered_absent'])} | "
                     f"{r['expect'] or ('reference' if r is record['settings'][0] else '–')} | "
                     f"{_md(r['direction']) or ('–' if r['expect'] else '')} |")
    lines += ["", "## Per knob", ""]
    for r in record["settings"][1:]:
        if r["injected"] is None:
            lines.append(f"- **{_md(r['knob'])}** (`{_md(r['name'])}`): no result ({r['state']}).")
            continue
        lines.append(f"- **{_md(r['knob'])}** (`{_md(' '.join(r['overrides']))}`): closed-book {m} "
                     f"{_pct(r['injected'])} vs the reference's {_pct(record['settings'][0]['injected'])} "
                     f"({100 * r['difference']:+.1f} points); {_md(r['direction'] or 'no published direction')}. "
                     f"Published: {_md(r['finding'])}")
    if record["problems"]:
        lines += ["", "Problems: " + "; ".join(_md(p) for p in record["problems"])]
    lines += ["", "Matches: the direction the finding predicts, with the two CIs apart. Not resolved: the CIs "
              "overlap, so this run cannot tell. Contradicts: the CIs are apart in the other direction."]
    return "\n".join(lines) + "\n"


def plot(record: dict) -> bytes | None:
    from ragft.reporting import plots

    return plots.render(plots.knob_effects, record)


def write_results(record: dict, root: Path = Path(".")) -> list[Path]:
    """reports/injection/<name>.{json,md,png} and reports/sweeps/<name>.json (for `ragft compare --sweep`)."""
    from ragft.experiments.sweep import record_knob_sweep, write_outputs

    written = write_outputs(root / INJECTION_DIR / record["name"], record, render(record), plot(record))
    record_knob_sweep(root, {**record, "experiments": [{"name": r["experiment"], "state": r["state"]}
                                                       for r in record["settings"]]}, "injection")
    return written


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", nargs="?", default="injection/testbed.yaml", help="the plan file (default: %(default)s)")
    parser.add_argument("-j", "--jobs", type=int, help="parallel DVC queue workers (overrides the file's)")
    parser.add_argument("-n", "--name", help="the sweep's name (default: injection-<timestamp>)")
    parser.add_argument("--only", help="comma-separated setting names: run the reference and only these")


def run(args: argparse.Namespace) -> int:
    import os

    from ragft.experiments.sweep import SweepError, claim_name, dvc_root
    from ragft.tracking.lineage import git_commit

    try:
        plan = load_plan(args.plan, args.jobs)     # the file alone: before anything else
        if getattr(args, "only", None):
            plan = select(plan, [n.strip() for n in args.only.split(",") if n.strip()])
        root = dvc_root()
        os.chdir(root)
        check_plan(plan)
        name = claim_name(args.name, "injection", INJECTION_DIR, lambda n: {f"{n}-{s.name}" for s in plan.settings},
                          root)
        head = git_commit()
        record = run_plan(plan, name)
        record["baseline_rev"] = head
        written = write_results(record, root)
    except (PlanError, SweepError) as err:
        log.error("%s", err)
        return 2
    for path in written:
        log.info("wrote %s", path)
    return 0 if not record["problems"] else 1
