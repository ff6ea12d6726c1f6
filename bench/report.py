"""reports/bench.json and reports/bench.md (a table of every figure against its goal) with PNG plots."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ragft.io import atomic_file

log = logging.getLogger("bench.report")

PLOTS = "bench"  # reports/bench/*.png


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _met(value: Any) -> str:
    return {True: "yes", False: "**no**", None: "–"}[value]


def _mb(nbytes: int) -> str:
    return f"{nbytes / 2**20:,.0f}"


def plot_ann(row: dict, out: Path) -> str | None:
    """Recall@10 against queries/s for every engine's search-breadth sweep (log x), Flat as a line."""
    detail = row.get("detail") or {}
    if not detail.get("engines"):
        return None
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, eng in detail["engines"].items():
        if name == "flat":
            continue
        sweep = eng["sweep"]
        ax.plot([s["qps"] for s in sweep], [s["recall@10"] for s in sweep], marker="o", label=f"{eng['factory']}")
        for s in sweep:
            ax.annotate(str(s["value"]), (s["qps"], s["recall@10"]), fontsize=7, xytext=(3, -8),
                        textcoords="offset points")
    ax.axvline(detail["flat_qps"], color="grey", linestyle="--", label=f"Flat (exact) {detail['flat_qps']} q/s")
    ax.axvline(detail["flat_qps"] * 10, color="grey", linestyle=":", label="10x Flat")
    ax.axhline(0.95, color="red", linestyle=":", label="recall@10 0.95")
    ax.set_xscale("log")
    ax.set_xlabel("queries/s (log)")
    ax.set_ylabel("recall@10 vs exact")
    ax.set_title(f"ANN, {detail['n']:,} x {detail['dim']} (labels: efSearch / nprobe)")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out.name


def plot_ratios(rows: list[dict], out: Path) -> str | None:
    """Each benchmark's headline ratio (measured side by side in this run)."""
    shown = [r for r in rows if isinstance(r.get("ratio"), (int, float)) and r["ratio"] > 0]  # log axis
    pts = [(r["name"], r["ratio"]) for r in shown]
    if not pts:
        return None
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(pts)))
    colors = ["tab:green" if r.get("met") else "tab:red" if r.get("met") is False else "tab:grey" for r in shown]
    ax.barh([p[0] for p in pts], [p[1] for p in pts], color=colors)
    for i, (_, v) in enumerate(pts):
        ax.text(v, i, f" {v}x", va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("headline ratio (log; green: goal met, red: not met, grey: no goal)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out.name


def plot_stages(row: dict, out: Path) -> str | None:
    stages = (row.get("detail") or {}).get("stages")
    if not stages:
        return None
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.3 * len(stages)))
    ax.barh([s["stage"] for s in stages][::-1], [s["seconds"] for s in stages][::-1], color="tab:blue")
    ax.set_xlabel("seconds (MLflow run start → end)")
    ax.set_title(f"per-stage time, {(row.get('detail') or {}).get('workspace', '')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out.name


def ann_table(row: dict) -> list[str]:
    detail = row.get("detail") or {}
    if not detail.get("engines"):
        return []
    lines = ["| engine | factory | build s | MB | search | q/s | recall@10 | x Flat q/s |", "|---|---|---|---|---|---|---|---|"]
    for name, eng in detail["engines"].items():
        b = eng["best"]
        search = f"{b['param']}={b['value']}" if b["param"] else "exact"
        lines.append(f"| {name} | {eng['factory']} | {eng['build_s']} | {_mb(eng['bytes'])} | {search} | {b['qps']} | "
                     f"{b['recall@10']} | {b['speedup']} |")
    return lines


def stage_table(row: dict) -> list[str]:
    """Per-stage seconds and peak resident memory, as the stages' MLflow runs recorded them."""
    stages = (row.get("detail") or {}).get("stages")
    if not stages:
        return []
    lines = ["| stage | seconds | peak RSS (MiB) |", "|---|---|---|"]
    lines += [f"| {s['stage']} | {s['seconds']} | {_cell(s.get('peak_rss_mb'))} |" for s in stages]
    return lines


def render(results: dict, plots: dict[str, str]) -> str:
    env = results["environment"]
    rows = results["benchmarks"]
    out = [
        "# Benchmarks",
        "",
        (f"Run {env['when']} on {env['host']} ({env['cpu_count']} cores, load average {env['load_average']}), "
        f"commit {env['commit']}, torch {env['torch']}. GPU: {env['gpu']}."),
        "",
        ("Every ratio is measured side by side in this one run (the machine is shared and noisy); absolute "
        "times are context only. `bench/run.py` reruns everything; `reports/bench.json` has the raw figures."),
        "",
        "| benchmark | value | goal | ratio | met |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(f"| {r['name']} | {_cell(r.get('value'))} | {_cell(r.get('goal'))} | {_cell(r.get('ratio'))} | "
                   f"{_met(r.get('met'))} |")
    if "ratios" in plots:
        out += ["", f"![headline ratios]({PLOTS}/{plots['ratios']})"]
    for r in rows:
        out += ["", f"## {r['name']}", "", _cell(r.get("notes"))]
        if r["name"] == "ann":
            out += [""] + ann_table(r)
            if "ann" in plots:
                out += ["", f"![ANN recall vs queries/s]({PLOTS}/{plots['ann']})"]
        if r["name"] == "pipeline":
            if "stages" in plots:
                out += ["", f"![per-stage seconds]({PLOTS}/{plots['stages']})"]
            out += [""] + stage_table(r)
        figures = {k: v for k, v in (r.get("figures") or {}).items() if not isinstance(v, dict)}
        if figures:
            out += ["", "| figure | value |", "|---|---|"] + [f"| {k} | {_cell(v)} |" for k, v in figures.items()]
    return "\n".join(out) + "\n"


def write_report(results: dict, out_dir: Path) -> tuple[Path, Path]:
    """reports/bench.json, reports/bench.md and reports/bench/*.png; returns the two paths."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    plot_dir = out_dir / PLOTS
    plot_dir.mkdir(parents=True, exist_ok=True)
    by_name = {r["name"]: r for r in results["benchmarks"]}
    plots = {}
    for key, fn, arg in (("ratios", plot_ratios, results["benchmarks"]), ("ann", plot_ann, by_name.get("ann")),
                         ("stages", plot_stages, by_name.get("pipeline"))):
        if arg:
            name = fn(arg, plot_dir / f"{key}.png")
            if name:
                plots[key] = name
    json_path, md_path = out_dir / "bench.json", out_dir / "bench.md"
    with atomic_file(json_path) as fh:
        fh.write(json.dumps(results, indent=2, default=str) + "\n")
    with atomic_file(md_path) as fh:
        fh.write(render(results, plots))
    return json_path, md_path
