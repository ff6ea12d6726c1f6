"""`ragft init <folder> [--qa <file>]`: a user's folder of documents → data/raw/, checked, one command from an
experiment. Without a QA file the printed command has the generate_qa stage write the questions
(`dataset.qa=generate`, ragft/data/questions.py).

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


def _writer_note() -> str:
    """Which offline model will write the questions: the first installed of conf/dataset/local.yaml's writers
    (read from the conf/ beside the package: the composition resolves the same list)."""
    from omegaconf import OmegaConf

    from ragft.model.gguf import first_installed

    writers = OmegaConf.to_container(OmegaConf.load(Path(__file__).resolve().parents[2] / "conf/dataset/local.yaml"))
    writers = writers["generate"]["writers"]
    path, best = first_installed(writers)["path"], writers[0]["path"]
    name = Path(path.rpartition("/")[2]).stem
    if path == best:
        return f"in process with {name}, the best offline question writer installed"
    return (f"in process with {name}, which writes few usable questions; `make models` installs "
            f"{Path(best).stem}, which generation then uses")


def init_corpus(folder: str | Path, qa: str | Path | None, force: bool = False, root: str | Path = ".") -> str:
    """Check ``folder`` (and ``qa``) with the local loader, copy them into data/raw/, return the next steps."""
    from ragft.data.sources import load_documents, load_local

    folder, root = Path(folder).expanduser(), Path(root)
    qa = Path(qa).expanduser() if qa is not None else None
    # every check, nothing written yet
    if qa is None:
        documents, n_questions = load_documents(str(folder)), 0
    else:
        corpus = load_local(SimpleNamespace(path=str(folder), qa_file=str(qa), qa="file"))
        documents, n_questions = corpus.documents, len(corpus.qa)
    docs = root / DOCS
    if docs.exists() and any(docs.iterdir()) and not force:
        raise DataError(f"{docs}: already holds documents. Fix: pass --force to replace them, or remove the folder.")
    with atomic_dir(docs) as tmp:
        shutil.copytree(folder, tmp, dirs_exist_ok=True,
                        ignore=lambda _, names: [n for n in names if n.startswith(".")])
    log.info("copied %d documents into %s", len(documents), docs)
    if qa is None:
        return (f"{len(documents)} documents checked and copied into {DOCS}/. No QA file: the generate_qa stage "
                f"writes questions from them ({_writer_note()}; a larger served model is one setting away: "
                "-S dataset.generate.engine=openai -S dataset.generate.openai.base_url=... "
                "-S dataset.generate.openai.model=...).\n"
                f"Run the experiment on them:\n  dvc exp run -S dataset=local -S dataset.qa=generate\n"
                "then `ragft summary` and open reports/report.html; data/generated/ shows what was generated "
                "and which filter dropped what.\n")
    qa_dest = root / RAW / f"qa{qa.suffix.lower()}"
    with atomic_file(qa_dest, "wb") as fh:
        fh.write(qa.read_bytes())
    overrides = "-S dataset=local" + ("" if qa_dest.name == "qa.jsonl" else f" -S dataset.qa_file={RAW / qa_dest.name}")
    log.info("copied %d questions into %s", n_questions, qa_dest)
    return (f"{len(documents)} documents and {n_questions} questions checked and copied into {RAW}/.\n"
            f"Run the experiment on them:\n  dvc exp run {overrides}\n"
            f"then `ragft summary` and open reports/report.html.\n")
