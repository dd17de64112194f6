"""The app gateway: its runtime configuration, ConfigMap, Deployment and Service.

The configuration is stored in a ConfigMap named after its revision (a hash of its content),
so a change of prompts, tools or retrieval settings makes a new ConfigMap and rolls the
gateway, while model servers never see it. With gated rollouts a second, candidate gateway
serves the new revision beside the serving one until its tests pass.
"""

from __future__ import annotations

from typing import Any

from aiapp.api.aispec import AIAppSpec
from aiapp.api.model import ModelSpec
from aiapp.api.runtime import (
    AppRef,
    AssistantBinding,
    Endpoint,
    GatewayConfig,
    KnowledgeBinding,
)
from aiapp.render import meta, model_servers
from aiapp.render.settings import RenderSettings

COMPONENT = "gateway"
CONFIG_PATH = "/etc/aiapp/config.json"
API_KEYS_KEY = "keys"
STORE_DSN_KEY = "dsn"
EMBEDDINGS_KEY_ENV = "AIAPP_EMBEDDINGS_KEY"


def gateway_name(app: str, role: str = "serving") -> str:
    return meta.dns_label(app, "gateway") if role == "serving" else meta.dns_label(
        app, "gateway", role)


def config_map_name(app: str, revision: str) -> str:
    return meta.dns_label(app, "gateway", revision)


def keys_secret_name(app: str) -> str:
    return meta.dns_label(app, "gateway-keys")


def store_secret_name(app: str) -> str:
    return meta.dns_label(app, "store")


def index_key(namespace: str, app: str, assistant: str, knowledge: str) -> str:
    return f"{namespace}/{app}/{assistant}/{knowledge}"


def gateway_url(namespace: str, app: str, settings: RenderSettings, role: str = "serving") -> str:
    host = f"{gateway_name(app, role)}.{namespace}.svc.{settings.cluster_domain}"
    return f"http://{host}:{settings.gateway_port}"


def embeddings_endpoint(
    models: dict[str, ModelSpec], namespace: str, settings: RenderSettings
) -> Endpoint:
    """The embeddings endpoint: the operator's external one, or the embedding model server."""
    if settings.embeddings_url:
        return Endpoint(
            base_url=settings.embeddings_url.rstrip("/"),
            model=settings.embeddings_model,
            api_key_env=EMBEDDINGS_KEY_ENV if settings.embeddings_api_key_secret else None,
        )
    return model_servers.endpoint(models[settings.embeddings_model], namespace, settings)


def uses_knowledge(spec: AIAppSpec) -> bool:
    return any(assistant.knowledge for assistant in spec.assistants)


def gateway_config(
    body: dict[str, Any],
    spec: AIAppSpec,
    models: dict[str, ModelSpec],
    settings: RenderSettings,
) -> GatewayConfig:
    """The gateway's whole view of the app, with its revision filled in."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    assistants = {
        assistant.name: AssistantBinding(
            upstream=model_servers.endpoint(models[assistant.model], namespace, settings),
            knowledge={
                knowledge.name: KnowledgeBinding(
                    index=index_key(namespace, name, assistant.name, knowledge.name))
                for knowledge in assistant.knowledge
            },
        )
        for assistant in spec.assistants
    }
    embeddings = embeddings_endpoint(models, namespace, settings) if uses_knowledge(
        spec) else None
    config = GatewayConfig(
        app=AppRef(namespace=namespace, name=name),
        spec=body.get("spec", {}),
        assistants=assistants,
        embeddings=embeddings,
    )
    revision = meta.content_hash(config.model_dump(mode="json"))
    return config.model_copy(update={"app": AppRef(namespace=namespace, name=name,
                                                   revision=revision)})


def _env(
    spec: AIAppSpec, models: dict[str, ModelSpec], app: str, settings: RenderSettings
) -> list[dict[str, Any]]:
    """Secrets reach the gateway only as environment variables from Secret references."""
    def from_secret(env: str, secret: str, key: str) -> dict[str, Any]:
        return {"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}

    env = [from_secret("AIAPP_API_KEYS", keys_secret_name(app), API_KEYS_KEY)]
    env += [from_secret(s.name, s.secret_name, s.key) for s in spec.secrets]
    for model_name in sorted({assistant.model for assistant in spec.assistants}):
        model = models[model_name]
        if model.external is not None and model.external.api_key_secret is not None:
            ref = model.external.api_key_secret
            env.append(from_secret(model_servers.upstream_key_env(model), ref.name, ref.key))
    if uses_knowledge(spec):
        env.append(from_secret("AIAPP_STORE_DSN", store_secret_name(app), STORE_DSN_KEY))
        if settings.embeddings_url and settings.embeddings_api_key_secret:
            secret, _, key = settings.embeddings_api_key_secret.partition("/")
            env.append(from_secret(EMBEDDINGS_KEY_ENV, secret, key or "api-key"))
    return env


def render_config_map(body: dict[str, Any], config: GatewayConfig) -> dict[str, Any]:
    name = body["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": config_map_name(name, config.app.revision),
            "namespace": body["metadata"]["namespace"],
            "labels": meta.labels(name, "gateway-config",
                                  **{meta.REVISION_LABEL: config.app.revision}),
            "ownerReferences": [meta.owner_reference(body)],
        },
        "data": {"config.json": config.model_dump_json(indent=2)},
    }


def render_gateway(
    body: dict[str, Any],
    spec: AIAppSpec,
    models: dict[str, ModelSpec],
    revision: str,
    settings: RenderSettings,
    role: str = "serving",
    keys_version: str = "",
) -> list[dict[str, Any]]:
    """The gateway Deployment and Service serving ``revision`` in ``role``.

    ``keys_version`` changes when the app's API keys do, so pods restart to read them.
    """
    app, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    name = gateway_name(app, role)
    labels = meta.labels(app, COMPONENT, **{f"{meta.DOMAIN}/role": role})
    selector = {meta.APP_LABEL: app, meta.COMPONENT_LABEL: COMPONENT,
                f"{meta.DOMAIN}/role": role}
    pod_labels = {**meta.propagated(body["metadata"].get("labels")), **labels,
                  meta.REVISION_LABEL: revision}
    pod_annotations = {**meta.propagated(body["metadata"].get("annotations")),
                       meta.CONFIG_HASH_ANNOTATION: revision}
    if keys_version:
        pod_annotations[meta.KEYS_VERSION_ANNOTATION] = keys_version
    metadata = {"name": name, "namespace": namespace, "labels": labels,
                "ownerReferences": [meta.owner_reference(body)]}
    resources = spec.gateway.resources.model_dump(exclude_defaults=True) or {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }
    container = {
        "name": "gateway",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": ["gateway", "--config", CONFIG_PATH, "--host", "0.0.0.0",
                 "--port", str(settings.gateway_port)],
        "ports": [{"name": "http", "containerPort": settings.gateway_port, "protocol": "TCP"}],
        "env": _env(spec, models, app, settings),
        "resources": resources,
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"},
                           "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                          "periodSeconds": 10, "failureThreshold": 3},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "config", "mountPath": "/etc/aiapp", "readOnly": True}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": spec.gateway.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": pod_annotations},
                "spec": {
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {
                        "name": config_map_name(app, revision)}}],
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "automountServiceAccountToken": False,
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": settings.gateway_port, "targetPort": "http",
                       "protocol": "TCP"}],
        },
    }
    return [deployment, service]
