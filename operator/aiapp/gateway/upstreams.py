"""Calls to the assistants' model servers: OpenAI-compatible chat completions over httpx.

The gateway owns one ``httpx.AsyncClient`` for all upstreams. This module adds the upstream's
API key, retries only when the connection could not be made (nothing was sent, so a retry cannot
run a request twice), keeps streams unbuffered, and turns every upstream failure into a
``GatewayError`` carrying the status an OpenAI client expects: 502 when the model server is
unreachable or fails, 504 when it is too slow, and its own 4xx when it rejects the request.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Final

import httpx

from aiapp.api.runtime import Endpoint
from aiapp.gateway.errors import GatewayError

CONNECT_TIMEOUT_S: Final = 5.0
RETRY_BACKOFF_S: Final = 0.2
# Longest upstream error text relayed to the client.
MAX_UPSTREAM_MESSAGE: Final = 500


class Upstreams:
    """The gateway's client for model servers and the embeddings endpoint."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        timeout_s: float,
        connect_retries: int = 2,
    ) -> None:
        self.client = client
        self.timeout = httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s))
        self.timeout_s = timeout_s
        self.connect_retries = connect_retries

    async def complete(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        *,
        assistant: str,
    ) -> dict[str, Any]:
        """Run a non-streamed chat completion and return the parsed response."""
        response = await self._send(endpoint, body, assistant=assistant, stream=False)
        try:
            parsed = response.json()
        except ValueError as exc:
            raise GatewayError(
                502,
                f"The model server for assistant {assistant!r} answered with a body that is "
                "not JSON.",
                type="server_error",
                code="upstream_error",
            ) from exc
        if not isinstance(parsed, dict):
            raise GatewayError(
                502,
                f"The model server for assistant {assistant!r} answered with JSON that is not "
                "a chat completion.",
                type="server_error",
                code="upstream_error",
            )
        return parsed

    async def open_stream(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        *,
        assistant: str,
    ) -> httpx.Response:
        """Start a streamed chat completion; the caller reads it and must close it."""
        return await self._send(endpoint, body, assistant=assistant, stream=True)

    def timeout_error(self, assistant: str) -> GatewayError:
        return GatewayError(
            504,
            f"The model server for assistant {assistant!r} did not answer within "
            f"{self.timeout_s:g} seconds.",
            type="server_error",
            code="upstream_timeout",
        )

    async def _send(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        *,
        assistant: str,
        stream: bool,
    ) -> httpx.Response:
        request = self.client.build_request(
            "POST",
            endpoint.base_url.rstrip("/") + "/chat/completions",
            json=body,
            headers=auth_headers(endpoint),
            timeout=self.timeout,
        )

        # Retry only failures to connect: the request never left, so it cannot run twice.
        attempt = 0
        while True:
            try:
                response = await self.client.send(request, stream=stream)
                break
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt >= self.connect_retries:
                    raise GatewayError(
                        502,
                        f"The model server for assistant {assistant!r} is unreachable "
                        f"({type(exc).__name__}).",
                        type="server_error",
                        code="upstream_unavailable",
                    ) from exc
                attempt += 1
                await asyncio.sleep(RETRY_BACKOFF_S * attempt)
            except httpx.TimeoutException as exc:
                raise self.timeout_error(assistant) from exc
            except httpx.HTTPError as exc:
                raise GatewayError(
                    502,
                    f"The model server for assistant {assistant!r} failed ({type(exc).__name__}).",
                    type="server_error",
                    code="upstream_error",
                ) from exc

        # Map the upstream's own error statuses onto what an OpenAI client expects.
        if response.status_code >= 400:
            try:
                raw = await response.aread()
            except httpx.HTTPError:
                raw = b""
            finally:
                await response.aclose()
            raise upstream_status_error(response.status_code, raw, assistant)
        return response


def auth_headers(endpoint: Endpoint) -> dict[str, str]:
    """The upstream's Authorization header, when its key env is named and set."""
    if endpoint.api_key_env:
        key = os.environ.get(endpoint.api_key_env, "")
        if key:
            return {"Authorization": f"Bearer {key}"}
    return {}


def upstream_status_error(status: int, raw: bytes, assistant: str) -> GatewayError:
    """Turn an upstream HTTP error into the error the gateway's client should see."""
    detail = _upstream_message(raw)
    if status == 429:
        return GatewayError(
            429,
            f"The model server for assistant {assistant!r} is rate limiting: {detail}",
            type="rate_limit_error",
            code="upstream_rate_limited",
        )
    if 400 <= status < 500 and status not in (401, 403, 404):
        return GatewayError(
            status,
            f"The model server for assistant {assistant!r} rejected the request: {detail}",
            type="invalid_request_error",
            code="upstream_rejected",
        )
    return GatewayError(
        502,
        f"The model server for assistant {assistant!r} answered HTTP {status}: {detail}",
        type="server_error",
        code="upstream_error",
    )


def _upstream_message(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            text = error["message"]
        elif isinstance(error, str):
            text = error
        elif isinstance(parsed.get("detail"), str):
            text = parsed["detail"]
    return (text or "(empty body)")[:MAX_UPSTREAM_MESSAGE]
