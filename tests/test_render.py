"""Renderers: an AIApp and its resolved models in, manifests out; no cluster needed."""

from __future__ import annotations

from typing import Any

import pytest

import factories
from aiapp.api.aispec import parse_app
from aiapp.api.model import parse_model, resolve_model
from aiapp.controller.kube import needs_apply
from aiapp.render import meta
from aiapp.render.app import models_used, render_app
from aiapp.render.settings import RenderSettings

pytestmark = pytest.mark.unit
SETTINGS = RenderSettings()


def rendered(body: dict[str, Any], *models: dict[str, Any],
             settings: RenderSettings = SETTINGS) -> Any:
    body = {**body, "metadata": {"namespace": "team", "uid": "uid-1", **body["metadata"]}}
    app = parse_app(body)
    known = [parse_model(m) for m in models]
    resolved = {name: resolve_model(name, known) for name in models_used(app.spec, settings)}
    assert None not in resolved.values()
    return render_app(body, app.spec, resolved, settings)  # type: ignore[arg-type]


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def server_container(result: Any) -> dict[str, Any]:
    container: dict[str, Any] = by_kind(result.model_servers, "Deployment")[0][
        "spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize(("model", "flag", "value"), [
    ({"runtime": "vllm", "gpu": {"count": 2}}, "--tensor-parallel-size", "2"),
    ({"runtime": "vllm", "gpu": {"count": 1}, "contextLength": 8192}, "--max-model-len", "8192"),
    ({"runtime": "vllm", "gpu": {"count": 1}, "concurrency": 16}, "--max-num-seqs", "16"),
    ({"runtime": "vllm", "gpu": {"count": 1}, "args": ["--enforce-eager"]}, "--enforce-eager",
     None),
])
def test_vllm_servers_get_their_runtime_flags(model: dict[str, Any], flag: str,
                                              value: str | None) -> None:
    result = rendered(factories.aiapp("a", factories.assistant(model="m")),
                      factories.model("m", servedName="m", **model))
    args = server_container(result)["args"]
    assert flag in args
    if value is not None:
        assert args[args.index(flag) + 1] == value


def test_gpu_servers_request_and_limit_gpus_and_tolerate_the_gpu_taint() -> None:
    result = rendered(factories.aiapp("a", factories.assistant(model="m")),
                      factories.model("m", servedName="m", runtime="vllm",
                                      gpu={"count": 2, "product": "NVIDIA-L4",
                                           "minMemoryGiB": 20}))
    pod = by_kind(result.model_servers, "Deployment")[0]["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "2"
    assert resources["requests"]["nvidia.com/gpu"] == "2"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4"}
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchExpressions"][0] == {
        "key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["20479"]}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
        pod["tolerations"]


def test_a_model_server_rollout_never_asks_for_more_gpus_than_it_holds() -> None:
    result = rendered(factories.aiapp("a"))
    strategy = by_kind(result.model_servers, "Deployment")[0]["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


def test_the_hugging_face_token_comes_from_a_secret_reference() -> None:
    result = rendered(factories.aiapp("a", factories.assistant(model="m")),
                      factories.model("m", servedName="m", runtime="vllm", gpu={"count": 1},
                                      hfTokenSecret={"name": "hf", "key": "token"}))
    env = {e["name"]: e for e in server_container(result)["env"]}
    assert env["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "hf", "key": "token"}}


def test_external_models_get_no_server_and_their_key_only_by_reference() -> None:
    result = rendered(
        factories.aiapp("a", factories.assistant(model="gpt")),
        factories.model("gpt", servedName="gpt", runtime="external", gpu={}, external={
            "baseURL": "https://api.example.com/v1",
            "apiKeySecret": {"name": "openai", "key": "api-key"}}),
    )
    assert result.model_servers == []
    binding = result.config.assistants["helper"].upstream
    assert binding.base_url == "https://api.example.com/v1"
    env = by_kind(result.gateway, "Deployment")[0]["spec"]["template"]["spec"][
        "containers"][0]["env"]
    keyed = [e for e in env if e["name"] == binding.api_key_env]
    assert keyed[0]["valueFrom"]["secretKeyRef"] == {"name": "openai", "key": "api-key"}


def test_secret_values_never_reach_the_gateway_configuration() -> None:
    body = factories.aiapp(
        "a",
        factories.assistant(apis=[factories.api(headers={"Authorization": "Bearer ${TOKEN}"})]),
        secrets=[factories.secret("TOKEN")],
    )
    result = rendered(body)
    config = result.gateway_config["data"]["config.json"]
    assert "${TOKEN}" in config
    env = by_kind(result.gateway, "Deployment")[0]["spec"]["template"]["spec"][
        "containers"][0]["env"]
    assert {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "jira", "key": "token"}}} \
        in env


@pytest.mark.parametrize(("change", "rolls"), [
    ({"system_prompt": "Be thorough."}, True),
    ({"temperature": 0.2}, True),
    ({"system_prompt": "Be brief."}, False),
])
def test_the_gateway_revision_follows_its_configuration(change: dict[str, Any],
                                                        rolls: bool) -> None:
    before = rendered(factories.aiapp("a"))
    after = rendered(factories.aiapp("a", factories.assistant(**change)))
    assert (before.revision != after.revision) is rolls
    assert before.model_servers == after.model_servers


def test_knowledge_gets_an_index_job_named_after_its_settings_and_a_refresh_cronjob() -> None:
    entry = factories.knowledge(refresh_enabled=True, refresh_schedule="0 */6 * * *")
    result = rendered(factories.aiapp("a", factories.assistant(knowledge=[entry])))
    job = by_kind(result.knowledge, "Job")[0]
    cron = by_kind(result.knowledge, "CronJob")[0]
    assert cron["spec"]["schedule"] == "0 */6 * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert job["metadata"]["annotations"][meta.SETTINGS_HASH_ANNOTATION] in job["metadata"][
        "name"]

    edited = rendered(factories.aiapp("a", factories.assistant(
        knowledge=[entry], system_prompt="Another prompt.")))
    resized = rendered(factories.aiapp("a", factories.assistant(knowledge=[{
        **entry, "rag_settings": {"chunk_size": 500}}])))
    assert by_kind(edited.knowledge, "Job")[0]["metadata"]["name"] == job["metadata"]["name"]
    assert by_kind(resized.knowledge, "Job")[0]["metadata"]["name"] != job["metadata"]["name"]


def test_apps_with_knowledge_also_need_the_embedding_model_served() -> None:
    body = factories.aiapp("a", factories.assistant(knowledge=[factories.knowledge()]))
    assert models_used(parse_app({**body, "metadata": {"name": "a"}}).spec, SETTINGS) == [
        "llama3.1:8b", SETTINGS.embeddings_model]
    external = RenderSettings(embeddings_url="http://embed.example/v1")
    assert models_used(parse_app(body).spec, external) == ["llama3.1:8b"]


def test_every_child_carries_an_owner_reference_and_our_labels() -> None:
    result = rendered(factories.aiapp("a", factories.assistant(
        knowledge=[factories.knowledge()])))
    for manifest in result.all():
        assert manifest["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
        assert manifest["metadata"]["labels"]["app.kubernetes.io/managed-by"] == meta.MANAGER


@pytest.mark.parametrize(("desired", "live", "differs"), [
    ({"a": 1}, {"a": 1, "b": 2}, False),
    ({"a": 1}, {"a": 2}, True),
    ({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2]}, "c": 3}, False),
    ({"a": [1, 2]}, {"a": [1]}, True),
    ({"a": [{"x": 1}]}, {"a": [{"x": 1, "defaulted": True}]}, False),
    ({"a": ""}, {}, False),
    ({"a": True}, {"a": 1}, True),
])
def test_needs_apply_ignores_what_only_the_server_adds(
    desired: dict[str, Any], live: dict[str, Any], differs: bool
) -> None:
    assert needs_apply(desired, live) is differs


@pytest.mark.parametrize(("parts", "expected"), [
    (("demo", "gateway"), "demo-gateway"),
    (("aiapp-model", "meta-llama/Llama-3.1-8B-Instruct"), None),
    (("x" * 80, "gateway"), None),
])
def test_names_are_dns_labels_and_long_ones_stay_unique(parts: tuple[str, ...],
                                                        expected: str | None) -> None:
    name = meta.dns_label(*parts)
    assert len(name) <= 63
    assert name.replace("-", "").isalnum() and name == name.lower()
    if expected:
        assert name == expected
    else:
        assert name != meta.dns_label(*parts[:-1], parts[-1] + "x")
