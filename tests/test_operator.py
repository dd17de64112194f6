"""The operator on the simulated cluster: model servers on GPU nodes, the gateway, status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from aiapp.localcluster import LocalCluster
from operator_fixtures import OperatorProcess, app_body, apply, condition, get, wait_until

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parent.parent
MODEL_SERVER = "aiapp.dev/component=model-server"


def ready_app(cluster: LocalCluster, namespace: str, name: str, timeout: float = 90) -> Any:
    def check() -> Any:
        app = get(cluster, namespace, "aiapp", name)
        return app if condition(app, "Ready").get("status") == "True" else None

    return wait_until(check, f"AIApp {namespace}/{name} to become Ready", timeout)


def model_servers(cluster: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get(cluster, namespace, "deployments", "-l",
                                      MODEL_SERVER)["items"]
    return items


def server_pods(cluster: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get(cluster, namespace, "pods", "-l", MODEL_SERVER)["items"]
    return items


@pytest.mark.parametrize(("example", "gpu_nodes"), [
    ("minimal", {"gpu-h100-0", "gpu-l4-0"}),
    ("jira", {"gpu-h100-0", "gpu-l4-0"}),
    ("docs-assistant", {"gpu-h100-0", "gpu-l4-0"}),
    ("external-provider", set()),
])
def test_each_example_becomes_ready_with_its_model_servers_on_gpu_nodes(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess, example: str,
    gpu_nodes: set[str],
) -> None:
    cluster.kubectl("create", "secret", "generic", "jira", "-n", namespace,
                    "--from-literal=token=t0ken")
    cluster.kubectl("create", "secret", "generic", "openai", "-n", namespace,
                    "--from-literal=api-key=sk-test")
    cluster.kubectl("apply", "--server-side", "-n", namespace,
                    "-f", str(REPO / "examples" / example / "aiapp.yaml"))
    name = get(cluster, namespace, "aiapps")["items"][0]["metadata"]["name"]

    app = ready_app(cluster, namespace, name)

    pods = server_pods(cluster, namespace)
    assert {pod["spec"]["nodeName"] for pod in pods} <= gpu_nodes
    assert bool(pods) == bool(gpu_nodes)
    for pod in pods:
        gpus = pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
        assert int(gpus) >= 1
    assert app["status"]["observedGeneration"] == app["metadata"]["generation"]
    assert app["status"]["endpoint"].startswith(f"http://{name}-gateway.{namespace}.svc")
    assert all(a["state"] == "Ready" for a in app["status"]["assistants"])
    table = cluster.kubectl("get", "aiapps", "-n", namespace).stdout
    assert "READY" in table and "True" in table


def test_editing_the_system_prompt_rolls_only_the_gateway(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    apply(cluster, namespace, app_body("prompt", system_prompt="Be brief."))
    ready_app(cluster, namespace, "prompt")
    server = model_servers(cluster, namespace)[0]
    gateway = get(cluster, namespace, "deployment", "prompt-gateway")
    old_config = gateway["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]

    apply(cluster, namespace, app_body("prompt", system_prompt="Be thorough."))

    def rolled() -> Any:
        current = get(cluster, namespace, "deployment", "prompt-gateway")
        config = current["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
        return current if config != old_config else None

    rolled_gateway = wait_until(rolled, "the gateway to roll to the new configuration")
    assert rolled_gateway["metadata"]["generation"] > gateway["metadata"]["generation"]
    config_map = get(cluster, namespace, "configmap",
                     rolled_gateway["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"])
    assert "Be thorough." in config_map["data"]["config.json"]
    after = get(cluster, namespace, "deployment", server["metadata"]["name"])
    assert after["metadata"]["generation"] == server["metadata"]["generation"]
    ready_app(cluster, namespace, "prompt")


@pytest.mark.parametrize("kind", ["deployment", "service"])
def test_a_deleted_child_is_restored(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess, kind: str,
) -> None:
    apply(cluster, namespace, app_body("repair"))
    ready_app(cluster, namespace, "repair")
    old_uid = get(cluster, namespace, kind, "repair-gateway")["metadata"]["uid"]

    cluster.kubectl("delete", "-n", namespace, kind, "repair-gateway")

    def restored() -> Any:
        child = get(cluster, namespace, kind, "repair-gateway")
        return child if child and child["metadata"]["uid"] != old_uid else None

    wait_until(restored, f"the operator to restore the gateway {kind}", timeout=30)


def test_a_hand_edited_child_is_put_back(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    apply(cluster, namespace, app_body("edited"))
    ready_app(cluster, namespace, "edited")

    cluster.kubectl("patch", "-n", namespace, "deployment", "edited-gateway", "--type=merge",
                    "-p", '{"spec":{"replicas":5}}')

    def put_back() -> bool:
        return bool(get(cluster, namespace, "deployment", "edited-gateway")["spec"]["replicas"]
                    == 1)

    wait_until(put_back, "the operator to put the replica count back", timeout=30)


def test_apps_on_one_model_share_a_server_that_goes_with_the_last_of_them(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    apply(cluster, namespace, app_body("first"), app_body("second"))
    ready_app(cluster, namespace, "first")
    ready_app(cluster, namespace, "second")

    def owned_by_both() -> Any:
        servers = model_servers(cluster, namespace)
        owners = {ref["name"] for s in servers for ref in s["metadata"]["ownerReferences"]}
        return servers if len(servers) == 1 and owners == {"first", "second"} else None

    server = wait_until(owned_by_both, "one model server owned by both apps")[0]

    cluster.kubectl("delete", "-n", namespace, "aiapp", "first")
    wait_until(lambda: get(cluster, namespace, "aiapp", "first") is None, "first to go")

    def owned_by_second() -> bool:
        current = get(cluster, namespace, "deployment", server["metadata"]["name"])
        return bool(current) and [r["name"] for r in current["metadata"]["ownerReferences"]] \
            == ["second"]

    wait_until(owned_by_second, "the garbage collector to drop the first owner")
    assert get(cluster, namespace, "deployment", server["metadata"]["name"]) is not None

    cluster.kubectl("delete", "-n", namespace, "aiapp", "second")
    wait_until(lambda: not model_servers(cluster, namespace), "the shared server to go")


def test_asking_for_more_gpus_than_exist_leaves_the_app_not_ready_with_the_scheduler_reason(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    apply(cluster, namespace, {
        "apiVersion": "model.aispec.org/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "huge"},
        "spec": {"servedName": "huge-model", "runtime": "vllm",
                 "gpu": {"count": 8, "product": "NVIDIA-H100-80GB-HBM3"}},
    }, app_body("greedy", model="huge-model"))

    def unschedulable() -> Any:
        app = get(cluster, namespace, "aiapp", "greedy")
        ready = condition(app, "Ready")
        return app if ready.get("reason") == "Unschedulable" else None

    app = wait_until(unschedulable, "the scheduler's reason to reach the app")
    model = wait_until(lambda: condition(get(cluster, namespace, "model", "huge"), "Ready"),
                       "the Model to report its server")
    assert (model["status"], model["reason"]) == ("False", "Unschedulable")
    ready = condition(app, "Ready")
    assert ready["status"] == "False"
    assert "nvidia.com/gpu" in ready["message"]
    assert condition(app, "ModelsReady")["status"] == "False"
    assert condition(app, "Stalled")["status"] == "False"


def test_an_unknown_model_makes_the_app_stalled_with_the_fix(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    apply(cluster, namespace, app_body("lost", model="no-such-model"))

    def stalled() -> Any:
        app = get(cluster, namespace, "aiapp", "lost")
        return app if condition(app, "Stalled").get("status") == "True" else None

    app = wait_until(stalled, "the app to be Stalled")
    assert condition(app, "Stalled")["reason"] == "UnknownModel"
    assert "'no-such-model'" in condition(app, "Stalled")["message"]
    assert condition(app, "Ready")["status"] == "False"
    assert app["status"]["observedGeneration"] == app["metadata"]["generation"]
    assert not model_servers(cluster, namespace)
    events = cluster.kubectl("get", "events", "-n", namespace,
                             "--field-selector", "involvedObject.name=lost").stdout
    assert "UnknownModel" in events


def test_pods_stuck_pulling_their_image_surface_on_the_app(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    body = app_body("stuck")
    body["metadata"]["annotations"] = {
        "sim.aiapp.dev/waiting-reason": "ImagePullBackOff",
        "sim.aiapp.dev/waiting-message": "Back-off pulling image ghcr.io/aiapp-dev/aiapp:0.1.0",
    }
    apply(cluster, namespace, body)

    def surfaced() -> Any:
        app = get(cluster, namespace, "aiapp", "stuck")
        return app if condition(app, "GatewayReady").get("reason") == "ImagePullBackOff" \
            else None

    app = wait_until(surfaced, "the gateway's image pull failure to reach the app")
    assert "Back-off pulling image" in condition(app, "GatewayReady")["message"]
    assert condition(app, "Ready")["status"] == "False"


def test_restarting_the_operator_mid_reconcile_creates_no_duplicates_and_converges(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    apply(cluster, namespace, *[app_body(f"app-{i}") for i in range(5)])
    operator.kill()
    operator.start()

    for i in range(5):
        ready_app(cluster, namespace, f"app-{i}")
    assert len(model_servers(cluster, namespace)) == 1
    gateways = get(cluster, namespace, "deployments", "-l",
                   "aiapp.dev/component=gateway")["items"]
    assert sorted(g["metadata"]["name"] for g in gateways) == [
        f"app-{i}-gateway" for i in range(5)]


def test_the_operator_serves_metrics_and_a_liveness_endpoint(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    apply(cluster, namespace, app_body("measured"))
    ready_app(cluster, namespace, "measured")

    def ready_apps_counted() -> str | None:
        text = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics").text
        return text if 'aiapp_apps{condition="Ready",status="True"}' in text else None

    metrics = wait_until(ready_apps_counted, "the Ready gauge to count the app")
    assert "aiapp_reconcile_duration_seconds_count" in metrics
    assert "aiapp_children_applied_total" in metrics
    health = httpx.get(f"http://127.0.0.1:{operator.health_port}/healthz")
    assert health.status_code == 200


def test_an_app_that_switches_model_leaves_the_shared_server_to_the_other_app(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    apply(cluster, namespace, app_body("mover"), app_body("stayer"))
    ready_app(cluster, namespace, "mover")
    ready_app(cluster, namespace, "stayer")
    shared = wait_until(
        lambda: next((s for s in model_servers(cluster, namespace)
                      if len(s["metadata"]["ownerReferences"]) == 2), None),
        "one server owned by both apps")["metadata"]["name"]

    apply(cluster, namespace, app_body("mover", model="qwen2.5:7b"))

    def left_to_stayer() -> bool:
        server = get(cluster, namespace, "deployment", shared)
        return bool(server) and [r["name"] for r in server["metadata"]["ownerReferences"]] \
            == ["stayer"]

    wait_until(left_to_stayer, "the mover's ownership of the old server to be dropped")
    app = ready_app(cluster, namespace, "mover")
    assert app["status"]["assistants"][0]["model"] == "qwen2.5:7b"
    assert len(model_servers(cluster, namespace)) == 2
