"""Split a document's text into chunks as ``rag_settings`` asks.

Chunk sizes and overlaps count characters (Helix says bytes; for the mostly ASCII text of
documentation the two agree, and characters never cut a UTF-8 sequence). The splitters come
from semantic-text-splitter, which prefers headings, then paragraphs, sentences and words as
cut points. A chunk's offset is the character position where it starts in the document text.
"""

from __future__ import annotations

from dataclasses import dataclass

from semantic_text_splitter import MarkdownSplitter, TextSplitter

from aiapp.knowledge.settings import SplitSettings, Splitter


@dataclass(frozen=True)
class Chunk:
    offset: int
    content: str


class DocumentSplitter:
    """One configured splitter, reused for every document of a run."""

    def __init__(self, settings: SplitSettings) -> None:
        self.settings = settings
        self._splitter: MarkdownSplitter | TextSplitter
        if settings.splitter is Splitter.MARKDOWN:
            self._splitter = MarkdownSplitter(settings.chunk_size, overlap=settings.chunk_overflow)
        else:
            self._splitter = TextSplitter(settings.chunk_size, overlap=settings.chunk_overflow)

    def split(self, text: str) -> list[Chunk]:
        if not text.strip():
            return []
        if self.settings.disable_chunking:
            return [Chunk(offset=0, content=text)]
        return [Chunk(offset=offset, content=content)
                for offset, content in self._splitter.chunk_indices(text) if content.strip()]
