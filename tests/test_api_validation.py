"""Each AISpec and Model rule, with the exact message a user sees, plus the examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import factories as f
from aiapp.api.aispec import (
    RAGSettings,
    app_warnings,
    normalise_name,
    parse_app,
    placeholders,
)
from aiapp.api.errors import AISpecError, dotted
from aiapp.api.model import IMAGES, parse_model, resolve_model
from aiapp.api.presets import presets

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
A0 = "spec.assistants[0]"


def errors_of(body: dict[str, Any]) -> list[str]:
    with pytest.raises(AISpecError) as caught:
        parse_app(body)
    return [f"{dotted(issue.path)}: {issue.message}" for issue in caught.value.issues]


def knowledge_app(**knowledge: Any) -> dict[str, Any]:
    return f.aiapp("demo", f.assistant(knowledge=[f.knowledge(**knowledge)]))


INVALID_APPS = [
    pytest.param(
        f.aiapp("demo", f.assistant(sytem_prompt="x")),
        f"{A0}.sytem_prompt: unknown field 'sytem_prompt' (Helix would silently drop it; "
        "we refuse it)",
        id="an unknown key is refused, not dropped",
    ),
    pytest.param(
        f.aiapp("demo", {"name": "helper"}),
        f"{A0}.model: required field 'model' is missing",
        id="an assistant needs a model",
    ),
    pytest.param(
        f.aiapp("Demo App"),
        "metadata.name: name 'Demo App' is not a DNS label (at most 63 lower-case letters, "
        "digits and '-', starting and ending with a letter or digit)",
        id="the object name must be a DNS label",
    ),
    pytest.param(
        {**f.aiapp(), "apiVersion": "app.aispec.org/v1"},
        "apiVersion: value should be 'app.aispec.org/v1alpha1'",
        id="the api version is v1alpha1",
    ),
    pytest.param(
        f.aiapp("demo", f.assistant(name="!!!")),
        f"{A0}.name: assistant name '!!!' has no letters or digits, so no Kubernetes name "
        "can be made from it",
        id="an assistant name must normalise to something",
    ),
    pytest.param(
        f.aiapp("demo", f.assistant(name="a" * 64)),
        f"{A0}.name: assistant name '{'a' * 64}' is 64 characters once normalised; the limit "
        "is 63 (a DNS label)",
        id="an assistant name must fit a DNS label",
    ),
    pytest.param(
        f.aiapp("demo", f.assistant(name="Helper"), f.assistant(name="helper!")),
        "spec.assistants[1].name: assistant name 'helper!' is used twice once normalised to "
        "'helper'; names must be unique within the app",
        id="assistant names are unique after normalising",
    ),
    pytest.param(
        f.aiapp(
            "demo",
            f.assistant(name="a", knowledge=[f.knowledge("docs")]),
            f.assistant(name="b", knowledge=[f.knowledge("docs")]),
        ),
        "spec.assistants[1].knowledge[0].name: knowledge name 'docs' is used twice; names "
        "must be unique within the app (each names an index)",
        id="knowledge names are unique because each names an index",
    ),
    pytest.param(
        f.aiapp("demo", f.assistant(apis=[f.api("jira"), f.api("jira")])),
        f"{A0}.apis[1].name: API name 'jira' is used twice; names must be unique within the "
        "assistant",
        id="api names are unique within an assistant",
    ),
    pytest.param(
        f.aiapp("demo", f.assistant(tests=[f.scenario("t"), f.scenario("t")])),
        f"{A0}.tests[1].name: test name 't' is used twice; names must be unique within the "
        "assistant",
        id="test names are unique within an assistant",
    ),
    pytest.param(
        f.aiapp("demo", f.assistant(apis=[f.api(headers={"Authorization": "Bearer ${TOKEN}"})])),
        f"{A0}.apis[0].headers.Authorization: placeholder '${{TOKEN}}' has no source in "
        "spec.secrets",
        id="a placeholder needs a secret source",
    ),
    pytest.param(
        f.aiapp("demo", f.assistant(system_prompt="Use ${A B}.")),
        f"{A0}.system_prompt: placeholder '${{A B}}' is not a ${{NAME}} placeholder (letters, "
        "digits and _, not starting with a digit; no defaults)",
        id="a placeholder must be a plain name",
    ),
    pytest.param(
        f.aiapp("demo", secrets=[f.secret(), f.secret()], description="${JIRA_TOKEN}"),
        "spec.secrets[0].name: secret 'JIRA_TOKEN' is declared 2 times",
        id="a secret source is declared once",
    ),
    pytest.param(
        f.aiapp("demo", secrets=[f.secret("jira-token")]),
        "spec.secrets[0].name: 'jira-token' cannot be an environment variable name (letters, "
        "digits and _, not starting with a digit)",
        id="a secret source name is an environment variable name",
    ),
    pytest.param(
        f.aiapp("demo", secrets=[f.secret(secret_name="Jira")]),
        "spec.secrets[0].secret_name: 'Jira' is not a valid Secret name (lower-case letters, "
        "digits, '-' and '.', starting and ending with a letter or digit)",
        id="a secret source names a valid Secret",
    ),
    pytest.param(
        f.aiapp("demo", secrets=[f.secret(key="a/b")]),
        "spec.secrets[0].key: 'a/b' is not a valid Secret key (letters, digits, '-', '_' and '.')",
        id="a secret source names a valid key",
    ),
    pytest.param(
        knowledge_app(refresh_enabled=True, refresh_schedule="*/5 * * * *"),
        f"{A0}.knowledge[0].refresh_schedule: '*/5 * * * *' fires 12 times an hour, more often "
        "than the limit of once an hour",
        id="a cron refresh may fire at most hourly",
    ),
    pytest.param(
        knowledge_app(refresh_enabled=True, refresh_schedule="* * * * *"),
        f"{A0}.knowledge[0].refresh_schedule: '* * * * *' fires 60 times an hour, more often "
        "than the limit of once an hour",
        id="a cron refresh every minute is refused",
    ),
    pytest.param(
        knowledge_app(refresh_enabled=True, refresh_schedule="0-59 * * * *"),
        f"{A0}.knowledge[0].refresh_schedule: '0-59 * * * *' fires 60 times an hour, more "
        "often than the limit of once an hour",
        id="a cron refresh over every minute's range is refused",
    ),
    pytest.param(
        knowledge_app(refresh_enabled=True, refresh_schedule="@every 30m"),
        f"{A0}.knowledge[0].refresh_schedule: '@every 30m' fires every 0:30:00, more often "
        "than the limit of once every 1:00:00",
        id="an @every refresh may fire at most hourly",
    ),
    pytest.param(
        knowledge_app(refresh_enabled=True, refresh_schedule="@every soon"),
        f"{A0}.knowledge[0].refresh_schedule: 'soon' is not a duration",
        id="@every takes a Go duration",
    ),
    pytest.param(
        knowledge_app(refresh_enabled=True, refresh_schedule="0 0 */6 * * *"),
        f"{A0}.knowledge[0].refresh_schedule: '0 0 */6 * * *' has 6 fields; a cron schedule "
        "has 5 (minute hour day-of-month month day-of-week)",
        id="a cron schedule has five fields",
    ),
    pytest.param(
        knowledge_app(refresh_enabled=True, refresh_schedule="0 25 * * *"),
        f"{A0}.knowledge[0].refresh_schedule: '0 25 * * *' is not a valid cron schedule",
        id="a cron schedule must parse",
    ),
    pytest.param(
        knowledge_app(refresh_enabled=True, refresh_schedule="0 0 L * *"),
        f"{A0}.knowledge[0].refresh_schedule: '0 0 L * *' uses L, W or #, which standard cron "
        "(and Kubernetes CronJobs) do not understand",
        id="cron extensions that CronJobs lack are refused",
    ),
    pytest.param(
        knowledge_app(refresh_enabled=True, refresh_schedule="0 0 * * MON#2"),
        f"{A0}.knowledge[0].refresh_schedule: '0 0 * * MON#2' uses L, W or #, which standard "
        "cron (and Kubernetes CronJobs) do not understand",
        id="the nth weekday extension is refused",
    ),
    pytest.param(
        knowledge_app(refresh_enabled=True),
        f"{A0}.knowledge[0]: refresh_enabled is true but refresh_schedule is empty",
        id="refresh needs a schedule",
    ),
    pytest.param(
        knowledge_app(rag_settings={"chunk_size": 100, "chunk_overflow": 100}),
        f"{A0}.knowledge[0].rag_settings: chunk_overflow (100) must be less than chunk_size (100)",
        id="chunks overlap by less than their size",
    ),
    pytest.param(
        knowledge_app(rag_settings={"distance_function": "dot"}),
        f"{A0}.knowledge[0].rag_settings.distance_function: value should be 'cosine', 'l2' "
        "or 'inner_product'",
        id="the distance function is one Helix knows",
    ),
    pytest.param(
        knowledge_app(source={}),
        f"{A0}.knowledge[0].source: the source names nothing to index",
        id="a knowledge source names something",
    ),
    pytest.param(
        knowledge_app(source={"web": {"urls": ["docs.example.com"]}}),
        f"{A0}.knowledge[0].source.web.urls: 'docs.example.com' is not an http(s) URL",
        id="web sources are http URLs",
    ),
    pytest.param(
        knowledge_app(
            name="docs", source={"web": {"urls": ["https://x.io"], "crawler": {"max_depth": 101}}}
        ),
        f"{A0}.knowledge[0].source.web.crawler.max_depth: value should be less than or equal "
        "to 100",
        id="crawling is at most 100 links deep",
    ),
    pytest.param(
        f.aiapp("demo", f.assistant(apis=[f.api(schema="openapi.json")])),
        f"{A0}.apis[0].schema: schema 'openapi.json' is a single line, so it is read as a file "
        "path, and such a file must end in .yaml or .yml",
        id="a schema file is YAML",
    ),
    pytest.param(
        f.aiapp("demo", f.assistant(temperature=3)),
        f"{A0}.temperature: value should be less than or equal to 2",
        id="temperature is between 0 and 2",
    ),
    pytest.param(
        f.aiapp("demo", f.assistant(reasoning_effort="max")),
        f"{A0}.reasoning_effort: value should be 'none', 'low', 'medium' or 'high'",
        id="reasoning effort is one of four",
    ),
    pytest.param(
        f.aiapp("demo", f.assistant(tests=[{"name": "t", "steps": []}])),
        f"{A0}.tests[0].steps: list should have at least 1 item after validation, not 0",
        id="a test has steps",
    ),
    pytest.param(
        {**f.aiapp(), "spec": {"assistants": []}},
        "spec.assistants: list should have at least 1 item after validation, not 0",
        id="an app has an assistant",
    ),
]


@pytest.mark.parametrize(("body", "expected"), INVALID_APPS)
def test_an_invalid_app_is_refused_with_the_exact_message(
    body: dict[str, Any], expected: str
) -> None:
    assert expected in errors_of(body)


def test_every_issue_carries_a_fix() -> None:
    body = f.aiapp("Bad Name", f.assistant(name="!!", temperature=9, extra=1))
    with pytest.raises(AISpecError) as caught:
        parse_app(body)
    assert len(caught.value.issues) == 4
    assert all(issue.fix for issue in caught.value.issues)


@pytest.mark.parametrize(
    "schedule",
    [
        "0 */6 * * *",
        "17 * * * *",
        "0 9 * * MON-FRI",
        "30 8 1 JUL WED",
        "@every 2h",
        "@every 1h",
        "@every 90m",
        "@every 99999999999999999999h",
        "@daily",
        "@hourly",
    ],
)
def test_a_refresh_at_most_hourly_is_accepted(schedule: str) -> None:
    app = parse_app(knowledge_app(refresh_enabled=True, refresh_schedule=schedule))
    assert app.spec.assistants[0].knowledge[0].refresh_schedule == schedule


def test_rag_settings_default_to_helix_values() -> None:
    settings = parse_app(knowledge_app()).spec.assistants[0].knowledge[0].rag_settings
    assert settings == RAGSettings(
        distance_function="cosine",
        threshold=0.4,
        results_count=3,
        chunk_size=2000,
        chunk_overflow=20,
        text_splitter="markdown",
    )


def test_our_extensions_have_the_documented_defaults() -> None:
    spec = parse_app(f.aiapp()).spec
    assert (spec.gateway.replicas, spec.gateway.resources.limits) == (1, {})
    assert spec.testing.model_dump() == {
        "on_rollout": True,
        "gated_rollout": False,
        "evaluation_model": "",
        "parallelism": 4,
        "timeout_seconds": 120,
    }


def test_metadata_name_wins_over_spec_name() -> None:
    body = f.aiapp("jira-helper")
    body["spec"]["name"] = "Jira Helper"
    app = parse_app(body)
    assert app.spec.name == "jira-helper"


def test_old_content_key_becomes_text_with_a_warning() -> None:
    app = parse_app(knowledge_app(source={"content": "Opening hours: nine to five."}))
    source = app.spec.assistants[0].knowledge[0].source
    assert source.text == "Opening hours: nine to five."
    assert app.manifest()["spec"]["assistants"][0]["knowledge"][0]["source"] == {
        "text": "Opening hours: nine to five."
    }
    assert [str(w) for w in app_warnings(app)] == [
        f"{A0}.knowledge[0].source.content: content is the old spelling of text "
        "(fix: rename content to text)"
    ]


@pytest.mark.parametrize("legacy", ["type", "rag_source_id", "lora_id"])
def test_a_legacy_assistant_key_is_accepted_with_a_deprecation_warning(legacy: str) -> None:
    app = parse_app(f.aiapp("demo", f.assistant(**{legacy: "text"})))
    (warning,) = app_warnings(app)
    assert warning.warning
    assert dotted(warning.path) == f"{A0}.{legacy}"
    assert warning.message.startswith(f"{legacy} is deprecated and ignored: ")


def test_gptscripts_are_accepted_with_a_deprecation_warning() -> None:
    script = {"name": "s", "description": "d", "file": "s.gpt", "content": ""}
    app = parse_app(f.aiapp("demo", f.assistant(gptscripts=[script])))
    assert [dotted(w.path) for w in app_warnings(app)] == [f"{A0}.gptscripts"]


def test_an_unused_secret_source_is_a_warning_not_an_error() -> None:
    app = parse_app(f.aiapp(secrets=[f.secret("UNUSED")]))
    assert [str(w) for w in app_warnings(app)] == [
        "spec.secrets[0].name: secret 'UNUSED' is declared but no ${UNUSED} uses it "
        "(fix: remove the entry or use the placeholder)"
    ]


def test_placeholders_lists_every_name_an_app_uses_once() -> None:
    body = f.aiapp(
        "demo",
        f.assistant(
            system_prompt="Team ${TEAM}",
            apis=[
                f.api(headers={"Authorization": "Bearer ${JIRA_TOKEN}"}, query={"team": "${TEAM}"})
            ],
        ),
        secrets=[f.secret("JIRA_TOKEN"), f.secret("TEAM")],
    )
    assert placeholders(parse_app(body)) == ["JIRA_TOKEN", "TEAM"]


@pytest.mark.parametrize(
    ("name", "normalised"),
    [("Jira Helper", "jira-helper"), ("docs_v2", "docs-v2"), ("--a--b--", "a-b"), ("é", "")],
)
def test_names_normalise_to_dns_labels(name: str, normalised: str) -> None:
    assert normalise_name(name) == normalised


# -- Model -----------------------------------------------------------------------------------


INVALID_MODELS = [
    pytest.param(
        f.model(gpus=1),
        "spec.gpus: unknown field 'gpus'",
        id="an unknown model key is refused",
    ),
    pytest.param(
        f.model(gpu={"count": 0}),
        "spec: runtime vllm needs at least one GPU (gpu.count)",
        id="vllm needs a GPU",
    ),
    pytest.param(
        f.model(runtime="ollama", gpu={"count": 2}),
        "spec: runtime ollama uses one GPU, but gpu.count is 2",
        id="ollama uses one GPU",
    ),
    pytest.param(
        f.model(runtime="external", gpu={"count": 0}),
        "spec: runtime external needs the external provider's baseURL",
        id="an external model needs a base URL",
    ),
    pytest.param(
        f.model(runtime="simulated", external={"baseURL": "https://x/v1"}),
        "spec: external is set but runtime is simulated",
        id="external goes with runtime external",
    ),
    pytest.param(
        f.model(runtime="tgi"),
        "spec.runtime: value should be 'vllm', 'ollama', 'simulated' or 'external'",
        id="the runtime is one we run",
    ),
]


@pytest.mark.parametrize(("body", "expected"), INVALID_MODELS)
def test_an_invalid_model_is_refused_with_the_exact_message(
    body: dict[str, Any], expected: str
) -> None:
    with pytest.raises(AISpecError) as caught:
        parse_model(body)
    assert expected in [f"{dotted(i.path)}: {i.message}" for i in caught.value.issues]


def test_served_name_defaults_to_the_object_name() -> None:
    assert parse_model(f.model("small")).spec.served_name == "small"


def test_a_namespace_model_wins_over_the_preset_of_the_same_name() -> None:
    mine = parse_model(f.model("my-llama", servedName="llama3.1:8b", runtime="simulated"))
    resolved = resolve_model("llama3.1:8b", [mine])
    assert resolved is not None and resolved.runtime == "simulated"
    preset = resolve_model("llama3.1:8b", [])
    assert preset is not None and preset.runtime == "ollama"


def test_a_model_is_found_by_served_name_before_metadata_name() -> None:
    by_name = parse_model(f.model("qwen", servedName="other"))
    by_served = parse_model(f.model("x", servedName="qwen", runtime="simulated"))
    resolved = resolve_model("qwen", [by_name, by_served])
    assert resolved is not None and resolved.served_name == "qwen"


def test_an_unknown_model_resolves_to_nothing() -> None:
    assert resolve_model("no-such-model", []) is None


def test_images_are_pinned_per_runtime() -> None:
    assert parse_model(f.model()).spec.effective_image == "vllm/vllm-openai:v0.11.0"
    assert IMAGES["ollama"] == "ollama/ollama:0.12.6"
    assert IMAGES["simulated"] == "ghcr.io/llm-d/llm-d-inference-sim:v0.6.1"


# -- examples and presets fit the simulated cluster ------------------------------------------

# The simulated cluster: GPUs per node and MiB per GPU (aiapp.localcluster.nodes).
GPU_NODES = {"NVIDIA-H100-80GB-HBM3": (4, 81559), "NVIDIA-L4": (2, 23034)}


def fits_a_node(model: Any) -> bool:
    gpu = model.gpu
    if gpu.count == 0:
        return True
    return any(
        gpu.count <= count and gpu.min_memory_gib * 1024 <= memory and gpu.product in ("", product)
        for product, (count, memory) in GPU_NODES.items()
    )


@pytest.mark.parametrize("preset", presets(), ids=lambda m: m.metadata.name)
def test_every_preset_fits_a_node_of_the_simulated_cluster(preset: Any) -> None:
    assert fits_a_node(preset.spec)


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((REPO / "examples").glob("*/*.yaml")):
        if "github-actions" in path.parts or path.name.endswith("openapi.yaml"):
            continue
        for document in yaml.safe_load_all(path.read_text()):
            found.append((str(path.relative_to(REPO)), document))
    return found


def test_the_examples_cover_every_kind_of_file() -> None:
    files = {name for name, _ in example_documents()}
    assert {
        "examples/minimal/aiapp.yaml",
        "examples/jira/helix.yaml",
        "examples/jira/aiapp.yaml",
        "examples/docs-assistant/aiapp.yaml",
        "examples/external-provider/aiapp.yaml",
        "examples/models/llama-70b-tp2.yaml",
        "examples/models/small.yaml",
        "examples/models/ollama.yaml",
    } <= files


def test_every_example_model_fits_and_every_assistant_model_resolves() -> None:
    documents = example_documents()
    models = [parse_model(d) for _, d in documents if d.get("kind") == "Model"]
    for model in models:
        assert fits_a_node(model.spec), model.metadata.name
    apps = [d for _, d in documents if d.get("kind") == "AIApp"]
    assert len(apps) >= 4
    for body in apps:
        for assistant in parse_app(body).spec.assistants:
            resolved = resolve_model(assistant.model, models)
            assert resolved is not None, assistant.model
            assert fits_a_node(resolved)
