"""The local control plane behaves like a real cluster with GPU nodes."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiapp.localcluster import ClusterTier, LocalCluster
from aiapp.localcluster.nodes import DEFAULT_NODES, node_manifest

pytestmark = pytest.mark.cluster


def apply(cluster: LocalCluster, namespace: str, *documents: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(documents))


def get(cluster: LocalCluster, namespace: str, *what: str) -> Any:
    return json.loads(cluster.kubectl("get", "-n", namespace, *what, "-o", "json").stdout)


def wait_until(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def gpu_deployment(name: str, gpus: int, product: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"nvidia.com/gpu.product": product},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                     "effect": "NoSchedule"}],
                    "containers": [{
                        "name": "server",
                        "image": "vllm/vllm-openai:v0.11.0",
                        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                    }],
                },
            },
        },
    }


def pods_of(cluster: LocalCluster, namespace: str, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get(cluster, namespace, "pods", "-l", f"app={app}")["items"]
    return items


def test_a_gpu_deployment_lands_on_the_matching_gpu_node_and_becomes_ready(
    cluster: LocalCluster, namespace: str
) -> None:
    apply(cluster, namespace, gpu_deployment("small", 1, "NVIDIA-L4"))

    def ready_pod() -> dict[str, Any] | None:
        for pod in pods_of(cluster, namespace, "small"):
            conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
            if conditions.get("Ready") == "True":
                return pod
        return None

    pod = wait_until(ready_pod, "the GPU pod to become Ready")
    assert pod["spec"]["nodeName"] == "gpu-l4-0"
    assert pod["status"]["phase"] == "Running"


def test_a_job_completes(cluster: LocalCluster, namespace: str) -> None:
    apply(cluster, namespace, {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once"},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "work", "image": "busybox:1.37"}],
        }}},
    })

    def complete() -> bool:
        conditions = get(cluster, namespace, "job", "once")["status"].get("conditions", [])
        return any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)

    assert wait_until(complete, "the Job to complete")


def test_a_gpu_pod_beyond_the_nodes_capacity_stays_pending_as_unschedulable(
    cluster: LocalCluster, namespace: str
) -> None:
    apply(cluster, namespace, gpu_deployment("too-big", 3, "NVIDIA-L4"))

    def unschedulable() -> dict[str, Any] | None:
        for pod in pods_of(cluster, namespace, "too-big"):
            for condition in pod["status"].get("conditions", []):
                if condition["type"] == "PodScheduled" and condition.get("reason"):
                    return dict(condition)
        return None

    condition = wait_until(unschedulable, "the scheduler to give up on the pod")
    assert condition["status"] == "False"
    assert condition["reason"] == "Unschedulable"
    assert "nvidia.com/gpu" in condition["message"]
    assert pods_of(cluster, namespace, "too-big")[0]["status"]["phase"] == "Pending"


def test_deleting_an_owner_garbage_collects_its_children(
    cluster: LocalCluster, namespace: str
) -> None:
    apply(cluster, namespace, {"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "owner"}})
    owner_uid = get(cluster, namespace, "configmap", "owner")["metadata"]["uid"]
    apply(cluster, namespace, {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "child", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid,
        }]},
    })
    cluster.kubectl("delete", "-n", namespace, "configmap", "owner")

    def child_gone() -> bool:
        result = cluster.kubectl("get", "-n", namespace, "configmap", "child", check=False)
        return "NotFound" in result.stderr

    assert wait_until(child_gone, "the garbage collector to delete the child")


def test_the_simulated_nodes_advertise_two_kinds_of_gpu_and_a_cpu_node(
    cluster: LocalCluster,
) -> None:
    listed = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    by_name = {node["metadata"]["name"]: node for node in listed}
    products = {
        node["metadata"]["labels"].get("nvidia.com/gpu.product")
        for node in by_name.values()
    }
    assert products == {"NVIDIA-H100-80GB-HBM3", "NVIDIA-L4", None}
    assert by_name["gpu-h100-0"]["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    assert "nvidia.com/gpu" not in by_name["cpu-0"]["status"]["allocatable"]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_stopping_a_cluster_leaves_no_process_or_port_behind(tmp_path: Path) -> None:
    local = LocalCluster(tmp_path / "cp", ClusterTier.API)
    local.start()
    pids = [process.popen.pid for process in local._processes]
    port = local.apiserver_port
    local.stop()

    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert port_is_free(port)


@pytest.mark.unit
@pytest.mark.parametrize("node", DEFAULT_NODES, ids=lambda node: node.name)
def test_gpu_nodes_carry_capacity_labels_and_taint_and_cpu_nodes_none(node: Any) -> None:
    manifest = node_manifest(node)
    capacity = manifest["status"]["capacity"]
    if node.gpus:
        assert capacity["nvidia.com/gpu"] == str(node.gpus)
        assert manifest["metadata"]["labels"]["nvidia.com/gpu.product"] == node.gpu_product
        assert manifest["spec"]["taints"][0]["key"] == "nvidia.com/gpu"
    else:
        assert "nvidia.com/gpu" not in capacity
        assert manifest["spec"] == {}
