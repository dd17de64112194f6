"""The embeddings client: texts in, vectors out, over an OpenAI-compatible ``/v1/embeddings``.

The indexer embeds chunks and the gateway embeds questions through ``embed``. Inputs go in
batches so one request stays within what small embedding servers accept; a batch that meets a
rate limit or a server error is retried a few times with backoff, since an index run is a
batch job that would rather wait a second than fail. The API key travels in the Authorization
header and never appears in an error message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

import httpx

DEFAULT_BATCH_SIZE: Final = 64
ATTEMPTS: Final = 3
RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


class EmbeddingError(Exception):
    """The embeddings endpoint refused or answered something that is not embeddings."""


async def embed(
    client: httpx.AsyncClient,
    base_url: str,
    model: str,
    texts: Sequence[str],
    api_key: str | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[list[float]]:
    """Embed texts in order.

    Args:
        client: the HTTP client to send with (its timeouts apply).
        base_url: the endpoint's base URL, ending in ``/v1``.
        model: the embedding model name to send.
        texts: the inputs; an empty sequence makes no request.
        api_key: sent as a bearer token when given.
        batch_size: inputs per request.

    Returns:
        One vector per text, in the order of ``texts``.

    Raises:
        EmbeddingError: the endpoint failed after retries, or its answer was malformed.
    """
    url = base_url.rstrip("/") + "/embeddings"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    vectors: list[list[float]] = []
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        body = await _post(client, url, headers, {"model": model, "input": batch})
        vectors.extend(_vectors(body, len(batch), url))
    if vectors and len({len(vector) for vector in vectors}) != 1:
        raise EmbeddingError(f"{url}: answered vectors of different lengths for model {model}")
    return vectors


async def _post(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    payload: dict[str, Any],
) -> Any:
    delay = 0.5
    for attempt in range(1, ATTEMPTS + 1):
        try:
            response = await client.post(url, json=payload, headers=headers)
        except httpx.TransportError as error:
            if attempt == ATTEMPTS:
                raise EmbeddingError(f"{url}: unreachable ({type(error).__name__})") from None
        else:
            if response.status_code < 400:
                try:
                    return response.json()
                except ValueError:
                    raise EmbeddingError(f"{url}: answered something that is not JSON") from None
            if response.status_code not in RETRY_STATUSES or attempt == ATTEMPTS:
                raise EmbeddingError(
                    f"{url}: HTTP {response.status_code}: {response.text[:300]}"
                )
        await asyncio.sleep(delay)
        delay *= 2
    raise EmbeddingError(f"{url}: no answer")  # the loop always returns or raises first


def _vectors(body: Any, expected: int, url: str) -> list[list[float]]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or len(data) != expected:
        raise EmbeddingError(f"{url}: expected {expected} embeddings in `data`")
    try:
        ordered = sorted(data, key=lambda item: int(item.get("index", 0)))
        return [[float(value) for value in item["embedding"]] for item in ordered]
    except (AttributeError, KeyError, TypeError, ValueError):
        raise EmbeddingError(f"{url}: an item in `data` has no numeric `embedding`") from None
