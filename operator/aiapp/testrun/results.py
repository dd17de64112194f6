"""Results: what a test run found, as plain frozen values that every report reads.

The runner builds these; the reports (terminal, JSON, JUnit, Markdown, termination log) only
read them. An *outcome* is one of passed, failed (the judge said FAIL or gave no verdict),
error (no answer or no verdict could be had: HTTP error, timeout, bad response) and skipped
(a step after an error, since its conversation is broken). A test passes only when every step
passed; a run passes only when every test passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class StepResult:
    """One step: the answer the assistant gave, and the judge's verdict on it."""

    prompt: str
    expected_output: str
    outcome: Outcome
    reason: str
    answer: str = ""
    inference_seconds: float = 0.0
    evaluation_seconds: float = 0.0


@dataclass(frozen=True)
class TestResult:
    """One test: its steps in order, and the outcome they add up to."""

    __test__ = False  # not a pytest class, despite its name

    assistant: str
    name: str
    steps: tuple[StepResult, ...]
    seconds: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.assistant}/{self.name}"

    @property
    def outcome(self) -> Outcome:
        # An error outranks a failure: it says the verdict itself is missing.
        outcomes = {step.outcome for step in self.steps}
        if Outcome.ERROR in outcomes:
            return Outcome.ERROR
        if Outcome.FAILED in outcomes:
            return Outcome.FAILED
        return Outcome.PASSED

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def reason(self) -> str:
        """The first step that did not pass, and why; empty when the test passed."""
        for number, step in enumerate(self.steps, start=1):
            if step.outcome in (Outcome.FAILED, Outcome.ERROR):
                prefix = f"step {number}: " if len(self.steps) > 1 else ""
                return f"{prefix}{step.reason}"
        return ""


@dataclass(frozen=True)
class RunResult:
    """Every test of one app against one gateway, judged by one evaluation model."""

    app_name: str
    namespace: str
    revision: str
    gateway_url: str
    evaluation_model: str
    started_at: datetime
    finished_at: datetime
    tests: tuple[TestResult, ...]

    @property
    def passed(self) -> int:
        return sum(1 for test in self.tests if test.passed)

    @property
    def failed(self) -> int:
        return len(self.tests) - self.passed

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def failing(self) -> tuple[TestResult, ...]:
        return tuple(test for test in self.tests if not test.passed)
