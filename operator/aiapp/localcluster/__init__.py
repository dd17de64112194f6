"""The local control plane: a real kube-apiserver on etcd, with simulated GPU nodes.

Tests, benchmarks and the quickstart run against it where no Docker (and so no kind) exists.
``LocalCluster`` starts the processes, ``pki`` makes their certificates, ``nodes`` and
``stages`` describe the simulated hardware and how kwok plays pod lifecycles on it.
"""

from aiapp.localcluster.cluster import ClusterTier, LocalCluster, MissingBinaryError

__all__ = ["ClusterTier", "LocalCluster", "MissingBinaryError"]
