"""Index runs into a real PostgreSQL with pgvector: crawling, reuse, versions, search, failure."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from aiapp.knowledge import store
from aiapp.knowledge.documents import Document
from aiapp.knowledge.embeddings import embed
from aiapp.knowledge.indexing import EmbeddingsTarget, RunError, RunSummary, run_index
from aiapp.knowledge.settings import Distance, KnowledgeSettings, read_knowledge
from aiapp.knowledge.splitting import DocumentSplitter
from doubles.embeddings_double import EmbeddingsDouble, hashed_vector
from knowledge_fixtures import LocalSite, embeddings, make_pdf, pg_dsn, site  # noqa: F401

pytestmark = pytest.mark.unit

_keys = itertools.count(1)

FILLER = (
    "Each paragraph here is long enough that the splitter has to cut the page into several "
    "chunks, so the test sees more than one chunk per document. "
)


@pytest.fixture
def index_key() -> str:
    """A fresh index key per test, so tests share the database but not their indexes."""
    return f"tests/knowledge/entry-{next(_keys)}"


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:  # noqa: F811
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as connection:
        yield connection


def target(double: EmbeddingsDouble, batch_size: int = 16) -> EmbeddingsTarget:
    return EmbeddingsTarget(base_url=double.base_url, model=double.model, batch_size=batch_size)


def publish_site(site: LocalSite) -> None:  # noqa: F811
    """A small site: linked pages, an excluded path, a robots.txt rule, a PDF and a deep page."""
    site.add("/robots.txt", "text/plain", b"User-agent: *\nDisallow: /private/\n")
    site.html("/", page("Welcome", "The hive handbook covers bees, wasps and hornets.",
                        ["/guide", "/faq", "/drafts/wip", "/private/keys", "/hornets.pdf",
                         "http://elsewhere.invalid/page"]))
    site.html("/guide", page("Guide", "Beekeepers inspect frames of brood every week.",
                             ["/guide/deep", "/"]))
    site.html("/guide/deep", page("Deep", "Queen cells appear before a colony swarms.",
                                  ["/guide/deeper"]))
    site.html("/guide/deeper", page("Deeper", "Too deep to be crawled at depth two.", []))
    site.html("/faq", page("FAQ", "Smoke calms bees because it masks alarm pheromones.", []))
    site.html("/drafts/wip", page("Draft", "An unfinished draft about drones.", []))
    site.html("/private/keys", page("Keys", "Secret apiary locations.", []))
    site.add("/hornets.pdf", "application/pdf",
             make_pdf("Hornets build paper nests high in hollow trees."))


def page(title: str, sentence: str, links: Sequence[str]) -> str:
    anchors = "".join(f'<li><a href="{link}">{link}</a></li>' for link in links)
    body = "".join(f"<p>Part {part}. {sentence} {FILLER}</p>" for part in range(1, 4))
    return (f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
            f"{body}<ul>{anchors}</ul></article></body></html>")


def web_knowledge(site: LocalSite, **rag: Any) -> KnowledgeSettings:  # noqa: F811
    return read_knowledge({
        "name": "handbook",
        "rag_settings": {"chunk_size": 300, "chunk_overflow": 20, **rag},
        "source": {"web": {
            "urls": [site.url + "/"],
            "excludes": ["/drafts/"],
            "crawler": {"enabled": True, "max_depth": 2, "user_agent": "hive-indexer/1.0"},
        }},
    })


async def index_site(
    conn: psycopg.AsyncConnection[Any],
    index_key: str,
    site: LocalSite,  # noqa: F811
    double: EmbeddingsDouble,
) -> RunSummary:
    return await run_index(conn=conn, index=index_key, knowledge=web_knowledge(site),
                           embeddings=target(double), filestore_root=Path("/nonexistent"))


async def rows(conn: psycopg.AsyncConnection[Any], query: str, *params: Any) -> list[Any]:
    return await (await conn.execute(query, params)).fetchall()


async def chunk_rows(conn: psycopg.AsyncConnection[Any], index_key: str, version: int,
                     dimensions: int = 256) -> list[Any]:
    return await rows(
        conn,
        f"SELECT source, chunk_offset, content, content_hash FROM aiapp_knowledge_chunks_"
        f"{dimensions} WHERE index_key = %s AND version = %s ORDER BY source, chunk_offset",
        index_key, version,
    )


async def query_vector(double: EmbeddingsDouble, text: str) -> list[float]:
    async with httpx.AsyncClient() as client:
        return (await embed(client, double.base_url, double.model, [text]))[0]


async def test_a_crawl_lands_the_linked_pages_and_the_pdf_but_not_excluded_or_disallowed_ones(
    conn: psycopg.AsyncConnection[Any],
    index_key: str,
    site: LocalSite,  # noqa: F811
    embeddings: EmbeddingsDouble,  # noqa: F811
) -> None:
    publish_site(site)

    summary = await index_site(conn, index_key, site, embeddings)

    expected = {site.url + path for path in ("/", "/guide", "/guide/deep", "/faq", "/hornets.pdf")}
    documents = await rows(conn, "SELECT source, chunks FROM aiapp_knowledge_documents "
                                 "WHERE index_key = %s AND version = %s", index_key, 1)
    assert {source for source, _ in documents} == expected
    assert not {"/drafts/wip", "/private/keys", "/guide/deeper"} & set(site.hits)
    assert site.user_agents == {"hive-indexer/1.0"}
    chunks = await chunk_rows(conn, index_key, 1)
    assert summary.documents == 5
    assert summary.chunks == summary.embedded == len(chunks) == embeddings.inputs
    assert sum(count for _, count in documents) == len(chunks)
    assert all(len(content) <= 300 for _, _, content, _ in chunks)
    html_chunks = [content for source, _, content, _ in chunks if source == site.url + "/faq"]
    assert len(html_chunks) > 1
    assert any("masks alarm pheromones" in content for content in html_chunks)


async def test_search_finds_the_pdf_text_for_a_question_about_it(
    conn: psycopg.AsyncConnection[Any],
    index_key: str,
    site: LocalSite,  # noqa: F811
    embeddings: EmbeddingsDouble,  # noqa: F811
) -> None:
    publish_site(site)
    await index_site(conn, index_key, site, embeddings)

    found = await store.search(
        conn, index=index_key, embedding=await query_vector(embeddings, "hornets paper nests"),
        distance="cosine", threshold=0.9, limit=2,
    )

    assert found[0].source == site.url + "/hornets.pdf"
    assert "paper nests" in found[0].content
    assert found[0].version == 1


async def test_a_second_run_with_nothing_changed_embeds_nothing(
    conn: psycopg.AsyncConnection[Any],
    index_key: str,
    site: LocalSite,  # noqa: F811
    embeddings: EmbeddingsDouble,  # noqa: F811
) -> None:
    publish_site(site)
    first = await index_site(conn, index_key, site, embeddings)
    embeddings.reset()

    second = await index_site(conn, index_key, site, embeddings)

    assert embeddings.requests == 0
    assert (second.version, second.embedded, second.reused) == (2, 0, first.chunks)
    assert await chunk_rows(conn, index_key, 2) == await chunk_rows(conn, index_key, 1)


async def test_a_changed_page_is_embedded_again_alone(
    conn: psycopg.AsyncConnection[Any],
    index_key: str,
    site: LocalSite,  # noqa: F811
    embeddings: EmbeddingsDouble,  # noqa: F811
) -> None:
    publish_site(site)
    await index_site(conn, index_key, site, embeddings)
    site.html("/faq", page("FAQ", "Smoke calms bees; a veil keeps stings away.", []))
    embeddings.reset()

    summary = await index_site(conn, index_key, site, embeddings)

    faq = site.url + "/faq"
    old = await chunk_rows(conn, index_key, 1)
    new = await chunk_rows(conn, index_key, 2)
    assert {row for row in new if row[0] != faq} == {row for row in old if row[0] != faq}
    new_faq = [content for source, _, content, _ in new if source == faq]
    assert any("veil keeps stings away" in content for content in new_faq)
    assert embeddings.inputs == summary.embedded == len(new_faq)
    assert summary.reused == len(new) - len(new_faq)


def knowledge_of(text: str) -> KnowledgeSettings:
    return read_knowledge({"name": "notes", "rag_settings": {"disable_chunking": True},
                           "source": {"text": text}})


NOTES = [
    Document(source="notes/hornets.md", text="Hornets build paper nests in hollow trees."),
    Document(source="notes/bees.md", text="Honey bees store honey in wax combs."),
    Document(source="notes/ants.md", text="Ants farm aphids for their honeydew."),
    Document(source="notes/wasps.md", text="Paper wasps chew wood to build nests."),
]


def distance_to(function: str, query: Sequence[float], vector: Sequence[float]) -> float:
    dot = sum(a * b for a, b in zip(query, vector, strict=True))
    if function == "cosine":
        norms = math.sqrt(sum(a * a for a in query)) * math.sqrt(sum(b * b for b in vector))
        return 1.0 - dot / norms
    if function == "l2":
        return math.sqrt(sum((a - b) ** 2 for a, b in zip(query, vector, strict=True)))
    return -dot


@pytest.mark.parametrize(
    ("function", "threshold", "limit"),
    [
        ("cosine", 0.4, 3),  # Helix's default: similarity above 0.6
        ("cosine", 0.8, 3),
        ("cosine", 2.0, 10),  # every chunk is closer than 2
        ("l2", 1.1, 3),
        ("l2", 1.3, 2),
        ("inner_product", -0.3, 3),  # keeps inner products above 0.3
        ("inner_product", 0.0, 10),  # keeps positive inner products
    ],
)
async def test_search_keeps_chunks_closer_than_the_threshold_nearest_first(
    conn: psycopg.AsyncConnection[Any],
    index_key: str,
    embeddings: EmbeddingsDouble,  # noqa: F811
    function: str,
    threshold: float,
    limit: int,
) -> None:
    await run_index(conn=conn, index=index_key, knowledge=knowledge_of("unused"),
                    embeddings=target(embeddings), filestore_root=Path("/nonexistent"),
                    documents=NOTES)
    query = "hornets build paper nests"
    vector = await query_vector(embeddings, query)
    distances = {
        note.source: distance_to(function, vector, hashed_vector(note.text, embeddings.dimensions))
        for note in NOTES
    }
    expected = sorted((d, s) for s, d in distances.items() if d < threshold)[:limit]

    found = await store.search(conn, index=index_key, embedding=vector, distance=function,
                               threshold=threshold, limit=limit)

    # Notes that share no word with the query tie at the same distance, so compare as a set.
    assert {chunk.source for chunk in found} == {source for _, source in expected}
    assert [chunk.score for chunk in found] == pytest.approx([d for d, _ in expected], abs=1e-5)
    if function == "cosine" and threshold == 0.4:
        assert [chunk.source for chunk in found][:1] == ["notes/hornets.md"]


async def test_search_of_an_index_never_built_returns_nothing(
    conn: psycopg.AsyncConnection[Any],
    index_key: str,
    embeddings: EmbeddingsDouble,  # noqa: F811
) -> None:
    await store.ensure_schema(conn)
    vector = await query_vector(embeddings, "anything")

    found = await store.search(conn, index=index_key, embedding=vector, distance="cosine",
                               threshold=1.0, limit=3)

    assert found == []
    assert await store.status(conn, index_key) is None


@pytest.mark.parametrize(
    ("embedding", "distance", "message"),
    [
        ([1.0, 0.0, 0.0], "cosine", "holds 256-dimension embeddings"),
        ([1.0] * 256, "dot", "not one of cosine, l2, inner_product"),
    ],
)
async def test_search_explains_a_query_it_cannot_answer(
    conn: psycopg.AsyncConnection[Any],
    index_key: str,
    embeddings: EmbeddingsDouble,  # noqa: F811
    embedding: list[float],
    distance: str,
    message: str,
) -> None:
    await run_index(conn=conn, index=index_key, knowledge=knowledge_of("unused"),
                    embeddings=target(embeddings), filestore_root=Path("/nonexistent"),
                    documents=NOTES)
    if distance != "cosine":
        with pytest.raises(store.StoreError, match=message):
            await store.search(conn, index=index_key, embedding=embedding, distance=distance,
                               threshold=1.0, limit=3)
        return
    # A 3-dimension query needs the 3-dimension table, which no run created.
    await store.ensure_chunks_table(conn, 3, Distance.COSINE)
    with pytest.raises(store.StoreError, match=message):
        await store.search(conn, index=index_key, embedding=embedding, distance=distance,
                           threshold=1.0, limit=3)


def generation(marker: str) -> list[Document]:
    return [Document(source=f"notes/{number}.md", text=f"{marker} note {number} about bees")
            for number in range(6)]


async def test_readers_see_the_old_version_whole_until_the_new_one_is_complete(
    conn: psycopg.AsyncConnection[Any],
    pg_dsn: str,  # noqa: F811
    index_key: str,
    embeddings: EmbeddingsDouble,  # noqa: F811
) -> None:
    await run_index(conn=conn, index=index_key, knowledge=knowledge_of("unused"),
                    embeddings=target(embeddings), filestore_root=Path("/nonexistent"),
                    documents=generation("alpha"))
    vector = await query_vector(embeddings, "alpha beta note about bees")
    observed: list[tuple[int, frozenset[str]]] = []
    stop = asyncio.Event()

    async def read_until_stopped() -> None:
        async with await psycopg.AsyncConnection.connect(pg_dsn) as reader:
            while not stop.is_set():
                found = await store.search(reader, index=index_key, embedding=vector,
                                           distance="cosine", threshold=2.0, limit=20)
                markers = frozenset(chunk.content.split()[0] for chunk in found)
                observed.append((len(found), markers))
                await asyncio.sleep(0)

    # Build version 2 one chunk per request, two chunks per write; hold the fifth request,
    # when four chunks of version 2 are committed and two are missing.
    reading = asyncio.create_task(read_until_stopped())
    embeddings.reset()
    embeddings.hold_after(4)
    building = asyncio.create_task(run_index(
        conn=conn, index=index_key, knowledge=knowledge_of("unused"),
        embeddings=target(embeddings, batch_size=1), filestore_root=Path("/nonexistent"),
        documents=generation("beta"), write_batch=2,
    ))
    assert await asyncio.to_thread(embeddings.wait_for_requests, 5)
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as probe:
        partial = await chunk_rows(probe, index_key, 2)
        during = await store.search(probe, index=index_key, embedding=vector,
                                    distance="cosine", threshold=2.0, limit=20)
    embeddings.release()
    await building
    after = await store.search(conn, index=index_key, embedding=vector, distance="cosine",
                               threshold=2.0, limit=20)
    stop.set()
    await reading

    assert len(partial) == 4
    assert {(chunk.version, chunk.content.split()[0]) for chunk in during} == {(1, "alpha")}
    assert len(during) == 6
    assert {(chunk.version, chunk.content.split()[0]) for chunk in after} == {(2, "beta")}
    assert len(after) == 6
    assert observed
    assert {result for result in observed} <= {(6, frozenset({"alpha"})),
                                               (6, frozenset({"beta"}))}


async def test_a_failed_run_keeps_the_previous_version_serving(
    conn: psycopg.AsyncConnection[Any],
    index_key: str,
    embeddings: EmbeddingsDouble,  # noqa: F811
) -> None:
    await run_index(conn=conn, index=index_key, knowledge=knowledge_of("unused"),
                    embeddings=target(embeddings), filestore_root=Path("/nonexistent"),
                    documents=generation("alpha"))
    embeddings.fail_after = 1

    with pytest.raises(RunError, match="HTTP 500"):
        await run_index(conn=conn, index=index_key, knowledge=knowledge_of("unused"),
                        embeddings=target(embeddings, batch_size=2),
                        filestore_root=Path("/nonexistent"), documents=generation("beta"),
                        write_batch=2)

    status = await store.status(conn, index_key)
    assert status is not None
    assert (status.active_version, status.documents, status.chunks) == (1, 6, 6)
    assert (status.last_run_version, status.last_run_state) == (2, "failed")
    assert "HTTP 500" in status.message
    assert await chunk_rows(conn, index_key, 2) == []
    embeddings.reset()
    vector = await query_vector(embeddings, "alpha note")
    found = await store.search(conn, index=index_key, embedding=vector, distance="cosine",
                               threshold=2.0, limit=10)
    assert {chunk.content.split()[0] for chunk in found} == {"alpha"}


async def test_only_the_last_three_versions_are_kept(
    conn: psycopg.AsyncConnection[Any],
    index_key: str,
    embeddings: EmbeddingsDouble,  # noqa: F811
) -> None:
    for marker in ("one", "two", "three", "four", "five"):
        await run_index(conn=conn, index=index_key, knowledge=knowledge_of("unused"),
                        embeddings=target(embeddings), filestore_root=Path("/nonexistent"),
                        documents=generation(marker))

    states = await rows(conn, "SELECT version, state FROM aiapp_knowledge_versions "
                              "WHERE index_key = %s ORDER BY version", index_key)
    versions = await rows(conn, "SELECT DISTINCT version FROM aiapp_knowledge_chunks_256 "
                                "WHERE index_key = %s ORDER BY version", index_key)
    status = await store.status(conn, index_key)
    assert states == [(1, "pruned"), (2, "pruned"), (3, "ready"), (4, "ready"), (5, "ready")]
    assert [version for (version,) in versions] == [3, 4, 5]
    assert status is not None
    assert (status.active_version, status.embedding_model) == (5, embeddings.model)
    assert status.last_indexed is not None


async def test_changing_the_split_settings_embeds_everything_again(
    conn: psycopg.AsyncConnection[Any],
    index_key: str,
    embeddings: EmbeddingsDouble,  # noqa: F811
) -> None:
    text = " ".join(f"Sentence {n} is about bees and their hives." for n in range(40))
    document = [Document(source="notes/long.md", text=text)]
    small = read_knowledge({"name": "n", "rag_settings": {"chunk_size": 200},
                            "source": {"text": "x"}})
    large = read_knowledge({"name": "n", "rag_settings": {"chunk_size": 500},
                            "source": {"text": "x"}})
    await run_index(conn=conn, index=index_key, knowledge=small, embeddings=target(embeddings),
                    filestore_root=Path("/nonexistent"), documents=document)
    embeddings.reset()

    summary = await run_index(conn=conn, index=index_key, knowledge=large,
                              embeddings=target(embeddings), filestore_root=Path("/nonexistent"),
                              documents=document)

    assert summary.reused == 0
    assert summary.embedded == len(DocumentSplitter(large.split).split(text)) == embeddings.inputs
