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
        {"name": "helper", "model": "llama3.1:8b"},
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


def assistant(**extra: Any) -> dict[str, Any]:
    return {"name": "a", "model": "llama3.1:8b", **extra}


def one_step(name: str = "t", **step: str) -> dict[str, Any]:
    return {"name": name, "steps": [step]}


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        pytest.param({"name": "x"}, "assistants: required field", id="no assistants"),
        pytest.param(
            {"name": "x", "assistants": [assistant(tests=[{"name": "t", "steps": []}])]},
            "assistants[0].tests[0].steps: list should have at least 1 item",
            id="a test without steps",
        ),
        pytest.param(
            {"name": "x", "assistants": [assistant(tests=[one_step(prompt="p")])]},
            "assistants[0].tests[0].steps[0].expected_output: required field",
            id="a step without an expected output",
        ),
        pytest.param(
            {
                "name": "x",
                "assistants": [
                    assistant(
                        tests=[
                            one_step(prompt="p", expected_output="e"),
                            one_step(prompt="q", expected_output="e"),
                        ]
                    )
                ],
            },
            "tests[1].name",
            id="two tests with one name",
        ),
        pytest.param(
            {"name": "x", "assistants": [assistant()], "testing": {"parallelism": 0}},
            "testing.parallelism: value should be greater than or equal to 1",
            id="parallelism below one",
        ),
    ],
)
def test_a_malformed_file_is_rejected_with_the_field_and_the_fix(
    tmp_path: Path, document: Any, problem: str
) -> None:
    with pytest.raises(PlanError) as raised:
        load_plan_from_aispec(write(tmp_path, document))

    # Each problem is located by file and line, as ``aiapp validate`` reports it.
    assert any(problem in line for line in raised.value.problems), raised.value.problems
    assert all(line.startswith(f"{tmp_path}/app.yaml:") for line in raised.value.problems)


def test_a_file_with_two_apps_is_rejected_because_one_run_drives_one_gateway(
    tmp_path: Path,
) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump_all([SPEC, {**SPEC, "name": "geo-two"}]))
    with pytest.raises(PlanError, match="holds 2 AIApps"):
        load_plan_from_aispec(path)


def test_invalid_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nassistants: [\n  - oops: : :\n")
    with pytest.raises(PlanError, match=r"bad.yaml:3: .*the YAML does not parse"):
        load_plan_from_aispec(path)


def test_models_beside_the_app_are_allowed_and_do_not_count_as_apps(tmp_path: Path) -> None:
    model = {
        "apiVersion": "model.aispec.org/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "llama3-1-8b"},
        "spec": {"servedName": "llama3.1:8b", "source": "llama3.1:8b", "runtime": "ollama"},
    }
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump_all([model, SPEC]))
    assert len(load_plan_from_aispec(path).cases) == 2


def test_an_invalid_spec_in_the_gateway_config_is_rejected_naming_the_field(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.json"
    spec = {**SPEC, "assistants": [{"name": "guide"}]}
    app = {"namespace": "team-a", "name": "geo"}
    path.write_text(json.dumps({"app": app, "spec": spec, "assistants": {}}))
    with pytest.raises(PlanError, match=r"spec\.assistants\[0\]\.model: required field"):
        load_plan_from_gateway_config(path)


def test_a_gateway_config_missing_the_app_is_rejected_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"spec": SPEC, "assistants": {}}))
    with pytest.raises(PlanError) as raised:
        load_plan_from_gateway_config(path)
    assert any(line.startswith("app:") for line in raised.value.problems)
