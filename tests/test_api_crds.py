"""The committed CRDs match the models, and their schemas are ones the apiserver accepts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from aiapp.api.commands import crds
from aiapp.api.crdgen import crds as generate_crds
from aiapp.api.crdgen import render_crd

pytestmark = pytest.mark.unit

CRDS = Path(__file__).resolve().parent.parent / "crds"
FILES = sorted(generate_crds())


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.get("properties", {}).items():
            yield from walk(value, f"{path}.{key}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                yield from walk(node[key], f"{path}[{key}]")


def schema_of(name: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / name).read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("name", FILES)
def test_the_committed_crd_matches_the_models(name: str) -> None:
    assert (CRDS / name).read_text() == render_crd(generate_crds()[name]), (
        "run: aiapp crds --output-dir crds/"
    )


def test_crds_check_passes_on_the_committed_files() -> None:
    assert CliRunner().invoke(crds, ["--check", "--output-dir", str(CRDS)]).exit_code == 0


def test_crds_check_fails_when_a_file_drifts(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(crds, ["--output-dir", str(tmp_path)]).exit_code == 0
    target = tmp_path / FILES[0]
    target.write_text(target.read_text().replace("description:", "description: edited", 1))
    result = runner.invoke(crds, ["--check", "--output-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "differ from the models" in result.output


@pytest.mark.parametrize("name", FILES)
def test_the_schema_is_structural(name: str) -> None:
    for path, node in walk(schema_of(name)["properties"]["spec"], "spec"):
        assert not {"$ref", "anyOf", "oneOf", "allOf", "title", "const"} & node.keys(), path
        assert "x-kubernetes-preserve-unknown-fields" not in node, path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        assert not ("properties" in node and "additionalProperties" in node), path


@pytest.mark.parametrize("name", FILES)
def test_every_spec_field_has_a_description_for_kubectl_explain(name: str) -> None:
    undescribed = [
        path
        for path, node in walk(schema_of(name)["properties"]["spec"], "spec")
        if "[" not in path.rsplit(".", 1)[-1] and not node.get("description")
    ]
    assert undescribed == []


def test_only_status_keeps_unknown_fields() -> None:
    for name in FILES:
        schema = schema_of(name)
        assert schema["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True
        assert schema["required"] == ["spec"]


@pytest.mark.parametrize(
    "path",
    [
        "spec.assistants",
        "spec.assistants[items].knowledge",
        "spec.assistants[items].apis",
        "spec.assistants[items].tests",
        "spec.assistants[items].mcps",
        "spec.secrets",
    ],
)
def test_named_lists_are_list_maps_keyed_by_name(path: str) -> None:
    nodes = dict(walk(schema_of("aiapps.app.aispec.org.yaml")["properties"]["spec"], "spec"))
    assert nodes[path]["x-kubernetes-list-type"] == "map"
    assert nodes[path]["x-kubernetes-list-map-keys"] == ["name"]
    assert "name" in nodes[path]["items"]["required"]


def test_the_aiapp_crd_has_names_columns_and_a_status_subresource() -> None:
    crd = yaml.safe_load((CRDS / "aiapps.app.aispec.org.yaml").read_text())
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"], names["categories"]) == (
        "AIApp",
        "aiapps",
        ["aiapp"],
        ["aispec"],
    )
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {
        c["name"]: (c["jsonPath"], c.get("priority", 0))
        for c in version["additionalPrinterColumns"]
    }
    assert columns == {
        "Ready": ('.status.conditions[?(@.type=="Ready")].status', 0),
        "Fresh": (".status.fresh", 0),
        "Status": ('.status.conditions[?(@.type=="Ready")].message', 1),
        "Models": (".status.modelsSummary", 0),
        "Knowledge": (".status.knowledgeSummary", 0),
        "Tests": (".status.testsSummary", 0),
        "Endpoint": (".status.endpoint", 1),
        "Age": (".metadata.creationTimestamp", 0),
    }


def test_the_model_crd_is_short_named_aimodel() -> None:
    crd = yaml.safe_load((CRDS / "models.model.aispec.org.yaml").read_text())
    assert crd["spec"]["group"] == "model.aispec.org"
    assert crd["spec"]["names"]["shortNames"] == ["aimodel"]


def test_cel_rules_carry_messages() -> None:
    rules = [
        rule
        for name in FILES
        for _, node in walk(schema_of(name))
        for rule in node.get("x-kubernetes-validations", [])
    ]
    assert len(rules) == 8
    assert all(rule["message"] for rule in rules)
