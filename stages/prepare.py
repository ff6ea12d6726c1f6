"""prepare: documents + questions, split by document into train (fine-tuning may use) and eval.

Writes data/prepared/ (see ragft/data/__init__.py for the formats) atomically.
"""

from __future__ import annotations

from ragft import paths
from ragft.data import prepare
from ragft.io import atomic_dir
from ragft.stage import stage


def _inputs(cfg) -> list[str]:
    ds = cfg.dataset
    return [p for p in (ds.path, ds.qa_file) if p] if ds.source == "local" else []


@stage("prepare", inputs=_inputs)
def main(cfg, run) -> None:
    with atomic_dir(paths.PREPARED) as out:
        manifest = prepare(cfg.dataset, out)
        run.write_record(out)
    run.log_metrics({f"data.{k}": v for k, v in manifest["counts"].items()})
    run.log_artifact(paths.PREPARED_MANIFEST)


if __name__ == "__main__":
    main()
