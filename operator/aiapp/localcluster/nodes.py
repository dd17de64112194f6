"""The simulated hardware of the local cluster: two kinds of GPU node and a CPU node.

Nodes are ordinary Node objects that kwok keeps alive. GPU nodes advertise ``nvidia.com/gpu``
capacity and the labels NVIDIA's GPU feature discovery sets on real clusters, and carry the
``nvidia.com/gpu`` taint that GPU node pools usually have, so workloads must tolerate it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"
GPU_COUNT_LABEL = "nvidia.com/gpu.count"


@dataclass(frozen=True)
class SimulatedNode:
    name: str
    cpu: str
    memory: str
    gpus: int = 0
    gpu_product: str = ""
    gpu_memory_mib: int = 0


DEFAULT_NODES: tuple[SimulatedNode, ...] = (
    SimulatedNode("gpu-h100-0", cpu="64", memory="512Gi", gpus=4,
                  gpu_product="NVIDIA-H100-80GB-HBM3", gpu_memory_mib=81559),
    SimulatedNode("gpu-l4-0", cpu="32", memory="128Gi", gpus=2,
                  gpu_product="NVIDIA-L4", gpu_memory_mib=23034),
    SimulatedNode("cpu-0", cpu="32", memory="128Gi"),
)


def node_manifest(node: SimulatedNode) -> dict[str, Any]:
    """The Node object for one simulated machine, status included."""
    labels = {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
    }
    capacity = {"cpu": node.cpu, "memory": node.memory, "pods": "110"}
    taints: list[dict[str, str]] = []
    if node.gpus:
        labels |= {
            GPU_PRODUCT_LABEL: node.gpu_product,
            GPU_MEMORY_LABEL: str(node.gpu_memory_mib),
            GPU_COUNT_LABEL: str(node.gpus),
            "nvidia.com/gpu.present": "true",
        }
        capacity[GPU_RESOURCE] = str(node.gpus)
        taints.append({"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": labels,
            "annotations": {KWOK_ANNOTATION: "fake"},
        },
        "spec": {"taints": taints} if taints else {},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }
