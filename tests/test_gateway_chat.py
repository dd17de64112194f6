"""The gateway's chat and model endpoints against a model-server double, over real sockets."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest

from aiapp.gateway.server import GatewayOptions, create_app
from doubles import gateway_config, serve_app
from doubles.model_server_double import ModelServerDouble

pytestmark = pytest.mark.unit

KEY = "sk-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MISSING_KEY = "Missing API key: send it as 'Authorization: Bearer <key>'."

SPEC: dict[str, Any] = {
    "name": "helpers",
    "assistants": [
        {
            "name": "coder",
            "model": "llama3.1:8b",
            "system_prompt": "You write code.",
            "temperature": 0.2,
            "max_tokens": 256,
            "context_limit": 2,
        },
        {"name": "poet", "model": "llama3.1:8b"},
    ],
}


@contextmanager
def running(
    double: ModelServerDouble,
    *,
    spec: dict[str, Any] = SPEC,
    options: GatewayOptions | None = None,
    upstream_url: str | None = None,
) -> Iterator[str]:
    with serve_app(double.app()) as double_url:
        config = gateway_config(spec, upstream_url or double_url)
        app = create_app(config, api_keys=frozenset({KEY}), options=options)
        try:
            with serve_app(app) as url:
                yield url
        finally:
            double.release.set()


@pytest.fixture
def double() -> ModelServerDouble:
    return ModelServerDouble()


@pytest.fixture
def gateway(double: ModelServerDouble) -> Iterator[str]:
    with running(double) as url:
        yield url


def chat(url: str, body: Any, headers: dict[str, str] = AUTH) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def error(message: str, type: str, code: str | None, param: str | None = None) -> Any:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def test_the_openai_client_lists_the_assistants_chats_and_streams_unchanged(gateway: str) -> None:
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=KEY)

    assert [m.id for m in client.models.list()] == ["coder", "poet"]
    answer = client.chat.completions.create(
        model="poet", messages=[{"role": "user", "content": "hello there"}]
    )
    assert answer.choices[0].message.content == "echo: hello there"
    stream = client.chat.completions.create(
        model="coder", messages=[{"role": "user", "content": "stream me"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == (
        "echo: stream me"
    )


def test_the_assistant_settings_reach_the_model_server(
    gateway: str, double: ModelServerDouble
) -> None:
    response = chat(gateway, {"messages": [{"role": "user", "content": "hi"}]})

    assert response.status_code == 200
    sent = double.requests[-1]
    assert sent["model"] == "double-model"
    assert sent["temperature"] == 0.2
    assert sent["max_tokens"] == 256
    assert sent["messages"] == [
        {"role": "system", "content": "You write code."},
        {"role": "user", "content": "hi"},
    ]


def test_client_sampling_values_win_over_the_assistant_defaults(
    gateway: str, double: ModelServerDouble
) -> None:
    chat(gateway, {"messages": [{"role": "user", "content": "hi"}], "temperature": 1.5})

    assert double.requests[-1]["temperature"] == 1.5


def test_context_limit_keeps_the_last_messages_and_every_system_message(
    gateway: str, double: ModelServerDouble
) -> None:
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three"},
        {"role": "assistant", "content": "four"},
        {"role": "user", "content": "five"},
    ]

    chat(gateway, {"model": "coder", "messages": history})

    assert double.requests[-1]["messages"] == [
        {"role": "system", "content": "You write code."},
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "four"},
        {"role": "user", "content": "five"},
    ]


def test_an_unknown_model_gets_a_404_naming_the_assistants(gateway: str) -> None:
    response = chat(gateway, {"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]})

    assert response.status_code == 404
    assert response.json() == error(
        "The model 'gpt-9' does not exist; this app serves: coder, poet.",
        "invalid_request_error",
        "model_not_found",
        "model",
    )


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, MISSING_KEY),
        ({"Authorization": "Bearer sk-wrong"}, "Incorrect API key provided."),
        ({"Authorization": f"Basic {KEY}"}, MISSING_KEY),
    ],
    ids=["no header", "a wrong key", "the wrong scheme"],
)
def test_requests_without_a_valid_key_get_a_401(
    gateway: str, headers: dict[str, str], message: str
) -> None:
    chat_response = chat(gateway, {"messages": [{"role": "user", "content": "x"}]}, headers)
    models_response = httpx.get(f"{gateway}/v1/models", headers=headers)

    for response in (chat_response, models_response):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == error(message, "invalid_request_error", "invalid_api_key")


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        (
            "{not json",
            "The request body is not valid JSON; send a chat completion request object.",
            None,
        ),
        ("[1, 2]", "The request body must be a JSON object.", None),
        ("{}", "'messages' must be a non-empty array of chat messages.", "messages"),
        ('{"messages": []}', "'messages' must be a non-empty array of chat messages.", "messages"),
        ('{"messages": ["hi"]}', "'messages[0]' must be an object with a role.", "messages[0]"),
        (
            '{"messages": [{"role": "robot", "content": "hi"}]}',
            "'messages[0].role' must be one of assistant, developer, system, tool, user; "
            "got 'robot'.",
            "messages[0].role",
        ),
        (
            '{"messages": [{"role": "user", "content": 7}]}',
            "'messages[0].content' must be a string or an array of content parts.",
            "messages[0].content",
        ),
        (
            '{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}',
            "'stream' must be true or false.",
            "stream",
        ),
        (
            '{"messages": [{"role": "user", "content": "hi"}], "model": 3}',
            "'model' must be a string naming an assistant.",
            "model",
        ),
    ],
    ids=[
        "invalid JSON",
        "an array body",
        "no messages",
        "empty messages",
        "a message that is a string",
        "an unknown role",
        "numeric content",
        "a stream flag that is a string",
        "a numeric model",
    ],
)
def test_malformed_requests_get_a_400_naming_the_field(
    gateway: str, body: str, message: str, param: str | None
) -> None:
    response = httpx.post(
        f"{gateway}/v1/chat/completions",
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json() == error(message, "invalid_request_error", None, param)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    chunk = {
        "id": "chatcmpl-double",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "double-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk)}\n\n"


def test_a_streamed_answer_arrives_as_the_model_servers_chunks_then_done(gateway: str) -> None:
    response = chat(gateway, {"messages": [{"role": "user", "content": "go now"}], "stream": True})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text == (
        _chunk({"role": "assistant", "content": ""})
        + _chunk({"content": "echo:"})
        + _chunk({"content": " go"})
        + _chunk({"content": " now"})
        + _chunk({}, "stop")
        + "data: [DONE]\n\n"
    )


def test_a_stream_carries_usage_only_when_the_client_asks(gateway: str) -> None:
    body = {
        "messages": [{"role": "user", "content": "go"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    events = chat(gateway, body).text.split("\n\n")

    usage = json.loads(events[-3].removeprefix("data: "))
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}


def test_a_client_that_disconnects_mid_stream_cancels_the_upstream_request() -> None:
    double = ModelServerDouble(hold_stream=True)
    with running(double) as url, httpx.Client(timeout=30) as client:
        body = {"messages": [{"role": "user", "content": "a long answer"}], "stream": True}
        with client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=AUTH) as r:
            received = ""
            for text in r.iter_text():
                received += text
                if "echo:" in received:
                    break
            assert double.stream_started.wait(10)
        # Leaving the block closed the connection while the model server was still streaming.

        assert '"content": "echo:"' in received
        assert "[DONE]" not in received
        assert double.stream_cancelled.wait(10)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_model_server_that_does_not_answer_in_time_gets_a_504(stream: bool) -> None:
    double = ModelServerDouble(hang=True)
    with running(double, options=GatewayOptions(upstream_timeout_s=0.5)) as url:
        body = {"messages": [{"role": "user", "content": "hi"}], "stream": stream}
        response = chat(url, body)

    assert response.status_code == 504
    assert response.json() == error(
        "The model server for assistant 'coder' did not answer within 0.5 seconds.",
        "server_error",
        "upstream_timeout",
    )


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_an_unreachable_model_server_gets_a_502_after_retrying() -> None:
    options = GatewayOptions(connect_retries=1)
    with running(ModelServerDouble(), options=options, upstream_url=_closed_port_url()) as url:
        response = chat(url, {"messages": [{"role": "user", "content": "hi"}]})
        ready = httpx.get(f"{url}/readyz")

    assert response.status_code == 502
    assert response.json() == error(
        "The model server for assistant 'coder' is unreachable (ConnectError).",
        "server_error",
        "upstream_unavailable",
    )
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "not ready",
        "problems": [
            "assistant coder: the model server is unreachable (ConnectError)",
            "assistant poet: the model server is unreachable (ConnectError)",
        ],
    }


@pytest.mark.parametrize(
    ("upstream", "status", "expected"),
    [
        (
            (500, "CUDA out of memory"),
            502,
            error(
                "The model server for assistant 'coder' answered HTTP 500: CUDA out of memory",
                "server_error",
                "upstream_error",
            ),
        ),
        (
            (400, "prompt is longer than the context window"),
            400,
            error(
                "The model server for assistant 'coder' rejected the request: prompt is longer "
                "than the context window",
                "invalid_request_error",
                "upstream_rejected",
            ),
        ),
        (
            (429, "too many requests"),
            429,
            error(
                "The model server for assistant 'coder' is rate limiting: too many requests",
                "rate_limit_error",
                "upstream_rate_limited",
            ),
        ),
    ],
    ids=["a crash", "a rejected prompt", "rate limiting"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_model_server_errors_become_openai_errors_with_the_right_status(
    upstream: tuple[int, str], status: int, expected: Any, stream: bool
) -> None:
    with running(ModelServerDouble(fail=upstream)) as url:
        response = chat(url, {"messages": [{"role": "user", "content": "hi"}], "stream": stream})

    assert response.status_code == status
    assert response.json() == expected


def test_health_readiness_and_metrics_report_on_the_app(gateway: str) -> None:
    chat(gateway, {"model": "poet", "messages": [{"role": "user", "content": "a b c"}]})
    chat(gateway, {"model": "nobody", "messages": [{"role": "user", "content": "x"}]})

    assert httpx.get(f"{gateway}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{gateway}/readyz").json() == {"status": "ready"}
    metrics = httpx.get(f"{gateway}/metrics").text
    assert 'aiapp_gateway_requests_total{assistant="poet",status="200"} 1.0' in metrics
    assert 'aiapp_gateway_requests_total{assistant="-",status="404"} 1.0' in metrics
    assert 'aiapp_gateway_tokens_total{assistant="poet",kind="prompt"} 3.0' in metrics
    assert 'aiapp_gateway_tokens_total{assistant="poet",kind="completion"} 4.0' in metrics
    assert 'aiapp_gateway_errors_total{assistant="-",code="model_not_found"} 1.0' in metrics
    assert 'aiapp_gateway_request_seconds_count{assistant="poet"} 1.0' in metrics
