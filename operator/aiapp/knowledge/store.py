"""The knowledge store: versioned chunk embeddings in PostgreSQL with pgvector.

Writers (``VersionWriter``, driven by ``aiapp.knowledge.indexing``) build one new *version* of
an *index* (the key ``"<namespace>/<app>/<knowledge>"``) at a time; readers (the gateway) call
``search`` and ``status``. Tables:

- ``aiapp_knowledge_indexes``: one row per index with its *active* version, the only version
  readers see, and the counter that numbers new versions.
- ``aiapp_knowledge_versions``: one row per run, ``building`` → ``ready`` | ``failed``, and
  ``pruned`` once its chunks are dropped; it records the embedding model, the vector dimension
  and the counts.
- ``aiapp_knowledge_documents``: the documents of each version with their content hashes, so a
  run can tell which documents it need not embed again.
- ``aiapp_knowledge_chunks_<dimension>``: the chunks. HNSW indexes need a fixed dimension, so
  there is one table per embedding dimension with a plain ``vector(<dimension>)`` column. The
  embedding model is an operator setting, so a cluster normally has one such table; a table per
  dimension keeps the column typed and the queries free of casts, where a shared untyped column
  would need an expression index per dimension and queries that repeat its cast exactly.
  Each table gets one HNSW index per distance function in use (created when a knowledge entry
  first asks for it), since an HNSW index serves only the operator class it was built with.

A version's chunks are written in many small transactions while it is ``building``; it becomes
active in one transaction that also marks it ``ready`` and drops versions beyond the last
three. Readers select by the active version, so they never see a partial or mixed index.
Vectors travel as pgvector text literals cast in SQL, so readers need no type registration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg import pq, sql

from aiapp.knowledge.settings import Distance

KEEP_VERSIONS: Final = 3
HNSW_MAX_DIMENSIONS: Final = 2000  # pgvector's limit for HNSW on `vector`
MAX_DIMENSIONS: Final = 16000  # pgvector's limit for `vector` itself
MAX_MESSAGE: Final = 2000

# pgvector's distance operators; `<#>` is the negative inner product, so smaller is closer.
OPERATORS: Final = {
    Distance.COSINE: "<=>",
    Distance.L2: "<->",
    Distance.INNER_PRODUCT: "<#>",
}
OPERATOR_CLASSES: Final = {
    Distance.COSINE: ("cosine", "vector_cosine_ops"),
    Distance.L2: ("l2", "vector_l2_ops"),
    Distance.INNER_PRODUCT: ("ip", "vector_ip_ops"),
}

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS aiapp_knowledge_indexes (
    index_key text PRIMARY KEY,
    active_version integer,
    next_version integer NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS aiapp_knowledge_versions (
    index_key text NOT NULL REFERENCES aiapp_knowledge_indexes ON DELETE CASCADE,
    version integer NOT NULL,
    state text NOT NULL,
    embedding_model text NOT NULL,
    dimensions integer,
    split_settings text NOT NULL,
    settings_hash text NOT NULL DEFAULT '',
    documents integer NOT NULL DEFAULT 0,
    chunks integer NOT NULL DEFAULT 0,
    embedded integer NOT NULL DEFAULT 0,
    reused integer NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    message text NOT NULL DEFAULT '',
    PRIMARY KEY (index_key, version)
);
CREATE TABLE IF NOT EXISTS aiapp_knowledge_documents (
    index_key text NOT NULL,
    version integer NOT NULL,
    document_id text NOT NULL,
    source text NOT NULL,
    content_hash text NOT NULL,
    chunks integer NOT NULL,
    PRIMARY KEY (index_key, version, document_id),
    FOREIGN KEY (index_key, version) REFERENCES aiapp_knowledge_versions ON DELETE CASCADE
);
"""

CHUNKS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS {table} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    index_key text NOT NULL,
    version integer NOT NULL,
    document_id text NOT NULL,
    source text NOT NULL,
    content_hash text NOT NULL,
    chunk_offset integer NOT NULL,
    content text NOT NULL,
    embedding vector({dimensions}) NOT NULL,
    embedding_model text NOT NULL
);
CREATE INDEX IF NOT EXISTS {version_index} ON {table} (index_key, version, document_id);
"""

# Two-key advisory locks: (namespace, hashtext(index key)).
_SCHEMA_LOCK: Final = 0x41494B53  # "AIKS"
_RUN_LOCK: Final = 0x41494B52  # "AIKR"


class StoreError(Exception):
    """The store cannot answer as asked (a dimension mismatch, an unknown distance)."""


@dataclass(frozen=True)
class RetrievedChunk:
    """A chunk that matched a query.

    ``score`` is pgvector's distance for the function asked: cosine distance (1 - cosine
    similarity), Euclidean distance, or the negative inner product. Smaller is closer.
    """

    content: str
    source: str
    document_id: str
    chunk_offset: int
    score: float
    version: int


@dataclass(frozen=True)
class IndexStatus:
    """What the AIApp status shows for one knowledge index."""

    index: str
    active_version: int | None
    documents: int
    chunks: int
    last_indexed: datetime | None
    embedding_model: str | None
    last_run_version: int | None
    last_run_state: str | None
    message: str


@dataclass(frozen=True)
class PreviousVersion:
    """The active version's documents, when they can be reused by a new run."""

    version: int
    dimensions: int
    hashes: dict[str, str]  # document id -> content hash


@dataclass(frozen=True)
class ChunkRow:
    document_id: str
    source: str
    content_hash: str
    chunk_offset: int
    content: str
    embedding: Sequence[float]


def chunks_table(dimensions: int) -> sql.Identifier:
    if not 1 <= dimensions <= MAX_DIMENSIONS:
        raise StoreError(
            f"embedding dimension {dimensions} is outside pgvector's 1..{MAX_DIMENSIONS}"
        )
    return sql.Identifier(f"aiapp_knowledge_chunks_{dimensions}")


def vector_literal(values: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(value)) for value in values) + "]"


async def ensure_schema(conn: psycopg.AsyncConnection[Any]) -> None:
    """Create the extension and the shared tables when missing; safe to run concurrently."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (_SCHEMA_LOCK,))
        row = await (
            await conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        ).fetchone()
        if row is None:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.execute(SCHEMA)


async def ensure_chunks_table(
    conn: psycopg.AsyncConnection[Any],
    dimensions: int,
    distance: Distance,
) -> None:
    """Create the chunk table for a dimension and its HNSW index for a distance function."""
    table = chunks_table(dimensions)
    suffix, opclass = OPERATOR_CLASSES[distance]
    name = f"aiapp_knowledge_chunks_{dimensions}"
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_SCHEMA_LOCK, dimensions))
        await conn.execute(
            sql.SQL(CHUNKS_TABLE).format(
                table=table,
                dimensions=sql.Literal(dimensions),
                version_index=sql.Identifier(f"{name}_version"),
            )
        )
        # Above pgvector's HNSW limit the table is searched exactly, which stays correct.
        if dimensions <= HNSW_MAX_DIMENSIONS:
            await conn.execute(
                sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {index} ON {table} USING hnsw (embedding {ops})"
                ).format(
                    index=sql.Identifier(f"{name}_hnsw_{suffix}"),
                    table=table,
                    ops=sql.SQL(opclass),
                )
            )


class VersionWriter:
    """Builds one version of one index on a connection in autocommit mode.

    The writer holds a session advisory lock on the index for its whole run, so two runs of
    the same index never interleave, and a ``building`` version found at the start can only be
    the leftover of a run that died; its rows are dropped then.
    """

    def __init__(self, conn: psycopg.AsyncConnection[Any], index: str) -> None:
        self.conn = conn
        self.index = index
        self.version: int | None = None
        self.dimensions: int | None = None

    async def lock(self) -> bool:
        row = await (
            await self.conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_RUN_LOCK, self.index)
            )
        ).fetchone()
        return bool(row and row[0])

    async def unlock(self) -> None:
        await self.conn.execute(
            "SELECT pg_advisory_unlock(%s, hashtext(%s))", (_RUN_LOCK, self.index)
        )

    async def begin(self, *, embedding_model: str, split_settings: str, settings_hash: str) -> int:
        """Number a new ``building`` version after clearing what dead runs left behind."""
        async with self.conn.transaction():
            await self.conn.execute(
                "INSERT INTO aiapp_knowledge_indexes (index_key) VALUES (%s) "
                "ON CONFLICT (index_key) DO NOTHING",
                (self.index,),
            )
            await self._drop_chunks("state = 'building'")
            await self.conn.execute(
                "UPDATE aiapp_knowledge_versions SET state = 'failed', finished_at = now(), "
                "message = 'the run stopped before it finished' "
                "WHERE index_key = %s AND state = 'building'",
                (self.index,),
            )
            row = await (
                await self.conn.execute(
                    "UPDATE aiapp_knowledge_indexes SET next_version = next_version + 1 "
                    "WHERE index_key = %s RETURNING next_version - 1",
                    (self.index,),
                )
            ).fetchone()
            if row is None:
                raise StoreError(f"index {self.index}: could not number a new version")
            self.version = int(row[0])
            await self.conn.execute(
                "INSERT INTO aiapp_knowledge_versions "
                "(index_key, version, state, embedding_model, split_settings, settings_hash) "
                "VALUES (%s, %s, 'building', %s, %s, %s)",
                (self.index, self.version, embedding_model, split_settings, settings_hash),
            )
        return self.version

    async def previous(
        self,
        *,
        embedding_model: str,
        split_settings: str,
    ) -> PreviousVersion | None:
        """The active version's document hashes, if it was built the same way as this run."""
        row = await (
            await self.conn.execute(
                "SELECT v.version, v.dimensions FROM aiapp_knowledge_indexes i "
                "JOIN aiapp_knowledge_versions v "
                "ON v.index_key = i.index_key AND v.version = i.active_version "
                "WHERE i.index_key = %s AND v.embedding_model = %s AND v.split_settings = %s",
                (self.index, embedding_model, split_settings),
            )
        ).fetchone()
        if row is None or row[1] is None:
            return None
        rows = await (
            await self.conn.execute(
                "SELECT document_id, content_hash FROM aiapp_knowledge_documents "
                "WHERE index_key = %s AND version = %s",
                (self.index, row[0]),
            )
        ).fetchall()
        return PreviousVersion(version=int(row[0]), dimensions=int(row[1]),
                               hashes={str(doc): str(digest) for doc, digest in rows})

    async def use_dimensions(self, dimensions: int, distance: Distance) -> None:
        if self.dimensions is not None and self.dimensions != dimensions:
            raise StoreError(
                f"index {self.index}: the embeddings changed dimension within one run "
                f"({self.dimensions} then {dimensions})"
            )
        if self.dimensions is None:
            await ensure_chunks_table(self.conn, dimensions, distance)
            await self.conn.execute(
                "UPDATE aiapp_knowledge_versions SET dimensions = %s "
                "WHERE index_key = %s AND version = %s",
                (dimensions, self.index, self._version()),
            )
            self.dimensions = dimensions

    async def reuse(self, previous: PreviousVersion, document_ids: Sequence[str]) -> int:
        """Copy unchanged documents' chunks and rows from the previous version; chunks copied."""
        if not document_ids:
            return 0
        table = chunks_table(previous.dimensions)
        async with self.conn.transaction():
            cursor = await self.conn.execute(
                sql.SQL(
                    "INSERT INTO {table} (index_key, version, document_id, source, content_hash, "
                    "chunk_offset, content, embedding, embedding_model) "
                    "SELECT index_key, %(new)s, document_id, source, content_hash, chunk_offset, "
                    "content, embedding, embedding_model FROM {table} "
                    "WHERE index_key = %(index)s AND version = %(old)s "
                    "AND document_id = ANY(%(ids)s)"
                ).format(table=table),
                {"new": self._version(), "old": previous.version, "index": self.index,
                 "ids": list(document_ids)},
            )
            copied = cursor.rowcount
            await self.conn.execute(
                "INSERT INTO aiapp_knowledge_documents "
                "(index_key, version, document_id, source, content_hash, chunks) "
                "SELECT index_key, %(new)s, document_id, source, content_hash, chunks "
                "FROM aiapp_knowledge_documents "
                "WHERE index_key = %(index)s AND version = %(old)s "
                "AND document_id = ANY(%(ids)s)",
                {"new": self._version(), "old": previous.version, "index": self.index,
                 "ids": list(document_ids)},
            )
        return copied

    async def write(self, rows: Sequence[ChunkRow], embedding_model: str) -> None:
        """Append chunks to the building version with COPY, in one transaction."""
        if not rows:
            return
        if self.dimensions is None:
            raise StoreError(f"index {self.index}: chunks written before their dimension is known")
        columns = sql.SQL(
            "COPY {table} (index_key, version, document_id, source, content_hash, chunk_offset, "
            "content, embedding, embedding_model) FROM STDIN"
        ).format(table=chunks_table(self.dimensions))
        version = self._version()
        async with (
            self.conn.transaction(),
            self.conn.cursor() as cursor,
            cursor.copy(columns) as copy,
        ):
            for row in rows:
                await copy.write_row((
                    self.index, version, row.document_id, row.source, row.content_hash,
                    row.chunk_offset, row.content, vector_literal(row.embedding),
                    embedding_model,
                ))

    async def record_documents(self, documents: Sequence[tuple[str, str, str, int]]) -> None:
        """Record (document id, source, content hash, chunks) of newly embedded documents."""
        if not documents:
            return
        async with self.conn.transaction(), self.conn.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO aiapp_knowledge_documents "
                "(index_key, version, document_id, source, content_hash, chunks) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                [(self.index, self._version(), *document) for document in documents],
            )

    async def activate(self, *, documents: int, chunks: int, embedded: int, reused: int) -> None:
        """Make the building version the one readers see, and prune beyond the last three."""
        version = self._version()
        async with self.conn.transaction():
            await self.conn.execute(
                "SELECT 1 FROM aiapp_knowledge_indexes WHERE index_key = %s FOR UPDATE",
                (self.index,),
            )
            await self.conn.execute(
                "UPDATE aiapp_knowledge_versions SET state = 'ready', finished_at = now(), "
                "documents = %s, chunks = %s, embedded = %s, reused = %s "
                "WHERE index_key = %s AND version = %s",
                (documents, chunks, embedded, reused, self.index, version),
            )
            await self.conn.execute(
                "UPDATE aiapp_knowledge_indexes SET active_version = %s, updated_at = now() "
                "WHERE index_key = %s",
                (version, self.index),
            )

            # Readers of the pruned versions finish on their own snapshot; new ones see this one.
            keep = await (
                await self.conn.execute(
                    "SELECT version FROM aiapp_knowledge_versions "
                    "WHERE index_key = %s AND state = 'ready' ORDER BY version DESC LIMIT %s",
                    (self.index, KEEP_VERSIONS),
                )
            ).fetchall()
            kept = [int(row[0]) for row in keep]
            condition = "state = 'ready' AND NOT (version = ANY(%(kept)s))"
            await self._drop_chunks(condition, {"kept": kept})
            await self.conn.execute(
                "DELETE FROM aiapp_knowledge_documents WHERE index_key = %(index)s AND version IN "
                "(SELECT version FROM aiapp_knowledge_versions WHERE index_key = %(index)s AND "
                f"{condition})",
                {"index": self.index, "kept": kept},
            )
            await self.conn.execute(
                "UPDATE aiapp_knowledge_versions SET state = 'pruned' "
                f"WHERE index_key = %(index)s AND {condition}",
                {"index": self.index, "kept": kept},
            )

    async def fail(self, message: str) -> None:
        """Record a failed run and drop its chunks; the active version is untouched."""
        if self.version is None:
            return
        async with self.conn.transaction():
            await self._drop_chunks("version = %(version)s", {"version": self.version})
            await self.conn.execute(
                "DELETE FROM aiapp_knowledge_documents WHERE index_key = %s AND version = %s",
                (self.index, self.version),
            )
            await self.conn.execute(
                "UPDATE aiapp_knowledge_versions SET state = 'failed', finished_at = now(), "
                "message = %s WHERE index_key = %s AND version = %s",
                (message[:MAX_MESSAGE], self.index, self.version),
            )

    async def _drop_chunks(self, condition: str, params: dict[str, Any] | None = None) -> None:
        """Delete chunks of this index's versions that match a condition on the versions table."""
        rows = await (
            await self.conn.execute(
                "SELECT DISTINCT dimensions FROM aiapp_knowledge_versions "
                f"WHERE index_key = %(index)s AND dimensions IS NOT NULL AND {condition}",
                {"index": self.index, **(params or {})},
            )
        ).fetchall()
        for (dimensions,) in rows:
            await self.conn.execute(
                sql.SQL(
                    "DELETE FROM {table} WHERE index_key = %(index)s AND version IN "
                    "(SELECT version FROM aiapp_knowledge_versions "
                    "WHERE index_key = %(index)s AND {condition})"
                ).format(table=chunks_table(int(dimensions)), condition=sql.SQL(condition)),
                {"index": self.index, **(params or {})},
            )

    def _version(self) -> int:
        if self.version is None:
            raise StoreError(f"index {self.index}: no version begun")
        return self.version


async def search(
    conn: psycopg.AsyncConnection[Any],
    *,
    index: str,
    embedding: list[float],
    distance: str,
    threshold: float,
    limit: int,
) -> list[RetrievedChunk]:
    """The active version's chunks nearest to a query embedding, nearest first.

    The threshold means what it means in Helix: a chunk is kept when pgvector's distance is
    below it. So for ``cosine`` it keeps chunks with cosine similarity above ``1 - threshold``;
    for ``l2`` chunks closer than ``threshold`` in Euclidean distance; for ``inner_product``
    (pgvector's ``<#>`` is the negative inner product) chunks whose inner product exceeds
    ``-threshold``.

    Args:
        conn: a connection; when idle, the search runs in its own read-only snapshot.
        index: the index key ``"<namespace>/<app>/<knowledge>"``.
        embedding: the query's embedding, from the model that built the index.
        distance: ``cosine``, ``l2`` or ``inner_product``.
        threshold: the largest distance kept, exclusive.
        limit: the most chunks returned.

    Returns:
        Matching chunks, empty when the index has no active version yet.

    Raises:
        StoreError: an unknown distance, or an embedding whose dimension the index lacks.
    """
    try:
        function = Distance(distance)
    except ValueError:
        raise StoreError(
            f"distance {distance!r} is not one of cosine, l2, inner_product"
        ) from None
    if limit < 1:
        return []
    query = vector_literal(embedding)
    table = chunks_table(len(embedding))
    operator = sql.SQL(OPERATORS[function])
    idle = conn.info.transaction_status == pq.TransactionStatus.IDLE

    # One snapshot for the version lookup and the chunk query, so a version activated or
    # pruned in between cannot make this search see nothing or a mix.
    async with conn.transaction():
        if idle:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = await (
            await conn.execute(
                "SELECT v.version, v.dimensions, v.embedding_model "
                "FROM aiapp_knowledge_indexes i JOIN aiapp_knowledge_versions v "
                "ON v.index_key = i.index_key AND v.version = i.active_version "
                "WHERE i.index_key = %s",
                (index,),
            )
        ).fetchone()
        if row is None:
            return []
        version, dimensions, model = int(row[0]), int(row[1]), str(row[2])
        if dimensions != len(embedding):
            raise StoreError(
                f"index {index} holds {dimensions}-dimension embeddings from {model}; "
                f"the query embedding has {len(embedding)}; embed queries with {model}"
            )

        # Iterative scans keep HNSW searching past chunks of other indexes and versions.
        await conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
        await conn.execute(
            sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(max(40, limit)))
        )
        nearest = sql.SQL(
            "SELECT content, source, document_id, chunk_offset, "
            "embedding {op} %(q)s::vector AS distance FROM {table} "
            "WHERE index_key = %(index)s AND version = %(version)s "
            "AND embedding {op} %(q)s::vector < %(threshold)s "
            "ORDER BY embedding {op} %(q)s::vector LIMIT %(limit)s"
        ).format(op=operator, table=table)
        params = {"q": query, "index": index, "version": version, "threshold": threshold,
                  "limit": limit}
        rows = await (await conn.execute(nearest, params)).fetchall()

        # The HNSW graph is shared by every index of this dimension and is approximate: a scan
        # can run out of candidates in a region full of other indexes' chunks. With fewer
        # than `limit` results, repeat the search exactly over this version alone.
        if len(rows) < limit:
            await conn.execute("SET LOCAL enable_indexscan = off")
            rows = await (await conn.execute(nearest, params)).fetchall()
    return [
        RetrievedChunk(content=str(content), source=str(source), document_id=str(document_id),
                       chunk_offset=int(offset), score=float(score), version=version)
        for content, source, document_id, offset, score in rows
    ]


async def status(conn: psycopg.AsyncConnection[Any], index: str) -> IndexStatus | None:
    """The index's active version and its latest run; None when it was never indexed."""
    row = await (
        await conn.execute(
            "SELECT i.active_version, a.documents, a.chunks, a.finished_at, a.embedding_model, "
            "l.version, l.state, l.message "
            "FROM aiapp_knowledge_indexes i "
            "LEFT JOIN aiapp_knowledge_versions a "
            "ON a.index_key = i.index_key AND a.version = i.active_version "
            "LEFT JOIN LATERAL (SELECT version, state, message FROM aiapp_knowledge_versions "
            "WHERE index_key = i.index_key ORDER BY version DESC LIMIT 1) l ON true "
            "WHERE i.index_key = %s",
            (index,),
        )
    ).fetchone()
    if row is None:
        return None
    active, documents, chunks, finished, model, last_version, last_state, message = row
    return IndexStatus(
        index=index,
        active_version=active,
        documents=int(documents or 0),
        chunks=int(chunks or 0),
        last_indexed=finished,
        embedding_model=model,
        last_run_version=last_version,
        last_run_state=last_state,
        message=str(message or ""),
    )
