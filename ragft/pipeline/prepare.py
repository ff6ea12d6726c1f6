"""prepare: documents + questions, split by document into train (fine-tuning may use) and eval.

Writes data/prepared/ (formats: ragft/data/__init__.py) atomically.
"""

from __future__ import annotations

from ragft import paths
from ragft.pipeline.runner import stage_main


def prepare(cfg, run) -> None:
    from ragft.data import prepare as prepare_corpus
    from ragft.io import atomic_dir

    with atomic_dir(paths.PREPARED) as out:
        manifest = prepare_corpus(cfg.dataset, out)
        run.write_record(out)
    run.log_metrics({f"data.{k}": v for k, v in manifest["counts"].items()})
    run.log_artifact(paths.PREPARED_MANIFEST)


main = stage_main("prepare", prepare)
