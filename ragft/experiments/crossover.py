"""`ragft crossover`: where does RAG overtake long-context prompting? The default experiment's RAG arm
(base-retrieved) and long-context arm (base-long_context) over synthbio corpora of growing size, one DVC
experiment per size, the quality (with its clustered CI) and the cost per 1,000 queries of both against the
corpus's tokens, and the first size at which RAG is better or cheaper (or that it was not, up to the largest).

Every size shares the overrides `arms.models=[base]` and `arms.contexts=[retrieved,long_context]` (no
fine-tuning: the question is RAG against long context), plus any given with `-S`; `dataset.n_people` is the size
(half the people are eval people, 5 questions each). Sizes whose corpus does not fit the model's window fail in
their infer stage with the window and the corpus's tokens: the crossover is only measured up to the window.
The experiments run one after another through the sweep machinery (ragft/experiments/sweep.py).

Writes reports/crossover/<name>.{json,md,png} and reports/sweeps/<name>.json (`ragft compare --sweep <name>`).
"""

from __future__ import annotations

import argparse
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from ragft import paths
from ragft.experiments.sweep import Runner

log = logging.getLogger("ragft.experiments.crossover")

CROSSOVER_DIR = paths.REPORTS / "crossover"
RAG, LONG = "base-retrieved", "base-long_context"
FIXED = ["arms.models=[base]", "arms.contexts=[retrieved,long_context]"]


def read_size(doc: dict | None, people: int) -> dict[str, Any]:
    """One size's row from its metrics.json: both arms' primary metric (CI), cost per 1,000 queries (the
    long-context arm also with prompt caching), prompt tokens, and the paired difference when computed."""
    row: dict[str, Any] = {"people": people}
    if not doc:
        return row
    metric = doc.get("primary_metric", "match")
    decision = (doc.get("decision") or {}).get("arms", {})
    for key, arm in (("rag", RAG), ("long", LONG)):
        m = (doc.get("arms") or {}).get(arm)
        if not m:
            continue
        ci = m.get(f"{metric}_ci") or [None, None]
        d = decision.get(arm, {})
        row[key] = {"estimate": m.get(metric), "ci_low": ci[0], "ci_high": ci[1], "n": m.get("n"),
                    "prompt_tokens": d.get("prompt_tokens"), "cost_per_1k": d.get("token_cost_per_1k"),
                    "cached_cost_per_1k": d.get("cached_token_cost_per_1k")}
    diff = next((v for v in (doc.get("differences") or {}).values()
                 if {v.get("a"), v.get("b")} == {RAG, LONG}), None)
    if diff:
        sign = 1 if diff.get("a") == RAG else -1   # RAG minus long context
        lo, hi = sorted((sign * diff["ci_low"], sign * diff["ci_high"]))
        row["rag_minus_long"] = {"diff": sign * diff["diff"], "ci_low": lo, "ci_high": hi}
    row["metric"] = metric
    return row


def crossover(rows: list[dict]) -> dict[str, Any]:
    """The first size at which RAG is better (the paired CI above 0; else the point estimate, said so) and the
    first at which it is cheaper (with and without prompt caching for long context)."""
    done = [r for r in rows if "rag" in r and "long" in r]

    def first(test) -> int | None:
        return next((r["people"] for r in done if test(r)), None)

    def cheaper(r: dict, key: str) -> bool:
        rag, long = r["rag"].get("cost_per_1k"), r["long"].get(key)
        return rag is not None and long is not None and rag < long

    return {
        "better_significant": first(lambda r: (r.get("rag_minus_long") or {}).get("ci_low", -1) > 0),
        "better_estimate": first(lambda r: (r["rag"]["estimate"] or 0) > (r["long"]["estimate"] or 0)),
        "cheaper": first(lambda r: cheaper(r, "cost_per_1k")),
        "cheaper_cached": first(lambda r: cheaper(r, "cached_cost_per_1k")),
        "largest": max((r["people"] for r in done), default=None),
    }


def run_sizes(sizes: list[int], extra: list[str], name: str, runner: Runner | None = None) -> dict[str, Any]:
    runner = runner or Runner("crossover")
    started = datetime.now()
    exp = {n: f"{name}-p{n}" for n in sizes}
    problems: list[str] = []
    for n in sizes:   # one at a time: each long-context arm uses both cores
        problems += runner.run([(exp[n], [*FIXED, *extra, f"dataset.n_people={n}"])], 1, name)
    rows = []
    for n in sizes:
        state, doc, _ = runner.metrics(exp[n])
        rows.append({"experiment": exp[n], "state": state, **read_size(doc, n)})
    return {"name": name, "fixed": [*FIXED, *extra], "sizes": sizes, "rows": rows, "crossover": crossover(rows),
            "problems": problems, "wall_seconds": round((datetime.now() - started).total_seconds(), 1)}


def _pct(block: dict | None) -> str:
    if not block or block.get("estimate") is None:
        return "–"
    lo, hi = block.get("ci_low"), block.get("ci_high")
    ci = f" [{100 * lo:.1f}, {100 * hi:.1f}]" if lo is not None and hi is not None else ""
    return f"{100 * block['estimate']:.1f}{ci}"


def _money(v: Any) -> str:
    return "–" if v is None else f"{v:.4f}"


def statement(record: dict) -> str:
    """The finding in a sentence or two."""
    c, largest = record["crossover"], record["crossover"]["largest"]
    if largest is None:
        return "No size finished: no finding."
    parts = []
    if c["better_significant"] is not None:
        parts.append(f"RAG is better than long context from {c['better_significant']} people on (paired CI above 0)")
    elif c["better_estimate"] is not None:
        parts.append(f"RAG scores higher than long context from {c['better_estimate']} people on, but no paired "
                     "interval excludes 0")
    else:
        parts.append(f"RAG never scored higher than long context up to {largest} people")
    if c["cheaper"] is not None:
        parts.append(f"RAG is cheaper per query from {c['cheaper']} people on"
                     + (f" ({c['cheaper_cached']} with prompt caching)" if c["cheaper_cached"] is not None
                        else f" (never, up to {largest} people, against long context with prompt caching)"))
    else:
        parts.append(f"RAG was not cheaper up to {largest} people")
    return "; ".join(parts) + "."


def render(record: dict) -> str:
    lines = [f"# Where RAG overtakes long context: `{record['name']}`", "",
             f"Every size shares `{' '.join(record['fixed'])}`; {record['wall_seconds'] / 60:.1f} min in all. "
             "Quality: the primary metric (%) with its 95% CI over documents; cost: USD per 1,000 queries at "
             "eval.costs' prices.", "",
             "| people | long-context prompt tokens | RAG | long context | RAG − long context | RAG cost | "
             "long-context cost | with prompt caching |", "|---|---|---|---|---|---|---|---|"]
    for r in record["rows"]:
        d = r.get("rag_minus_long")
        diff = "–" if not d else f"{100 * d['diff']:+.1f} [{100 * d['ci_low']:.1f}, {100 * d['ci_high']:.1f}]"
        long = r.get("long") or {}
        tokens = long.get("prompt_tokens")
        lines.append(f"| {r['people']} | {'–' if tokens is None else f'{tokens:,.0f}'} | {_pct(r.get('rag'))} | "
                     f"{_pct(long)} | {diff} | {_money((r.get('rag') or {}).get('cost_per_1k'))} | "
                     f"{_money(long.get('cost_per_1k'))} | {_money(long.get('cached_cost_per_1k'))} |")
    lines += ["", statement(record)]
    if record["problems"]:
        lines += ["", "Problems: " + "; ".join(record["problems"])]
    return "\n".join(lines) + "\n"


def plot(record: dict) -> bytes | None:
    from ragft.reporting import plots

    return plots.render(plots.crossover, record)


def write_results(record: dict, root: Path = Path(".")) -> list[Path]:
    from ragft.experiments.sweep import record_knob_sweep, write_outputs

    written = write_outputs(root / CROSSOVER_DIR / record["name"], record, render(record), plot(record))
    record_knob_sweep(root, {**record, "jobs": 1, "experiments": [{"name": r["experiment"], "state": r["state"]}
                                                                  for r in record["rows"]]}, "crossover")
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="12,24,48,72", help="dataset.n_people values, comma-separated "
                        "(default: %(default)s; the window bounds the largest)")
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[],
                        help="an override every size shares (repeatable)")
    parser.add_argument("-n", "--name", help="the sweep's name (default: crossover-<timestamp>)")


def run(args: argparse.Namespace) -> int:
    import os

    from ragft.config import ConfigError, validate
    from ragft.config.compose import compose_conf
    from ragft.experiments.sweep import SweepError, claim_name, dvc_root
    from ragft.tracking.lineage import git_commit

    try:
        sizes = sorted({int(s) for s in str(args.sizes).split(",") if s.strip()})
    except ValueError:
        log.error("--sizes %r: give comma-separated integers (dataset.n_people), e.g. 12,24,48", args.sizes)
        return 2
    if not sizes or sizes[0] < 2:
        log.error("--sizes %r: give at least one size of 2 people or more", args.sizes)
        return 2
    try:
        root = dvc_root()
        os.chdir(root)
        for n in sizes:   # every size composes into a valid params.yaml before anything runs
            validate(compose_conf(overrides=[*FIXED, *args.overrides, f"dataset.n_people={n}"]))
        name = claim_name(args.name, "crossover", CROSSOVER_DIR, lambda nm: {f"{nm}-p{n}" for n in sizes}, root)
        head = git_commit()
        record = run_sizes(sizes, list(args.overrides), name)
        record["baseline_rev"] = head
        written = write_results(record, root)
    except (ConfigError, SweepError) as err:
        log.error("%s", err)
        return 2
    for path in written:
        log.info("wrote %s", path)
    log.info("%s", statement(record))
    return 0 if not record["problems"] else 1
