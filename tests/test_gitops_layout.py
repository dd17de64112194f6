"""The documented Flux layout (flux/) builds, and what it would apply is valid.

kubectl's built-in kustomize builds each overlay; the Models go through a server-side dry run
against the real CRDs, and each overlay's HelmRelease values render the real chart with helm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from aiapp.api.documents import load_documents
from aiapp.localcluster import LocalCluster
from test_gitops_flux import HEALTH_EXPRESSIONS
from test_packaging_helm import CHART, helm

pytestmark = pytest.mark.api

REPO = Path(__file__).resolve().parent.parent
FLUX = REPO / "flux"
ENVIRONMENTS = ("dev", "staging", "production")


def build(cluster: LocalCluster, env: str) -> list[dict[str, Any]]:
    result = cluster.kubectl("kustomize", str(FLUX / "platform" / "overlays" / env))
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in documents if doc["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


@pytest.fixture(scope="module")
def crds(api_server: LocalCluster) -> LocalCluster:
    api_server.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    api_server.kubectl("wait", "--for=condition=Established", "crd/models.model.aispec.org",
                       "crd/aiapps.app.aispec.org")
    return api_server


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_overlay_builds_and_its_model_passes_the_apiservers_dry_run(
    crds: LocalCluster, namespace: str, env: str
) -> None:
    documents = build(crds, env)
    model = one(documents, "Model")
    model["metadata"]["namespace"] = namespace
    result = crds.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-",
                          input=yaml.safe_dump(model), check=False)
    assert result.returncode == 0, result.stderr


def test_the_overlays_grow_from_a_simulated_model_to_a_replicated_70b_one(
    crds: LocalCluster,
) -> None:
    models = {env: one(build(crds, env), "Model")["spec"] for env in ENVIRONMENTS}
    assert models["dev"]["runtime"] == "simulated" and "gpu" not in models["dev"]
    assert models["staging"]["gpu"]["count"] == 1
    assert models["production"]["gpu"]["count"] == 2 and models["production"]["replicas"] == 2
    assert "70B" in models["production"]["source"]
    assert {spec["servedName"] for spec in models.values()} == {"team-chat"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_overlays_helm_release_values_render_the_chart(
    crds: LocalCluster, tmp_path: Path, env: str
) -> None:
    release = one(build(crds, env), "HelmRelease")
    assert release["spec"]["chart"]["spec"]["chart"] == "./charts/aiapp-operator"
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(release["spec"]["values"]))
    result = helm("template", "aiapp-operator", str(CHART), "--namespace", "aiapp-system",
                  "--values", str(values))
    assert result.returncode == 0, result.stderr
    deployment = next(doc for doc in yaml.safe_load_all(result.stdout)
                      if doc and doc["kind"] == "Deployment")
    expected = 2 if env == "production" else 1
    assert deployment["spec"]["replicas"] == expected


def test_every_clusters_app_kustomization_prunes_and_reads_aiapp_health_from_conditions() -> None:
    for env in ENVIRONMENTS:
        documents = list(yaml.safe_load_all(
            (FLUX / "platform" / "clusters" / env / "platform.yaml").read_text()))
        apps = next(doc for doc in documents if doc["kind"] == "Kustomization"
                    and doc["metadata"]["name"] == "team-a-apps")
        assert apps["spec"]["prune"] is True
        assert apps["spec"]["wait"] is True and "healthChecks" not in apps["spec"]
        assert apps["spec"]["dependsOn"] == [{"name": "platform"}]
        assert [e["kind"] for e in apps["spec"]["healthCheckExprs"]] == ["AIApp"]
        assert {e["current"] for e in apps["spec"]["healthCheckExprs"]} == {
            HEALTH_EXPRESSIONS["current"]}
        platform = next(doc for doc in documents if doc["kind"] == "Kustomization"
                        and doc["metadata"]["name"] == "platform")
        assert platform["spec"]["path"] == f"./overlays/{env}"


def test_the_app_repository_holds_valid_aispec_files_only() -> None:
    files = sorted((FLUX / "apps").glob("*.yaml"))
    assert files
    for path in files:
        apps, models, problems = load_documents(path.read_text(), path.parent)
        assert [p for p in problems if not p.warning] == [], path.name
        assert len(apps) == 1 and not models, path.name
