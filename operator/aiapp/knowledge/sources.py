"""Collect every document of a knowledge entry from its sources.

Sources: inline text, the web (``crawling``), a filestore path on the volume the operator
mounts, and a seed zip downloaded over HTTP(S). Helix extracts a seed zip into the knowledge's
filestore path; the indexer reads the archive in memory instead, so the volume may be mounted
read-only, and names each member as if it had been extracted there. When the same path is on
the volume and in the zip, the volume's copy wins, as it would after Helix's extraction of an
older zip followed by an upload.
"""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path

import httpx

from aiapp.knowledge.crawling import crawl
from aiapp.knowledge.documents import (
    Document,
    SourceError,
    extract_text,
    format_of_path,
)
from aiapp.knowledge.settings import FilestoreSource, KnowledgeSettings

log = logging.getLogger(__name__)

MAX_ZIP_BYTES = 512 * 1024 * 1024
MAX_ZIP_MEMBER_BYTES = 64 * 1024 * 1024
MAX_FILE_BYTES = 64 * 1024 * 1024


async def collect(
    knowledge: KnowledgeSettings,
    *,
    filestore_root: Path,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Document]:
    """Every document of the entry, deduplicated by source, in a stable order.

    Args:
        knowledge: the entry's settings.
        filestore_root: where the filestore volume is mounted.
        transport: an httpx transport for web and zip downloads instead of the network's.

    Raises:
        SourceError: a source could not be read; the message names it.
    """
    documents: dict[str, Document] = {}

    # Inline text is one document named after the entry.
    if knowledge.text:
        source = f"text:{knowledge.name}"
        documents[source] = Document(source=source, text=knowledge.text.strip())

    # Files: the volume first, then the zip's members that the volume does not have.
    if knowledge.filestore is not None:
        for document in read_filestore(knowledge.filestore, filestore_root):
            documents.setdefault(document.source, document)
        if knowledge.filestore.seed_zip_url:
            for document in await read_seed_zip(knowledge.filestore, transport=transport):
                documents.setdefault(document.source, document)

    # The web last: it is the slowest and the likeliest to fail.
    if knowledge.web is not None:
        for document in await crawl(knowledge.web, transport=transport):
            documents.setdefault(document.source, document)
    return [documents[source] for source in sorted(documents)]


def read_filestore(filestore: FilestoreSource, root: Path) -> list[Document]:
    """Documents under the entry's path on the volume; a missing path has none."""
    base = (root / filestore.path).resolve()
    if not base.is_relative_to(root.resolve()):
        raise SourceError(f"source.filestore.path: {filestore.path!r} leaves the filestore")
    if not base.exists():
        if not filestore.seed_zip_url:
            raise SourceError(
                f"source.filestore.path: {filestore.path!r} does not exist under the filestore "
                f"volume ({root}); upload the files or add a seed_zip_url"
            )
        return []
    files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
    documents: list[Document] = []
    for path in files:
        fmt = format_of_path(path.name)
        relative = path.relative_to(root.resolve()).as_posix()
        if fmt is None:
            log.info("%s: skipped, not HTML, Markdown, text or PDF", relative)
            continue
        if path.stat().st_size > MAX_FILE_BYTES:
            log.warning("%s: skipped, larger than %d bytes", relative, MAX_FILE_BYTES)
            continue
        text = extract_text(path.read_bytes(), fmt, source=relative)
        if text:
            documents.append(Document(source=relative, text=text))
    return documents


async def read_seed_zip(
    filestore: FilestoreSource,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Document]:
    """Documents inside the seed zip, named as if extracted into the entry's path."""
    url = filestore.seed_zip_url

    # Download with a size cap, so a wrong URL cannot fill the pod's memory.
    try:
        async with (
            httpx.AsyncClient(follow_redirects=True, timeout=60.0, transport=transport) as client,
            client.stream("GET", url) as response,
        ):
            response.raise_for_status()
            buffer = bytearray()
            async for part in response.aiter_bytes():
                buffer.extend(part)
                if len(buffer) > MAX_ZIP_BYTES:
                    raise SourceError(
                        f"source.filestore.seed_zip_url: larger than {MAX_ZIP_BYTES} bytes"
                    )
    except httpx.HTTPError as error:
        reason = (
            f"HTTP {error.response.status_code}"
            if isinstance(error, httpx.HTTPStatusError)
            else type(error).__name__
        )
        raise SourceError(
            f"source.filestore.seed_zip_url: {url} could not be downloaded: {reason}"
        ) from None

    # Read members in memory; names are only labels, so a hostile zip cannot write anywhere.
    try:
        archive = zipfile.ZipFile(io.BytesIO(bytes(buffer)))
    except zipfile.BadZipFile:
        raise SourceError(f"source.filestore.seed_zip_url: {url} is not a zip archive") from None
    documents: list[Document] = []
    with archive:
        for member in archive.infolist():
            fmt = format_of_path(member.filename)
            if member.is_dir() or fmt is None:
                continue
            if member.file_size > MAX_ZIP_MEMBER_BYTES:
                log.warning("%s: skipped, larger than %d bytes", member.filename,
                            MAX_ZIP_MEMBER_BYTES)
                continue
            name = "/".join(part for part in member.filename.split("/") if part not in ("", ".."))
            source = f"{filestore.path.rstrip('/')}/{name}"
            text = extract_text(archive.read(member), fmt, source=source)
            if text:
                documents.append(Document(source=source, text=text))
    return documents
