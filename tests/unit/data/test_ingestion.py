"""dataset=local on a user's mixed folder: .pdf (pypdf) and .docx (python-docx) beside .html/.md/.txt, the
per-file errors (encrypted, scanned, damaged), and QA rows that name documents by path or a `doc` column."""

from __future__ import annotations

import io
import json
import logging
import zipfile

import docx
import pytest
from omegaconf import OmegaConf
from pypdf import PdfReader, PdfWriter

from ragft.data import load_corpus, prepare
from ragft.data.sources import load_local
from ragft.io import DataError
from tests.helpers import pdf_bytes, write_docx


@pytest.fixture
def ds(default_cfg):
    """A factory of `dataset` configs: the default, with overrides."""

    def make(**overrides):
        return OmegaConf.merge(default_cfg.dataset, overrides)

    return make


# --------------------------------------------------------------------------- file builders


def _rewrite(pdf: bytes, *, user_password: str | None = None, blank_pages: int = 0) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    for _ in range(blank_pages):
        writer.add_blank_page(612, 792)
    if user_password is not None:
        writer.encrypt(user_password=user_password, owner_password="owner-secret")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def blank_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _qa(tmp_path, rows: list[dict], name: str = "qa.jsonl"):
    qa = tmp_path / name
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return qa


def _mixed_folder(tmp_path):
    docs = tmp_path / "docs"
    (docs / "guides").mkdir(parents=True)
    (docs / "web").mkdir()
    (docs / "misc" / "deep").mkdir(parents=True)
    (docs / "guides" / "setup.pdf").write_bytes(
        pdf_bytes(["Ada was born in Lyon.", "She works for Nimbus Cloud."], title="Setup Guide")
    )
    (docs / "guides" / "untitled.pdf").write_bytes(pdf_bytes(["The depot opens at 6 am."]))
    write_docx(
        docs / "reports" / "q3.docx",
        heading="Quarterly Report",
        paragraphs=["Revenue grew by 12 percent.", "", "Costs stayed flat."],
        table=[["Region", "Sales"], ["North", "40"]],
    )
    (docs / "reports" / "~$q3.docx").write_bytes(b"\x00Word lock file")  # Word's lock file: ignored
    (docs / "web" / "page.html").write_text(
        "<html><head><title>Pricing</title></head><body><p>The basic plan costs 5 euros.</p></body></html>",
        encoding="utf-8",
    )
    (docs / "notes.md").write_text("# Notes\nThe warranty lasts 3 years.\n", encoding="utf-8")
    (docs / "misc" / "deep" / "todo.txt").write_text("Call Ben on Monday.\n", encoding="utf-8")
    return docs


MIXED_QA = [
    {"question": "Where was Ada born?", "answer": "Lyon", "doc_id": "guides/setup.pdf"},  # with suffix
    {"question": "When does the depot open?", "answer": "6 am", "doc_id": "guides/untitled"},  # without
    {"question": "How much did revenue grow?", "answer": "12 percent", "doc": "reports/q3.docx"},  # `doc` column
    {"question": "How much is the basic plan?", "answer": "5 euros", "document": "web/page"},
    {"question": "How long is the warranty?", "answer": "3 years", "doc_id": "./notes.MD"},
    {"question": "Whom to call on Monday?", "answer": "Ben", "doc": "misc/deep/todo"},
]


# --------------------------------------------------------------------------- good input


def test_pdf_builder_writes_a_valid_pdf():
    reader = PdfReader(io.BytesIO(pdf_bytes(["Ada was born in Lyon."], title="T")), strict=True)  # exact xref
    assert reader.pages[0].extract_text() == "Ada was born in Lyon." and reader.metadata.title == "T"


def test_mixed_nested_folder_loads_every_type(tmp_path, ds):
    docs = _mixed_folder(tmp_path)
    corpus = load_local(ds(source="local", path=str(docs), qa_file=str(_qa(tmp_path, MIXED_QA))))
    by_id = {d["doc_id"]: d for d in corpus.documents}
    assert list(by_id) == sorted(
        ["guides/setup", "guides/untitled", "reports/q3", "web/page", "notes", "misc/deep/todo"]
    )
    assert by_id["guides/setup"] == {
        "doc_id": "guides/setup",
        "title": "Setup Guide",  # the PDF's metadata title
        "text": "Ada was born in Lyon.\n\nShe works for Nimbus Cloud.",
    }
    assert by_id["guides/untitled"]["title"] == "untitled"  # no metadata title: the file stem
    assert by_id["reports/q3"] == {
        "doc_id": "reports/q3",
        "title": "Quarterly Report",  # the first Heading paragraph (no core-properties title)
        "text": "Quarterly Report\nRevenue grew by 12 percent.\nCosts stayed flat.\nRegion | Sales\nNorth | 40",
    }
    assert by_id["web/page"]["text"] == "The basic plan costs 5 euros."
    assert by_id["notes"]["title"] == "Notes" and by_id["misc/deep/todo"]["text"] == "Call Ben on Monday."
    assert [q["doc_ids"] for q in corpus.qa] == [
        ["guides/setup"],
        ["guides/untitled"],
        ["reports/q3"],
        ["web/page"],
        ["notes"],
        ["misc/deep/todo"],
    ]


def test_docx_title_from_core_properties_and_merged_cells_once(tmp_path, ds):
    docs = tmp_path / "docs"
    path = docs / "memo.docx"
    write_docx(path, heading=None, paragraphs=["Ada was born in Lyon."], table=[["a", "b", "c"]], title="Memo")
    document = docx.Document(str(path))
    merged = document.tables[0].cell(0, 0).merge(document.tables[0].cell(0, 1))
    merged.text = "merged"
    document.save(str(path))
    qa = _qa(tmp_path, [{"question": "Where was Ada born?", "answer": "Lyon", "doc_id": "memo"}])
    (doc,) = load_local(ds(source="local", path=str(docs), qa_file=str(qa))).documents
    assert doc == {"doc_id": "memo", "title": "Memo", "text": "Ada was born in Lyon.\nmerged | c"}


def test_pdf_encrypted_with_an_empty_password_is_read(tmp_path, ds):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "open.pdf").write_bytes(_rewrite(pdf_bytes(["Ada was born in Lyon."]), user_password=""))
    qa = _qa(tmp_path, [{"question": "Where was Ada born?", "answer": "Lyon", "doc_id": "open.pdf"}])
    (doc,) = load_local(ds(source="local", path=str(docs), qa_file=str(qa))).documents
    assert doc["text"] == "Ada was born in Lyon."


def test_pdf_pages_without_text_are_left_out_with_a_warning(tmp_path, ds, caplog):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "half.pdf").write_bytes(_rewrite(pdf_bytes(["Ada was born in Lyon."]), blank_pages=1))
    qa = _qa(tmp_path, [{"question": "Where was Ada born?", "answer": "Lyon", "doc_id": "half"}])
    with caplog.at_level(logging.WARNING, logger="ragft.data.sources"):
        (doc,) = load_local(ds(source="local", path=str(docs), qa_file=str(qa))).documents
    assert doc["text"] == "Ada was born in Lyon."
    assert "1 of 2 pages have no text layer" in caplog.text


def test_csv_qa_with_a_doc_column_and_suffixed_names(tmp_path, ds):
    docs = _mixed_folder(tmp_path)
    qa = tmp_path / "qa.csv"
    qa.write_text("question,answer,doc\nWhere was Ada born?,Lyon,guides/setup.pdf\n", encoding="utf-8")
    corpus = load_corpus(ds(source="local", path=str(docs), qa_file=str(qa)))
    assert corpus.qa[0]["doc_ids"] == ["guides/setup"]


# --------------------------------------------------------------------------- bad files


def _with(tmp_path, name: str, data: bytes):
    docs = _mixed_folder(tmp_path)
    (docs / name).parent.mkdir(parents=True, exist_ok=True)
    (docs / name).write_bytes(data)
    return docs


def _bad_encrypted(tmp_path):
    return _with(tmp_path, "locked.pdf", _rewrite(pdf_bytes(["Ada was born in Lyon."]), user_password="secret"))


def _bad_scanned(tmp_path):
    return _with(tmp_path, "scans/scan.pdf", blank_pdf())


def _bad_truncated_pdf(tmp_path):
    data = pdf_bytes(["Ada was born in Lyon.", "She works for Nimbus Cloud."])
    return _with(tmp_path, "cut.pdf", data[: len(data) // 2])


def _bad_random_docx(tmp_path):
    return _with(tmp_path, "broken.docx", bytes(range(256)) * 8)


def _bad_zip_not_docx(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "not a Word document")
    return _with(tmp_path, "zipped.docx", buf.getvalue())


@pytest.mark.parametrize(
    "make_bad, named, reason",
    [
        (_bad_encrypted, "locked.pdf", "qpdf --decrypt"),
        (_bad_scanned, "scans/scan.pdf", "no text layer (a scanned PDF?)"),
        (_bad_truncated_pdf, "cut.pdf", "damaged or truncated PDF; pypdf cannot read it"),
        (_bad_random_docx, "broken.docx", "not a Word .docx package"),
        (_bad_zip_not_docx, "zipped.docx", "damaged .docx; python-docx cannot read it"),
    ],
    ids=lambda v: getattr(v, "__name__", "")[5:] if callable(v) else "",
)
def test_bad_document_names_the_file_and_the_fix(tmp_path, ds, make_bad, named, reason):
    docs = make_bad(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(DataError) as err:
        prepare(ds(source="local", path=str(docs), qa_file=str(_qa(tmp_path, MIXED_QA))), out)
    message = str(err.value)
    assert str(docs / named) in message and reason in message and "Fix:" in message
    assert "\n" not in message  # the parser's reason in one line
    assert not out.exists()  # nothing written


# --------------------------------------------------------------------------- bad QA rows


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"question": "Q?", "answer": "A", "doc_id": "guides/nope"}, "doc_id 'guides/nope' is not in the corpus"),
        ({"question": "Q?", "answer": "A", "doc_id": "notes.pdf"}, "Did you mean 'notes'"),  # wrong suffix
        ({"question": "Q?", "answer": "A", "source": "notes"}, "missing field(s) ['doc_id']"),
        ({"question": " ", "answer": "A", "doc": "notes"}, "'question' is empty"),
    ],
    ids=["unknown", "wrong-suffix", "no-doc-column", "empty-question"],
)
def test_bad_qa_row_shows_an_example_with_a_real_doc_id(tmp_path, ds, row, expected):
    docs = _mixed_folder(tmp_path)
    with pytest.raises(DataError) as err:
        load_local(ds(source="local", path=str(docs), qa_file=str(_qa(tmp_path, [row]))))
    message = str(err.value)
    assert "qa.jsonl:line 1" in message and expected in message and "Fix" in message
    example = message.split("Example row: ", 1)[1]
    assert json.loads(example) == {"question": "...?", "answer": "...", "doc_id": "guides/setup"}
    assert "'doc' or 'document'" in message or expected != "missing field(s) ['doc_id']"


def test_bad_csv_qa_row_shows_an_example_in_csv(tmp_path, ds):
    docs = _mixed_folder(tmp_path)
    qa = tmp_path / "qa.csv"
    qa.write_text("question,answer,doc\nQ?,A,guides/nope\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"Example row: \"\.\.\.\?\",\.\.\.,guides/setup"):
        load_local(ds(source="local", path=str(docs), qa_file=str(qa)))
