"""Knowledge retrieval for a question: embed it, search each index, return passages.

The gateway reads the pgvector store through ``aiapp.knowledge.store.search`` (active index
versions only) and embeds through ``aiapp.knowledge.embeddings.embed``; both belong to the
knowledge package, which also owns the store's tables. This module owns the connections: a
small pool of long-lived async connections, opened on first use and replaced when they break.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Sequence
from typing import Any, Final

import httpx

from aiapp.api.aispec import Knowledge, RAGSettings
from aiapp.api.runtime import Endpoint, KnowledgeBinding
from aiapp.gateway.errors import GatewayError
from aiapp.gateway.prompting import RetrievedPassage
from aiapp.gateway.upstreams import auth_headers

POOL_SIZE: Final = 4


class StorePool:
    """Up to ``POOL_SIZE`` psycopg async connections to the knowledge store."""

    def __init__(self, dsn_env: str) -> None:
        self.dsn_env = dsn_env
        self._idle: asyncio.Queue[Any] = asyncio.Queue()
        self._open = 0
        self._slots = asyncio.Semaphore(POOL_SIZE)

    async def _connect(self) -> Any:
        import psycopg

        dsn = os.environ.get(self.dsn_env, "")
        if not dsn:
            raise GatewayError(
                503,
                f"The knowledge store is not configured: the environment variable "
                f"{self.dsn_env} is empty.",
                type="server_error",
                code="store_unavailable",
            )
        try:
            return await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            raise GatewayError(
                503,
                f"The knowledge store is unreachable ({type(exc).__name__}).",
                type="server_error",
                code="store_unavailable",
            ) from exc

    async def run(self, work: Any) -> Any:
        """Run ``await work(conn)`` on a pooled connection, dropping it if it broke."""
        import psycopg

        async with self._slots:
            conn = self._idle.get_nowait() if not self._idle.empty() else await self._connect()
            try:
                result = await work(conn)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                await conn.close()
                raise GatewayError(
                    503,
                    f"The knowledge store failed during a search ({type(exc).__name__}).",
                    type="server_error",
                    code="store_unavailable",
                ) from exc
            except BaseException:
                await conn.close()
                raise
            self._idle.put_nowait(conn)
            return result

    async def ping(self) -> None:
        async def select_one(conn: Any) -> None:
            await conn.execute("SELECT 1")

        await self.run(select_one)

    async def close(self) -> None:
        while not self._idle.empty():
            await self._idle.get_nowait().close()


async def retrieve(
    *,
    client: httpx.AsyncClient,
    embeddings: Endpoint,
    pool: StorePool,
    question: str,
    knowledge: Sequence[Knowledge],
    bindings: dict[str, KnowledgeBinding],
) -> list[RetrievedPassage]:
    """The passages for a question: each knowledge index in order, each index's best first."""
    store = importlib.import_module("aiapp.knowledge.store")
    embedder = importlib.import_module("aiapp.knowledge.embeddings")

    # One embedding of the question serves every index: they share the embeddings model.
    key = auth_headers(embeddings).get("Authorization", "").removeprefix("Bearer ") or None
    try:
        vectors = await embedder.embed(
            client, embeddings.base_url, embeddings.model, [question], api_key=key
        )
    except httpx.TimeoutException as exc:
        raise GatewayError(
            504,
            "The embeddings endpoint did not answer in time.",
            type="server_error",
            code="embeddings_timeout",
        ) from exc
    except httpx.HTTPError as exc:
        raise GatewayError(
            502,
            f"The embeddings endpoint failed ({type(exc).__name__}).",
            type="server_error",
            code="embeddings_unavailable",
        ) from exc
    vector = list(vectors[0])

    # Each knowledge entry searches its own index with its own rag_settings.
    passages: list[RetrievedPassage] = []
    for entry in knowledge:
        binding = bindings.get(entry.name)
        if binding is None:
            continue

        async def search(
            conn: Any,
            rag: RAGSettings = entry.rag_settings,
            index: str = binding.index,
        ) -> Any:
            return await store.search(
                conn,
                index=index,
                embedding=vector,
                distance=rag.distance_function,
                threshold=rag.threshold,
                limit=rag.results_count,
            )

        for chunk in await pool.run(search):
            passages.append(
                RetrievedPassage(
                    knowledge=entry.name,
                    content=chunk.content,
                    source=chunk.source,
                    document_id=str(chunk.document_id),
                    chunk_offset=int(chunk.chunk_offset),
                    score=float(chunk.score),
                )
            )
    return passages
