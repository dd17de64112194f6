"""Shared fixtures: the local control plane, per-test namespaces.

One control plane serves the whole session. It runs the ``cluster`` tier when any selected
test needs it (marked ``cluster`` or ``gitops``) and the lighter ``api`` tier otherwise. A
missing binary fails the tests that need it with the command that builds it; it never skips.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiapp.localcluster import ClusterTier, LocalCluster, MissingBinaryError

pytest_plugins = ["operator_fixtures"]

REPO = Path(__file__).resolve().parent.parent
CLUSTER_MARKERS = {"cluster", "gitops"}
_start_failure: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needs_cluster = any(CLUSTER_MARKERS & {m.name for m in item.iter_markers()} for item in items)
    config.stash[_tier_key] = ClusterTier.CLUSTER if needs_cluster else ClusterTier.API


_tier_key = pytest.StashKey[ClusterTier]()


@pytest.fixture(scope="session")
def local_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    if _start_failure:
        pytest.fail(_start_failure[0], pytrace=False)
    tier = request.config.stash.get(_tier_key, ClusterTier.CLUSTER)
    cluster = LocalCluster(tmp_path_factory.mktemp("control-plane"), tier)
    try:
        cluster.start()
    except MissingBinaryError as error:
        _start_failure.append(str(error))
        pytest.fail(str(error), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def api_server(local_cluster: LocalCluster) -> LocalCluster:
    """etcd and kube-apiserver (the cluster tier includes them)."""
    return local_cluster


@pytest.fixture(scope="session")
def cluster(local_cluster: LocalCluster) -> LocalCluster:
    """The whole simulated cluster: controllers, scheduler and kwok GPU nodes."""
    assert local_cluster.tier is ClusterTier.CLUSTER, "mark the test `cluster` to get this tier"
    return local_cluster


@pytest.fixture
def namespace(local_cluster: LocalCluster) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards without waiting for it to go."""
    name = f"t-{secrets.token_hex(4)}"
    local_cluster.kubectl("create", "namespace", name)
    yield name
    local_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
