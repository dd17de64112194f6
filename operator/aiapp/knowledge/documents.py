"""Documents and the text inside them: HTML, Markdown, plain text and PDF.

A *document* is one page or file with a stable ``source`` (its URL or filestore path), a
``document_id`` derived from that source, and the readable text the indexer splits. The content
hash covers the text only, so a page whose markup changed but whose readable text did not is
not embedded again. Fetching bytes is the sources' job; this module only turns bytes into text,
through trafilatura for HTML and pypdf for PDF.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

import trafilatura
from pypdf import PdfReader
from pypdf.errors import PyPdfError

log = logging.getLogger(__name__)


class Format(StrEnum):
    HTML = "html"
    MARKDOWN = "markdown"
    TEXT = "text"
    PDF = "pdf"


# File suffixes the filestore and seed zips are read for; anything else is skipped.
SUFFIX_FORMATS: dict[str, Format] = {
    ".html": Format.HTML,
    ".htm": Format.HTML,
    ".md": Format.MARKDOWN,
    ".markdown": Format.MARKDOWN,
    ".txt": Format.TEXT,
    ".text": Format.TEXT,
    ".pdf": Format.PDF,
}

# HTTP content types the crawler reads; anything else is skipped.
MEDIA_FORMATS: dict[str, Format] = {
    "text/html": Format.HTML,
    "application/xhtml+xml": Format.HTML,
    "text/markdown": Format.MARKDOWN,
    "text/x-markdown": Format.MARKDOWN,
    "text/plain": Format.TEXT,
    "application/pdf": Format.PDF,
}


class SourceError(Exception):
    """A source could not be read, so the run fails and the previous version keeps serving."""


@dataclass(frozen=True)
class Document:
    source: str
    text: str

    @property
    def document_id(self) -> str:
        """Stable across versions, so a changed page replaces its own chunks."""
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def format_of_path(path: str) -> Format | None:
    return SUFFIX_FORMATS.get(PurePosixPath(path).suffix.lower())


def format_of_media_type(content_type: str) -> Format | None:
    return MEDIA_FORMATS.get(content_type.split(";")[0].strip().lower())


def extract_text(data: bytes, fmt: Format, *, source: str, readability: bool = True) -> str:
    """The readable text of a document's bytes; empty when there is none.

    Args:
        data: the raw bytes as fetched or read.
        fmt: what the bytes are.
        source: the URL or path, for log lines and for trafilatura's link resolution.
        readability: for HTML, keep only the main content (True) or all visible text (False).

    Returns:
        Text ready to split (Markdown for HTML with readability, so headings guide the splitter).
    """
    if fmt is Format.PDF:
        return _pdf_text(data, source)
    if fmt is Format.HTML:
        html = data.decode("utf-8", errors="replace")
        if not readability:
            return trafilatura.html2txt(html).strip()
        text = trafilatura.extract(
            html,
            url=source,
            output_format="markdown",
            include_comments=False,
            include_tables=True,
            favor_recall=True,
        )
        # Very short pages have no "main content" to trafilatura; fall back to all their text.
        return (text or trafilatura.html2txt(html)).strip()
    return data.decode("utf-8", errors="replace").strip()


def _pdf_text(data: bytes, source: str) -> str:
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, OSError) as error:
        log.warning("%s: skipped, the PDF could not be read: %s", source, error)
        return ""
    return "\n\n".join(page.strip() for page in pages if page.strip())
