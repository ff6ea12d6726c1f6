"""The three sources of a corpus (documents + questions about them), one loader each.

- synthbio: fictional people (ragft.data.synthbio), the default: every fact is new to any model.
- local: a folder of .md/.txt/.html/.pdf/.docx files and a .jsonl/.csv QA file: a user's own documents.
- hf: any `datasets` dataset with a question/answer/context column mapping (SQuAD-style).

Every loader reads and checks all of its input before returning, so a bad file fails the stage
before anything is written, with the file, the row or field, and the fix in the message.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import random
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from ragft import paths
from ragft.config import ConfigError
from ragft.data import pdf, synthbio
from ragft.data.validate import check_documents, check_qa
from ragft.io import DataError

log = logging.getLogger(__name__)

DOC_SUFFIXES = (".md", ".txt", ".html", ".htm", ".pdf", ".docx")
QA_COLUMNS = ("question", "answer", "doc_id")
# Other names users give the doc_id column (first found wins; doc_id itself comes first).
DOC_ID_ALIASES = ("doc", "document")


@dataclass
class Corpus:
    """What the prepare stage writes: rows in ragft's formats (see ragft/data/__init__.py)."""

    documents: list[dict]
    qa: list[dict]
    paraphrases: list[dict] = field(default_factory=list)
    # questions about no document of the corpus (synthbio: people absent from it); every arm answers them
    # and is scored on abstaining (qa_absent.jsonl)
    unanswerable: list[dict] = field(default_factory=list)
    # per PDF (doc id): the page-furniture lines removed at ingestion (ragft/data/pdf.py), for the manifest
    furniture: dict[str, list[str]] = field(default_factory=dict)


# --------------------------------------------------------------------------- synthbio


def load_synthbio(ds: Any) -> Corpus:
    """``ds.n_people`` people of the experiment pool; one biography each (``dataset.permute``,
    ``dataset.fullname``); ``ds.paraphrases`` more renderings for the ``dataset.celebrity_fraction`` of them;
    one question per attribute (random template), the ``dataset.derived`` questions, and questions about
    ``dataset.absent_people`` people of the pool who are not in the corpus (answer: synthbio.ABSTAIN)."""
    try:
        attrs = synthbio.check_attributes(ds.attributes)
        everyone = synthbio.generate_people(ds.n_people + ds.absent_people, ds.seed, "experiment", attrs)
        people, absent = everyone[: ds.n_people], everyone[ds.n_people :]
        derived = synthbio.derived_questions(people, list(ds.derived), ds.seed)
    except ValueError as err:
        raise ConfigError(f"params.yaml: field 'dataset.attributes'/'dataset.n_people'/'dataset.derived': {err}") from None
    render = {"permute": bool(ds.permute), "fullname": bool(ds.fullname)}
    n_celebrities = round(float(ds.celebrity_fraction) * len(people))
    celebrities = {p.person_id for p in random.Random(f"celebrity:{ds.seed}").sample(people, n_celebrities)}
    grouped = 0 < n_celebrities < len(people)   # questions say their person's group only when there are two
    documents, paraphrases, qa = [], [], []
    for p in people:
        # One RNG per person and purpose: a person's text does not depend on the others.
        documents.append(
            {
                "doc_id": p.person_id,
                "title": p.name,
                "text": synthbio.render_biography(p, random.Random(f"bio:{ds.seed}:{p.person_id}:0"), **render),
            }
        )
        if p.person_id in celebrities:
            for i in range(1, ds.paraphrases + 1):
                text = synthbio.render_biography(p, random.Random(f"bio:{ds.seed}:{p.person_id}:{i}"), **render)
                paraphrases.append({"doc_id": p.person_id, "paraphrase": i, "text": text})
        for q in synthbio.make_questions(p, random.Random(f"qa:{ds.seed}:{p.person_id}")):
            row = {"qid": f"{p.person_id}-{q.attribute}", "question": q.question, "answer": q.answer,
                   "doc_ids": [p.person_id], "attribute": q.attribute}
            if grouped:
                row["group"] = "celebrity" if p.person_id in celebrities else "minority"
            qa.append(row)
    for d in derived:
        qa.append({"qid": f"{d.person_ids[0]}-{d.kind}", "question": d.question, "answer": d.answer,
                   "doc_ids": list(d.person_ids), "attribute": d.kind})
    unanswerable = [
        {"qid": f"{p.person_id}-{q.attribute}", "question": q.question, "answer": synthbio.ABSTAIN, "doc_ids": [],
         "attribute": q.attribute, "cluster": p.person_id}   # no document: resampled with the person's others
        for p in absent for q in synthbio.make_questions(p, random.Random(f"qa:{ds.seed}:{p.person_id}"))
    ]
    return Corpus(documents, qa, paraphrases, unanswerable)


# --------------------------------------------------------------------------- local


class _HTMLText(HTMLParser):
    """Visible text of an HTML page (script/style dropped, block elements on their own lines)."""

    BLOCKS = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "ul",
            "ol",
            "tr",
            "table",
            "section",
            "article",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "pre",
            "blockquote",
        }
    )
    HIDDEN = frozenset({"script", "style", "noscript", "template", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._hidden = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.HIDDEN:
            self._hidden += 1
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._hidden:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str, str]:
    """``(title, text)`` of an HTML page, whitespace tidied line by line."""
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return " ".join("".join(parser.title).split()), "\n".join(line for line in lines if line)


def _read_utf8(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not UTF-8 ({err.reason} at byte {err.start}). "
            "Fix: re-encode it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
        ) from None


def _damaged(path: Path, what: str, parser: str, err: Exception, fix: str) -> DataError:
    """The parser's reason in one line: its messages can span many, or be empty."""
    reason = next((line.strip() for line in str(err).splitlines() if line.strip()), "no reason given")
    return DataError(f"{path}: {what}; {parser} cannot read it ({type(err).__name__}: {reason}). Fix: {fix}")


def _docx_text(path: Path) -> tuple[str, str]:
    """``(title, text)`` of a Word document: paragraphs and table rows in document order, one per line.
    Title: the core properties' title, else the first Title/Heading paragraph."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    fix = "re-save it from Word or LibreOffice as .docx (an old .doc file must be converted first)."
    try:
        document = docx.Document(str(path))
        lines: list[str] = []
        heading = ""
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                for row in block.rows:
                    cells: list[Any] = []
                    for cell in row.cells:  # a merged cell repeats in every column it spans
                        if not any(cell._tc is c._tc for c in cells):
                            cells.append(cell)
                    texts = [" ".join(c.text.split()) for c in cells]
                    if any(texts):
                        lines.append(" | ".join(texts))
                continue
            text = block.text.strip()
            if not text:
                continue
            lines.append(text)
            style = block.style.name if block.style is not None else ""
            if not heading and (style == "Title" or style.startswith("Heading")):
                heading = text
        title = (document.core_properties.title or "").strip() or heading
    except PackageNotFoundError:
        raise DataError(
            f"{path}: not a Word .docx package (a ZIP file): damaged, or a renamed .doc? Fix: {fix}"
        ) from None
    except Exception as err:  # noqa: BLE001 -- zipfile/lxml/python-docx errors on damaged files
        raise _damaged(path, "a damaged .docx", "python-docx", err, fix) from None
    return title, "\n".join(lines)


def _document(path: Path, root: Path, pdf_text: tuple[str, str] | None = None) -> dict:
    """A document row; a PDF's ``(title, text)`` comes read and cleaned (ragft/data/pdf.py)."""
    suffix = path.suffix.lower()
    title = ""
    if pdf_text is not None:
        title, text = pdf_text
    elif suffix == ".docx":
        title, text = _docx_text(path)
    elif suffix in (".html", ".htm"):
        title, text = html_to_text(_read_utf8(path))
    else:
        text = _read_utf8(path).strip()
        first = text.splitlines()[0] if text else ""
        if suffix == ".md" and first.startswith("#"):
            title = first.lstrip("#").strip()
    doc_id = path.relative_to(root).with_suffix("").as_posix()
    return {"doc_id": doc_id, "title": title or path.stem, "text": text}


def _doc_id_of(row: dict) -> Any:
    """The row's doc_id, or the value of its first alias column (None if it has neither)."""
    return next((row[name] for name in ("doc_id", *DOC_ID_ALIASES) if name in row), None)


def _names_doc(columns: Any) -> bool:
    return any(name in columns for name in ("doc_id", *DOC_ID_ALIASES))


def _qa_rows(qa_file: Path, text: str) -> list[tuple[str, dict]]:
    """``(where, row)`` for each row of a .jsonl or .csv QA file, with the required columns checked."""
    rows: list[tuple[str, dict]] = []
    also = f"(doc_id may also be called {' or '.join(map(repr, DOC_ID_ALIASES))})"
    if qa_file.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames or []
        missing = [c for c in QA_COLUMNS if c not in header and not (c == "doc_id" and _names_doc(header))]
        if missing:
            raise DataError(
                f"{qa_file}: missing column(s) {missing} in the header {reader.fieldnames}. "
                f"Fix: the first line must name the columns {list(QA_COLUMNS)} {also}."
            )
        rows = [(f"{qa_file}:line {reader.line_num}", row) for row in reader]
    elif qa_file.suffix.lower() in (".jsonl", ".ndjson"):
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{qa_file}:line {i}: not valid JSON ({err.msg}). Fix or remove the line.") from None
            if not isinstance(row, dict):
                raise DataError(f"{qa_file}:line {i}: expected a JSON object with {list(QA_COLUMNS)}. Fix the line.")
            missing = [c for c in QA_COLUMNS if c not in row and not (c == "doc_id" and _names_doc(row))]
            if missing:
                raise DataError(
                    f"{qa_file}:line {i}: missing field(s) {missing}. Fix: every row needs {list(QA_COLUMNS)} {also}."
                )
            rows.append((f"{qa_file}:line {i}", row))
    else:
        raise DataError(
            f"{qa_file}: unsupported QA file type {qa_file.suffix!r}. Fix: use .jsonl or .csv (dataset.qa_file)."
        )
    return rows


def _example_row(qa_file: Path, doc_id: str) -> str:
    """One valid QA row naming a real document, in the QA file's own format: shown with every row error."""
    if qa_file.suffix.lower() == ".csv":
        return f'Example row: "...?",...,{doc_id} (under the header line question,answer,doc_id)'
    return "Example row: " + json.dumps({"question": "...?", "answer": "...", "doc_id": doc_id})


def _normalise_doc_id(value: Any, doc_ids: set[str], by_path: dict[str, str]) -> str:
    """A QA row's document as a doc id: ``guides/setup``, ``guides/setup.pdf`` and ``./guides\\setup.PDF``
    all name the file guides/setup.pdf (a doc id wins over a path). Anything else is kept for check_qa to report."""
    name = str(value or "").strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    if name in doc_ids:
        return name
    stem, dot, suffix = name.rpartition(".")
    return by_path.get(f"{stem}.{suffix.lower()}", name) if dot else name


def _relative(path: Path, root: Path) -> str:
    """A file's path relative to the corpus folder, its suffix lower-cased (what a QA row may name)."""
    rel = path.relative_to(root).as_posix()
    return rel[: len(rel) - len(path.suffix)] + path.suffix.lower()


def _local_documents(path: str | None) -> tuple[list[dict], list[str], dict[str, str], dict[str, list[str]]]:
    """(documents with text, sorted by doc id; doc ids of empty files; relative path → doc id; doc id → the
    page-furniture lines removed from that PDF) of a folder."""
    if not path:
        raise ConfigError(
            f"params.yaml: field 'dataset.path' is empty. Fix: set it to a folder of {'/'.join(DOC_SUFFIXES)} files."
        )
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: corpus folder not found (dataset.path). Fix: create it or point dataset.path at it.")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in DOC_SUFFIXES
        and not p.name.startswith("~$")  # the lock file Word keeps beside an open document
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise DataError(f"{root}: no {'/'.join(DOC_SUFFIXES)} files found. Fix: put your documents in this folder.")
    documents, where, empty = [], [], []
    by_path: dict[str, str] = {}  # relative path (suffix lower-cased) -> doc id: QA rows may name either
    pdfs = [pdf.read(p) for p in files if p.suffix.lower() == ".pdf"]
    cleaned = {d.path: (d.title, text) for d, text in zip(pdfs, pdf.clean(pdfs), strict=True)}
    for path in files:
        doc = _document(path, root, cleaned.get(path))
        by_path[_relative(path, root)] = doc["doc_id"]
        if doc["text"]:
            documents.append(doc)
            where.append(str(path))
        else:
            log.warning("%s: no text; skipped", path)
            empty.append(doc["doc_id"])
    if not documents:
        shown = ", ".join(str(f) for f in files[:3]) + (", ..." if len(files) > 3 else "")
        raise DataError(f"{root}: all {len(files)} document files are empty ({shown}). Fix: give them text.")
    check_documents(documents, where, str(root))
    documents.sort(key=lambda d: d["doc_id"])
    furniture = {by_path[_relative(d.path, root)]: d.removed for d in pdfs if d.removed}
    return documents, empty, by_path, furniture


def load_documents(path: str | None) -> list[dict]:
    """The documents of a folder (recursive, sorted; doc id = relative path without suffix), checked."""
    return _local_documents(path)[0]


def load_local(ds: Any) -> Corpus:
    """Documents from ``ds.path`` and questions from ``ds.qa_file``, or, with ``ds.qa=generate``, from the
    generate_qa stage's file (the same checks either way)."""
    documents, empty, by_path, furniture = _local_documents(ds.path)
    if getattr(ds, "qa", "file") == "generate":
        qa_file = paths.GENERATED_QA
        if not qa_file.is_file():
            raise DataError(f"{qa_file}: no generated questions (dataset.qa=generate). Fix: `dvc repro generate_qa`.")
        return _local_qa(documents, empty, by_path, qa_file, furniture)
    if not ds.qa_file:
        raise ConfigError("params.yaml: field 'dataset.qa_file' is empty. Fix: set it to a .jsonl or .csv QA file.")
    qa_file = Path(ds.qa_file)
    if not qa_file.is_file():
        raise DataError(
            f"{qa_file}: QA file not found (dataset.qa_file). Fix: create it, point dataset.qa_file at it, or "
            "let ragft write the questions (-S dataset.qa=generate)."
        )
    return _local_qa(documents, empty, by_path, qa_file, furniture)


def _local_qa(documents: list[dict], empty: list[str], by_path: dict[str, str], qa_file: Path,
              furniture: dict[str, list[str]]) -> Corpus:
    text = _read_utf8(qa_file)
    doc_ids = {d["doc_id"] for d in documents}
    known = doc_ids | set(empty)
    try:
        located = _qa_rows(qa_file, text)
        qa = []
        for i, (_, row) in enumerate(located, 1):
            qa.append(
                {
                    "qid": str(row.get("qid") or f"q{i:05d}"),
                    "question": str(row["question"] or "").strip(),
                    "answer": str(row["answer"] or "").strip(),
                    "doc_ids": [_normalise_doc_id(_doc_id_of(row), known, by_path)],
                    "attribute": row.get("attribute") or None,
                }
            )
        check_qa(qa, [w for w, _ in located] or [str(qa_file)], doc_ids, empty)
    except DataError as err:  # a new user's first QA file: show a row that would pass, naming a real document
        raise DataError(f"{err} {_example_row(qa_file, documents[0]['doc_id'])}") from None
    return Corpus(documents, qa, furniture=furniture)


# --------------------------------------------------------------------------- hf


def _short_hash(text: str, n: int = 12) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def _first_answer(value: Any) -> str:
    """A str column, a list of answers, or SQuAD's {"text": [...], "answer_start": [...]}: the first."""
    if isinstance(value, dict):
        value = value.get("text")
    if isinstance(value, (list, tuple)):
        value = next((v for v in value if str(v).strip()), "")
    return str(value or "").strip()


def _load_hf_dataset(h: Any) -> Any:
    """The split of ``h.name`` via `datasets` (a folder from `save_to_disk` via `load_from_disk`)."""
    import datasets
    from omegaconf import OmegaConf

    local = Path(h.name)
    try:
        if local.is_dir() and ((local / "state.json").exists() or (local / "dataset_dict.json").exists()):
            data = datasets.load_from_disk(str(local))
            return data[h.split] if isinstance(data, datasets.DatasetDict) else data
        data_files = OmegaConf.to_container(h.data_files) if OmegaConf.is_config(h.data_files) else h.data_files
        return datasets.load_dataset(h.name, h.config, split=h.split, revision=h.revision, data_files=data_files)
    except (FileNotFoundError, ValueError, KeyError, ConnectionError, datasets.exceptions.DatasetsError) as err:
        raise DataError(
            f"dataset.hf.name={h.name!r} (config={h.config!r}, split={h.split!r}, revision={h.revision!r}): "
            f"cannot load ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). Fix: check the name, "
            "split and data_files; the hub is only reachable with HF_HUB_OFFLINE=0 and network access."
        ) from None


def load_hf(ds: Any) -> Corpus:
    """Rows of a `datasets` dataset (seeded shuffle, then ``limit``); identical contexts become one
    document whose id is a short hash of its text. Unanswerable rows and repeated questions are dropped."""
    h = ds.hf
    data = _load_hf_dataset(h)
    origin = f"dataset.hf.name={h.name!r} split={h.split!r}"
    columns = set(data.column_names)
    for key in ("question", "answer", "context"):
        if getattr(h, key) not in columns:
            raise DataError(
                f"{origin}: column {getattr(h, key)!r} (dataset.hf.{key}) not found; columns are {sorted(columns)}. "
                f"Fix: set dataset.hf.{key} to one of them."
            )
    data = data.shuffle(seed=ds.seed)
    if h.limit is not None:
        data = data.select(range(min(h.limit, len(data))))
    documents: dict[str, dict] = {}
    qa, seen, skipped = [], set(), 0
    for row in data:
        context = str(row[h.context] or "").strip()
        question = str(row[h.question] or "").strip()
        answer = _first_answer(row[h.answer])
        if not (context and question and answer) or question in seen:
            skipped += 1
            continue
        seen.add(question)
        doc_id = "d" + _short_hash(context)
        title = str(row[h.title]).strip() if h.title in columns and row[h.title] else ""
        documents.setdefault(doc_id, {"doc_id": doc_id, "title": title or doc_id, "text": context})
        qa.append(
            {
                "qid": "q" + _short_hash(question),
                "question": question,
                "answer": answer,
                "doc_ids": [doc_id],
                "attribute": None,
            }
        )
    if skipped:
        log.warning("%s: skipped %d rows without context/question/answer or repeating a question", origin, skipped)
    docs = sorted(documents.values(), key=lambda d: d["doc_id"])
    check_documents(docs, [origin] * len(docs), origin)
    check_qa(qa, [f"{origin} qid {r['qid']}" for r in qa] or [origin], set(documents))
    return Corpus(docs, qa)


LOADERS = {"synthbio": load_synthbio, "local": load_local, "hf": load_hf}
