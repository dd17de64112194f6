"""The gateway's read-only view of the AIApp spec: assistants, their knowledge and their APIs.

The spec travels to the gateway as the plain dict the API server stored. This module turns it
into small frozen dataclasses holding only what serving needs, with Helix's defaults applied,
and reports bad values as ``SpecError`` naming the field. Validation of the whole document is
``aiapp.api``'s job; this view only refuses what would make serving itself ambiguous.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

# Helix's defaults for rag_settings (setDefaultKnowledgeRAGSettings).
DEFAULT_DISTANCE: Final = "cosine"
DEFAULT_THRESHOLD: Final = 0.4
DEFAULT_RESULTS_COUNT: Final = 3
DISTANCES: Final = frozenset({"cosine", "l2", "inner_product"})
REASONING_EFFORTS: Final = frozenset({"none", "low", "medium", "high"})


class SpecError(ValueError):
    """A spec value the gateway cannot serve; the message names the field and the fix."""


@dataclass(frozen=True)
class KnowledgeView:
    name: str
    description: str
    distance: str
    threshold: float
    results_count: int
    prompt_template: str


@dataclass(frozen=True)
class ApiView:
    name: str
    description: str
    schema: Mapping[str, Any]
    url: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    request_prep_template: str
    response_success_template: str
    response_error_template: str
    field_path: str


@dataclass(frozen=True)
class AssistantView:
    name: str
    model: str
    system_prompt: str
    sampling: Mapping[str, Any]
    context_limit: int
    knowledge: tuple[KnowledgeView, ...] = ()
    apis: tuple[ApiView, ...] = ()
    field_path: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


# Sampling keys that pass straight into the upstream request when the assistant sets them.
SAMPLING_KEYS: Final = (
    "temperature",
    "top_p",
    "max_tokens",
    "presence_penalty",
    "frequency_penalty",
    "reasoning_effort",
)


def assistants_from_spec(spec: Mapping[str, Any]) -> tuple[AssistantView, ...]:
    """Read every assistant of an AIApp spec, in order; the first is the default one.

    Raises:
        SpecError: a value the gateway cannot serve, with the field path and the fix.
    """
    raw = spec.get("assistants") or []
    if not isinstance(raw, list) or not raw:
        raise SpecError("spec.assistants: an AIApp needs at least one assistant; add one.")
    views = []
    seen: set[str] = set()
    for index, entry in enumerate(raw):
        view = _assistant(entry, f"spec.assistants[{index}]", index)
        if view.name in seen:
            raise SpecError(
                f"{view.field_path}.name: assistant names must be unique within the app, "
                f"and {view.name!r} appears twice; rename one."
            )
        seen.add(view.name)
        views.append(view)
    return tuple(views)


def assistant_name(entry: Mapping[str, Any], index: int) -> str:
    """The name clients use in ``model``: ``name``, else ``id``, else ``assistant-<n>``."""
    for key in ("name", "id"):
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return f"assistant-{index}"


def _assistant(entry: Any, path: str, index: int) -> AssistantView:
    if not isinstance(entry, Mapping):
        raise SpecError(f"{path}: an assistant must be a mapping of fields; got {entry!r}.")
    sampling: dict[str, Any] = {}
    for key in SAMPLING_KEYS:
        value = entry.get(key)
        if value is None or value == "":
            continue
        if key == "reasoning_effort":
            if value not in REASONING_EFFORTS:
                raise SpecError(
                    f"{path}.reasoning_effort: must be one of none, low, medium, high; "
                    f"got {value!r}."
                )
        elif key == "max_tokens":
            value = _number(value, f"{path}.{key}", integer=True)
            if value <= 0:
                continue
        else:
            value = _number(value, f"{path}.{key}", integer=False)
        sampling[key] = value
    context_limit = _number(entry.get("context_limit") or 0, f"{path}.context_limit", True)
    knowledge = tuple(
        _knowledge(item, f"{path}.knowledge[{k}]")
        for k, item in enumerate(entry.get("knowledge") or [])
    )
    apis = tuple(
        _api(item, f"{path}.apis[{k}]") for k, item in enumerate(entry.get("apis") or [])
    )
    return AssistantView(
        name=assistant_name(entry, index),
        model=str(entry.get("model") or ""),
        system_prompt=str(entry.get("system_prompt") or ""),
        sampling=sampling,
        context_limit=int(context_limit),
        knowledge=knowledge,
        apis=apis,
        field_path=path,
    )


def _number(value: Any, path: str, integer: bool) -> Any:
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{path}: must be {kind}; got {value!r}.")
    if integer and not isinstance(value, int):
        raise SpecError(f"{path}: must be {kind}; got {value!r}.")
    return value


def _knowledge(entry: Any, path: str) -> KnowledgeView:
    if not isinstance(entry, Mapping) or not entry.get("name"):
        raise SpecError(f"{path}.name: each knowledge entry needs a name; add one.")
    rag = entry.get("rag_settings") or {}
    distance = rag.get("distance_function") or DEFAULT_DISTANCE
    if distance not in DISTANCES:
        raise SpecError(
            f"{path}.rag_settings.distance_function: must be one of cosine, l2, "
            f"inner_product; got {distance!r}."
        )
    threshold = rag.get("threshold")
    results_count = rag.get("results_count")
    return KnowledgeView(
        name=str(entry["name"]),
        description=str(entry.get("description") or ""),
        distance=distance,
        threshold=float(
            DEFAULT_THRESHOLD
            if threshold in (None, 0)
            else _number(threshold, f"{path}.rag_settings.threshold", False)
        ),
        results_count=int(
            DEFAULT_RESULTS_COUNT
            if results_count in (None, 0)
            else _number(results_count, f"{path}.rag_settings.results_count", True)
        ),
        prompt_template=str(rag.get("prompt_template") or ""),
    )


def _api(entry: Any, path: str) -> ApiView:
    if not isinstance(entry, Mapping) or not entry.get("name"):
        raise SpecError(f"{path}.name: each API entry needs a name; add one.")
    return ApiView(
        name=str(entry["name"]),
        description=str(entry.get("description") or ""),
        schema=_schema(entry.get("schema"), f"{path}.schema"),
        url=str(entry.get("url") or ""),
        headers=_string_map(entry.get("headers"), f"{path}.headers"),
        query=_string_map(entry.get("query"), f"{path}.query"),
        request_prep_template=str(entry.get("request_prep_template") or ""),
        response_success_template=str(entry.get("response_success_template") or ""),
        response_error_template=str(entry.get("response_error_template") or ""),
        field_path=path,
    )


def _string_map(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"{path}: must be a mapping of names to strings; got {value!r}.")
    return {str(k): str(v) for k, v in value.items()}


def _schema(value: Any, path: str) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{path}: an API needs an OpenAPI 3 schema; put it inline.")
    if "\n" not in value.strip():
        raise SpecError(
            f"{path}: {value!r} is a file path or URL, which the gateway cannot open; "
            "the schema must reach the gateway inline (aiapp validate/convert inline it)."
        )
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: the inline schema is not valid YAML or JSON ({exc}).") from exc
    if not isinstance(parsed, Mapping):
        raise SpecError(f"{path}: the inline schema must be an OpenAPI mapping.")
    return parsed
