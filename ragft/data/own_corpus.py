"""`ragft init <folder> --qa <file>`: a user's folder of documents → data/raw/, checked, one command from an experiment.

The documents are copied (not linked): data/raw/ is the prepare stage's DVC dependency, and a copy is what
DVC hashes and what a teammate's clone reproduces. Everything is checked by the prepare stage's own loader
(ragft.data.sources.load_local) before anything is written, and written through a temporary folder renamed
into place, so a refused folder leaves data/raw/ as it was.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

from ragft.io import DataError, atomic_dir, atomic_file

log = logging.getLogger(__name__)

RAW = Path("data/raw")
DOCS = RAW / "docs"


def init_corpus(folder: str | Path, qa: str | Path | None, force: bool = False, root: str | Path = ".") -> str:
    """Check ``folder`` and ``qa`` with the local loader, copy them into data/raw/, return the next steps."""
    from ragft.data.sources import load_local

    folder, root = Path(folder).expanduser(), Path(root)
    if qa is None:
        raise DataError(
            f"{folder}: no QA file given. ragft needs questions with their answers and documents to score the arms. "
            "Fix: pass --qa FILE (.jsonl or .csv with question, answer, doc_id; doc_id = the document's path "
            "relative to the folder, with or without its suffix). Generated questions are not available yet."
        )
    qa = Path(qa).expanduser()
    corpus = load_local(SimpleNamespace(path=str(folder), qa_file=str(qa)))   # every check, nothing written yet
    docs, qa_dest = root / DOCS, root / RAW / f"qa{qa.suffix.lower()}"
    if docs.exists() and any(docs.iterdir()) and not force:
        raise DataError(f"{docs}: already holds documents. Fix: pass --force to replace them, or remove the folder.")
    with atomic_dir(docs) as tmp:
        shutil.copytree(folder, tmp, dirs_exist_ok=True,
                        ignore=lambda _, names: [n for n in names if n.startswith(".")])
    with atomic_file(qa_dest, "wb") as fh:
        fh.write(qa.read_bytes())
    overrides = "-S dataset=local" + ("" if qa_dest.name == "qa.jsonl" else f" -S dataset.qa_file={RAW / qa_dest.name}")
    log.info("copied %d documents into %s and %d questions into %s", len(corpus.documents), docs, len(corpus.qa),
             qa_dest)
    return (f"{len(corpus.documents)} documents and {len(corpus.qa)} questions checked and copied into {RAW}/.\n"
            f"Run the experiment on them:\n  dvc exp run {overrides}\n"
            f"then `ragft summary` and open reports/report.html.\n")
