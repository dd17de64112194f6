"""A double of an OpenAI-compatible embeddings server, for tests and benchmarks.

It speaks ``POST /v1/embeddings`` over HTTP on 127.0.0.1 and answers with deterministic
hashed bag-of-words vectors: each lower-cased word adds +1 or -1 to one of ``dimensions``
buckets chosen by its hash, and the vector is scaled to unit length. Texts that share words
therefore have a high cosine similarity, so retrieval in tests behaves like retrieval with a
real model, only cruder. It counts requests and inputs, can hold requests after a count until
released (to interleave a test with an index run without timing) and can fail after a number
of requests.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WORD = re.compile(r"[a-z0-9]+")


def hashed_vector(text: str, dimensions: int) -> list[float]:
    """The double's embedding of a text: a unit-length signed hash of its words."""
    vector = [0.0] * dimensions
    for word in WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        number = int.from_bytes(digest, "big")
        vector[number % dimensions] += 1.0 if (number >> 32) & 1 else -1.0
    norm = math.sqrt(sum(value * value for value in vector))
    if norm == 0.0:
        # A text without words still needs a direction; pgvector rejects nothing, but cosine
        # distance to a zero vector is undefined.
        vector[0] = 1.0
        return vector
    return [value / norm for value in vector]


class EmbeddingsDouble:
    """The server; use as a context manager or call ``start`` and ``stop``."""

    def __init__(self, *, dimensions: int = 256, model: str = "double-embedder") -> None:
        self.dimensions = dimensions
        self.model = model
        self.requests = 0
        self.inputs = 0
        self.fail_after: int | None = None
        self.api_keys: list[str | None] = []
        self._changed = threading.Condition()
        self._open = threading.Event()
        self._open.set()
        self._hold_after: int | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> EmbeddingsDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._open.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> EmbeddingsDouble:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._changed:
            self.requests = 0
            self.inputs = 0
            self.fail_after = None
            self.api_keys.clear()
            self._hold_after = None
        self._open.set()

    def hold_after(self, count: int) -> None:
        """Answer the first ``count`` requests, then make later ones wait until ``release``."""
        with self._changed:
            self._hold_after = count
        self._open.clear()

    def release(self) -> None:
        with self._changed:
            self._hold_after = None
        self._open.set()

    def wait_for_requests(self, count: int, timeout: float = 30.0) -> bool:
        """Block until ``count`` requests have arrived (held ones included)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.requests >= count, timeout=timeout)

    def _answer(self, body: dict[str, Any], api_key: str | None) -> tuple[int, dict[str, Any]]:
        with self._changed:
            self.requests += 1
            number = self.requests
            self.api_keys.append(api_key)
            held = self._hold_after is not None and number > self._hold_after
            self._changed.notify_all()
        if held:
            self._open.wait()
        if self.fail_after is not None and number > self.fail_after:
            return 500, {"error": {"message": "the double was told to fail", "type": "server"}}
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            return 400, {"error": {"message": "input must be a string or a list of strings"}}
        with self._changed:
            self.inputs += len(texts)
        data = [
            {"object": "embedding", "index": position,
             "embedding": hashed_vector(text, self.dimensions)}
            for position, text in enumerate(texts)
        ]
        usage = sum(len(WORD.findall(text)) for text in texts)
        return 200, {"object": "list", "data": data, "model": body.get("model", self.model),
                     "usage": {"prompt_tokens": usage, "total_tokens": usage}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
                if self.path.rstrip("/") != "/v1/embeddings":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    body = json.loads(self.rfile.read(length))
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "body is not JSON"}})
                    return
                authorization = self.headers.get("Authorization", "")
                api_key = authorization.removeprefix("Bearer ") if authorization else None
                self._send(*double._answer(body, api_key))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        return Handler
