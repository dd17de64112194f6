"""The chart through the real helm (built from helm.sh/helm/v4) and the real apiserver.

`helm lint` and `helm template` run the chart's templates; the rendered manifests then go
through a server-side dry run, so the apiserver's own schemas, defaulting and admission judge
them, not a copy of the schemas.
"""

from __future__ import annotations

import base64
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiapp.localcluster import LocalCluster
from aiapp.localcluster.cluster import default_bin_dir

pytestmark = pytest.mark.api

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "aiapp-operator"
RELEASE = "aiapp"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    binary = default_bin_dir() / "helm"
    if not binary.exists():
        pytest.fail(f"helm is not built in {binary.parent}; build it with `tools/build.sh`",
                    pytrace=False)
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120,
                          env={"HOME": tempfile.gettempdir(), "PATH": "/usr/bin:/bin"})


def render(namespace: str, *settings: str) -> list[dict[str, Any]]:
    flags = [item for setting in settings for item in ("--set", setting)]
    result = helm("template", RELEASE, str(CHART), "--namespace", namespace, "--include-crds",
                  *flags)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents if doc["kind"] == kind]


def dry_run(cluster: LocalCluster, documents: list[dict[str, Any]]) -> str:
    """Apply the CRDs for real (later kinds need them), then everything else as a dry run."""
    crds = by_kind(documents, "CustomResourceDefinition")
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=chart-test",
                    "-f", "-", input=yaml.safe_dump_all(crds))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    *[f"crd/{crd['metadata']['name']}" for crd in crds])
    rest = [doc for doc in documents if doc["kind"] != "CustomResourceDefinition"]
    result = cluster.kubectl("apply", "--server-side", "--dry-run=server",
                             "--field-manager=chart-test", "-f", "-",
                             input=yaml.safe_dump_all(rest), check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def watched(api_server: LocalCluster) -> Iterator[list[str]]:
    """Two extra namespaces for the chart's namespaced mode."""
    names = [f"{name}-{id(api_server) % 10000}" for name in ("team-a", "team-b")]
    for name in names:
        api_server.kubectl("create", "namespace", name, check=False)
    yield names
    for name in names:
        api_server.kubectl("delete", "namespace", name, "--wait=false", check=False)


def rules(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for doc in documents if doc["kind"] in ("ClusterRole", "Role")
            for rule in doc["rules"]]


def secret_verbs(documents: list[dict[str, Any]]) -> set[str]:
    return {verb for rule in rules(documents) if "secrets" in rule["resources"]
            and not rule.get("resourceNames") for verb in rule["verbs"]}


def test_helm_lint_passes_for_the_defaults_and_for_namespaced_mode() -> None:
    for flags in ([], ["--set", "operator.watchNamespaces={a,b}",
                       "--set", "metrics.serviceMonitor.enabled=true",
                       "--set", "store.postgresql.enabled=false"]):
        result = helm("lint", "--strict", str(CHART), *flags)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_default_release_passes_a_server_side_dry_run(
    api_server: LocalCluster, namespace: str
) -> None:
    documents = render(namespace)
    output = dry_run(api_server, documents)
    for kind, name in [("deployment.apps", "aiapp-aiapp-operator"),
                       ("statefulset.apps", "aiapp-aiapp-operator-postgresql"),
                       ("secret", "aiapp-store"),
                       ("clusterkopfpeering.kopf.dev", "aiapp-operator")]:
        assert f"{kind}/{name} serverside-applied (server dry run)" in output, output


def test_namespaced_mode_binds_rights_and_peering_in_each_watched_namespace_only(
    api_server: LocalCluster, namespace: str, watched: list[str]
) -> None:
    documents = render(namespace, "operator.watchNamespaces={" + ",".join(watched) + "}")
    dry_run(api_server, documents)
    bindings = by_kind(documents, "RoleBinding")
    assert {b["metadata"]["namespace"] for b in bindings} == {*watched, namespace}
    cluster_bindings = {b["roleRef"]["name"] for b in by_kind(documents, "ClusterRoleBinding")}
    assert cluster_bindings == {"aiapp-aiapp-operator-cluster"}
    assert {p["metadata"]["namespace"] for p in by_kind(documents, "KopfPeering")} == set(watched)
    assert not by_kind(documents, "ClusterKopfPeering")
    args = by_kind(documents, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace=")] == [
        f"--namespace={name}" for name in watched]
    assert "--all-namespaces" not in args


def test_rbac_has_no_wildcards_and_no_secret_list_or_watch_unless_enabled() -> None:
    documents = render("aiapp-system")
    for rule in rules(documents):
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(field, []), rule
    assert secret_verbs(documents) == {"get", "create", "patch"}
    store = [rule for rule in rules(documents) if rule.get("resourceNames")]
    assert store == [{"apiGroups": [""], "resources": ["secrets"],
                      "resourceNames": ["aiapp-store"], "verbs": ["get"]}]

    enabled = render("aiapp-system", "rbac.secretsListWatch=true")
    assert secret_verbs(enabled) == {"get", "create", "patch", "list", "watch"}


def test_the_operator_pod_is_hardened_and_probed() -> None:
    documents = render("aiapp-system")
    pod = by_kind(documents, "Deployment")[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}}
    assert container["args"][:2] == ["operator", "--all-namespaces"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"health": 8081, "metrics": 9090}
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["AIAPP_NAMESPACE"] == "aiapp-system"
    assert env["AIAPP_IMAGE"] == "ghcr.io/aiapp-dev/aiapp:0.1.0"


def test_the_bundled_store_writes_a_dsn_secret_that_an_external_database_replaces() -> None:
    documents = render("aiapp-system")
    secrets = {doc["metadata"]["name"]: doc for doc in by_kind(documents, "Secret")}
    dsn = base64.b64decode(secrets["aiapp-store"]["data"]["dsn"]).decode()
    password = base64.b64decode(secrets["aiapp-aiapp-operator-postgresql"]["data"]["password"])
    assert dsn == (f"postgresql://aiapp:{password.decode()}@aiapp-aiapp-operator-postgresql."
                   "aiapp-system.svc.cluster.local:5432/aiapp")
    statefulset = by_kind(documents, "StatefulSet")[0]
    assert statefulset["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "pgvector/pgvector:0.8.0-pg17"

    external = render("aiapp-system", "store.postgresql.enabled=false",
                      "store.secretName=my-db")
    assert not by_kind(external, "StatefulSet") and not by_kind(external, "Secret")
    env = by_kind(external, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "AIAPP_STORE_SECRET", "value": "my-db"} in env


def test_the_service_monitor_is_rendered_only_when_enabled() -> None:
    assert not by_kind(render("aiapp-system"), "ServiceMonitor")
    monitor = by_kind(render("aiapp-system", "metrics.serviceMonitor.enabled=true"),
                      "ServiceMonitor")
    assert monitor[0]["spec"]["endpoints"][0]["port"] == "metrics"
