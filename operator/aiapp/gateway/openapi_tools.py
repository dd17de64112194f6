"""An assistant's ``apis[]`` as OpenAI tools, and the HTTP calls the model asks for.

Each OpenAPI operation of an API entry becomes one function tool: its name comes from the
``operationId``, its parameters from the path and query parameters and the JSON request body.
The schema is read and checked by ``aiapp.api.documents`` (``load_schema``, ``operations``),
the same code ``aiapp validate`` runs; this module adds what a tool needs on top, the
parameters with their local ``$ref`` values inlined. When the model calls a tool, ``ToolRunner``
makes the request against the entry's ``url`` with the entry's ``headers`` and ``query``, whose
``${NAME}`` placeholders are filled from the environment (where the operator puts the app's
secrets). Whatever goes wrong (a refused address, a timeout, an HTTP error, a missing secret)
comes back as text for the model to read, never as a failed request, and never with a secret
value in it.

Addresses: link-local addresses (169.254.0.0/16, fe80::/10) and the cloud metadata endpoints
are refused, whatever name resolves to them. The check resolves the host before the request and
httpx resolves it again when connecting, so a DNS server that answers differently the second
time could slip past; pods reach such names only through the cluster's own DNS.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit

import httpx

from aiapp.api.aispec import AssistantAPI, schema_kind
from aiapp.api.documents import Operation as Listed
from aiapp.api.documents import SchemaError, load_schema, operations
from aiapp.gateway.errors import SpecError

# The methods a tool call may make; HEAD, OPTIONS and TRACE answer nothing a model can use.
METHODS: Final = ("get", "post", "put", "patch", "delete")
MAX_RESULT_CHARS: Final = 16_000
_PLACEHOLDER: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TOOL_NAME: Final = re.compile(r"[^A-Za-z0-9_-]+")
METADATA_HOSTS: Final = frozenset({"metadata.google.internal", "metadata", "metadata.goog"})
BLOCKED_NETWORKS: Final = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)


class ToolCallError(Exception):
    """A tool call that could not run; the message is meant for the model to read."""


@dataclass(frozen=True)
class Operation:
    """One OpenAPI operation, bound to the API entry that serves it."""

    tool_name: str
    api: AssistantAPI
    method: str
    path: str
    description: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    header_params: tuple[str, ...]
    has_body: bool
    parameters: Mapping[str, Any]
    base_url: str

    def tool(self) -> dict[str, Any]:
        """The OpenAI ``tools[]`` entry for this operation."""
        return {
            "type": "function",
            "function": {
                "name": self.tool_name,
                "description": self.description[:1024],
                "parameters": self.parameters,
            },
        }


def operations_for(apis: Sequence[AssistantAPI], path: str) -> dict[str, Operation]:
    """Every operation of an assistant's APIs, by unique tool name.

    Args:
        apis: the assistant's ``apis[]``.
        path: where the assistant sits in the spec, like ``spec.assistants[0]``; errors name
            fields below it.

    Raises:
        SpecError: a schema that is not inline OpenAPI, has no operations, or has a ``$ref``
            the gateway cannot resolve; an API without a base URL.
    """
    found: dict[str, Operation] = {}
    for index, api in enumerate(apis):
        where = f"{path}.apis[{index}]"
        listed = _operations(api, where)
        if not listed:
            raise SpecError(
                f"{where}.schema: the OpenAPI schema has no operations under 'paths'; "
                "add at least one."
            )
        for operation in listed:
            name = operation.tool_name
            if name in found:
                # Two APIs may reuse an operationId; the API name keeps the tools apart.
                name = _tool_name(f"{api.name}_{name}")
                operation = dataclasses.replace(operation, tool_name=name)
            if name in found:
                raise SpecError(
                    f"{where}.schema: operation {operation.tool_name!r} appears twice; "
                    "give each operation a unique operationId."
                )
            found[name] = operation
    return found


def _schema(api: AssistantAPI, where: str) -> dict[str, Any]:
    # Files and URLs are resolved by 'aiapp convert' before the object is applied; the gateway
    # reads no files and fetches no schemas, so anything but inline text is a rendering gap.
    if schema_kind(api.schema_) != "inline":
        raise SpecError(
            f"{where}.schema: {api.schema_.strip()!r} is a file path or URL, which the gateway "
            "cannot open; the schema must reach the gateway inline "
            "(aiapp validate/convert inline it)."
        )
    try:
        return load_schema(api.schema_)
    except SchemaError as exc:
        raise SpecError(
            f"{where}.schema: {exc}; give an OpenAPI 3 document with openapi:, info: and paths:."
        ) from exc


def _operations(api: AssistantAPI, where: str) -> list[Operation]:
    schema = _schema(api, where)
    servers = schema.get("servers") or []
    base_url = api.url or (servers[0].get("url", "") if servers else "")
    if not base_url:
        raise SpecError(
            f"{where}.url: the API has no url and its schema names no servers; "
            "set url to the API's base URL."
        )
    result = []
    for listed in operations(schema):
        method = listed.method.lower()
        if method not in METHODS:
            continue
        item = schema["paths"][listed.path]
        shared = [_resolve(schema, p) for p in item.get("parameters") or []]
        result.append(_operation(api, schema, base_url, listed, item[method], shared))
    return result


def _operation(
    api: AssistantAPI,
    schema: Mapping[str, Any],
    base_url: str,
    listed: Listed,
    operation: Mapping[str, Any],
    shared: list[Mapping[str, Any]],
) -> Operation:
    method, path = listed.method.lower(), listed.path

    # Operation parameters override path-level ones with the same name and location.
    params: dict[tuple[str, str], Mapping[str, Any]] = {}
    for raw in [*shared, *(_resolve(schema, p) for p in operation.get("parameters") or [])]:
        params[(str(raw.get("in")), str(raw.get("name")))] = raw

    # Path, query and header parameters become properties; the JSON body becomes "body".
    properties: dict[str, Any] = {}
    required: list[str] = []
    located: dict[str, list[str]] = {"path": [], "query": [], "header": []}
    for (where, name), raw in params.items():
        if where not in located:
            continue
        located[where].append(name)
        prop = dict(_inline(schema, raw.get("schema") or {"type": "string"}))
        if raw.get("description"):
            prop["description"] = str(raw["description"])
        properties[name] = prop
        if raw.get("required") or where == "path":
            required.append(name)
    body = _resolve(schema, operation.get("requestBody") or {})
    body_schema = ((body.get("content") or {}).get("application/json") or {}).get("schema")
    if body_schema is not None:
        properties["body"] = _inline(schema, body_schema)
        if body.get("required"):
            required.append("body")
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    name = listed.operation_id or f"{method}_{path}"
    description = " ".join(
        part for part in (listed.summary, listed.description, api.description) if part
    )
    return Operation(
        tool_name=_tool_name(name),
        api=api,
        method=method.upper(),
        path=path,
        description=description or f"{method.upper()} {path} on the {api.name} API",
        path_params=tuple(located["path"]),
        query_params=tuple(located["query"]),
        header_params=tuple(located["header"]),
        has_body=body_schema is not None,
        parameters=parameters,
        base_url=base_url,
    )


def _tool_name(raw: str) -> str:
    return _TOOL_NAME.sub("_", raw).strip("_")[:64] or "operation"


def _resolve(schema: Mapping[str, Any], node: Any) -> Mapping[str, Any]:
    """Follow a local ``$ref`` (``#/components/...``) to the object it names."""
    for _ in range(16):
        if not isinstance(node, Mapping) or "$ref" not in node:
            break
        ref = str(node["$ref"])
        if not ref.startswith("#/"):
            raise SpecError(f"schema: only local $ref values are supported; got {ref!r}.")
        target: Any = schema
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                raise SpecError(f"schema: $ref {ref!r} points nowhere; fix the reference.")
            target = target[part]
        node = target
    return node if isinstance(node, Mapping) else {}


def _inline(schema: Mapping[str, Any], node: Any, depth: int = 0) -> Any:
    """A JSON schema with local refs replaced by their targets (cycles cut at depth 8)."""
    if depth > 8:
        return {}
    if isinstance(node, Mapping):
        node = _resolve(schema, node)
        return {
            k: _inline(schema, v, depth + 1)
            for k, v in node.items()
            if k not in ("example", "examples", "xml")
        }
    if isinstance(node, list):
        return [_inline(schema, v, depth + 1) for v in node]
    return node


def fill_placeholders(text: str, where: str) -> str:
    """Replace ``${NAME}`` with the environment's value; a missing one is a ToolCallError."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ToolCallError(
                f"The {where} needs the secret {name}, which is not set in the gateway; "
                "tell the user the integration is not configured."
            )
        return os.environ[name]

    return _PLACEHOLDER.sub(value, text)


async def check_address(url: str) -> None:
    """Refuse link-local and cloud metadata addresses before calling them."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if not host:
        raise ToolCallError(f"The API URL {url!r} has no host.")
    if host in METADATA_HOSTS:
        raise ToolCallError(f"Calls to the metadata host {host} are refused.")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ToolCallError(f"The API host {host} does not resolve ({exc}).") from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        mapped = getattr(address, "ipv4_mapped", None) or address
        if any(mapped in network for network in BLOCKED_NETWORKS):
            raise ToolCallError(
                f"Calls to {host} are refused: it resolves to the link-local or metadata "
                f"address {mapped}."
            )


class ToolRunner:
    """Runs the API calls a model asks for, with the API entry's headers and query."""

    def __init__(self, client: httpx.AsyncClient, *, timeout_s: float) -> None:
        self.client = client
        self.timeout_s = timeout_s

    async def call(self, operation: Operation, arguments: str) -> tuple[bool, str]:
        """Run one tool call; returns (succeeded, text for the model)."""
        try:
            text = await self._call(operation, arguments)
        except ToolCallError as exc:
            return False, str(exc)
        return True, text

    async def _call(self, operation: Operation, arguments: str) -> str:
        api = operation.api

        # The model's arguments must be a JSON object; say so instead of guessing.
        try:
            args = json.loads(arguments or "{}")
        except ValueError as exc:
            raise ToolCallError(
                f"The arguments for {operation.tool_name} are not valid JSON ({exc}); "
                "call it again with a JSON object."
            ) from exc
        if not isinstance(args, dict):
            raise ToolCallError(f"The arguments for {operation.tool_name} must be a JSON object.")

        # Build the URL from the path parameters, then add the entry's and the model's query.
        path = operation.path
        for name in operation.path_params:
            if name not in args:
                raise ToolCallError(
                    f"{operation.tool_name} needs the path parameter {name!r}; call it again "
                    "with it."
                )
            path = path.replace("{" + name + "}", quote(str(args[name]), safe=""))
        url = fill_placeholders(operation.base_url, f"{api.name} API URL").rstrip("/") + path
        await check_address(url)
        query = {k: fill_placeholders(v, f"{api.name} API query") for k, v in api.query.items()}
        for name in operation.query_params:
            if name in args and args[name] is not None:
                query[name] = _query_value(args[name])
        headers = {
            k: fill_placeholders(v, f"{api.name} API headers") for k, v in api.headers.items()
        }
        for name in operation.header_params:
            if name in args and name not in headers:
                headers[name] = str(args[name])

        # Call the API; failures become readable text for the model, never a failed answer.
        try:
            response = await self.client.request(
                operation.method,
                url,
                params=query,
                headers=headers,
                json=args.get("body") if operation.has_body else None,
                timeout=self.timeout_s,
                follow_redirects=False,
            )
        except httpx.TimeoutException as exc:
            raise ToolCallError(
                f"The {api.name} API did not answer within {self.timeout_s:g} seconds."
            ) from exc
        except httpx.HTTPError as exc:
            raise ToolCallError(
                f"The {api.name} API could not be reached ({type(exc).__name__})."
            ) from exc
        text = response.text[:MAX_RESULT_CHARS]
        if response.status_code >= 400:
            raise ToolCallError(
                f"The {api.name} API answered HTTP {response.status_code} to "
                f"{operation.method} {operation.path}: {text}"
            )
        return text


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
