"""Test plans are read from AISpec files in either form and from the gateway runtime config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiapp.testrun.cases import (
    PlanError,
    Step,
    TestCase,
    TestSettings,
    load_plan_from_aispec,
    load_plan_from_gateway_config,
)

pytestmark = pytest.mark.unit

SPEC: dict[str, Any] = {
    "name": "geo",
    "assistants": [
        {
            "name": "guide",
            "model": "llama3.1:8b",
            "tests": [
                {
                    "name": "capital",
                    "steps": [{"prompt": "Capital of France?", "expected_output": '"Paris"'}],
                },
                {
                    "name": "colours",
                    "steps": [
                        {"prompt": "Pick a colour.", "expected_output": "a colour"},
                        {"prompt": "Which one?", "expected_output": "the same colour"},
                    ],
                },
            ],
        },
        {"id": "helper", "model": "llama3.1:8b"},
    ],
    "testing": {"evaluation_model": "judge", "parallelism": 2, "timeout_seconds": 30},
}


def write(tmp_path: Path, document: Any, name: str = "app.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("document", "app_name"),
    [
        pytest.param(SPEC, "geo", id="bare form"),
        pytest.param(
            {
                "apiVersion": "app.aispec.org/v1alpha1",
                "kind": "AIApp",
                "metadata": {"name": "geo-crd", "namespace": "team-a"},
                "spec": SPEC,
            },
            "geo-crd",
            id="AIApp form, where metadata.name wins",
        ),
    ],
)
def test_an_aispec_file_in_either_form_yields_every_test_with_its_steps_in_order(
    tmp_path: Path, document: dict[str, Any], app_name: str
) -> None:
    plan = load_plan_from_aispec(write(tmp_path, document))
    assert plan.app_name == app_name
    assert plan.cases == (
        TestCase("guide", "capital", (Step("Capital of France?", '"Paris"'),)),
        TestCase(
            "guide",
            "colours",
            (Step("Pick a colour.", "a colour"), Step("Which one?", "the same colour")),
        ),
    )
    assert plan.settings == TestSettings("judge", 2, 30.0)


def test_the_gateway_config_yields_the_tests_and_the_revision_under_test(tmp_path: Path) -> None:
    config = {
        "app": {"namespace": "team-a", "name": "geo", "revision": "3f9c2a1b7d4e"},
        "spec": SPEC,
        "assistants": {
            "guide": {"upstream": {"base_url": "http://m:8000/v1", "model": "llama3.1:8b"}}
        },
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    plan = load_plan_from_gateway_config(path)
    assert (plan.namespace, plan.app_name, plan.revision) == ("team-a", "geo", "3f9c2a1b7d4e")
    assert [case.key for case in plan.cases] == ["guide/capital", "guide/colours"]


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        pytest.param({"name": "x"}, "assistants: must be a non-empty list", id="no assistants"),
        pytest.param(
            {"assistants": [{"model": "m", "tests": []}]},
            "assistants[0].name: required",
            id="an assistant without a name or id",
        ),
        pytest.param(
            {"assistants": [{"name": "a", "tests": [{"name": "t", "steps": []}]}]},
            "assistants[0].tests[0].steps: must be a non-empty list",
            id="a test without steps",
        ),
        pytest.param(
            {"assistants": [{"name": "a", "tests": [{"name": "t", "steps": [{"prompt": "p"}]}]}]},
            "assistants[0].tests[0].steps[0].expected_output: required string",
            id="a step without an expected output",
        ),
        pytest.param(
            {"assistants": [{"name": "a", "tests": [{"steps": [{"prompt": "p"}]}]}]},
            "assistants[0].tests[0].name: required string",
            id="a test without a name",
        ),
        pytest.param(
            {
                "assistants": [
                    {
                        "name": "a",
                        "tests": [
                            {"name": "t", "steps": [{"prompt": "p", "expected_output": "e"}]},
                            {"name": "t", "steps": [{"prompt": "q", "expected_output": "e"}]},
                        ],
                    }
                ]
            },
            "has two tests named 't'",
            id="two tests with one name",
        ),
        pytest.param(
            {"assistants": [{"name": "a"}], "testing": {"parallelism": 0}},
            "testing.parallelism: must be a whole number of at least 1",
            id="parallelism below one",
        ),
        pytest.param(["a", "list"], "must be a mapping", id="a document that is not a mapping"),
    ],
)
def test_a_malformed_file_is_rejected_with_the_field_and_the_fix(
    tmp_path: Path, document: Any, problem: str
) -> None:
    with pytest.raises(PlanError) as raised:
        load_plan_from_aispec(write(tmp_path, document))
    assert any(problem in line for line in raised.value.problems), raised.value.problems


def test_a_file_with_two_apps_is_rejected_because_one_run_drives_one_gateway(
    tmp_path: Path,
) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump_all([SPEC, SPEC]))
    with pytest.raises(PlanError, match="holds 2 documents"):
        load_plan_from_aispec(path)


def test_invalid_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nassistants: [\n  - oops: : :\n")
    with pytest.raises(PlanError, match=r"not valid YAML: line \d+"):
        load_plan_from_aispec(path)


def test_a_gateway_config_missing_the_app_is_rejected_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"spec": SPEC, "assistants": {}}))
    with pytest.raises(PlanError) as raised:
        load_plan_from_gateway_config(path)
    assert any(line.startswith("app:") for line in raised.value.problems)
