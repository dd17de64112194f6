"""Knowledge retrieval through the gateway, from a real PostgreSQL with pgvector."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest

from aiapp.gateway.server import create_app
from aiapp.knowledge import store
from aiapp.knowledge.settings import Distance
from doubles import gateway_config, serve_app
from doubles.model_server_double import ModelServerDouble
from knowledge_fixtures import pg_dsn  # noqa: F401

pytestmark = pytest.mark.unit

INDEX = "team-a/jira-helper/docs"
QUESTION = "how do I deploy?"
# Cosine distances to the question [1, 0, 0]: A 0, B 0.2, C 1; l2: 0, 0.63, 1.41.
CHUNKS = {"a.md": [1.0, 0.0, 0.0], "b.md": [0.8, 0.6, 0.0], "c.md": [0.0, 1.0, 0.0]}


async def _seed(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await store.ensure_schema(conn)
        writer = store.VersionWriter(conn, INDEX)
        await writer.begin(embedding_model="double", split_settings="s", settings_hash="h")
        await writer.use_dimensions(3, Distance.COSINE)
        rows = [
            store.ChunkRow(source, source, "hash", 0, f"text of {source}", vector)
            for source, vector in CHUNKS.items()
        ]
        await writer.write(rows, "double")
        await writer.activate(documents=3, chunks=3, embedded=3, reused=0)


@pytest.fixture(scope="module")
def seeded(pg_dsn: str) -> str:  # noqa: F811
    asyncio.run(_seed(pg_dsn))
    return pg_dsn


def _spec(rag: dict[str, Any]) -> dict[str, Any]:
    knowledge = {
        "name": "docs",
        "description": "Deploy docs",
        "rag_settings": rag,
        "source": {"text": "x"},
    }
    return {
        "name": "docs-app",
        "assistants": [{"name": "helper", "model": "llama3.1:8b", "knowledge": [knowledge]}],
    }


@pytest.mark.parametrize(
    ("rag", "sources"),
    [
        ({"distance_function": "cosine", "threshold": 0.4}, ["a.md", "b.md"]),
        ({"distance_function": "cosine", "threshold": 0.1}, ["a.md"]),
        ({"distance_function": "l2", "threshold": 0.7}, ["a.md", "b.md"]),
        ({"distance_function": "l2", "threshold": 2}, ["a.md", "b.md", "c.md"]),
        # AIAppSpec refuses negative thresholds, so "above 0" is the tightest inner product.
        ({"distance_function": "inner_product", "threshold": 0}, ["a.md", "b.md"]),
        ({"distance_function": "cosine", "threshold": 2, "results_count": 1}, ["a.md"]),
    ],
    ids=[
        "cosine keeps close chunks",
        "a tight cosine threshold keeps the nearest",
        "l2 within 0.7",
        "l2 within 2 keeps all",
        "inner product above 0",
        "results_count caps the list",
    ],
)
def test_the_right_chunks_reach_the_prompt_under_each_distance_and_threshold(
    seeded: str, monkeypatch: pytest.MonkeyPatch, rag: dict[str, Any], sources: list[str]
) -> None:
    monkeypatch.setenv("AIAPP_STORE_DSN", seeded)
    model = ModelServerDouble(vectors={QUESTION: [1.0, 0.0, 0.0]})
    with serve_app(model.app()) as model_url:
        config = gateway_config(
            _spec(rag), model_url, knowledge={"helper": {"docs": INDEX}}, embeddings_url=model_url
        )
        with serve_app(create_app(config, api_keys=None)) as url:
            body = {"messages": [{"role": "user", "content": QUESTION}]}
            response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
            ready = httpx.get(f"{url}/readyz")

    assert response.status_code == 200
    assert ready.json() == {"status": "ready"}
    assert model.embedding_inputs == [QUESTION]
    numbered = "".join(
        f"\n[{n}] {source}\ntext of {source}\n" for n, source in enumerate(sources, 1)
    )
    assert model.requests[-1]["messages"][-1]["content"] == (
        "Use the numbered sources below to answer the question. Cite each source you rely on "
        "by its number, like [1]. If the sources do not contain the answer, say so.\n"
        f"{numbered}\nQuestion: {QUESTION}"
    )


def test_a_helix_prompt_template_renders_the_results(
    seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIAPP_STORE_DSN", seeded)
    template = (
        "Excerpts:\n{{ range $i, $r := .RagResults }}({{ add $i 1 }}) {{ $r.Content }} "
        "[{{ .Source }}]\n{{ end }}{{ range .KnowledgeResults }}About: {{ .Description }}{{ end }}"
    )
    model = ModelServerDouble(vectors={QUESTION: [1.0, 0.0, 0.0]})
    with serve_app(model.app()) as model_url:
        config = gateway_config(
            _spec({"threshold": 0.4, "prompt_template": template}),
            model_url,
            knowledge={"helper": {"docs": INDEX}},
            embeddings_url=model_url,
        )
        with serve_app(create_app(config, api_keys=None)) as url:
            body = {"messages": [{"role": "user", "content": QUESTION}]}
            httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)

    assert model.requests[-1]["messages"][-1]["content"] == (
        "Excerpts:\n(1) text of a.md [a.md]\n(2) text of b.md [b.md]\nAbout: Deploy docs"
        f"\n\n{QUESTION}"
    )
