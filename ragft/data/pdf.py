"""PDF documents: pypdf's text layer, page by page, without the page furniture.

A PDF printed from a browser or a word processor carries *page furniture* on every page: a running title,
the print date and time, the file's URL, the page number ("3/7"). pypdf's text keeps it, and it then
passes every question filter (it *is* in the document) and lands in every chunk the retriever sees.

pypdf has no header/footer detection (its documentation's recipe crops fixed y-coordinates, which differ
from one producer to the next); it does give each text run's position (``extract_text(visitor_text=...)``),
and the runs concatenate exactly to ``extract_text()``. So each page's lines come with their height, and a
line is furniture by the rule of decoration detection in document layout analysis (Déjean & Meunier 2006;
PdfPig's DecorationTextBlockClassifier): it is among the ``EDGE_LINES`` lines nearest the top or the bottom
of its page, with only furniture between it and that edge, and its *signature* (lower case, every run of digits one ``#``, the document's title and file
name masked) recurs at that edge

- on at least half of the document's pages (and at least 2): running titles, dates, page numbers; or
- in at least half of the corpus's PDFs (and at least 3): the same print stamp on one-page documents, whose
  own pages cannot show a repetition.

Body text does not recur at page edges, so it is kept; a document whose every line is furniture is refused.
The Alphabetic Presentation Forms ligatures ("ﬁ", "ﬂ", …) that some producers write are expanded (NFKC),
so "ﬁle" matches "file".
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ragft.io import DataError

log = logging.getLogger(__name__)

EDGE_LINES = 3          # lines at each edge of a page that can be furniture
_LIGATURES = re.compile("[\ufb00-\ufb06]")
_DIGITS = re.compile(r"\d+")


@dataclass
class Line:
    text: str
    y: float            # height on the page of the line's first text run (PDF user space: larger is higher)


@dataclass
class PdfText:
    """A PDF's text layer: its metadata title and each page's lines (pypdf's order, with their height)."""

    path: Path
    title: str
    pages: list[list[Line]]
    removed: list[str] = field(default_factory=list)   # the furniture lines taken out (clean())

    def text(self, drop: set[tuple[int, int]] = frozenset()) -> str:
        """The pages' text, pages separated by blank lines, without the lines ``drop`` names (page, line)."""
        pages = ("\n".join(line.text for j, line in enumerate(lines) if (i, j) not in drop).strip()
                 for i, lines in enumerate(self.pages))
        return "\n\n".join(p for p in pages if p)


def _expand_ligatures(text: str) -> str:
    return _LIGATURES.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)


def _page_lines(page) -> list[Line]:
    """A page's lines with their heights, from pypdf's text runs (which join to exactly extract_text())."""
    lines: list[Line] = []
    parts: list[str] = []
    height: list[float | None] = [None]

    def close() -> None:
        text = _expand_ligatures("".join(parts)).strip()
        if text:
            lines.append(Line(" ".join(text.split()), height[0] if height[0] is not None else 0.0))
        parts.clear()
        height[0] = None

    def visit(text: str, cm: list, tm: list, font: object, size: object) -> None:
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]   # the run's origin, text space → user space
        for k, piece in enumerate(text.split("\n")):
            if k:
                close()
            if piece.strip() and height[0] is None:
                height[0] = float(y)
            parts.append(piece)

    page.extract_text(visitor_text=visit)
    close()
    return lines


def read(path: Path) -> PdfText:
    """The text layer of ``path``, checked: encrypted, damaged, page-less and scanned PDFs are refused
    naming the file and the fix. pypdf is imported here: only corpora with PDFs pay for it."""
    import pypdf
    from pypdf.errors import DependencyError

    fix = "re-download or re-export it, and check that it opens in a PDF viewer."
    try:
        reader = pypdf.PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise DataError(
                f"{path}: encrypted (it needs a password to open). "
                "Fix: save an unencrypted copy (e.g. `qpdf --decrypt in.pdf out.pdf`)."
            )
        pages = [_page_lines(page) for page in reader.pages]
        title = str((reader.metadata.title if reader.metadata else None) or "").strip()
    except DataError:
        raise
    except DependencyError as err:  # AES-encrypted files need `cryptography` even with no password
        raise DataError(f"{path}: encrypted, and {err}. Fix: `pip install cryptography` or decrypt it.") from None
    except Exception as err:  # noqa: BLE001 -- pypdf raises many types on damaged files; all mean "damaged"
        reason = next((line.strip() for line in str(err).splitlines() if line.strip()), "no reason given")
        raise DataError(f"{path}: a damaged or truncated PDF; pypdf cannot read it ({type(err).__name__}: "
                        f"{reason}). Fix: {fix}") from None
    if not pages:
        raise DataError(f"{path}: a PDF without pages (damaged or truncated?). Fix: {fix}")
    if not any(pages):
        raise DataError(
            f"{path}: {len(pages)} page(s) but no text layer (a scanned PDF?). "
            "Fix: OCR it first, e.g. `ocrmypdf in.pdf out.pdf`."
        )
    if not all(pages):
        log.warning("%s: %d of %d pages have no text layer (scanned?); their content is left out",
                    path, sum(not p for p in pages), len(pages))
    return PdfText(path, title, pages)


def _signature(text: str, masks: list[str]) -> str:
    """A line as it recurs from page to page: page numbers, dates and times differ only in their digits; the
    title and the file name differ only from document to document."""
    sig = " ".join(text.lower().split())
    for mask in masks:
        if len(mask) >= 3:
            sig = sig.replace(mask, "\0")
    return _DIGITS.sub("#", sig)


def _beyond_masks(sig: str) -> bool:
    """Whether a signature says more than the document's title or name: a heading that is just the title
    opens many one-page documents, and is body text."""
    return bool(sig.replace("\0", "").strip(" -–—|:.,"))


def _edges(lines: list[Line]) -> tuple[list[int], list[int]]:
    """The indices of a page's ``EDGE_LINES`` highest lines, top down, and lowest lines, bottom up."""
    order = sorted(range(len(lines)), key=lambda j: -lines[j].y)
    return order[:EDGE_LINES], order[::-1][:EDGE_LINES]


def clean(docs: list[PdfText]) -> list[str]:
    """Each document's text without its page furniture (module docstring), in ``docs``' order; what was
    removed is left in each document's ``removed``. A document left without text is refused, naming it."""
    # (document, page, line) -> signature, for the lines at a page's edge
    edge: dict[tuple[int, int, int], str] = {}
    for d, doc in enumerate(docs):
        masks = [" ".join(m.lower().split()) for m in (doc.title, doc.path.name, doc.path.stem)]
        for p, lines in enumerate(doc.pages):
            top, bottom = _edges(lines)
            for j in {*top, *bottom}:
                edge[d, p, j] = _signature(lines[j].text, masks)
    across = Counter(sig for _, sig in {(d, sig) for (d, _, _), sig in edge.items()})   # documents per signature
    corpus_min = max(3, math.ceil(len(docs) / 2))
    texts = []
    for d, doc in enumerate(docs):
        within = Counter(sig for _, sig in {(p, sig) for (dd, p, _), sig in edge.items() if dd == d})
        doc_min = max(2, math.ceil(len(doc.pages) / 2))
        recurs = {(p, j) for (dd, p, j), sig in edge.items()
                  if dd == d and (within[sig] >= doc_min or (across[sig] >= corpus_min and _beyond_masks(sig)))}
        drop = set()   # peeled from each edge inward: furniture stops at the first line of body text
        for p, lines in enumerate(doc.pages):
            for side in _edges(lines):
                for j in side:
                    if (p, j) not in recurs:
                        break
                    drop.add((p, j))
        doc.removed = [doc.pages[p][j].text for p, j in sorted(drop)]
        text = doc.text(drop)
        if not text:
            raise DataError(
                f"{doc.path}: every line of its {len(doc.pages)} page(s) repeats at the top or bottom of its pages "
                f"(page furniture: running titles, dates, page numbers), so nothing is left once that is removed "
                f"(e.g. {doc.removed[0]!r}). Fix: export the document with its body text, or remove the file."
            )
        if drop:
            log.info("%s: %d page-furniture line(s) removed (e.g. %r)", doc.path, len(drop), doc.removed[0])
        texts.append(text)
    return texts
