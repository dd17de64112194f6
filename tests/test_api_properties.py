"""Generated and mutated documents: the validator only ever reports, never crashes.

Whatever it is fed, ``parse_app``/``parse_model`` either return an object or raise
``AISpecError``, and ``load_documents`` always returns problems instead of raising.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiapp.api.aispec import AIApp, parse_app
from aiapp.api.documents import load_documents
from aiapp.api.errors import AISpecError
from aiapp.api.model import Model, parse_model

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SEEDS: list[dict[str, Any]] = [
    document
    for path in sorted(EXAMPLES.glob("*/*.yaml"))
    if "github-actions" not in path.parts and not path.name.endswith("openapi.yaml")
    for document in yaml.safe_load_all(path.read_text())
    if isinstance(document, dict)
]
KEYS = sorted(
    {
        "name",
        "model",
        "schema",
        "source",
        "web",
        "urls",
        "text",
        "content",
        "rag_settings",
        "chunk_size",
        "chunk_overflow",
        "refresh_schedule",
        "refresh_enabled",
        "secrets",
        "headers",
        "tests",
        "steps",
        "runtime",
        "gpu",
        "count",
        "external",
        "baseURL",
        "kind",
        "apiVersion",
        "metadata",
        "spec",
        "assistants",
        "knowledge",
        "apis",
        "servedName",
    }
)


def fast(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "",
            "x",
            "${TOKEN}",
            "${",
            "@every 1s",
            "0 */6 * * *",
            "https://a.b",
            "./x.yaml",
            "vllm",
            "external",
            "!!",
            "a" * 70,
            "AIApp",
            "Model",
        ]
    ),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=5),
    ),
    max_leaves=20,
)


def paths_of(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths_of(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths_of(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """An example document with a few keys deleted, replaced or added."""
    document: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from(paths_of(document)))
        parent: Any = document
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            continue
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "add" and isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(st.sampled_from(KEYS))] = draw(values)
        else:
            parent[path[-1]] = draw(values)
    return document


def parse(document: Any) -> AIApp | Model | None:
    """Parse as the kind the document claims; only AISpecError may escape."""
    if not isinstance(document, dict):
        return None
    if document.get("kind") == "Model":
        return parse_model(document)
    return parse_app(document)


@fast(700)
@given(mutated())
def test_a_mutated_example_parses_or_raises_only_our_error(document: dict[str, Any]) -> None:
    try:
        parsed = parse(document)
    except AISpecError as exc:
        assert exc.issues and all(issue.message and issue.fix for issue in exc.issues)
    else:
        assert parsed is not None


@fast(900)
@given(values)
def test_any_generated_structure_parses_or_raises_only_our_error(document: Any) -> None:
    for wrap in (
        document,
        {
            "apiVersion": "app.aispec.org/v1alpha1",
            "kind": "AIApp",
            "metadata": {"name": "a"},
            "spec": document,
        },
    ):
        try:
            parse(wrap)
        except AISpecError as exc:
            assert exc.issues


@fast(400)
@given(st.one_of(mutated().map(lambda d: yaml.safe_dump(d)), values.map(yaml.safe_dump)))
def test_load_documents_reports_problems_with_lines_instead_of_raising(text: str) -> None:
    apps, models, problems = load_documents(text, None)
    for problem in problems:
        assert problem.message and problem.fix
        assert problem.line is None or problem.line >= 1
    if not any(not p.warning for p in problems):
        assert len(apps) + len(models) >= 1 or not yaml.safe_load(text)


@fast(400)
@given(st.text(alphabet=st.sampled_from(list("ab:-{}[]|>&*!%@`'\"\n #${}")), max_size=60))
def test_load_documents_survives_arbitrary_text(text: str) -> None:
    load_documents(text, None)


@fast(400)
@given(
    st.one_of(
        st.text(alphabet=st.sampled_from(list("0123456789*/-,@ LW#?hmsevryMONJA")), max_size=24),
        st.builds("@every {}{}".format, st.integers(min_value=0), st.sampled_from("hms")),
    )
)
def test_any_refresh_schedule_is_accepted_or_refused_with_our_error(schedule: str) -> None:
    body = {
        "apiVersion": "app.aispec.org/v1alpha1",
        "kind": "AIApp",
        "metadata": {"name": "a"},
        "spec": {
            "assistants": [
                {
                    "name": "a",
                    "model": "m",
                    "knowledge": [
                        {
                            "name": "k",
                            "source": {"text": "t"},
                            "refresh_enabled": True,
                            "refresh_schedule": schedule,
                        }
                    ],
                }
            ]
        },
    }
    try:
        parse_app(body)
    except AISpecError as exc:
        assert exc.issues
