"""Run every benchmark in one process, side by side, and write reports/bench.json + reports/bench.md.

Each benchmark is a module of bench/ with ``main(argv) -> dict`` returning one row:
``{"name", "figures", "value", "ratio", "goal", "met", "notes", "detail"}`` (``met`` None: no goal), or
``{"name", "rows": [row, ...]}`` for rows that must be measured in one process (the machine's peak and
the efficiencies that are ratios to it).
Figures are ratios measured within one run, because these machines are shared and noisy; absolute
times are context. A benchmark that is missing or fails gets a row saying so; the others still run.

    make bench                              # everything (ANN at 1,000,000 vectors: ~15 min on 2 cores)
    python bench/run.py --quick             # minutes: ANN at 100k, fewer questions and rounds
    python bench/run.py --only ann --ann-n 200000
    python bench/run.py --from ann=/tmp/ann_1m.json   # take a saved row instead of rerunning
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("bench.run")

# name → (module, argv for the full run, argv for --quick)
BENCHES: dict[str, tuple[str, list[str], list[str]]] = {
    # the shipped paths (fp32 default, bf16 switch) and sentence-transformers' batching; every lever: run it alone
    "embed_throughput": ("bench.embed_throughput", ["--rounds", "3", "--variants", "st", "ragft", "ragft_bf16", "ragft_sorted"],
                         ["--people", "200", "--rounds", "2", "--variants", "st", "ragft", "ragft_bf16"]),
    "embed_incremental": ("bench.embed_incremental", [], ["--people", "200"]),
    "ann": ("bench.ann", [], ["--n", "100000", "--queries", "500"]),
    "generation": ("bench.generation", [], ["--questions", "128", "--rounds", "1"]),
    "prefix_reuse": ("bench.prefix_reuse", [], ["--questions", "16", "--rounds", "1"]),   # long_context's corpus prefix
    "pipeline": ("bench.pipeline", [], ["--repeats", "3"]),
    "finetune": ("bench.finetune", [], ["--rounds", "1"]),
    "flops": ("bench.flops", [], ["--quick"]),                 # machine_peak + flop_efficiency
    "stage_overhead": ("bench.stage_overhead", [], ["--runs", "3"]),
    "serving": ("bench.serving", [], ["--questions", "16"]),      # transformers serve vs in process
    "retrieval": ("bench.retrieval", [], []),                    # dense vs bm25 vs hybrid, synthbio + prose
}


def environment() -> dict:
    """Where the figures come from: the machine, its load, the code, and the GPU if there is one."""
    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False).stdout
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=False).stdout)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node(), "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
        "torch": torch.__version__, "commit": commit.strip() + ("+dirty" if dirty else ""),
        "gpu": gpu or "none: this session had no GPU (the scripts pick CUDA + bf16 when one is present)",
    }


def not_run(name: str, why: str) -> dict:
    return {"name": name, "figures": {}, "value": "not run", "ratio": None, "goal": "", "met": None, "notes": why}


def run_one(name: str, argv: list[str]) -> dict:
    module_name = BENCHES[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            return not_run(name, f"{module_name.replace('.', '/')}.py is not in this checkout")
        raise
    t0 = time.perf_counter()
    try:
        row = module.main(argv)
    except Exception as err:  # noqa: BLE001 (one failing benchmark must not lose the others' figures)
        log.error("%s failed: %s", name, err)
        return {**not_run(name, f"failed: {type(err).__name__}: {str(err)[-500:]}"), "value": "failed", "met": False,
                "traceback": traceback.format_exc()[-3000:]}
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (minutes, not ~30 min)")
    parser.add_argument("--only", nargs="*", default=None, choices=list(BENCHES))
    parser.add_argument("--skip", nargs="*", default=[], choices=list(BENCHES))
    parser.add_argument("--ann-n", type=int, default=None, help="ANN database size")
    parser.add_argument("--cold", action="store_true", help="pipeline: also time `make demo` on a fresh clone")
    parser.add_argument("--from", dest="saved", nargs="*", default=[], metavar="NAME=FILE",
                        help="take NAME's row from a JSON file a benchmark wrote with --out")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "reports")
    args = parser.parse_args(argv)

    saved = dict(item.split("=", 1) for item in args.saved)
    unknown = set(saved) - set(BENCHES)
    if unknown:
        parser.error(f"--from names {sorted(unknown)}; choose from {sorted(BENCHES)}")
    os.chdir(ROOT)  # every benchmark's paths are relative to the repository root
    results = {"environment": environment(), "benchmarks": []}
    for name, (_, full, quick) in BENCHES.items():
        if (args.only is not None and name not in args.only) or name in args.skip:
            continue
        if name in saved:
            row = json.loads(Path(saved[name]).read_text())
            row["notes"] = f"{row.get('notes', '')} (row from {saved[name]}, measured earlier)".strip()
        else:
            bench_argv = list(quick if args.quick else full)
            if name == "ann" and args.ann_n:
                bench_argv += ["--n", str(args.ann_n)]
            if name == "pipeline" and args.cold:
                bench_argv.append("--cold")
            log.info("benchmark %s %s", name, " ".join(bench_argv))
            row = run_one(name, bench_argv)
        for r in row.pop("rows", None) or [row]:
            r.setdefault("seconds", row.get("seconds"))
            results["benchmarks"].append(r)
            log.info("%s: %s (goal: %s; met: %s)", r["name"], r.get("value"), r.get("goal"), r.get("met"))

    from bench.report import write_report

    json_path, md_path = write_report(results, args.out_dir)
    print(f"wrote {json_path} and {md_path}")
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    main()
