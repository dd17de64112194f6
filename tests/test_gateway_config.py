"""The gateway refuses what it cannot serve, at start, with a message naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from aiapp.gateway.commands import gateway
from aiapp.gateway.errors import SpecError
from aiapp.gateway.prompting import KnowledgeTemplateError, go_template_to_jinja
from aiapp.gateway.server import create_app
from doubles import gateway_config

pytestmark = pytest.mark.unit


def _write(tmp_path: Path, spec: dict[str, Any]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(gateway_config(spec, "http://127.0.0.1:9").model_dump_json())
    return path


def test_the_command_refuses_to_start_without_api_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIAPP_API_KEYS", raising=False)
    path = _write(tmp_path, {"assistants": [{"name": "a", "model": "m"}]})

    result = CliRunner().invoke(gateway, ["--config", str(path)])

    assert result.exit_code == 2
    assert (
        "no API keys: the environment variable AIAPP_API_KEYS (auth.api_keys_env) is unset or "
        "empty. Set it to comma-separated keys, or pass --allow-anonymous to serve without "
        "authentication." in " ".join(result.output.split())
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        (json.dumps({"app": {"namespace": "a", "name": "b"}}), "spec: Field required"),
    ],
    ids=["broken JSON", "a config without a spec"],
)
def test_the_command_names_what_is_wrong_with_the_config_file(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)

    result = CliRunner().invoke(gateway, ["--config", str(path), "--allow-anonymous"])

    assert result.exit_code == 2
    assert message in result.output


INFO = "info: {title: Jira, version: '1'}\n"


@pytest.mark.parametrize(
    ("assistant", "message"),
    [
        (
            {"name": "a", "model": "m", "temperature": "hot"},
            "spec.assistants[0].temperature: value should be a valid number, unable to parse "
            "string as a number (fix: write a number)",
        ),
        (
            {
                "name": "a",
                "model": "m",
                "knowledge": [
                    {
                        "name": "k",
                        "source": {"text": "x"},
                        "rag_settings": {"distance_function": "dot"},
                    }
                ],
            },
            "spec.assistants[0].knowledge[0].rag_settings.distance_function: value should be "
            "'cosine', 'l2' or 'inner_product' (fix: use one of 'cosine', 'l2' or "
            "'inner_product')",
        ),
        (
            {"name": "a", "model": "m", "apis": [{"name": "j", "schema": "./jira.yaml"}]},
            "spec.assistants[0].apis[0].schema: './jira.yaml' is a file path or URL, "
            "which the gateway cannot open; the schema must reach the gateway inline "
            "(aiapp validate/convert inline it).",
        ),
        (
            {
                "name": "a",
                "model": "m",
                "apis": [{"name": "j", "url": "http://x", "schema": "https://x/jira.yaml"}],
            },
            "spec.assistants[0].apis[0].schema: 'https://x/jira.yaml' is a file path or URL, "
            "which the gateway cannot open; the schema must reach the gateway inline "
            "(aiapp validate/convert inline it).",
        ),
        (
            {
                "name": "a",
                "model": "m",
                "apis": [{"name": "j", "schema": f"openapi: 3.0.0\n{INFO}paths: {{}}\n"}],
            },
            "spec.assistants[0].apis[0].url: the API has no url and its schema names no "
            "servers; set url to the API's base URL.",
        ),
        (
            {
                "name": "a",
                "model": "m",
                "apis": [{"name": "j", "url": "http://x", "schema": "openapi: 3.0.0\npaths: {}\n"}],
            },
            "spec.assistants[0].apis[0].schema: the schema is not valid OpenAPI: 'info' is a "
            "required property; give an OpenAPI 3 document with openapi:, info: and paths:.",
        ),
        (
            {
                "name": "a",
                "model": "m",
                "apis": [
                    {
                        "name": "j",
                        "url": "http://x",
                        "headers": {"Authorization": "Bearer ${TOKEN}"},
                        "schema": f"openapi: 3.0.0\n{INFO}paths: {{}}\n",
                    }
                ],
            },
            "spec.assistants[0].apis[0].headers.Authorization: placeholder '${TOKEN}' has no "
            "source in spec.secrets (fix: add to spec.secrets: {name: TOKEN, secret_name: "
            "<secret>, key: <key>})",
        ),
    ],
    ids=[
        "a word for a number",
        "an unknown distance",
        "a schema path",
        "a schema URL",
        "an API without a url",
        "a schema that is not OpenAPI",
        "a secret placeholder without a source",
    ],
)
def test_a_spec_the_gateway_cannot_serve_is_refused_naming_the_field(
    assistant: dict[str, Any], message: str
) -> None:
    config = gateway_config({"assistants": [assistant]}, "http://127.0.0.1:9")

    with pytest.raises(SpecError) as raised:
        create_app(config, api_keys=None)

    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("go", "jinja"),
    [
        ("{{ .Question }}", "{{ Question }}"),
        (
            "{{range .RagResults}}{{.Content}}{{end}}",
            "{% for _item1 in RagResults %}{{ _item1.Content }}{% endfor %}",
        ),
        (
            "{{- range $r := .RagResults -}}{{ $r.Source }}{{ end }}",
            "{%- for v_r in RagResults -%}{{ v_r.Source }}{% endfor %}",
        ),
        (
            "{{ if .RagResults }}yes{{ else }}no{{ end }}",
            "{% if RagResults %}yes{% else %}no{% endif %}",
        ),
        ("{{/* note */}}{{ len .RagResults }}", "{{ (RagResults | length) }}"),
        ("{% raw %}{{ .Question }}", "{% raw %}{% raw %}{% endraw %}{{ Question }}"),
    ],
    ids=[
        "a field",
        "a range",
        "a range with a variable and trims",
        "if else",
        "a comment and len",
        "literal jinja syntax",
    ],
)
def test_go_knowledge_templates_translate_to_jinja(go: str, jinja: str) -> None:
    assert go_template_to_jinja(go) == jinja


@pytest.mark.parametrize(
    ("go", "message"),
    [
        ("{{ .Content | upper }}", "pipelines are not supported: '.Content | upper'"),
        ("{{ range .RagResults }}", "a range/if/with block is missing its {{end}}"),
        ('{{ printf "%s" .X }}', "the function or word 'printf' is not supported"),
        ('{{ template "x" }}', "{{template}} is not supported; inline the text"),
    ],
    ids=["a pipeline", "a missing end", "an unknown function", "a template call"],
)
def test_unsupported_go_template_constructs_are_named(go: str, message: str) -> None:
    with pytest.raises(KnowledgeTemplateError) as raised:
        go_template_to_jinja(go)

    assert str(raised.value) == message
