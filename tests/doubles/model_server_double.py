"""model_server_double: a double of an OpenAI-compatible model server (vLLM, Ollama, a provider).

It stands at the edge we do not own and speaks the protocol over HTTP on 127.0.0.1:
``GET /v1/models``, ``POST /v1/chat/completions`` (JSON or SSE chunks ending ``data: [DONE]``,
with ``stream_options.include_usage``), and ``POST /v1/embeddings``. Its behaviour is plain and
readable so tests can state exact expectations:

- With ``tools`` and no tool result yet, it calls the first tool, filling each required string
  parameter with the first ticket key (like ``PROJ-1``) in the user's message, or the message.
- After a tool result, it answers ``Proposed change, from the tool result: <result>``.
- Otherwise it answers ``echo: <last user message>``, or ``answer`` when set: a fixed text
  that streams one word per chunk, so a benchmark can ask for answers of a realistic length.

Switches drive the failure cases: ``hang`` (never answers until released or stopped),
``fail`` (an HTTP status and OpenAI error body), ``hold_stream`` (sends the first content chunk,
then waits, so a test can disconnect mid-stream; ``stream_cancelled`` is set when the server
sees the client go). ``always_call_tools`` keeps calling tools, to test the gateway's bound.
Every chat request body and its headers are recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TICKET = re.compile(r"\b[A-Z][A-Z0-9]+-\d+\b")


@dataclass
class ModelServerDouble:
    models: tuple[str, ...] = ("double-model",)
    hang: bool = False
    fail: tuple[int, str] | None = None
    hold_stream: bool = False
    always_call_tools: bool = False
    answer: str | None = None
    dimensions: int = 8
    vectors: dict[str, list[float]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    embedding_inputs: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    stream_cancelled: threading.Event = field(default_factory=threading.Event)
    stream_started: threading.Event = field(default_factory=threading.Event)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            ]
        )

    async def _models(self, _: Request) -> Response:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "double"} for m in self.models
        ]
        return JSONResponse({"object": "list", "data": data})

    async def _wait_for_release(self) -> None:
        # The test thread sets a threading.Event; an asyncio.Event would belong to this loop.
        while not self.release.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if self.hang:
            await self._wait_for_release()
        if self.fail is not None:
            status, reason = self.fail
            error = {"message": reason, "type": "server_error", "param": None, "code": None}
            return JSONResponse({"error": error}, status_code=status)
        messages = body.get("messages") or []
        call = self._tool_call(body)
        text = "" if call else self._answer(messages)
        usage = {
            "prompt_tokens": sum(len(str(m.get("content") or "").split()) for m in messages),
            "completion_tokens": len(text.split()) or 1,
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            stream = self._stream(body["model"], text, call, usage if include_usage else None)
            return StreamingResponse(stream, media_type="text/event-stream")
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if call:
            message["tool_calls"] = [call]
        return JSONResponse(
            {
                "id": f"chatcmpl-double-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if call else "stop",
                    }
                ],
                "usage": usage,
            }
        )

    def _tool_call(self, body: dict[str, Any]) -> dict[str, Any] | None:
        tools = body.get("tools") or []
        messages = body.get("messages") or []
        if not tools or (messages[-1].get("role") == "tool" and not self.always_call_tools):
            return None
        function = tools[0]["function"]
        question = next(
            (str(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        ticket = TICKET.search(question)
        parameters = function.get("parameters") or {}
        arguments = {
            name: ticket.group(0) if ticket else question
            for name in parameters.get("required", [])
            if (parameters.get("properties", {}).get(name) or {}).get("type") == "string"
        }
        return {
            "id": f"call_{len(self.requests)}",
            "type": "function",
            "function": {"name": function["name"], "arguments": json.dumps(arguments)},
        }

    def _answer(self, messages: list[dict[str, Any]]) -> str:
        if messages and messages[-1].get("role") == "tool":
            return f"Proposed change, from the tool result: {messages[-1].get('content')}"
        if self.answer is not None:
            return self.answer
        last: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        return f"echo: {last.get('content')}"

    async def _stream(
        self,
        model: str,
        text: str,
        call: dict[str, Any] | None,
        usage: dict[str, int] | None,
    ) -> AsyncIterator[str]:
        base = {"id": "chatcmpl-double", "object": "chat.completion.chunk", "created": 0}
        base["model"] = model

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n"

        try:
            yield chunk({"role": "assistant", "content": ""})
            if call:
                # Tool calls arrive in pieces, as real servers send them.
                arguments = call["function"]["arguments"]
                half = len(arguments) // 2
                first = {"name": call["function"]["name"], "arguments": arguments[:half]}
                opening = {"index": 0, "id": call["id"], "type": "function", "function": first}
                rest = {"index": 0, "function": {"arguments": arguments[half:]}}
                yield chunk({"tool_calls": [opening]})
                yield chunk({"tool_calls": [rest]})
                yield chunk({}, "tool_calls")
            else:
                for position, word in enumerate(text.split(" ")):
                    yield chunk({"content": word if position == 0 else " " + word})
                    if position == 0 and self.hold_stream:
                        self.stream_started.set()
                        await self._wait_for_release()
                yield chunk({}, "stop")
            if usage is not None:
                yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"
        except asyncio.CancelledError:
            self.stream_cancelled.set()
            raise

    async def _embeddings(self, request: Request) -> Response:
        body = await request.json()
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        self.embedding_inputs.extend(inputs)
        data = [
            {"object": "embedding", "index": i, "embedding": self.vector(text)}
            for i, text in enumerate(inputs)
        ]
        return JSONResponse(
            {"object": "list", "data": data, "model": body.get("model"), "usage": {}}
        )

    def vector(self, text: str) -> list[float]:
        """The test's vector for ``text``, else a stable one derived from its hash."""
        if text in self.vectors:
            return self.vectors[text]
        digest = hashlib.sha256(text.encode()).digest()
        return [(digest[i] - 128) / 128 for i in range(self.dimensions)]
