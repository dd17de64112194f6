"""Reading AIApp and Model documents from YAML, with line numbers on every problem.

``load_documents`` takes the text of one file (any number of ``---`` documents, each an AIApp
in the CRD form, a bare Helix AISpec document, or a Model) and returns the valid objects and
every problem found, each located by document index, dotted path and line. It also resolves
``apis[].schema``: a relative ``.yaml``/``.yml`` file is read from beside the YAML and inlined
into the returned app, a URL is left alone (validation makes no network calls), and every
schema it can read must be an OpenAPI document that parses. ``operations`` lists what an
OpenAPI schema offers; the gateway uses it too.

The rules themselves live in ``aiapp.api.aispec`` and ``aiapp.api.model``; this module only
finds where in the text a broken rule sits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any, Final

import yaml
from openapi_spec_validator import validate as validate_openapi

from aiapp.api.aispec import (
    AIApp,
    app_warnings,
    from_bare,
    parse_app,
    schema_kind,
)
from aiapp.api.errors import AISpecError, Issue, Path, dotted
from aiapp.api.model import API_VERSION as MODEL_API_VERSION
from aiapp.api.model import Model, parse_model, resolve_model

HTTP_METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# Providers that serve models outside the cluster, so no Model needs to name the model.
EXTERNAL_PROVIDERS: Final = frozenset({"openai", "togetherai", "together", "anthropic", "helix"})


@dataclass(frozen=True)
class Problem:
    """A broken rule in a file: which document, where, what, and how to fix it."""

    document: int
    path: str
    line: int | None
    message: str
    fix: str
    warning: bool = False

    def format(self, filename: str) -> str:
        """``FILE:LINE: path: message (fix: ...)``, the form editors and CI logs link."""
        where = f"{filename}:{self.line}" if self.line else filename
        label = "warning: " if self.warning else ""
        return f"{where}: {label}{self.path}: {self.message} (fix: {self.fix})"


@dataclass(frozen=True)
class Operation:
    """One operation an OpenAPI schema offers."""

    method: str
    path: str
    operation_id: str
    summary: str
    description: str = ""


def operations(schema: Mapping[str, Any]) -> list[Operation]:
    """The operations of an OpenAPI 3 document, in the order the schema lists them."""
    found: list[Operation] = []
    paths = schema.get("paths")
    if not isinstance(paths, Mapping):
        return found
    for path, item in paths.items():
        if not isinstance(item, Mapping):
            continue
        for method in HTTP_METHODS:
            operation = item.get(method)
            if not isinstance(operation, Mapping):
                continue
            found.append(
                Operation(
                    method=method.upper(),
                    path=str(path),
                    operation_id=str(operation.get("operationId") or ""),
                    summary=str(operation.get("summary") or ""),
                    description=str(operation.get("description") or ""),
                )
            )
    return found


class SchemaError(ValueError):
    """An API schema that is not a readable OpenAPI document."""


def load_schema(text: str) -> dict[str, Any]:
    """Parse an inline OpenAPI schema (YAML or JSON) and check it is OpenAPI.

    Raises:
        SchemaError: the text is not YAML, not a mapping, or not a valid OpenAPI document.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SchemaError(f"the schema is not YAML or JSON: {_first_line(exc)}") from None
    if not isinstance(document, dict):
        raise SchemaError("the schema is not a mapping; an OpenAPI document starts with openapi:")
    # Round-trip through JSON so that YAML dates and other non-JSON scalars read as text, as
    # the OpenAPI validator expects.
    try:
        checked: dict[str, Any] = json.loads(json.dumps(document, default=str))
    except (TypeError, ValueError):
        raise SchemaError(
            "the schema has keys that are not text, or refers to itself through a YAML alias"
        ) from None
    try:
        validate_openapi(checked)
    except Exception as exc:  # the validator raises many unrelated types; all mean "invalid"
        raise SchemaError(f"the schema is not valid OpenAPI: {_first_line(exc)}") from None
    return checked


def _first_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message).strip().splitlines()[0][:300]


# -- line numbers ----------------------------------------------------------------------------


class _Located:
    """The line of every path in one YAML document, and keys that appear twice."""

    def __init__(self, node: yaml.Node) -> None:
        self.lines: dict[Path, int] = {}
        self.duplicates: list[tuple[Path, int]] = []
        self.cycle: Path | None = None
        self._open: set[int] = set()
        self._walk(node, ())

    def _walk(self, node: yaml.Node, path: Path) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        # An alias to an enclosing anchor makes the document contain itself; stop there.
        if id(node) in self._open:
            self.cycle = self.cycle or path
            return
        self._open.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = (*path, key)
                if key in seen:
                    self.duplicates.append((child, key_node.start_mark.line + 1))
                    continue
                seen.add(key)
                self.lines[child] = key_node.start_mark.line + 1
                self._walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._walk(item, (*path, index))
        self._open.discard(id(node))

    def line(self, path: Path) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


@dataclass
class _Document:
    index: int
    data: Any
    located: _Located
    bare: bool = False

    def problem(self, issue: Issue, line: int | None = None) -> Problem:
        path = issue.path
        if self.bare:
            # Issues name paths in the CRD form; a bare document has spec's keys at the top.
            if path[:1] == ("spec",):
                path = path[1:]
            elif path[:1] == ("metadata",):
                path = ("name",)
        return Problem(
            document=self.index,
            path=dotted(path),
            line=line or self.located.line(path),
            message=issue.message,
            fix=issue.fix,
            warning=issue.warning,
        )


def _compose(text: str) -> tuple[list[_Document], list[Problem]]:
    loader = yaml.SafeLoader(text)
    documents: list[_Document] = []
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                located = _Located(node)
                # A document that contains itself cannot be constructed, let alone validated.
                data = None if located.cycle is not None else loader.construct_document(node)
                documents.append(_Document(index, data, located))
            index += 1
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = Problem(
            document=len(documents),
            path="<document>",
            line=mark.line + 1 if mark is not None else None,
            message=f"the YAML does not parse: {getattr(exc, 'problem', None) or exc}",
            fix="correct the YAML syntax at that line (indentation, quotes, ':' after keys)",
        )
        return documents, [problem]
    finally:
        loader.dispose()
    return documents, []


# -- the documents ---------------------------------------------------------------------------


def _is_model(data: Mapping[str, Any]) -> bool:
    api_version = data.get("apiVersion")
    return data.get("kind") == "Model" or (
        isinstance(api_version, str) and api_version.startswith(MODEL_API_VERSION.split("/")[0])
    )


def _resolve_schemas(app: AIApp, base_dir: FilePath | None, doc: _Document) -> list[Problem]:
    problems: list[Problem] = []
    for a, assistant in enumerate(app.spec.assistants):
        for j, api in enumerate(assistant.apis):
            where: Path = ("spec", "assistants", a, "apis", j, "schema")
            kind = schema_kind(api.schema_)
            if kind == "url":
                continue
            text = api.schema_
            if kind == "file":
                relative = api.schema_.strip()
                target = (base_dir or FilePath.cwd()) / relative
                try:
                    text = target.read_text("utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
                    problems.append(
                        doc.problem(
                            Issue(
                                where,
                                f"schema file {relative!r} cannot be read ({reason}); paths "
                                "are relative to the YAML file",
                                f"put the OpenAPI file at {target}, or fix the path",
                            )
                        )
                    )
                    continue
            try:
                load_schema(text)
            except SchemaError as exc:
                problems.append(
                    doc.problem(
                        Issue(
                            where, str(exc), "give an OpenAPI 3 document with openapi: and paths:"
                        )
                    )
                )
                continue
            # Inline the file so the object works where the file is not (the cluster).
            api.schema_ = text
    return problems


def _model_warnings(app: AIApp, models: list[Model], doc: _Document) -> list[Problem]:
    problems: list[Problem] = []
    for a, assistant in enumerate(app.spec.assistants):
        if assistant.provider in EXTERNAL_PROVIDERS:
            continue
        if resolve_model(assistant.model, models) is None:
            issue = Issue(
                ("spec", "assistants", a, "model"),
                f"model {assistant.model!r} is neither a preset nor a Model in these files",
                "apply a Model whose servedName or name is this string, or use a preset "
                "(see 'aiapp validate --help')",
                warning=True,
            )
            problems.append(doc.problem(issue))
    return problems


def load_documents(
    text: str, base_dir: FilePath | str | None = None
) -> tuple[list[AIApp], list[Model], list[Problem]]:
    """Parse every document in ``text``; return the AIApps, the Models and all problems.

    Relative ``apis[].schema`` files are read from ``base_dir`` (the current directory when it
    is None) and inlined into the returned apps. Problems with ``warning`` set do not make a
    document invalid; an invalid document contributes no object.
    """
    base = FilePath(base_dir) if base_dir is not None else None
    documents, problems = _compose(text)
    apps: list[tuple[_Document, AIApp]] = []
    models: list[Model] = []

    for doc in documents:
        data = doc.data
        if doc.located.cycle is not None:
            issue = Issue(
                doc.located.cycle,
                "the document contains itself through a YAML alias",
                "replace the alias (*name) with the content it should repeat",
            )
            problems.append(doc.problem(issue))
            continue
        if data is None:
            continue

        # Work out which form the document is in.
        for path, line in doc.located.duplicates:
            issue = Issue(path, f"key {path[-1]!r} appears twice", "keep one of them")
            problems.append(doc.problem(issue, line))
        if not isinstance(data, dict):
            problems.append(
                doc.problem(
                    Issue(
                        (),
                        "a document must be a mapping (an AIApp, a Helix app or a Model)",
                        "start the document with apiVersion: app.aispec.org/v1alpha1",
                    )
                )
            )
            continue
        if "helix" in data:
            problems.append(
                doc.problem(
                    Issue(
                        ("helix",),
                        "a top-level helix: key is not AISpec (Helix refuses it too)",
                        "move the keys under helix: to the top level",
                    )
                )
            )
            continue
        if "openapi" in data or "swagger" in data:
            problems.append(
                doc.problem(
                    Issue(
                        (),
                        "this is an OpenAPI document, not an AIApp or a Model",
                        "refer to it from an assistant's apis[].schema instead",
                    )
                )
            )
            continue
        is_model = _is_model(data)
        doc.bare = not is_model and not {"apiVersion", "kind", "metadata", "spec"} & data.keys()
        body = from_bare(data) if doc.bare else data
        if not is_model and not doc.bare and body.get("kind") not in (None, "AIApp"):
            problems.append(
                doc.problem(
                    Issue(
                        ("kind",),
                        f"kind {body.get('kind')!r} is not AIApp or Model",
                        "use kind: AIApp (app.aispec.org/v1alpha1) or kind: Model "
                        "(model.aispec.org/v1alpha1)",
                    )
                )
            )
            continue

        # Validate the object, then what needs the file system.
        try:
            if is_model:
                models.append(parse_model(body))
                continue
            app = parse_app(body)
        except AISpecError as exc:
            problems.extend(doc.problem(issue) for issue in exc.issues)
            continue
        schema_problems = _resolve_schemas(app, base, doc)
        problems.extend(schema_problems)
        problems.extend(doc.problem(issue) for issue in app_warnings(app))
        if not schema_problems:
            apps.append((doc, app))

    # Checks across documents: names are unique, and models resolve.
    seen: dict[tuple[str, str], int] = {}
    for doc, app in apps:
        key = (app.metadata.namespace, app.metadata.name)
        if key in seen:
            problems.append(
                doc.problem(
                    Issue(
                        ("metadata", "name"),
                        f"AIApp {app.metadata.name!r} is also document {seen[key] + 1}",
                        "give each AIApp its own name",
                    )
                )
            )
        seen.setdefault(key, doc.index)
        problems.extend(_model_warnings(app, models, doc))
    if not apps and not models and not problems:
        problems.append(Problem(
            document=0, path="<document>", line=None,
            message="the file holds no AIApp or Model",
            fix="write an AIApp (apiVersion: app.aispec.org/v1alpha1, kind: AIApp, metadata, "
            "spec) or a bare Helix app (name, assistants)",
        ))
    problems.sort(key=lambda p: (p.document, p.line or 0, p.warning))
    return [app for _, app in apps], models, problems


def app_operations(app: AIApp) -> list[tuple[str, str, list[Operation] | None]]:
    """For each API of each assistant: (assistant, api, operations; None for URL schemas)."""
    listed: list[tuple[str, str, list[Operation] | None]] = []
    for assistant in app.spec.assistants:
        for api in assistant.apis:
            if schema_kind(api.schema_) == "url":
                listed.append((assistant.name, api.name, None))
                continue
            try:
                listed.append((assistant.name, api.name, operations(load_schema(api.schema_))))
            except SchemaError:
                listed.append((assistant.name, api.name, []))
    return listed
