"""Knowledge index Jobs, refresh CronJobs and test Jobs.

An index Job is named after a hash of its knowledge entry's sources and settings (and the
embedding model), so a change there makes a new Job while unrelated edits of the app leave the
finished one alone. A test Job is named after the gateway revision it tests.
"""

from __future__ import annotations

from typing import Any

from aiapp.api.aispec import AIAppSpec, Assistant, Knowledge
from aiapp.api.runtime import AppRef, Endpoint, IndexConfig
from aiapp.render import gateway, meta
from aiapp.render.settings import RenderSettings

INDEX_CONFIG_PATH = "/etc/aiapp/index.json"
FILESTORE_ROOT = "/data/filestore"
JOB_RESOURCES = {
    "requests": {"cpu": "250m", "memory": "256Mi"},
    "limits": {"cpu": "2", "memory": "2Gi"},
}


def _security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _job_pod(
    body: dict[str, Any],
    component: str,
    container: dict[str, Any],
    volumes: list[dict[str, Any]],
    settings: RenderSettings,
    **labels: str,
) -> dict[str, Any]:
    """A Job's pod template: one hardened container of our image, the app's labels."""
    app = body["metadata"]["name"]
    return {
        "metadata": {"labels": {**meta.propagated(body["metadata"].get("labels")),
                                **meta.labels(app, component, **labels)},
                     "annotations": meta.propagated(body["metadata"].get("annotations"))},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "image": settings.image,
                "imagePullPolicy": settings.image_pull_policy,
                "resources": JOB_RESOURCES,
                "securityContext": _security(),
                **container,
            }],
            "volumes": volumes,
        },
    }


def knowledge_id(assistant: Assistant, knowledge: Knowledge) -> str:
    """The knowledge entry's name among all the app's, usable as a label value and in names."""
    return meta.dns_label(assistant.name, knowledge.name)


def index_settings_hash(knowledge: Knowledge, embeddings: Endpoint) -> str:
    """What a new index depends on: sources, retrieval settings and the embedding model."""
    return meta.content_hash({
        "source": knowledge.source.model_dump(mode="json"),
        "rag": knowledge.rag_settings.model_dump(mode="json"),
        "embeddings": embeddings.model,
    }, 8)


def index_config(
    body: dict[str, Any],
    assistant: Assistant,
    knowledge: Knowledge,
    embeddings: Endpoint,
) -> IndexConfig:
    namespace, app = body["metadata"]["namespace"], body["metadata"]["name"]
    return IndexConfig(
        app=AppRef(namespace=namespace, name=app),
        index=gateway.index_key(namespace, app, assistant.name, knowledge.name),
        knowledge=knowledge.model_dump(mode="json", exclude_defaults=True),
        embeddings=embeddings,
        filestore_root=FILESTORE_ROOT,
        settings_hash=index_settings_hash(knowledge, embeddings),
    )


def _index_pod(
    body: dict[str, Any],
    spec: AIAppSpec,
    config_map: str,
    settings: RenderSettings,
    uses_filestore: bool,
) -> dict[str, Any]:
    app = body["metadata"]["name"]
    env: list[dict[str, Any]] = [{"name": "AIAPP_STORE_DSN", "valueFrom": {"secretKeyRef": {
        "name": gateway.store_secret_name(app), "key": gateway.STORE_DSN_KEY}}}]
    # Crawler credentials are ${NAME} placeholders too; the indexer fills them from its env.
    env += [{"name": s.name, "valueFrom": {"secretKeyRef": {"name": s.secret_name,
                                                             "key": s.key}}}
            for s in spec.secrets]
    if settings.embeddings_url and settings.embeddings_api_key_secret:
        secret, _, key = settings.embeddings_api_key_secret.partition("/")
        env.append({"name": gateway.EMBEDDINGS_KEY_ENV, "valueFrom": {"secretKeyRef": {
            "name": secret, "key": key or "api-key"}}})
    mounts = [{"name": "config", "mountPath": "/etc/aiapp", "readOnly": True},
              {"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": config_map}},
        {"name": "tmp", "emptyDir": {}},
    ]
    if uses_filestore and settings.filestore_claim:
        mounts.append({"name": "filestore", "mountPath": FILESTORE_ROOT, "readOnly": True})
        volumes.append({"name": "filestore", "persistentVolumeClaim": {
            "claimName": settings.filestore_claim, "readOnly": True}})
    return _job_pod(body, "knowledge-index", {
        "name": "index",
        "args": ["index", "--config", INDEX_CONFIG_PATH,
                 "--termination-log", "/dev/termination-log"],
        "env": env,
        "volumeMounts": mounts,
    }, volumes, settings)


def render_knowledge(
    body: dict[str, Any],
    spec: AIAppSpec,
    assistant: Assistant,
    knowledge: Knowledge,
    embeddings: Endpoint,
    settings: RenderSettings,
) -> list[dict[str, Any]]:
    """The ConfigMap and Job (and CronJob when refresh is on) that index one knowledge entry."""
    namespace, app = body["metadata"]["namespace"], body["metadata"]["name"]
    config = index_config(body, assistant, knowledge, embeddings)
    entry = knowledge_id(assistant, knowledge)
    labels = meta.labels(app, "knowledge-index", **{meta.KNOWLEDGE_LABEL: entry})
    owner = [meta.owner_reference(body)]
    annotations = {meta.SETTINGS_HASH_ANNOTATION: config.settings_hash}
    config_map_name = meta.dns_label(app, "index", entry, config.settings_hash)
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": config_map_name, "namespace": namespace, "labels": labels,
                     "annotations": annotations, "ownerReferences": owner},
        "data": {"index.json": config.model_dump_json(indent=2)},
    }
    pod = _index_pod(body, spec, config_map_name, settings,
                     uses_filestore=knowledge.source.filestore is not None)
    pod["metadata"]["labels"][meta.KNOWLEDGE_LABEL] = entry
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": meta.dns_label(app, "index", entry, config.settings_hash),
                     "namespace": namespace, "labels": labels, "annotations": annotations,
                     "ownerReferences": owner},
        "spec": {"backoffLimit": 2, "activeDeadlineSeconds": 3600, "template": pod},
    }
    children = [config_map, job]
    if knowledge.refresh_enabled and knowledge.refresh_schedule:
        children.append({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": meta.dns_label(app, "refresh", entry, limit=52),
                         "namespace": namespace, "labels": labels, "annotations": annotations,
                         "ownerReferences": owner},
            "spec": {
                "schedule": knowledge.refresh_schedule,
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 1,
                "failedJobsHistoryLimit": 1,
                "jobTemplate": {"metadata": {"labels": labels}, "spec": {
                    "backoffLimit": 2, "activeDeadlineSeconds": 3600, "template": pod}},
            },
        })
    return children


def render_test_job(
    body: dict[str, Any],
    spec: AIAppSpec,
    revision: str,
    judge: Endpoint,
    settings: RenderSettings,
    role: str = "serving",
) -> dict[str, Any]:
    """The Job that runs the app's tests against the gateway serving ``revision``."""
    namespace, app = body["metadata"]["namespace"], body["metadata"]["name"]
    labels = meta.labels(app, "test-run", **{meta.REVISION_LABEL: revision})
    args = [
        "test", "--config", gateway.CONFIG_PATH,
        "--url", gateway.gateway_url(namespace, app, settings, role),
        "--api-key-env", "AIAPP_API_KEY",
        "--judge-url", judge.base_url,
        "--evaluation-model", judge.model,
        "--parallel", str(spec.testing.parallelism),
        "--timeout", str(spec.testing.timeout_seconds),
        "--termination-log", "/dev/termination-log",
    ]
    env: list[dict[str, Any]] = [{"name": "AIAPP_API_KEY", "valueFrom": {"secretKeyRef": {
        "name": gateway.keys_secret_name(app), "key": gateway.API_KEYS_KEY}}}]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": meta.dns_label(app, "test", revision), "namespace": namespace,
                     "labels": labels, "ownerReferences": [meta.owner_reference(body)]},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": 3600,
            # The result outlives the Job in the app's status; old runs need not pile up.
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "template": _job_pod(body, "test-run", {
                "name": "test",
                "args": args,
                "env": env,
                "volumeMounts": [{"name": "config", "mountPath": "/etc/aiapp",
                                  "readOnly": True}],
            }, [{"name": "config", "configMap": {
                "name": gateway.config_map_name(app, revision)}}], settings,
                **{meta.REVISION_LABEL: revision}),
        },
    }
