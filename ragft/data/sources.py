"""The three sources of a corpus (documents + questions about them), one loader each.

- synthbio: fictional people (ragft.data.synthbio), the default: every fact is new to any model.
- local: a folder of .md/.txt/.html files and a .jsonl/.csv QA file: a user's own documents.
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

from ragft.config import ConfigError
from ragft.data import synthbio
from ragft.data.validate import check_documents, check_qa
from ragft.io import DataError

log = logging.getLogger(__name__)

DOC_SUFFIXES = (".md", ".txt", ".html", ".htm")
QA_COLUMNS = ("question", "answer", "doc_id")


@dataclass
class Corpus:
    """What the prepare stage writes: rows in ragft's formats (see ragft/data/__init__.py)."""

    documents: list[dict]
    qa: list[dict]
    paraphrases: list[dict] = field(default_factory=list)


# --------------------------------------------------------------------------- synthbio


def load_synthbio(ds: Any) -> Corpus:
    """``ds.n_people`` people of the experiment pool; one biography each, ``ds.paraphrases`` more
    renderings, and one question per attribute (random template)."""
    try:
        attrs = synthbio.check_attributes(ds.attributes)
        people = synthbio.generate_people(ds.n_people, ds.seed, "experiment", attrs)
    except ValueError as err:
        raise ConfigError(f"params.yaml: field 'dataset.attributes'/'dataset.n_people': {err}") from None
    documents, paraphrases, qa = [], [], []
    for p in people:
        # One RNG per person and purpose: a person's text does not depend on the others.
        documents.append(
            {
                "doc_id": p.person_id,
                "title": p.name,
                "text": synthbio.render_biography(p, random.Random(f"bio:{ds.seed}:{p.person_id}:0")),
            }
        )
        for i in range(1, ds.paraphrases + 1):
            text = synthbio.render_biography(p, random.Random(f"bio:{ds.seed}:{p.person_id}:{i}"))
            paraphrases.append({"doc_id": p.person_id, "paraphrase": i, "text": text})
        for q in synthbio.make_questions(p, random.Random(f"qa:{ds.seed}:{p.person_id}")):
            qa.append(
                {
                    "qid": f"{p.person_id}-{q.attribute}",
                    "question": q.question,
                    "answer": q.answer,
                    "doc_ids": [p.person_id],
                    "attribute": q.attribute,
                }
            )
    return Corpus(documents, qa, paraphrases)


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


def _document(path: Path, root: Path) -> dict:
    raw = _read_utf8(path)
    title = ""
    if path.suffix.lower() in (".html", ".htm"):
        title, text = html_to_text(raw)
    else:
        text = raw.strip()
        first = text.splitlines()[0] if text else ""
        if path.suffix.lower() == ".md" and first.startswith("#"):
            title = first.lstrip("#").strip()
    doc_id = path.relative_to(root).with_suffix("").as_posix()
    return {"doc_id": doc_id, "title": title or path.stem, "text": text}


def _qa_rows(qa_file: Path) -> list[tuple[str, dict]]:
    """``(where, row)`` for each row of a .jsonl or .csv QA file, with the required columns checked."""
    text = _read_utf8(qa_file)
    rows: list[tuple[str, dict]] = []
    if qa_file.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [c for c in QA_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"{qa_file}: missing column(s) {missing} in the header {reader.fieldnames}. "
                f"Fix: the first line must name the columns {list(QA_COLUMNS)}."
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
            missing = [c for c in QA_COLUMNS if c not in row]
            if missing:
                raise DataError(
                    f"{qa_file}:line {i}: missing field(s) {missing}. Fix: every row needs {list(QA_COLUMNS)}."
                )
            rows.append((f"{qa_file}:line {i}", row))
    else:
        raise DataError(
            f"{qa_file}: unsupported QA file type {qa_file.suffix!r}. Fix: use .jsonl or .csv (dataset.qa_file)."
        )
    return rows


def load_local(ds: Any) -> Corpus:
    """Documents from ``ds.path`` (recursive, sorted; doc id = relative path without suffix) and
    questions from ``ds.qa_file``."""
    if not ds.path:
        raise ConfigError(
            "params.yaml: field 'dataset.path' is empty. Fix: set it to a folder of .md/.txt/.html files."
        )
    root = Path(ds.path)
    if not root.is_dir():
        raise DataError(f"{root}: corpus folder not found (dataset.path). Fix: create it or point dataset.path at it.")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in DOC_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise DataError(f"{root}: no {'/'.join(DOC_SUFFIXES)} files found. Fix: put your documents in this folder.")
    documents, where, empty = [], [], []
    for path in files:
        doc = _document(path, root)
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

    if not ds.qa_file:
        raise ConfigError("params.yaml: field 'dataset.qa_file' is empty. Fix: set it to a .jsonl or .csv QA file.")
    qa_file = Path(ds.qa_file)
    if not qa_file.is_file():
        raise DataError(
            f"{qa_file}: QA file not found (dataset.qa_file). Fix: create it or point dataset.qa_file at it."
        )
    located = _qa_rows(qa_file)
    qa = []
    for i, (_, row) in enumerate(located, 1):
        qa.append(
            {
                "qid": str(row.get("qid") or f"q{i:05d}"),
                "question": str(row["question"] or "").strip(),
                "answer": str(row["answer"] or "").strip(),
                "doc_ids": [str(row["doc_id"] or "").strip()],
                "attribute": row.get("attribute") or None,
            }
        )
    check_qa(qa, [w for w, _ in located] or [str(qa_file)], {d["doc_id"] for d in documents}, empty)
    documents.sort(key=lambda d: d["doc_id"])
    return Corpus(documents, qa)


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
