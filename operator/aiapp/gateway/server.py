"""The gateway's Starlette app: OpenAI-compatible endpoints in front of one AIApp.

``create_app`` checks the app's configuration once, up front, so a bad spec stops the pod with
a message naming the field instead of failing requests later. The spec is read with
``aiapp.api.aispec.parse_app``, the validator every other part of the platform uses; the gateway
adds only what serving needs on top (an upstream per assistant, inline API schemas, knowledge
templates it can translate). Requests then go through the
same steps: authenticate, parse, pick the assistant, retrieve knowledge, build the upstream
request, and either relay the model server's answer (streamed unbuffered, event by event) or
run the tool loop for assistants with APIs.

Tool loop: the model sees the assistant's API operations as tools; the gateway runs each call
it makes and feeds the result back, for at most ``max_tool_rounds`` rounds, after which the
model must answer without tools. For streaming requests each round streams from the model too,
but only answer text reaches the client, so the client sees one stream with the final answer.
A request that brings its own ``tools`` keeps them: the gateway then relays tool calls to the
client and adds none of its own, because it cannot run tools it does not know.

Endpoints: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /v1/models/{name}`` (these
need a Bearer key), and ``GET /healthz``, ``/readyz``, ``/metrics`` (open, for probes and
Prometheus).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from aiapp.api.aispec import AIApp, AISpecError, Assistant, parse_app
from aiapp.api.runtime import AssistantBinding, GatewayConfig
from aiapp.gateway.errors import GatewayError, SpecError, error_body, invalid_request
from aiapp.gateway.metrics import GatewayMetrics
from aiapp.gateway.openapi_tools import Operation, ToolRunner, operations_for
from aiapp.gateway.prompting import (
    KnowledgeTemplateError,
    apply_sampling,
    build_messages,
    go_template_to_jinja,
    last_user_index,
    message_text,
    parse_chat_request,
    render_knowledge,
)
from aiapp.gateway.retrieving import StorePool, retrieve
from aiapp.gateway.upstreams import Upstreams

log = logging.getLogger("aiapp.gateway")

SSE_HEADERS: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
READY_TIMEOUT_S: Final = 3.0


@dataclass(frozen=True)
class GatewayOptions:
    """Operational limits; the command line sets them, the AIApp spec does not."""

    upstream_timeout_s: float = 120.0
    tool_timeout_s: float = 30.0
    max_tool_rounds: int = 5
    connect_retries: int = 2


@dataclass(frozen=True)
class Served:
    """An assistant together with where it is served and the tools it may call."""

    assistant: Assistant
    path: str
    binding: AssistantBinding
    operations: Mapping[str, Operation]
    tool_instructions: str


class Gateway:
    """The app's state between requests: its assistants, clients, store pool and metrics."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        api_keys: frozenset[str] | None,
        options: GatewayOptions,
    ) -> None:
        self.config = config
        self.api_keys = api_keys
        self.options = options
        self.metrics = GatewayMetrics()
        self.served = _check_config(config, app_from_config(config))
        self.default = next(iter(self.served))
        self.pool = StorePool(config.store.dsn_env)
        self.client: httpx.AsyncClient | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        # One client for every upstream and API keeps connections warm across requests.
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        async with httpx.AsyncClient(limits=limits) as client:
            self.client = client
            self.upstreams = Upstreams(
                client,
                timeout_s=self.options.upstream_timeout_s,
                connect_retries=self.options.connect_retries,
            )
            self.tools = ToolRunner(client, timeout_s=self.options.tool_timeout_s)
            try:
                yield
            finally:
                await self.pool.close()

    # Authentication.

    def authorize(self, request: Request) -> None:
        if self.api_keys is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise GatewayError(
                401,
                "Missing API key: send it as 'Authorization: Bearer <key>'.",
                type="invalid_request_error",
                code="invalid_api_key",
            )
        candidate = key.strip().encode()
        if not any(hmac.compare_digest(candidate, k.encode()) for k in self.api_keys):
            raise GatewayError(
                401,
                "Incorrect API key provided.",
                type="invalid_request_error",
                code="invalid_api_key",
            )

    # Endpoints.

    async def healthz(self, _: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, _: Request) -> Response:
        problems = await self._problems()
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(self, _: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def models(self, request: Request) -> Response:
        try:
            self.authorize(request)
        except GatewayError as exc:
            return exc.response()
        return JSONResponse({"object": "list", "data": [self._model(n) for n in self.served]})

    async def model(self, request: Request) -> Response:
        try:
            self.authorize(request)
            served = self._pick(request.path_params["name"])
        except GatewayError as exc:
            return exc.response()
        return JSONResponse(self._model(served.assistant.name))

    async def chat(self, request: Request) -> Response:
        started = time.perf_counter()
        assistant = "-"
        streamed = False
        status = 200
        try:
            self.authorize(request)

            # Parse and check the request before spending anything upstream.
            try:
                body = await request.json()
            except (ValueError, UnicodeDecodeError):
                raise invalid_request(
                    "The request body is not valid JSON; send a chat completion request object."
                ) from None
            body = parse_chat_request(body)
            served = self._pick(body.get("model"))
            assistant = served.assistant.name

            # Build what the model sees: knowledge, system prompt, history, sampling.
            upstream_body = await self._upstream_body(served, body)

            # Relay the answer, through the tool loop when the assistant has APIs.
            stream = bool(body.get("stream"))
            wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            if served.operations and "tools" not in body:
                if stream:
                    streamed = True
                    return await self._stream_tools(served, upstream_body, wants_usage, started)
                return JSONResponse(await self._complete_tools(served, upstream_body))
            if stream:
                streamed = True
                return await self._stream(served, upstream_body, wants_usage, started)
            result = await self.upstreams.complete(
                served.binding.upstream, upstream_body, assistant=assistant
            )
            self.metrics.count_usage(assistant, result.get("usage"))
            return JSONResponse(result)
        except GatewayError as exc:
            status = exc.status
            streamed = False
            self.metrics.errors.labels(assistant, exc.code or exc.type).inc()
            if exc.status >= 500:
                log.warning("Assistant %s request failed: %s", assistant, exc.message)
            return exc.response()
        finally:
            # Streams record their outcome when they end; everything else ends here.
            if not streamed:
                self._observe(assistant, status, started)

    # Steps of a chat request.

    def _pick(self, model: Any) -> Served:
        if model in (None, ""):
            return self.served[self.default]
        served = self.served.get(str(model))
        if served is None:
            raise GatewayError(
                404,
                f"The model {model!r} does not exist; this app serves: {', '.join(self.served)}.",
                type="invalid_request_error",
                param="model",
                code="model_not_found",
            )
        return served

    async def _upstream_body(self, served: Served, body: dict[str, Any]) -> dict[str, Any]:
        messages: list[dict[str, Any]] = [dict(m) for m in body["messages"]]
        spec = served.assistant

        # Put retrieved knowledge into the user's last turn, through the knowledge template.
        position = last_user_index(messages)
        if spec.knowledge and served.binding.knowledge and position is not None:
            question = message_text(messages[position])
            passages = await self._retrieve(served, question)
            if passages:
                templates = [
                    k.rag_settings.prompt_template
                    for k in spec.knowledge
                    if k.rag_settings.prompt_template
                ]
                template = templates[0] if templates else ""
                descriptions = {k.name: k.description for k in spec.knowledge}
                try:
                    text = render_knowledge(template, question, passages, descriptions)
                except KnowledgeTemplateError as exc:
                    raise GatewayError(
                        500,
                        f"{served.path}.knowledge: the prompt_template failed ({exc}).",
                        type="server_error",
                        code="template_error",
                    ) from exc
                messages[position] = {**messages[position], "content": text}

        # The system prompt, trimmed history and sampling defaults, for the upstream model.
        built = build_messages(spec, messages)
        if served.operations and "tools" not in body and served.tool_instructions:
            built.insert(
                1 if spec.system_prompt else 0,
                {"role": "system", "content": served.tool_instructions},
            )
        upstream = {k: v for k, v in body.items() if k not in ("messages", "model", "user")}
        upstream["model"] = served.binding.upstream.model
        upstream["messages"] = built
        apply_sampling(spec, upstream)
        return upstream

    async def _retrieve(self, served: Served, question: str) -> list[Any]:
        embeddings = self.config.embeddings
        if embeddings is None or self.client is None:
            return []
        return await retrieve(
            client=self.client,
            embeddings=embeddings,
            pool=self.pool,
            question=question,
            knowledge=served.assistant.knowledge,
            bindings=dict(served.binding.knowledge),
        )

    async def _stream(
        self,
        served: Served,
        body: dict[str, Any],
        wants_usage: bool,
        started: float,
    ) -> Response:
        assistant = served.assistant.name
        body["stream"] = True
        # Ask for usage so token metrics work; drop the usage chunk if the client did not ask.
        body["stream_options"] = {"include_usage": True}
        response = await self.upstreams.open_stream(
            served.binding.upstream, body, assistant=assistant
        )

        async def events() -> AsyncIterator[str]:
            status = 200
            try:
                async for event in sse_events(response):
                    if '"usage"' in event:
                        chunk = _event_json(event)
                        if isinstance(chunk, dict):
                            self.metrics.count_usage(assistant, chunk.get("usage"))
                            if not wants_usage and not chunk.get("choices"):
                                continue
                    yield event + "\n\n"
            except httpx.TimeoutException:
                status = 504
                yield _error_event(self.upstreams.timeout_error(assistant))
            except httpx.HTTPError as exc:
                status = 502
                yield _error_event(_broken_stream(assistant, exc))
            finally:
                await response.aclose()
                self._observe(assistant, status, started)

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    async def _complete_tools(self, served: Served, body: dict[str, Any]) -> dict[str, Any]:
        assistant = served.assistant.name
        body["stream"] = False
        body.pop("stream_options", None)
        totals: dict[str, int] = {}
        for round_number in range(self.options.max_tool_rounds + 1):
            self._offer_tools(served, body, round_number)
            result = await self.upstreams.complete(
                served.binding.upstream, body, assistant=assistant
            )
            self.metrics.count_usage(assistant, result.get("usage"))
            _add_usage(totals, result.get("usage"))
            choices = result.get("choices") or [{}]
            message = choices[0].get("message") or {}
            calls = message.get("tool_calls") or []
            if not calls or "tools" not in body:
                break
            await self._run_calls(served, body, message.get("content"), calls)
        if totals:
            result["usage"] = {**(result.get("usage") or {}), **totals}
        return result

    async def _stream_tools(
        self,
        served: Served,
        body: dict[str, Any],
        wants_usage: bool,
        started: float,
    ) -> Response:
        assistant = served.assistant.name
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        self._offer_tools(served, body, 0)
        # The first round opens before the response starts, so its errors keep their status.
        first = await self.upstreams.open_stream(served.binding.upstream, body, assistant=assistant)

        async def events() -> AsyncIterator[str]:
            status = 200
            response: httpx.Response | None = first
            totals: dict[str, int] = {}
            last_chunk: dict[str, Any] = {}
            try:
                for round_number in range(self.options.max_tool_rounds + 1):
                    if response is None:
                        self._offer_tools(served, body, round_number)
                        response = await self.upstreams.open_stream(
                            served.binding.upstream, body, assistant=assistant
                        )
                    calls: dict[int, dict[str, Any]] = {}
                    content: list[str] = []
                    try:
                        async for event in sse_events(response):
                            chunk = _event_json(event)
                            if not isinstance(chunk, dict):
                                continue
                            last_chunk = chunk
                            self.metrics.count_usage(assistant, chunk.get("usage"))
                            _add_usage(totals, chunk.get("usage"))
                            if _collect(chunk, calls, content, first_round=round_number == 0):
                                yield event + "\n\n"
                    finally:
                        await response.aclose()
                        response = None
                    if not calls or "tools" not in body:
                        break
                    ordered = [calls[i] for i in sorted(calls)]
                    await self._run_calls(served, body, "".join(content) or None, ordered)
                if wants_usage and totals:
                    usage_chunk = {**last_chunk, "choices": [], "usage": totals}
                    yield f"data: {json.dumps(usage_chunk)}\n\n"
                yield "data: [DONE]\n\n"
            except GatewayError as exc:
                status = exc.status
                self.metrics.errors.labels(assistant, exc.code or exc.type).inc()
                yield _error_event(exc)
            except httpx.TimeoutException:
                status = 504
                yield _error_event(self.upstreams.timeout_error(assistant))
            except httpx.HTTPError as exc:
                status = 502
                yield _error_event(_broken_stream(assistant, exc))
            finally:
                if response is not None:
                    await response.aclose()
                self._observe(assistant, status, started)

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    def _offer_tools(self, served: Served, body: dict[str, Any], round_number: int) -> None:
        # After the last allowed round the model must answer with what it has.
        if round_number < self.options.max_tool_rounds:
            body["tools"] = [op.tool() for op in served.operations.values()]
        else:
            body.pop("tools", None)
            body.pop("tool_choice", None)

    async def _run_calls(
        self,
        served: Served,
        body: dict[str, Any],
        content: Any,
        calls: list[dict[str, Any]],
    ) -> None:
        body["messages"].append({"role": "assistant", "content": content, "tool_calls": calls})
        results = await asyncio.gather(*(self._run_call(served, call) for call in calls))
        for call, text in zip(calls, results, strict=True):
            body["messages"].append(
                {"role": "tool", "tool_call_id": call.get("id", ""), "content": text}
            )

    async def _run_call(self, served: Served, call: dict[str, Any]) -> str:
        function = call.get("function") or {}
        name = str(function.get("name", ""))
        operation = served.operations.get(name)
        if operation is None:
            self.metrics.tool_calls.labels(served.assistant.name, "unknown", "error").inc()
            return (
                f"There is no tool named {name!r}; the tools are: {', '.join(served.operations)}."
            )
        ok, text = await self.tools.call(operation, str(function.get("arguments") or "{}"))
        outcome = "ok" if ok else "error"
        self.metrics.tool_calls.labels(served.assistant.name, name, outcome).inc()
        api = operation.api
        template = api.response_success_template if ok else api.response_error_template
        if template:
            text = f"{text}\n\n{template}"
        if not ok:
            log.info(
                "Assistant %s tool %s failed; the model was told why", served.assistant.name, name
            )
        return text

    # Helpers.

    def _model(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0, "owned_by": self.config.app.key}

    def _observe(self, assistant: str, status: int, started: float) -> None:
        self.metrics.requests.labels(assistant, str(status)).inc()
        self.metrics.latency.labels(assistant).observe(time.perf_counter() - started)

    async def _problems(self) -> list[str]:
        problems: list[str] = []
        client = self.client
        if client is None:
            return ["the gateway is starting"]

        # Every distinct upstream must answer its model list.
        checked: dict[str, str] = {}
        for name, served in self.served.items():
            base = served.binding.upstream.base_url.rstrip("/")
            if base not in checked:
                checked[base] = await _probe(client, base + "/models")
            if checked[base]:
                problems.append(f"assistant {name}: the model server {checked[base]}")

        # The store and the embeddings endpoint matter only when some assistant has knowledge.
        if any(s.assistant.knowledge for s in self.served.values()):
            try:
                await self.pool.ping()
            except GatewayError as exc:
                problems.append(exc.message)
            if self.config.embeddings is not None:
                base = self.config.embeddings.base_url.rstrip("/")
                problem = checked.get(base)
                if problem is None:
                    problem = await _probe(client, base + "/models")
                if problem:
                    problems.append(f"the embeddings endpoint {problem}")
        return problems


def create_app(
    config: GatewayConfig,
    *,
    api_keys: frozenset[str] | None,
    options: GatewayOptions | None = None,
) -> Starlette:
    """The gateway ASGI app for one AIApp.

    Args:
        config: the app's rendered gateway configuration.
        api_keys: accepted Bearer keys; ``None`` serves without authentication.
        options: timeouts and loop bounds.

    Raises:
        SpecError: the configuration cannot be served; the message names the field.
    """
    gateway = Gateway(config, api_keys=api_keys, options=options or GatewayOptions())
    routes = [
        Route("/v1/chat/completions", gateway.chat, methods=["POST"]),
        Route("/v1/models", gateway.models, methods=["GET"]),
        Route("/v1/models/{name:path}", gateway.model, methods=["GET"]),
        Route("/healthz", gateway.healthz, methods=["GET"]),
        Route("/readyz", gateway.readyz, methods=["GET"]),
        Route("/metrics", gateway.metrics_endpoint, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=gateway.lifespan)
    app.state.gateway = gateway
    return app


def app_from_config(config: GatewayConfig) -> AIApp:
    """The app in a gateway config, checked by the same rules as ``aiapp validate``.

    Raises:
        SpecError: every rule the spec breaks, each naming the field and the fix.
    """
    try:
        return parse_app(config.app_body())
    except AISpecError as exc:
        raise SpecError(str(exc)) from exc


def _check_config(config: GatewayConfig, app: AIApp) -> dict[str, Served]:
    served: dict[str, Served] = {}
    for index, assistant in enumerate(app.spec.assistants):
        path = f"spec.assistants[{index}]"

        # Each assistant needs a model server, and knowledge needs an embeddings endpoint.
        binding = config.assistants.get(assistant.name)
        if binding is None:
            raise SpecError(
                f"assistants.{assistant.name}: the gateway config has no upstream for the "
                f"assistant {assistant.name!r} ({path}); re-render the app's gateway ConfigMap."
            )
        if assistant.knowledge and config.embeddings is None:
            raise SpecError(
                f"embeddings: {path} has knowledge but the gateway config names no "
                "embeddings endpoint; set the operator's embeddings setting."
            )

        # Templates and schemas are translated now, so a request never meets a broken one.
        for knowledge in assistant.knowledge:
            template = knowledge.rag_settings.prompt_template
            if template:
                try:
                    go_template_to_jinja(template)
                except KnowledgeTemplateError as exc:
                    raise SpecError(
                        f"{path}.knowledge.{knowledge.name}.rag_settings.prompt_template: {exc}."
                    ) from exc
        operations = operations_for(assistant.apis, path)
        instructions = "\n\n".join(
            f"Before calling the {api.name} API: {api.request_prep_template}"
            for api in assistant.apis
            if api.request_prep_template
        )
        served[assistant.name] = Served(assistant, path, binding, operations, instructions)
    return served


async def sse_events(response: httpx.Response) -> AsyncIterator[str]:
    """The server-sent events of a streamed response, each as its lines joined, unbuffered."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if line:
            lines.append(line)
        elif lines:
            yield "\n".join(lines)
            lines = []
    if lines:
        yield "\n".join(lines)


def _event_json(event: str) -> Any:
    data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
    if not data or data == "[DONE]":
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _collect(
    chunk: dict[str, Any],
    calls: dict[int, dict[str, Any]],
    content: list[str],
    *,
    first_round: bool,
) -> bool:
    """Merge a chunk's tool-call deltas into ``calls``; True when the client should see it."""
    visible = False
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        for part in delta.get("tool_calls") or []:
            slot = calls.setdefault(
                int(part.get("index", 0)),
                {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
            )
            slot["id"] = part.get("id") or slot["id"]
            function = part.get("function") or {}
            slot["function"]["name"] += function.get("name") or ""
            slot["function"]["arguments"] += function.get("arguments") or ""
        text = delta.get("content")
        if text:
            content.append(text)
        if delta.get("tool_calls"):
            continue
        finish = choice.get("finish_reason")
        if text or (finish and finish != "tool_calls") or (first_round and delta.get("role")):
            visible = True
    return visible


def _add_usage(totals: dict[str, int], usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = usage.get(key)
        if isinstance(value, int):
            totals[key] = totals.get(key, 0) + value


def _error_event(error: GatewayError) -> str:
    return f"data: {json.dumps(error.body())}\n\n"


def _broken_stream(assistant: str, exc: Exception) -> GatewayError:
    return GatewayError(
        502,
        f"The model server for assistant {assistant!r} broke off the stream "
        f"({type(exc).__name__}).",
        type="server_error",
        code="upstream_error",
    )


async def _probe(client: httpx.AsyncClient, url: str) -> str:
    """An empty string when ``url`` answers below 500, else what went wrong."""
    try:
        response = await client.get(url, timeout=READY_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return f"is unreachable ({type(exc).__name__})"
    if response.status_code >= 500:
        return f"answered HTTP {response.status_code}"
    return ""


__all__ = ["GatewayOptions", "create_app", "error_body", "sse_events"]
