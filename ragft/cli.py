"""`ragft`: the package's commands (the Makefile targets call them; `ragft <command> --help` for each).

    ragft config compose|check   compose conf/ into params.yaml | check params.yaml is fresh and valid
    ragft sweep -S 'a=1,2' -j 2  queue DVC experiments, run them into one MLflow store, check the queue drained
    ragft seeds                  one experiment per seed of eval.seeds (mean ± std with `ragft compare`)
    ragft tune [SEARCH.yaml]     a seeded TPE search (DVC experiments) that tunes on dev and reports on eval
    ragft crossover [--sizes 12,24,48]  RAG against long context as the corpus grows: where RAG overtakes it
    ragft injection [PLAN.yaml]  one experiment per knowledge-injection knob, against the published directions
    ragft compare [...]          compare experiments side by side (default: the latest sweep)
    ragft summary                the verdict and every arm of the workspace's experiment
    ragft plan [--half-width 5]  how many eval documents and questions would settle each of the verdict's comparisons
    ragft serve [--port 8000]    the pipeline's models behind `transformers serve` on 127.0.0.1 (OpenAI API)
    ragft init FOLDER [--qa FILE] check a folder of your documents (and its QA file), copy them into data/raw/

The pipeline's stages are not commands here: DVC runs them (stages/<stage>.py, from dvc.yaml).
A CLI for a person at a terminal: commands print their result; logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def _config(args: argparse.Namespace) -> int:
    from ragft import paths
    from ragft.config import ConfigError, check_params_fresh, load_params, validate, write_params

    try:
        if args.action == "compose":
            write_params()
            log.info("wrote %s from %s/", paths.PARAMS, paths.CONF_DIR)
        else:
            check_params_fresh()
            validate(load_params())
            log.info("%s is fresh against %s/ and valid", paths.PARAMS, paths.CONF_DIR)
    except ConfigError as err:
        log.error("%s", err)
        return 1
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from ragft.experiments import sweep

    return sweep.run(args, kind=args.command)


def _crossover(args: argparse.Namespace) -> int:
    from ragft.experiments import crossover

    return crossover.run(args)


def _injection(args: argparse.Namespace) -> int:
    from ragft.experiments import injection

    return injection.run(args)


def _tune(args: argparse.Namespace) -> int:
    from ragft.experiments import tune

    return tune.run(args)


def _compare(args: argparse.Namespace) -> int:
    from ragft.experiments import compare

    return compare.run(args)


def _summary(args: argparse.Namespace) -> int:
    from ragft.reporting.summary import summary_text

    print(summary_text(), end="")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from ragft.config import ConfigError
    from ragft.io import DataError
    from ragft.reporting.summary import plan_text

    try:
        print(plan_text(half_width=args.half_width, min_effect=args.min_effect, power=args.power,
                        cluster=args.cluster), end="")
    except (DataError, ConfigError) as err:
        log.error("%s", err)
        return 1
    return 0


def _init(args: argparse.Namespace) -> int:
    from ragft.config import ConfigError
    from ragft.data.own_corpus import init_corpus
    from ragft.io import DataError

    try:
        print(init_corpus(args.folder, args.qa, force=args.force), end="")
    except (DataError, ConfigError) as err:
        log.error("%s", err)
        return 1
    return 0


def _serve(args: argparse.Namespace) -> int:
    from ragft.io import DataError
    from ragft.serving.local import serve

    try:
        return serve(args.port, args.models)
    except DataError as err:
        log.error("%s", err)
        return 1


def parser() -> argparse.ArgumentParser:
    from ragft.experiments import compare, crossover, injection, sweep, tune

    top = argparse.ArgumentParser(prog="ragft", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True, metavar="<command>")

    p = sub.add_parser("config", help="compose conf/ into params.yaml, or check params.yaml",
                       description="compose: conf/ → params.yaml (validated). check: params.yaml is the "
                                   "composition of conf/ and passes the schema (what `dvc repro` checks first).")
    p.add_argument("action", choices=["compose", "check"])
    p.set_defaults(func=_config)

    for name, help_ in (("sweep", "queue -S overrides as DVC experiments and run them until the queue is drained"),
                        ("seeds", "run one experiment per seed of eval.seeds (plus any -S overrides)")):
        p = sub.add_parser(name, help=help_, description=sweep.__doc__.split("\n")[0])
        sweep.add_arguments(p)
        p.set_defaults(func=_sweep)

    p = sub.add_parser("tune", help="search params on the dev split (Optuna TPE, DVC experiments), report on eval",
                       description=tune.__doc__.split("\n\n")[0])
    tune.add_arguments(p)
    p.set_defaults(func=_tune)

    p = sub.add_parser("crossover", help="RAG against long context over corpora of growing size: where RAG becomes "
                       "better or cheaper", description=crossover.__doc__.split("\n\n")[0])
    crossover.add_arguments(p)
    p.set_defaults(func=_crossover)

    p = sub.add_parser("injection", help="when does fine-tuning inject knowledge? one DVC experiment per knob setting, "
                       "compared with the reference and the published direction", description=injection.__doc__.split("\n\n")[0])
    injection.add_arguments(p)
    p.set_defaults(func=_injection)

    p = sub.add_parser("compare", help="compare experiments side by side (default: the latest sweep)",
                       description=compare.__doc__.split("\n\n")[0])
    compare.add_arguments(p)
    p.set_defaults(func=_compare)

    p = sub.add_parser("serve", help="serve models/base and the merged fine-tuned models on 127.0.0.1",
                       description="Start `transformers serve` on 127.0.0.1 for the pipeline's models (fine-tuned "
                                   "ones merged into plain folders on first use) and print the `dvc exp run` line "
                                   "that answers the arms through it.")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--models", nargs="+", default=None,
                   help="candidates to serve (default: every candidate of params.yaml that is not itself served)")
    p.set_defaults(func=_serve)

    p = sub.add_parser("init", help="check a folder of your documents (and its QA file), copy them into data/raw/",
                       description="Check FOLDER (.md/.txt/.html/.pdf/.docx, nested folders allowed) and the QA "
                                   "file with the prepare stage's loader, copy both into data/raw/, and print the "
                                   "`dvc exp run` line that runs the experiment on them. Without --qa the line "
                                   "has the generate_qa stage write questions from the documents.")
    p.add_argument("folder")
    p.add_argument("--qa", default=None, help="the QA file: .jsonl or .csv with question, answer, doc_id "
                   "(none: questions are generated, dataset.qa=generate)")
    p.add_argument("--force", action="store_true", help="replace documents already in data/raw/docs")
    p.set_defaults(func=_init)

    p = sub.add_parser("summary", help="print the verdict and every arm of the workspace's experiment")
    p.set_defaults(func=_summary)

    p = sub.add_parser("plan", help="how many eval documents and questions would settle each comparison of the verdict",
                       description="From the workspace's per-question scores (reports/per_question.csv) and the "
                                   "questions' documents: per comparison of the verdict, the eval documents and "
                                   "questions needed for an interval of ±HALF_WIDTH points, and for POWER to detect "
                                   "MIN_EFFECT points (defaults: params.yaml's eval.plan). Method: "
                                   "ragft/evaluation/planner.py.")
    p.add_argument("--half-width", type=float, default=None, help="target half-width in points (eval.plan.half_width)")
    p.add_argument("--min-effect", type=float, default=None, help="difference to detect, in points (eval.plan.min_effect)")
    p.add_argument("--power", type=float, default=None, help="power for --min-effect (eval.plan.power)")
    p.add_argument("--cluster", choices=["document", "question"], default=None,
                   help="the resampling unit (eval.cluster)")
    p.set_defaults(func=_plan)
    return top


def main(argv: list[str] | None = None) -> int:
    from ragft.pipeline.runner import setup_logging

    args = parser().parse_args(argv)
    setup_logging()
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
