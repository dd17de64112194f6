"""judge_double: a test double of an OpenAI-compatible model server that also acts as a judge.

It stands at the edge we do not own, the model server, and speaks its protocol
(``POST /v1/chat/completions``, ``GET /v1/models``, OpenAI error bodies) over a real socket on
127.0.0.1. It plays two parts:

- **The app's model.** Answers are scripted per prompt (the last user message): a fixed text,
  a function of the whole conversation (to show whether history arrived), ``Slow`` (never
  answers until the double stops, to drive timeouts), ``Fails`` (an HTTP error) and
  ``Rendezvous`` (waits until N such calls are in flight at once, to prove parallelism
  without timing anything). A prompt without a script is answered with HTTP 400 naming it,
  so a mistake in a test shows up as such.
- **The judge.** A call whose ``model`` is the judge's name is read the way ``aiapp test``
  writes it: the ``<response>`` and ``<expected_output>`` blocks. The double passes the answer
  when every "double-quoted" term of the expected output appears in it, and fails it
  otherwise, answering in the PASS/FAIL-then-reason protocol. With no quoted term it answers
  without a verdict, as a confused model would. ``judge_style`` picks a plain reply or one
  wrapped in a ``<think>`` block and Markdown, as reasoning models write.

Every request body is recorded in ``requests``, and its Authorization header in
``authorizations``, so tests can check what was sent and with which key.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from doubles import serve_app

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class Slow:
    """Never answers while the double runs: the caller's deadline must end the call."""


@dataclass(frozen=True)
class Fails:
    """Answers with an HTTP error in OpenAI's error shape."""

    status: int = 500
    message: str = "the model server crashed while generating"


@dataclass(frozen=True)
class Rendezvous:
    """Answers only once ``size`` calls with this script's ``group`` are in flight together."""

    group: str
    size: int
    answer: str


Script = str | Callable[[Messages], str] | Slow | Fails | Rendezvous

_QUOTED = re.compile(r'"([^"]+)"')
_BLOCK = re.compile(r"<(?P<tag>response|expected_output)>\n?(?P<body>.*?)\n?</(?P=tag)>", re.S)


@dataclass
class JudgeDouble:
    """The double's configuration and what it observed; start it with ``serve()``."""

    scripts: dict[str, Script]
    judge_model: str = "judge-double"
    judge_style: str = "plain"
    judge_fails: bool = False
    api_key: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    peak_in_flight: int = 0
    base_url: str = ""
    _in_flight: int = 0
    _arrived: dict[str, int] = field(default_factory=dict)
    _gathered: dict[str, asyncio.Event] = field(default_factory=dict)
    _released: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    @property
    def app_requests(self) -> list[dict[str, Any]]:
        return [body for body in self.requests if body.get("model") != self.judge_model]

    @property
    def judge_requests(self) -> list[dict[str, Any]]:
        return [body for body in self.requests if body.get("model") == self.judge_model]

    @contextmanager
    def serve(self) -> Iterator[JudgeDouble]:
        """Listen on a free port of 127.0.0.1 until the block ends; sets ``base_url``."""
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )
        with serve_app(app) as url:
            self.base_url = f"{url}/v1"
            try:
                yield self
            finally:
                # Release held calls first, or the server would wait on them while stopping.
                if self._loop is not None and self._released is not None:
                    self._loop.call_soon_threadsafe(self._released.set)

    async def _models(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {"object": "list", "data": [{"id": self.judge_model, "object": "model"}]}
        )

    async def _chat(self, request: Request) -> JSONResponse:
        # Events belong to the server's loop, which runs in the double's own thread.
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._released = asyncio.Event()
        authorized = request.headers.get("authorization") == f"Bearer {self.api_key}"
        if self.api_key is not None and not authorized:
            return _error(401, "invalid or missing API key", "authentication_error")
        body = await request.json()
        self.requests.append(body)
        self.authorizations.append(request.headers.get("authorization"))
        model = body.get("model", "")
        messages: Messages = body.get("messages", [])
        if model == self.judge_model:
            return self._judge(model, messages)
        self._in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            return await self._answer(model, messages)
        finally:
            self._in_flight -= 1

    async def _answer(self, model: str, messages: Messages) -> JSONResponse:
        prompt = next(
            (m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), ""
        )
        script = self.scripts.get(prompt)
        if script is None:
            return _error(400, f"judge_double has no script for the prompt {prompt!r}")
        if isinstance(script, Slow):
            await self._hold(None)
            return _error(503, "judge_double stopped while the slow call was held")
        if isinstance(script, Fails):
            return _error(script.status, script.message, "server_error")
        if isinstance(script, Rendezvous):
            gathered = self._gathered.setdefault(script.group, asyncio.Event())
            self._arrived[script.group] = self._arrived.get(script.group, 0) + 1
            if self._arrived[script.group] >= script.size:
                gathered.set()
            await self._hold(gathered)
            return _completion(model, script.answer)
        text = script if isinstance(script, str) else script(messages)
        return _completion(model, text)

    async def _hold(self, until: asyncio.Event | None) -> None:
        # Wait for the event, or for the double to stop, whichever comes first.
        waits = [asyncio.ensure_future(event.wait()) for event in (until, self._released) if event]
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in pending:
            waiting.cancel()

    def _judge(self, model: str, messages: Messages) -> JSONResponse:
        if self.judge_fails:
            return _error(503, "the judge model is overloaded", "server_error")
        user = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
        blocks = {match["tag"]: match["body"] for match in _BLOCK.finditer(user)}
        response = blocks.get("response", "")
        terms = _QUOTED.findall(blocks.get("expected_output", ""))
        if not terms:
            return _completion(model, "Hmm, I am not sure what this test wants me to check.")
        missing = [term for term in terms if term.lower() not in response.lower()]
        if missing:
            verdict, reason = "FAIL", f"the response does not mention {', '.join(missing)}"
        else:
            verdict, reason = "PASS", f"the response mentions {', '.join(terms)}"
        if self.judge_style == "decorated":
            text = (
                "<think>The expected output lists terms; let me look for PASS-worthy ones."
                "</think>\n"
                f"**Verdict: {verdict}**\n\n**Reason:** {reason}."
            )
        else:
            text = f"{verdict}\nReason: {reason}."
        return _completion(model, text)


def _completion(model: str, text: str) -> JSONResponse:
    return JSONResponse(
        {
            "id": "chatcmpl-double",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": None}},
        status_code=status,
    )
