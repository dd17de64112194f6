"""Test cases: what ``aiapp test`` runs, read from an AISpec file or a gateway runtime config.

AISpec keeps tests beside the prompts, as ``assistants[].tests[]`` with ``name`` and
``steps[]{prompt, expected_output}``. This module turns either an AISpec document (bare or
wrapped in ``apiVersion/kind/metadata/spec``) or the gateway's ``config.json`` into a
``TestPlan``: the app's identity, its ``testing`` settings and one ``TestCase`` per test.

Domain words:

- *case*: one AISpec test of one assistant; its steps share one conversation.
- *step*: one prompt sent to the assistant and the output a judge expects of its answer.
- *plan*: every case of one app, plus what the runner needs to know about the app.

Problems are collected, not raised one at a time, and each names the field, the rule and the
fix, so a broken file is fixed in one pass. The runner and the reports never see raw dicts.
This module reads the spec with its own small accessor rather than ``aiapp.api.aispec``,
because the typed models were being written alongside it; the plan types stay the contract.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from aiapp.api.runtime import GatewayConfig


@dataclass(frozen=True)
class Step:
    """One prompt of a test and the output the judge expects of its answer."""

    prompt: str
    expected_output: str


@dataclass(frozen=True)
class TestCase:
    """One AISpec test: its steps run in order in one conversation with one assistant."""

    __test__ = False  # not a pytest class, despite its name

    assistant: str
    name: str
    steps: tuple[Step, ...]

    @property
    def key(self) -> str:
        return f"{self.assistant}/{self.name}"


@dataclass(frozen=True)
class TestSettings:
    """The app's ``spec.testing`` values that the runner uses; ``None`` means not set."""

    __test__ = False

    evaluation_model: str | None = None
    parallelism: int | None = None
    timeout_seconds: float | None = None


@dataclass(frozen=True)
class TestPlan:
    """Every test case of one app, with the app's identity and testing settings."""

    __test__ = False

    app_name: str
    namespace: str = ""
    revision: str = ""
    settings: TestSettings = field(default_factory=TestSettings)
    cases: tuple[TestCase, ...] = ()

    @property
    def assistants(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(case.assistant for case in self.cases))


class PlanError(Exception):
    """The file cannot be turned into a test plan; ``problems`` says every reason why."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{source}: cannot read the tests:\n{lines}")


def load_plan_from_aispec(path: Path) -> TestPlan:
    """Read the test plan of the one app in an AISpec YAML or JSON file.

    Args:
        path: an AISpec file in the bare or the ``app.aispec.org/v1alpha1`` ``AIApp`` form.

    Returns:
        The plan, with an empty revision: a file on disk has not been rolled out.

    Raises:
        PlanError: the file is unreadable, holds no app or several, or a test is malformed.
    """

    # Parse every YAML document, so a second app in the file is reported, not ignored.
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PlanError(source, [f"cannot read the file: {error.strerror}"]) from None
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        raise PlanError(source, [f"not valid YAML: {_yaml_where(error)}"]) from None

    # Exactly one app: ``aiapp test`` drives one gateway, which serves one app.
    if not documents:
        raise PlanError(source, ["the file holds no document; write one AISpec app"])
    if len(documents) > 1:
        raise PlanError(
            source,
            [
                f"the file holds {len(documents)} documents; aiapp test runs one app against "
                "one gateway, so put each app in its own file"
            ],
        )
    document = documents[0]
    if not isinstance(document, Mapping):
        raise PlanError(source, ["the document must be a mapping with an AISpec app"])

    # Unwrap the CRD form the way Helix does: all three keys make it a CRD.
    if all(key in document for key in ("apiVersion", "kind", "spec")):
        spec = document["spec"]
        if not isinstance(spec, Mapping):
            raise PlanError(source, ["spec: must be a mapping holding the AISpec app"])
        metadata = document.get("metadata")
        metadata = metadata if isinstance(metadata, Mapping) else {}
        name = metadata.get("name") or spec.get("name") or ""
        namespace = str(metadata.get("namespace") or "")
        return plan_from_spec(source, spec, app_name=str(name), namespace=namespace)
    return plan_from_spec(source, document, app_name=str(document.get("name") or ""))


def load_plan_from_gateway_config(path: Path) -> TestPlan:
    """Read the test plan from the gateway runtime config the operator rendered.

    The config carries the revision, so reports and the termination log can say which
    rollout was tested.
    """

    # Validate against the shared contract first; its errors name the fields.
    source = str(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PlanError(source, [f"cannot read the file: {error.strerror}"]) from None
    except json.JSONDecodeError as error:
        raise PlanError(
            source, [f"not valid JSON at line {error.lineno} column {error.colno}: {error.msg}"]
        ) from None
    try:
        config = GatewayConfig.model_validate(raw)
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(part) for part in issue['loc']) or '(top level)'}: {issue['msg']}"
            for issue in error.errors()
        ]
        raise PlanError(source, problems) from None

    # The spec inside is the AIApp spec as stored, so it reads like an AISpec document.
    return plan_from_spec(
        source,
        config.spec,
        app_name=config.app.name,
        namespace=config.app.namespace,
        revision=config.app.revision,
    )


def plan_from_spec(
    source: str,
    spec: Mapping[str, Any],
    *,
    app_name: str,
    namespace: str = "",
    revision: str = "",
) -> TestPlan:
    """Build a plan from an AISpec app spec (the mapping under ``spec`` in the CRD form)."""

    # Walk assistants and their tests, collecting every problem before failing.
    problems: list[str] = []
    cases: list[TestCase] = []
    assistants = spec.get("assistants")
    if not isinstance(assistants, list) or not assistants:
        problems.append("assistants: must be a non-empty list; add at least one assistant")
        assistants = []
    for index, assistant in enumerate(assistants):
        where = f"assistants[{index}]"
        if not isinstance(assistant, Mapping):
            problems.append(f"{where}: must be a mapping with a name, a model and tests")
            continue
        assistant_name = _assistant_name(assistant)
        if not assistant_name:
            problems.append(
                f"{where}.name: required to address the assistant through the gateway; add a name"
            )
            continue
        cases.extend(_read_tests(where, assistant_name, assistant.get("tests"), problems))

    # Two tests with one key would share a JUnit name and a line in every report.
    seen: set[str] = set()
    for case in cases:
        if case.key in seen:
            problems.append(
                f"tests: the assistant {case.assistant!r} has two tests named "
                f"{case.name!r}; give each test a distinct name"
            )
        seen.add(case.key)

    settings = _read_settings(spec.get("testing"), problems)
    if problems:
        raise PlanError(source, problems)
    return TestPlan(
        app_name=app_name or str(spec.get("name") or ""),
        namespace=namespace,
        revision=revision,
        settings=settings,
        cases=tuple(cases),
    )


def _assistant_name(assistant: Mapping[str, Any]) -> str:
    # The gateway serves each assistant under its name; an unnamed one falls back to its id.
    for key in ("name", "id"):
        value = assistant.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _read_tests(where: str, assistant: str, tests: Any, problems: list[str]) -> list[TestCase]:
    if tests is None:
        return []
    if not isinstance(tests, list):
        problems.append(f"{where}.tests: must be a list of {{name, steps}}")
        return []
    cases: list[TestCase] = []
    for test_index, test in enumerate(tests):
        test_where = f"{where}.tests[{test_index}]"
        if not isinstance(test, Mapping):
            problems.append(f"{test_where}: must be a mapping with a name and steps")
            continue
        name = test.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{test_where}.name: required string; name the test")
            name = ""
        steps = _read_steps(test_where, test.get("steps"), problems)
        if name and steps:
            cases.append(TestCase(assistant=assistant, name=name.strip(), steps=steps))
    return cases


def _read_steps(where: str, steps: Any, problems: list[str]) -> tuple[Step, ...]:
    if not isinstance(steps, list) or not steps:
        problems.append(
            f"{where}.steps: must be a non-empty list; add a step with a prompt and an "
            "expected_output"
        )
        return ()
    read: list[Step] = []
    for step_index, step in enumerate(steps):
        step_where = f"{where}.steps[{step_index}]"
        if not isinstance(step, Mapping):
            problems.append(f"{step_where}: must be a mapping with prompt and expected_output")
            continue
        prompt = step.get("prompt")
        expected = step.get("expected_output")
        ok = True
        if not isinstance(prompt, str) or not prompt.strip():
            problems.append(f"{step_where}.prompt: required string; write what the user asks")
            ok = False
        if not isinstance(expected, str) or not expected.strip():
            problems.append(
                f"{step_where}.expected_output: required string; describe the answer the "
                "judge should accept"
            )
            ok = False
        if ok:
            read.append(Step(prompt=str(prompt), expected_output=str(expected)))
    return tuple(read)


def _read_settings(testing: Any, problems: list[str]) -> TestSettings:
    # ``spec.testing`` is our extension; every key is optional and empty means "not set".
    if testing is None:
        return TestSettings()
    if not isinstance(testing, Mapping):
        problems.append("testing: must be a mapping (evaluation_model, parallelism, ...)")
        return TestSettings()
    model = testing.get("evaluation_model")
    if model is not None and not isinstance(model, str):
        problems.append("testing.evaluation_model: must be a string naming the judge model")
        model = None
    parallelism = testing.get("parallelism")
    if parallelism is not None and (
        isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1
    ):
        problems.append("testing.parallelism: must be a whole number of at least 1")
        parallelism = None
    timeout = testing.get("timeout_seconds")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        problems.append("testing.timeout_seconds: must be a number of seconds above 0")
        timeout = None
    return TestSettings(
        evaluation_model=model.strip() or None if isinstance(model, str) else None,
        parallelism=parallelism,
        timeout_seconds=float(timeout) if timeout is not None else None,
    )


def _yaml_where(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if mark is None:
        return str(problem)
    return f"line {mark.line + 1} column {mark.column + 1}: {problem}"
