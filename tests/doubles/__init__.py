"""Test doubles for the systems at the edge that we do not own, and a way to serve them.

Each double speaks its real protocol over a socket on 127.0.0.1. ``serve_app`` runs any ASGI
app (a double, or the gateway itself) under uvicorn in a background thread with its own event
loop, so tests can call it with any client, synchronous or not.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 on a free port; yields its base URL, e.g. http://127.0.0.1:N."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # reported to the test below, not lost in the thread
            failed.append(exc)

    thread = threading.Thread(target=run, name=f"serve-{port}", daemon=True)
    thread.start()
    while not server.started:
        if failed or not thread.is_alive():
            raise RuntimeError(f"the app on port {port} did not start: {failed}")
        threading.Event().wait(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def gateway_config(
    spec: dict[str, Any],
    model_server_url: str,
    *,
    knowledge: dict[str, dict[str, str]] | None = None,
    embeddings_url: str | None = None,
) -> Any:
    """A ``GatewayConfig`` serving every assistant of ``spec`` from one model-server double.

    Args:
        spec: the AIApp spec.
        model_server_url: the double's base URL (without ``/v1``).
        knowledge: per assistant name, knowledge name to store index key.
        embeddings_url: the embeddings double's base URL, for apps with knowledge.
    """
    from aiapp.api.runtime import GatewayConfig

    assistants = {}
    for index, entry in enumerate(spec["assistants"]):
        name = entry.get("name") or entry.get("id") or f"assistant-{index}"
        bindings = (knowledge or {}).get(name, {})
        assistants[name] = {
            "upstream": {"base_url": f"{model_server_url}/v1", "model": "double-model"},
            "knowledge": {k: {"index": v} for k, v in bindings.items()},
        }
    embeddings = (
        {"base_url": f"{embeddings_url}/v1", "model": "double-embeddings"}
        if embeddings_url
        else None
    )
    return GatewayConfig.model_validate(
        {
            "app": {"namespace": "team-a", "name": "jira-helper", "revision": "r1"},
            "spec": spec,
            "assistants": assistants,
            "embeddings": embeddings,
        }
    )
