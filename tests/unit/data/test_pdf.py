"""PDF ingestion without page furniture (ragft/data/pdf.py): running titles, print stamps, URLs and page
numbers at the edges of pages are removed, counted per document in the prepare manifest; body text stays,
even where it repeats; a PDF of nothing but furniture is refused naming the file. Real browser print-outs
(examples/library/docs: headless Chromium, its default header and footer) and PDFs drawn here, whose header
comes before or after the body in the content stream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragft.data import pdf
from ragft.data.sources import _local_documents
from ragft.io import DataError
from tests.helpers import pdf_bytes

LIBRARY = Path(__file__).resolve().parents[3] / "examples" / "library" / "docs"

BODY = [
    ["The Central Library opens at 9:00 on weekdays.", "Its reading room seats 120 people.",
     "The building was designed by Thomas Ashdown.", "It has a stone clock tower."],
    ["Late fees are 20p per day for adults.", "Children pay no late fees at all.",
     "The card replacement fee is 3 pounds.", "Fees are capped at 6 pounds per item."],
    ["The Saltmarsh branch opened in 1936.", "It keeps the maritime collection.",
     "The Harbour Room seats 30 people.", "It closes at 17:00 on Saturdays."],
]


def _page(i: int, n: int, body: list[str], *, header_last: bool) -> list[tuple[float, str]]:
    header = [(770.0, f"12/7/26, 8:{i:02d} PM Library guide"), (756.0, "Marlow Vale Public Library - Annual Guide")]
    footer = [(30.0, f"https://library.example/guide.html {i + 1}/{n}")]
    lines = [(700.0 - 20 * k, text) for k, text in enumerate(body)]
    return lines + header + footer if header_last else header + lines + footer


@pytest.mark.parametrize("header_last", [True, False])
def test_headers_footers_and_page_numbers_are_removed_and_counted(tmp_path, header_last):
    (tmp_path / "guide.pdf").write_bytes(pdf_bytes([_page(i, 3, b, header_last=header_last) for i, b in enumerate(BODY)],
                                                   title="Library guide"))
    documents, _, _, furniture = _local_documents(str(tmp_path))
    text = documents[0]["text"]
    assert all(line in text for page in BODY for line in page)
    for stamp in ("8:0", "Annual Guide", "https://", "1/3", "3/3"):
        assert stamp not in text
    assert len(furniture["guide"]) == 9 and "Marlow Vale Public Library - Annual Guide" in furniture["guide"]


def test_a_line_that_repeats_in_the_body_is_not_furniture(tmp_path):
    """Only lines at a page's edge, with nothing but furniture between them and the edge, can go."""
    pages = [[(770.0, "Library guide"), (700.0, body[0]), (680.0, "Opening hours are below."), (660.0, body[1]),
              (640.0, body[2]), (620.0, body[3]), (30.0, f"Page {i + 1}")] for i, body in enumerate(BODY)]
    (tmp_path / "guide.pdf").write_bytes(pdf_bytes(pages, title="Guide"))
    documents, _, _, furniture = _local_documents(str(tmp_path))
    assert documents[0]["text"].count("Opening hours are below.") == 3
    assert sorted(set(furniture["guide"])) == ["Library guide", "Page 1", "Page 2", "Page 3"]


def test_one_page_print_outs_lose_the_stamp_they_share_but_keep_their_heading(tmp_path):
    """A one-page document cannot show a repetition of its own: the print stamp and URL recur across the
    corpus's PDFs (the title and file name masked); a heading that is just the document's title stays."""
    topics = {"hours": "Opening hours", "fees": "Membership fees", "rooms": "Meeting rooms", "wifi": "Wi-Fi"}
    for k, (stem, title) in enumerate(topics.items()):
        page = [(770.0, f"12/7/26, 8:0{k} PM {title}"), (720.0, title), (700.0, BODY[k % 3][0]),
                (680.0, BODY[k % 3][1]), (30.0, f"file:///home/me/print/{stem}.html 1/1")]
        (tmp_path / f"{stem}.pdf").write_bytes(pdf_bytes([page], title=title))
    (tmp_path / "notes.md").write_text("# Notes\n\n12/7/26, 8:00 PM is when this note was written.\n")
    documents, _, _, furniture = _local_documents(str(tmp_path))
    by_id = {d["doc_id"]: d for d in documents}
    for stem, title in topics.items():
        assert by_id[stem]["text"].splitlines()[0] == title
        assert "PM" not in by_id[stem]["text"] and "file:" not in by_id[stem]["text"]
        assert len(furniture[stem]) == 2
    assert "8:00 PM" in by_id["notes"]["text"] and "notes" not in furniture   # Markdown is not cleaned


def test_a_pdf_that_is_all_furniture_is_refused_naming_the_file(tmp_path):
    stamp = [(770.0, "CONFIDENTIAL"), (756.0, "Marlow Vale Public Library"), (30.0, "Do not copy")]
    (tmp_path / "cover.pdf").write_bytes(pdf_bytes([stamp, stamp, stamp]))
    with pytest.raises(DataError, match=r"cover\.pdf: every line of its 3 page\(s\) repeats .* Fix:"):
        _local_documents(str(tmp_path))


def test_a_browser_print_out_loses_its_header_and_footer(tmp_path):
    """The measurement corpus: 8 documents printed by headless Chromium with its default header (date and
    time, title) and footer (file URL, page n/m) on each of their 2 pages; ligatures (the URL's "ﬁle") expanded."""
    pdfs = sorted(LIBRARY.glob("*.pdf"))
    assert len(pdfs) == 8
    raw = pdf.read(pdfs[0])
    assert any("/2" in line.text for page in raw.pages for line in page)
    documents, _, _, furniture = _local_documents(str(LIBRARY))
    for doc in documents:
        assert len(furniture[doc["doc_id"]]) == 4, doc["doc_id"]        # 2 pages x (header + footer)
        text = doc["text"]
        assert "file://" not in text and "\ufb01" not in text and " PM " not in text and " AM " not in text
        assert len(text.split()) > 700
    assert any(line.startswith("file:///") for line in furniture["branches"])


def test_the_prepare_manifest_counts_what_was_removed(tmp_path):
    from omegaconf import OmegaConf

    from ragft.data import prepare

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.pdf").write_bytes(pdf_bytes([_page(i, 3, b, header_last=True) for i, b in enumerate(BODY)]))
    (docs / "notes.md").write_text("# Notes\n\nThe Eastbrook branch opened in 1958.\n")
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(json.dumps(r) for r in [
        {"question": "When does the Central Library open on weekdays?", "answer": "9:00", "doc_id": "guide"},
        {"question": "When did the Eastbrook branch open?", "answer": "1958", "doc_id": "notes"}]) + "\n")
    ds = OmegaConf.create({"source": "local", "name": "local", "path": str(docs), "qa_file": str(qa), "qa": "file",
                           "eval_fraction": 0.5, "dev_fraction": 0.0, "seed": 0, "paraphrases": 0})
    out = tmp_path / "prepared"
    out.mkdir()
    manifest = prepare(ds, out)
    assert manifest["pdf_furniture"]["guide"]["lines_removed"] == 9
    assert "Marlow Vale Public Library - Annual Guide" in manifest["pdf_furniture"]["guide"]["distinct"]
    assert "notes" not in manifest["pdf_furniture"]
