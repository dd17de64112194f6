"""Test cases: what ``aiapp test`` runs, read from an AISpec file or a gateway runtime config.

AISpec keeps tests beside the prompts, as ``assistants[].tests[]`` with ``name`` and
``steps[]{prompt, expected_output}``. This module validates either an AISpec file (bare or
``AIApp`` form, read by ``aiapp.api.documents``) or the gateway's ``config.json`` (whose
``spec`` goes through ``aiapp.api.aispec.parse_app``) and turns it into a ``TestPlan``: the
app's identity, its ``testing`` settings and one ``TestCase`` per test.

Domain words:

- *case*: one AISpec test of one assistant; its steps share one conversation.
- *step*: one prompt sent to the assistant and the output a judge expects of its answer.
- *plan*: every case of one app, plus what the runner needs to know about the app.

The API layer's rules apply unchanged, so ``aiapp test`` refuses exactly what ``aiapp
validate`` refuses, with the same located messages. The runner and the reports see only the
small frozen plan types below, not the API models.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from aiapp.api.aispec import AIApp, AISpecError, parse_app
from aiapp.api.documents import load_documents
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
        path: an AISpec file in the bare or the ``app.aispec.org/v1alpha1`` ``AIApp`` form;
            Model documents beside the app are allowed and ignored.

    Returns:
        The plan, with an empty revision: a file on disk has not been rolled out.

    Raises:
        PlanError: the file is unreadable or invalid, or holds no app or several.
    """

    # Validate with the API layer; warnings are for ``aiapp validate`` and do not block tests.
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PlanError(source, [f"cannot read the file: {error}"]) from None
    apps, _, problems = load_documents(text, path.parent)
    errors = [problem.format(source) for problem in problems if not problem.warning]
    if errors:
        raise PlanError(source, errors)

    # Exactly one app: ``aiapp test`` drives one gateway, which serves one app.
    if len(apps) != 1:
        raise PlanError(
            source,
            [
                f"the file holds {len(apps)} AIApps; aiapp test runs one app against one "
                "gateway, so put each app in its own file"
            ],
        )
    return plan_from_app(apps[0])


def load_plan_from_gateway_config(path: Path) -> TestPlan:
    """Read the test plan from the gateway runtime config the operator rendered.

    The config carries the revision, so reports and the termination log can say which
    rollout was tested.
    """

    # Validate against the shared contract first; its errors name the fields.
    source = str(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise PlanError(source, [f"cannot read the file: {error}"]) from None
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

    # The spec inside is the AIApp spec as the API server stored it.
    try:
        app = parse_app(config.app_body())
    except AISpecError as error:
        raise PlanError(source, [str(issue) for issue in error.issues]) from None
    return plan_from_app(app, revision=config.app.revision)


def plan_from_app(app: AIApp, revision: str = "") -> TestPlan:
    """The plan of a validated app: every test of every assistant, in the file's order."""
    cases = tuple(
        TestCase(
            assistant=assistant.name,
            name=test.name,
            steps=tuple(Step(step.prompt, step.expected_output) for step in test.steps),
        )
        for assistant in app.spec.assistants
        for test in assistant.tests
    )
    testing = app.spec.testing
    return TestPlan(
        app_name=app.metadata.name,
        namespace=app.metadata.namespace,
        revision=revision,
        settings=TestSettings(
            evaluation_model=testing.evaluation_model.strip() or None,
            parallelism=testing.parallelism,
            timeout_seconds=float(testing.timeout_seconds),
        ),
        cases=cases,
    )
