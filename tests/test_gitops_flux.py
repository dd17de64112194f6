"""The user's GitOps loop with Flux's real controllers: merge an AISpec change, Flux applies it,
the operator serves it, and the Kustomization reports health from the AIApp's conditions.

One test walks the loop in order (apply, edit, break, delete), since each step starts from the
state the previous one left, as it would in a real repository.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aiapp.localcluster import LocalCluster
from gitops_fixtures import FluxControllers, GitServer, flux, git_server  # noqa: F401
from operator_fixtures import OperatorProcess, apply, condition, get, wait_until

pytestmark = pytest.mark.gitops

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = (REPO / "examples" / "minimal" / "aiapp.yaml").read_text()
OLD_PROMPT = "You are a concise assistant. Answer in at most three sentences, in plain English."
NEW_PROMPT = "You are a patient tutor. Explain each answer in two short steps."
APP = "minimal"
# As in flux/platform/clusters/*/platform.yaml: without them kstatus calls an AIApp that has
# no status yet (the operator has not seen it) Current, and Flux reports healthy too early.
HEALTH_EXPRESSIONS = {
    "apiVersion": "app.aispec.org/v1alpha1", "kind": "AIApp",
    "current": "status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
    "failed": "status.conditions.exists(c, c.type == 'Stalled' && c.status == 'True')",
}


def flux_objects(url: str, namespace: str) -> list[dict[str, Any]]:
    """A GitRepository and Kustomization like flux/platform/clusters/*/platform.yaml's apps."""
    # Long intervals: every change in the test is asked for with requestedAt, so a timer
    # cannot be what made a step pass.
    return [{
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "apps"},
        "spec": {"url": url, "interval": "1h", "ref": {"branch": "main"}, "timeout": "30s"},
    }, {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "apps"},
        "spec": {
            "interval": "1h", "retryInterval": "10s", "timeout": "3m", "prune": True,
            "path": "./", "targetNamespace": namespace,
            "sourceRef": {"kind": "GitRepository", "name": "apps"},
            "wait": True, "healthCheckExprs": [HEALTH_EXPRESSIONS],
        },
    }]


def request_reconcile(cluster: LocalCluster, namespace: str, *objects: str) -> None:
    stamp = datetime.datetime.now(datetime.UTC).isoformat()
    for name in objects:
        cluster.kubectl("annotate", "-n", namespace, "--overwrite", name,
                        f"reconcile.fluxcd.io/requestedAt={stamp}")


def kustomization(cluster: LocalCluster, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = get(cluster, namespace, "kustomizations.kustomize.toolkit.fluxcd.io",
                                "apps")
    return found


def applied(
    cluster: LocalCluster, namespace: str, sha: str, *, checked: bool = True
) -> dict[str, Any] | None:
    """The Kustomization once it applied commit ``sha`` and (``checked``) found it healthy.

    After the last file is deleted no object is left to health-check, so Healthy is not
    asked for then.
    """
    current = kustomization(cluster, namespace)
    status = current.get("status") or {}
    if sha not in status.get("lastAppliedRevision", "") or \
            condition(current, "Ready").get("status") != "True":
        return None
    if checked and condition(current, "Healthy").get("status") != "True":
        return None
    return current


def app_ready(cluster: LocalCluster, namespace: str) -> dict[str, Any] | None:
    app = get(cluster, namespace, "aiapp", APP)
    if condition(app, "Ready").get("status") == "True" and \
            app["status"].get("observedGeneration") == app["metadata"]["generation"]:
        return dict(app)
    return None


def gateway_config(cluster: LocalCluster, namespace: str) -> tuple[dict[str, Any], str]:
    gateway = get(cluster, namespace, "deployment", f"{APP}-gateway")
    volumes = gateway["spec"]["template"]["spec"]["volumes"]
    name = next(v["configMap"]["name"] for v in volumes if "configMap" in v)
    return gateway, get(cluster, namespace, "configmap", name)["data"]["config.json"]


def model_server(cluster: LocalCluster, namespace: str) -> dict[str, Any]:
    items = get(cluster, namespace, "deployments", "-l", "aiapp.dev/component=model-server")
    assert len(items["items"]) == 1, items
    server: dict[str, Any] = items["items"][0]
    return server


def children(cluster: LocalCluster, namespace: str) -> list[str]:
    found = get(cluster, namespace, "deployments,services,configmaps,jobs", "-l",
                f"aiapp.dev/app={APP}")
    return [f"{item['kind']}/{item['metadata']['name']}" for item in found["items"]]


def test_a_git_push_reaches_the_running_app_and_flux_reports_its_health(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
    flux: FluxControllers, git_server: GitServer,  # noqa: F811
    record_property: Any,
) -> None:
    repository = git_server.create("apps")
    repository.commit("the app repository", {"README.md": "AISpec files of team A.\n"})
    first = repository.commit("add the minimal app", {"aiapp.yaml": EXAMPLE})
    apply(cluster, namespace, *flux_objects(repository.url, namespace))

    # 1. Flux brings the app in; the operator makes it Ready; Flux's health check sees it.
    done = wait_until(lambda: applied(cluster, namespace, first),
                      "the Kustomization to apply the first commit and report it healthy", 180)
    assert app_ready(cluster, namespace), get(cluster, namespace, "aiapp", APP)
    assert condition(done, "Healthy")["reason"] == "Succeeded"
    server = model_server(cluster, namespace)
    gateway, config = gateway_config(cluster, namespace)
    assert json.loads(config)["spec"]["assistants"][0]["system_prompt"].strip() == OLD_PROMPT

    # 2. A merged prompt edit rolls the gateway and leaves the model server alone.
    pushed = time.monotonic()
    second = repository.commit("a friendlier prompt",
                               {"aiapp.yaml": EXAMPLE.replace(OLD_PROMPT, NEW_PROMPT)})
    request_reconcile(cluster, namespace, "gitrepository/apps")
    wait_until(lambda: applied(cluster, namespace, second),
               "the prompt edit to be applied and healthy", 180)
    push_to_ready = time.monotonic() - pushed
    rolled, config = gateway_config(cluster, namespace)
    assert json.loads(config)["spec"]["assistants"][0]["system_prompt"].strip() == NEW_PROMPT
    assert rolled["metadata"]["generation"] > gateway["metadata"]["generation"]
    after = model_server(cluster, namespace)
    assert after["metadata"]["name"] == server["metadata"]["name"]
    assert after["metadata"]["generation"] == server["metadata"]["generation"]
    assert app_ready(cluster, namespace)
    record_property("push_to_ready_seconds", round(push_to_ready, 2))
    sys.stderr.write(f"\ngitops: push to Ready (prompt edit) took {push_to_ready:.1f}s\n")

    # 3. An invalid AIApp: the apiserver refuses it, Flux says why, the app keeps serving.
    serving = get(cluster, namespace, "deployment", f"{APP}-gateway")
    third = repository.commit("too hot", {"aiapp.yaml": EXAMPLE.replace(OLD_PROMPT, NEW_PROMPT)
                                          .replace("temperature: 0.2", "temperature: 7")})
    request_reconcile(cluster, namespace, "gitrepository/apps")

    def refused() -> dict[str, Any] | None:
        current = kustomization(cluster, namespace)
        ready = condition(current, "Ready")
        if ready.get("status") == "False" and third in (
                (current.get("status") or {}).get("lastAttemptedRevision", "")):
            return ready
        return None

    ready = wait_until(refused, "the Kustomization to report the rejected commit", 120)
    assert "temperature" in ready["message"] and "less than or equal to 2" in ready["message"], \
        ready
    assert second in kustomization(cluster, namespace)["status"]["lastAppliedRevision"]
    assert app_ready(cluster, namespace)
    still = get(cluster, namespace, "deployment", f"{APP}-gateway")
    assert still["metadata"]["generation"] == serving["metadata"]["generation"]
    assert gateway_config(cluster, namespace)[1] == config

    # 4. Deleting the file prunes the AIApp, and its children go with it.
    assert children(cluster, namespace)
    fourth = repository.commit("retire the app", {"aiapp.yaml": None})
    request_reconcile(cluster, namespace, "gitrepository/apps")

    wait_until(lambda: get(cluster, namespace, "aiapp", APP) is None,
               "the AIApp to be pruned", 120)
    wait_until(lambda: applied(cluster, namespace, fourth, checked=False),
               "the Kustomization to apply the deletion", 120)
    wait_until(lambda: not children(cluster, namespace), "the app's children to be deleted", 120)
    assert not get(cluster, namespace, "deployments", "-l",
                   "aiapp.dev/component=model-server")["items"]
