"""The gateway's API tools: OpenAPI operations as tools, calls with secrets, refusals, bounds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest

from aiapp.gateway.openapi_tools import ToolCallError, check_address
from aiapp.gateway.server import GatewayOptions, create_app
from doubles import gateway_config, serve_app
from doubles.jira_double import JiraDouble, jira_app_spec
from doubles.model_server_double import ModelServerDouble

pytestmark = pytest.mark.unit

KEY = "sk-app"
AUTH = {"Authorization": f"Bearer {KEY}"}
TOKEN = "jira-secret-token"
QUESTION = "read ticket PROJ-1 and propose the code change"


@contextmanager
def jira_app(
    model: ModelServerDouble,
    jira: JiraDouble,
    options: GatewayOptions | None = None,
    **api_overrides: Any,
) -> Iterator[str]:
    with serve_app(model.app()) as model_url, serve_app(jira.app()) as jira_url:
        spec = jira_app_spec(api_overrides.pop("url", jira_url), **api_overrides)
        app = create_app(
            gateway_config(spec, model_url), api_keys=frozenset({KEY}), options=options
        )
        with serve_app(app) as url:
            yield url


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_TOKEN", TOKEN)


def ask(url: str, question: str = QUESTION) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": question}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=30)


def test_the_jira_app_reads_the_ticket_with_the_secret_header_and_answers_from_it(
    secret: None,
) -> None:
    model, jira = ModelServerDouble(), JiraDouble(token=TOKEN)
    with jira_app(model, jira) as url:
        response = ask(url)

    assert response.status_code == 200
    ticket = json.dumps({"key": "PROJ-1", "fields": jira.issues["PROJ-1"]}, separators=(",", ":"))
    assert response.json()["choices"][0]["message"]["content"] == (
        f"Proposed change, from the tool result: {ticket}"
    )
    assert [(r["method"], r["path"]) for r in jira.requests] == [
        ("GET", "/rest/api/3/issue/PROJ-1")
    ]
    assert jira.requests[0]["headers"]["authorization"] == f"Bearer {TOKEN}"
    # Usage covers both rounds: the tool call and the answer.
    prompt_words = [
        sum(len(str(m.get("content") or "").split()) for m in r["messages"]) for r in model.requests
    ]
    assert response.json()["usage"]["prompt_tokens"] == sum(prompt_words)


def test_the_model_sees_each_openapi_operation_as_a_tool(secret: None) -> None:
    model, jira = ModelServerDouble(), JiraDouble(token=TOKEN)
    with jira_app(model, jira) as url:
        ask(url)

    assert model.requests[0]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "getIssue",
                "description": "Returns the details of one issue, including its description. "
                "Reads Jira tickets by key.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "issueIdOrKey": {
                            "type": "string",
                            "description": "The issue key, like PROJ-1.",
                        },
                        "fields": {"type": "string"},
                    },
                    "required": ["issueIdOrKey"],
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "searchForIssuesUsingJql",
                "description": "Searches for issues using JQL. Reads Jira tickets by key.",
                "parameters": {
                    "type": "object",
                    "properties": {"jql": {"type": "string"}, "maxResults": {"type": "integer"}},
                    "required": ["jql"],
                },
            },
        },
    ]
    assert model.requests[1]["messages"][-2]["tool_calls"][0]["function"] == {
        "name": "getIssue",
        "arguments": '{"issueIdOrKey": "PROJ-1"}',
    }


def test_a_streamed_request_sees_only_the_final_answer(secret: None) -> None:
    model, jira = ModelServerDouble(), JiraDouble(token=TOKEN)
    with jira_app(model, jira) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY)
        chunks = list(
            client.chat.completions.create(
                model="coder", messages=[{"role": "user", "content": QUESTION}], stream=True
            )
        )

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Proposed change, from the tool result: {")
    assert "event.composedPath()" in text
    assert all(not c.choices or c.choices[0].delta.tool_calls is None for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert [r["stream"] for r in model.requests] == [True, True]


@pytest.mark.parametrize(
    ("question", "overrides", "env", "tool_result"),
    [
        (
            "read ticket PROJ-404",
            {},
            {"JIRA_TOKEN": TOKEN},
            "The jira API answered HTTP 404 to GET /rest/api/3/issue/{issueIdOrKey}: "
            '{"errorMessages":["Issue does not exist or you do not have permission to see '
            'it."],"errors":{}}',
        ),
        (
            QUESTION,
            {},
            {},
            "The jira API headers needs the secret JIRA_TOKEN, which is not set in the gateway; "
            "tell the user the integration is not configured.",
        ),
        (
            QUESTION,
            {"url": "http://169.254.169.254/latest"},
            {"JIRA_TOKEN": TOKEN},
            "Calls to 169.254.169.254 are refused: it resolves to the link-local or metadata "
            "address 169.254.169.254.",
        ),
        (
            QUESTION,
            {"response_error_template": "Apologise and suggest checking the ticket key."},
            {"JIRA_TOKEN": "wrong"},
            "The jira API answered HTTP 401 to GET /rest/api/3/issue/{issueIdOrKey}: "
            '{"errorMessages":["You are not authenticated."],"errors":{}}\n\n'
            "Apologise and suggest checking the ticket key.",
        ),
    ],
    ids=["a missing ticket", "an unset secret", "a metadata address", "a rejected token"],
)
def test_a_failing_api_call_gives_the_model_a_readable_error_and_the_request_succeeds(
    monkeypatch: pytest.MonkeyPatch,
    question: str,
    overrides: dict[str, Any],
    env: dict[str, str],
    tool_result: str,
) -> None:
    monkeypatch.delenv("JIRA_TOKEN", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    model, jira = ModelServerDouble(), JiraDouble(token=TOKEN)
    with jira_app(model, jira, **overrides) as url:
        response = ask(url, question)

    assert response.status_code == 200
    assert model.requests[1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": tool_result,
    }
    assert TOKEN not in response.text


def test_the_tool_loop_stops_after_the_bound_and_the_model_answers_without_tools(
    secret: None,
) -> None:
    model, jira = ModelServerDouble(always_call_tools=True), JiraDouble(token=TOKEN)
    with jira_app(model, jira, options=GatewayOptions(max_tool_rounds=2)) as url:
        response = ask(url)

    assert response.status_code == 200
    assert ["tools" in r for r in model.requests] == [True, True, False]
    assert len(jira.requests) == 2
    assert response.json()["choices"][0]["message"]["content"].startswith("Proposed change")


def test_request_prep_and_response_templates_reach_the_model(secret: None) -> None:
    model, jira = ModelServerDouble(), JiraDouble(token=TOKEN)
    overrides: dict[str, Any] = {
        "request_prep_template": "Use the ticket key exactly as the user wrote it.",
        "response_success_template": "Quote the ticket summary first.",
    }
    with jira_app(model, jira, **overrides) as url:
        ask(url)

    first = model.requests[0]["messages"]
    assert first[:2] == [
        {"role": "system", "content": "You turn Jira tickets into concrete code changes."},
        {
            "role": "system",
            "content": "Before calling the jira API: Use the ticket key exactly as the user "
            "wrote it.",
        },
    ]
    assert model.requests[1]["messages"][-1]["content"].endswith(
        "\n\nQuote the ticket summary first."
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00:ec2::254]/latest",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1",
        "http://[fe80::1]/",
    ],
    ids=["aws ipv4", "aws ipv6", "ipv4-mapped ipv6", "gcp metadata name", "ipv6 link-local"],
)
async def test_link_local_and_metadata_addresses_are_refused(url: str) -> None:
    with pytest.raises(ToolCallError, match="refused"):
        await check_address(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/x", "http://10.0.0.5/", "http://localhost/"]
)
async def test_ordinary_addresses_are_allowed(url: str) -> None:
    await check_address(url)
