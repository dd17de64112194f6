"""Model servers: one Deployment and Service per distinct model that apps in a namespace use.

A model server belongs to every app that uses it (one ownerReference each, none of them the
controller), so the garbage collector removes it only when the last of those apps is deleted.
External models get no server: only an endpoint for the gateway.
"""

from __future__ import annotations

from typing import Any

from aiapp.api.model import ModelSpec
from aiapp.api.runtime import Endpoint
from aiapp.render import meta
from aiapp.render.settings import RenderSettings

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"
PORTS = {"vllm": 8000, "ollama": 11434, "simulated": 8000}
COMPONENT = "model-server"


def server_name(model: ModelSpec) -> str:
    """The Deployment and Service name of the server for ``model``."""
    return meta.dns_label("aiapp-model", model.served_name)


def endpoint(model: ModelSpec, namespace: str, settings: RenderSettings) -> Endpoint:
    """Where the gateway reaches ``model``: its in-cluster Service or the external provider."""
    if model.runtime == "external":
        assert model.external is not None
        return Endpoint(
            base_url=model.external.base_url.rstrip("/"),
            model=model.effective_source,
            api_key_env=upstream_key_env(model) if model.external.api_key_secret else None,
        )
    host = f"{server_name(model)}.{namespace}.svc.{settings.cluster_domain}"
    return Endpoint(base_url=f"http://{host}:{PORTS[model.runtime]}/v1", model=model.served_name)


def upstream_key_env(model: ModelSpec) -> str:
    """The gateway's environment variable that holds an external model's API key."""
    return "AIAPP_UPSTREAM_KEY_" + meta.content_hash(model.served_name, 8).upper()


def _runtime_container(model: ModelSpec, settings: RenderSettings) -> dict[str, Any]:
    """The container that runs the model: command line, ports, probes."""
    port = PORTS[model.runtime]
    env: list[dict[str, Any]] = []
    if model.runtime == "vllm":
        image = model.image or settings.vllm_image
        args = [
            "--model", model.effective_source,
            "--served-model-name", model.served_name,
            "--host", "0.0.0.0",
            "--port", str(port),
            "--tensor-parallel-size", str(max(model.gpu.count, 1)),
            "--download-dir", "/models",
        ]
        if model.context_length:
            args += ["--max-model-len", str(model.context_length)]
        if model.concurrency:
            args += ["--max-num-seqs", str(model.concurrency)]
        if model.task == "embedding":
            args += ["--task", "embed"]
        command: list[str] = []
        args += model.args
        health = "/health"
        env.append({"name": "HF_HOME", "value": "/models"})
    elif model.runtime == "ollama":
        image = model.image or settings.ollama_image
        # Ollama has no flag to load a model at start, so the container pulls it once the
        # server answers; readiness waits until the model is there.
        command = ["/bin/sh", "-c"]
        args = [
            "ollama serve & server=$!; "
            "until ollama list >/dev/null 2>&1; do sleep 1; done; "
            f"ollama pull '{model.effective_source}' && wait $server"
        ]
        health = "/api/version"
        env += [
            {"name": "OLLAMA_HOST", "value": f"0.0.0.0:{port}"},
            {"name": "OLLAMA_KEEP_ALIVE", "value": "-1"},
            {"name": "OLLAMA_MODELS", "value": "/models"},
        ]
        if model.context_length:
            env.append({"name": "OLLAMA_CONTEXT_LENGTH", "value": str(model.context_length)})
        if model.concurrency:
            env.append({"name": "OLLAMA_NUM_PARALLEL", "value": str(model.concurrency)})
    else:
        image = model.image or settings.simulator_image
        command = []
        args = ["--model", model.served_name, "--port", str(port), *model.args]
        health = "/health"

    if model.hf_token_secret is not None:
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": model.hf_token_secret.name, "key": model.hf_token_secret.key,
        }}})

    resources: dict[str, dict[str, str]] = {
        "requests": {k: str(v) for k, v in model.resources.requests.items()},
        "limits": {k: str(v) for k, v in model.resources.limits.items()},
    }
    if model.gpu.count:
        resources["requests"][GPU_RESOURCE] = str(model.gpu.count)
        resources["limits"][GPU_RESOURCE] = str(model.gpu.count)

    container: dict[str, Any] = {
        "name": "server",
        "image": image,
        "args": args,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": env,
        "resources": {k: v for k, v in resources.items() if v},
        # Loading weights takes minutes; the startup probe allows up to an hour before the
        # liveness probe may restart the server.
        "startupProbe": _probe(health, period=10, failures=360),
        "readinessProbe": _probe(health, period=5, failures=3),
        "livenessProbe": _probe(health, period=15, failures=4),
        "volumeMounts": [{"name": "models", "mountPath": "/models"}],
    }
    if command:
        container["command"] = command
    if model.runtime == "ollama":
        container["readinessProbe"] = {
            "exec": {"command": ["ollama", "show", model.effective_source]},
            "periodSeconds": 5, "failureThreshold": 3, "timeoutSeconds": 10,
        }
    if model.runtime == "vllm":
        container["volumeMounts"].append({"name": "shm", "mountPath": "/dev/shm"})
    return container


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        # A busy server answers its health check slowly; the default 1 s would restart it.
        "timeoutSeconds": 10,
    }


def _scheduling(model: ModelSpec) -> dict[str, Any]:
    """Node selector, affinity and tolerations that put the server on a GPU it can use."""
    pod: dict[str, Any] = {}
    selector = dict(model.node_selector)
    if model.gpu.product:
        selector[GPU_PRODUCT_LABEL] = model.gpu.product
    if selector:
        pod["nodeSelector"] = selector
    if model.gpu.min_memory_gib:
        # The label is in MiB; Gt is strict, so one MiB less admits a card of exactly that size.
        least_mib = model.gpu.min_memory_gib * 1024 - 1
        pod["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{
                "key": GPU_MEMORY_LABEL, "operator": "Gt", "values": [str(least_mib)],
            }]}],
        }}}
    tolerations = [t.model_dump(by_alias=True, exclude_defaults=True) for t in model.tolerations]
    if model.gpu.count:
        tolerations.insert(0, {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    if tolerations:
        pod["tolerations"] = tolerations
    return pod


def _volumes(model: ModelSpec, name: str) -> list[dict[str, Any]]:
    if model.cache and model.cache.existing_claim:
        claim = model.cache.existing_claim
        models: dict[str, Any] = {"persistentVolumeClaim": {"claimName": claim}}
    elif model.cache and model.cache.size:
        models = {"persistentVolumeClaim": {"claimName": f"{name}-cache"}}
    else:
        models = {"emptyDir": {}}
    volumes = [{"name": "models", **models}]
    if model.runtime == "vllm":
        # Tensor parallelism talks through shared memory, which the default 64 MiB starves.
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}})
    return volumes


def render_model_server(
    model: ModelSpec,
    namespace: str,
    owners: list[dict[str, Any]],
    settings: RenderSettings,
) -> list[dict[str, Any]]:
    """The Deployment, Service (and cache claim) that serve ``model`` for ``owners``."""
    if model.runtime == "external":
        return []
    name = server_name(model)
    labels = {
        "app.kubernetes.io/name": "aiapp",
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/managed-by": meta.MANAGER,
        meta.COMPONENT_LABEL: COMPONENT,
        meta.MODEL_SERVER_LABEL: name,
    }
    selector = {meta.MODEL_SERVER_LABEL: name}
    owner_refs = [meta.owner_reference(owner, controller=False) for owner in owners]
    metadata = {"name": name, "namespace": namespace, "labels": labels,
                "ownerReferences": owner_refs}

    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": model.replicas,
            "selector": {"matchLabels": selector},
            # Replace pods one at a time without a surge: a rollout never asks for more GPUs
            # than the running replicas already hold.
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [_runtime_container(model, settings)],
                    "volumes": _volumes(model, name),
                    "terminationGracePeriodSeconds": 30,
                    **_scheduling(model),
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
            "ports": [{"name": "http", "port": PORTS[model.runtime], "targetPort": "http",
                       "protocol": "TCP"}],
        },
    }
    children = [deployment, service]
    if model.cache and model.cache.size and not model.cache.existing_claim:
        claim_spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": model.cache.size}},
        }
        if model.cache.storage_class_name:
            claim_spec["storageClassName"] = model.cache.storage_class_name
        children.append({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {**metadata, "name": f"{name}-cache"},
            "spec": claim_spec,
        })
    return children
