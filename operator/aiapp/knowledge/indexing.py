"""One index run: documents in, a new active version of the index out.

``run_index`` is what ``aiapp index`` does after reading its configuration; the benchmark and
the tests call it directly. The run takes the index's lock, numbers a new version, collects the
documents, copies the chunks of documents whose text has not changed since the active version
(when that version used the same embedding model and split settings), splits and embeds the
rest in batches, and activates the version. Any failure marks the version failed and leaves the
active one serving. Embedding time is measured apart, so throughput can be reported without it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import psycopg

from aiapp.knowledge import store
from aiapp.knowledge.documents import Document
from aiapp.knowledge.embeddings import DEFAULT_BATCH_SIZE, embed
from aiapp.knowledge.settings import KnowledgeSettings
from aiapp.knowledge.sources import collect
from aiapp.knowledge.splitting import Chunk, DocumentSplitter

log = logging.getLogger(__name__)

# Chunks embedded and written per step: large enough to keep COPY efficient, small enough to
# keep a run's memory flat however many documents it has.
WRITE_BATCH: Final = 256


class RunError(Exception):
    """The run failed; the previous version keeps serving (exit code 1)."""


@dataclass(frozen=True)
class EmbeddingsTarget:
    base_url: str
    model: str
    api_key: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE


@dataclass
class RunSummary:
    index: str
    version: int
    documents: int = 0
    chunks: int = 0
    embedded: int = 0
    reused: int = 0
    embedding_model: str = ""
    seconds: float = 0.0
    embedding_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["seconds"] = round(self.seconds, 3)
        values["embedding_seconds"] = round(self.embedding_seconds, 3)
        return values


async def run_index(
    *,
    conn: psycopg.AsyncConnection[Any],
    index: str,
    knowledge: KnowledgeSettings,
    embeddings: EmbeddingsTarget,
    filestore_root: Path,
    settings_hash: str = "",
    documents: Sequence[Document] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    write_batch: int = WRITE_BATCH,
) -> RunSummary:
    """Build and activate a new version of an index.

    Args:
        conn: an autocommit connection to the store, used by this run alone.
        index: the index key.
        knowledge: the entry's settings.
        embeddings: the embeddings endpoint.
        filestore_root: where the filestore volume is mounted.
        settings_hash: the operator's hash of sources and settings, recorded on the version.
        documents: documents to index instead of collecting them from the sources.
        transport: an httpx transport for sources and embeddings instead of the network's.
        write_batch: chunks embedded and written per step.

    Returns:
        The counts of the activated version.

    Raises:
        RunError: any failure; the failed version is recorded and the previous one serves.
    """
    started = time.perf_counter()
    await store.ensure_schema(conn)
    writer = store.VersionWriter(conn, index)
    if not await writer.lock():
        raise RunError(f"index {index}: another run is building it; try again when it ends")
    try:
        split_settings = knowledge.split.fingerprint()
        version = await writer.begin(
            embedding_model=embeddings.model,
            split_settings=split_settings,
            settings_hash=settings_hash,
        )
        summary = RunSummary(index=index, version=version, embedding_model=embeddings.model)
        log.info("index %s: building version %d", index, version)
        try:
            await _build(writer, knowledge, embeddings, filestore_root, documents, transport,
                         summary, write_batch)
        except Exception as error:
            message = _message(error)
            try:
                await writer.fail(message)
            except psycopg.Error as cleanup:
                log.warning("index %s: could not record the failure: %s", index,
                            type(cleanup).__name__)
            log.error("index %s: version %d failed: %s", index, version, message)
            raise RunError(message) from error
    finally:
        # The lock also ends with the session, so a store that is gone cannot keep it.
        with contextlib.suppress(psycopg.Error):
            await writer.unlock()
    summary.seconds = time.perf_counter() - started
    log.info("index %s: version %d is active with %d documents and %d chunks "
             "(%d embedded, %d reused)", index, version, summary.documents, summary.chunks,
             summary.embedded, summary.reused)
    return summary


async def _build(
    writer: store.VersionWriter,
    knowledge: KnowledgeSettings,
    target: EmbeddingsTarget,
    filestore_root: Path,
    given: Sequence[Document] | None,
    transport: httpx.AsyncBaseTransport | None,
    summary: RunSummary,
    write_batch: int,
) -> None:
    # Read every source first: a source that fails should fail before anything is embedded.
    documents = list(given) if given is not None else await collect(
        knowledge, filestore_root=filestore_root, transport=transport
    )
    if not documents:
        raise RunError(f"knowledge {knowledge.name}: the sources yielded no readable documents")
    summary.documents = len(documents)

    # Unchanged documents keep their chunks and embeddings from the active version.
    previous = await writer.previous(
        embedding_model=target.model, split_settings=knowledge.split.fingerprint()
    )
    unchanged = [
        document.document_id for document in documents
        if previous is not None
        and previous.hashes.get(document.document_id) == document.content_hash
    ]
    if previous is not None and unchanged:
        await writer.use_dimensions(previous.dimensions, knowledge.query.distance)
        summary.reused = await writer.reuse(previous, unchanged)
    reused = set(unchanged)

    # Split and embed the rest, writing as batches fill so memory stays flat.
    splitter = DocumentSplitter(knowledge.split)
    pending: list[tuple[Document, Chunk]] = []
    counts: list[tuple[str, str, str, int]] = []
    async with httpx.AsyncClient(timeout=httpx.Timeout(120.0), transport=transport) as client:
        for document in documents:
            if document.document_id in reused:
                continue
            chunks = splitter.split(document.text)
            if not chunks:
                continue
            counts.append((document.document_id, document.source, document.content_hash,
                           len(chunks)))
            pending.extend((document, chunk) for chunk in chunks)
            if len(pending) >= write_batch:
                await _embed_and_write(writer, client, target, knowledge, pending, summary)
                pending = []
        await _embed_and_write(writer, client, target, knowledge, pending, summary)
    await writer.record_documents(counts)

    summary.chunks = summary.embedded + summary.reused
    if summary.chunks == 0:
        raise RunError(f"knowledge {knowledge.name}: the documents yielded no chunks")
    await writer.activate(documents=len(counts) + len(reused), chunks=summary.chunks,
                          embedded=summary.embedded, reused=summary.reused)
    summary.documents = len(counts) + len(reused)


async def _embed_and_write(
    writer: store.VersionWriter,
    client: httpx.AsyncClient,
    target: EmbeddingsTarget,
    knowledge: KnowledgeSettings,
    pending: Sequence[tuple[Document, Chunk]],
    summary: RunSummary,
) -> None:
    if not pending:
        return
    started = time.perf_counter()
    vectors = await embed(client, target.base_url, target.model,
                          [chunk.content for _, chunk in pending], target.api_key,
                          batch_size=target.batch_size)
    summary.embedding_seconds += time.perf_counter() - started
    await writer.use_dimensions(len(vectors[0]), knowledge.query.distance)
    await writer.write(
        [
            store.ChunkRow(document_id=document.document_id, source=document.source,
                           content_hash=document.content_hash, chunk_offset=chunk.offset,
                           content=chunk.content, embedding=vector)
            for (document, chunk), vector in zip(pending, vectors, strict=True)
        ],
        target.model,
    )
    summary.embedded += len(pending)


def _message(error: BaseException) -> str:
    """A one-line reason for the version record and the summary, free of tracebacks."""
    if isinstance(error, psycopg.Error):
        return f"the store refused a write: {type(error).__name__}: {str(error).splitlines()[0]}"
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
