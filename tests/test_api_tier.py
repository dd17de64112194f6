"""The CRDs on a real kube-apiserver: they install, explain, refuse mistakes and take examples."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import factories as f
from aiapp.localcluster import LocalCluster

pytestmark = pytest.mark.api

REPO = Path(__file__).resolve().parent.parent
CRDS = REPO / "crds"
EXAMPLE_MANIFESTS = [
    "examples/minimal/aiapp.yaml",
    "examples/jira/aiapp.yaml",
    "examples/docs-assistant/aiapp.yaml",
    "examples/external-provider/aiapp.yaml",
    "examples/models/llama-70b-tp2.yaml",
    "examples/models/small.yaml",
    "examples/models/ollama.yaml",
]


@pytest.fixture(scope="module")
def crds_installed(api_server: LocalCluster) -> LocalCluster:
    api_server.kubectl("apply", "--server-side", "-f", str(CRDS))
    api_server.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/aiapps.app.aispec.org",
        "crd/models.model.aispec.org",
    )

    # The apiserver publishes a new CRD's OpenAPI a moment after it is established; explain
    # and client-side validation need it.
    for kind in ("aiapps", "models.model.aispec.org"):
        for _ in range(120):
            if api_server.kubectl("explain", kind, check=False).returncode == 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the apiserver never published the OpenAPI of {kind}")
    return api_server


def apply(cluster: LocalCluster, namespace: str, body: dict[str, Any]) -> Any:
    return cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(body), check=False
    )


def test_the_crds_are_established_with_their_names_accepted(crds_installed: LocalCluster) -> None:
    result = crds_installed.kubectl(
        "get",
        "crd",
        "aiapps.app.aispec.org",
        "-o",
        'jsonpath={.status.conditions[?(@.type=="NamesAccepted")].status}',
    )
    assert result.stdout == "True"


def test_kubectl_explain_shows_the_descriptions(crds_installed: LocalCluster) -> None:
    result = crds_installed.kubectl("explain", "aiapps.spec")
    assert "Ours: where each ${NAME} placeholder's value comes from." in result.stdout
    knowledge = crds_installed.kubectl("explain", "aiapps.spec.assistants.knowledge.rag_settings")
    assert "How closeness between the question and a chunk is measured." in knowledge.stdout


@pytest.mark.parametrize("manifest", EXAMPLE_MANIFESTS)
def test_every_example_applies(crds_installed: LocalCluster, namespace: str, manifest: str) -> None:
    result = crds_installed.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", str(REPO / manifest), check=False
    )
    assert result.returncode == 0, result.stderr


def test_an_unknown_field_is_refused_not_pruned(
    crds_installed: LocalCluster, namespace: str
) -> None:
    result = apply(crds_installed, namespace, f.aiapp("typo", f.assistant(sytem_prompt="x")))
    assert result.returncode != 0
    assert 'unknown field "spec.assistants[0].sytem_prompt"' in result.stderr


def test_duplicate_assistant_names_are_refused_by_the_list_map(
    crds_installed: LocalCluster, namespace: str
) -> None:
    result = apply(crds_installed, namespace, f.aiapp("twins", f.assistant("a"), f.assistant("a")))
    assert result.returncode != 0
    assert "Duplicate value" in result.stderr


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            f.aiapp("refresh", f.assistant(knowledge=[f.knowledge(refresh_enabled=True)])),
            "refresh_enabled is true but refresh_schedule is empty",
        ),
        (
            f.aiapp("sources", f.assistant(knowledge=[f.knowledge(source={})])),
            "the source names nothing to index",
        ),
        (f.model("no-gpu", gpu={"count": 0}), "runtime vllm needs at least one GPU"),
        (f.aiapp("my.app"), "metadata.name must be a DNS label"),
    ],
    ids=[
        "refresh needs a schedule",
        "a source names something",
        "vllm needs a GPU",
        "the name is a DNS label",
    ],
)
def test_cel_rules_refuse_with_their_message(
    crds_installed: LocalCluster, namespace: str, body: dict[str, Any], message: str
) -> None:
    result = apply(crds_installed, namespace, body)
    assert result.returncode != 0
    assert message in result.stderr


def test_helix_defaults_are_filled_in_by_the_server(
    crds_installed: LocalCluster, namespace: str
) -> None:
    body = f.aiapp("defaults", f.assistant(knowledge=[f.knowledge(rag_settings={})]))
    assert apply(crds_installed, namespace, body).returncode == 0
    result = crds_installed.kubectl(
        "get",
        "aiapp",
        "defaults",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.assistants[0].knowledge[0].rag_settings.chunk_size}",
    )
    assert result.stdout == "2000"


def test_the_aispec_category_lists_apps(crds_installed: LocalCluster, namespace: str) -> None:
    assert apply(crds_installed, namespace, f.aiapp("listed")).returncode == 0
    listed = crds_installed.kubectl("get", "aispec", "-n", namespace, "-o", "name")
    assert "aiapp.app.aispec.org/listed" in listed.stdout
