"""Reports stay within their limits: the termination log fits 4 KiB and Markdown stays a table."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from aiapp.testrun.reports import TERMINATION_LIMIT_BYTES, render_markdown, termination_summary
from aiapp.testrun.results import Outcome, RunResult, StepResult, TestResult

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def failing_test(number: int, reason: str) -> TestResult:
    step = StepResult(
        prompt="Where is the café?",
        expected_output="Names it",
        outcome=Outcome.FAILED,
        reason=reason,
    )
    return TestResult(assistant="guide", name=f"test {number:04d}", steps=(step,))


def passing_test(name: str) -> TestResult:
    step = StepResult(prompt="p", expected_output="e", outcome=Outcome.PASSED, reason="ok")
    return TestResult(assistant="guide", name=name, steps=(step,))


def run_of(*tests: TestResult) -> RunResult:
    return RunResult(
        app_name="geo",
        namespace="team-a",
        revision="3f9c2a1b7d4e",
        gateway_url="http://127.0.0.1:1/v1",
        evaluation_model="judge",
        started_at=NOW,
        finished_at=NOW,
        tests=tests,
    )


@pytest.mark.parametrize(
    ("failing", "reason", "keeps_full_reasons", "omits"),
    [
        pytest.param(2, "says Lyon, not Paris", True, False, id="a few short reasons whole"),
        pytest.param(30, "é" * 400, False, False, id="many long reasons are shortened"),
        pytest.param(400, "x" * 50, False, True, id="too many names are counted, not listed"),
    ],
)
def test_the_termination_summary_is_valid_json_within_four_kib(
    failing: int, reason: str, keeps_full_reasons: bool, omits: bool
) -> None:
    run = run_of(passing_test("fine"), *(failing_test(n, reason) for n in range(failing)))
    text = termination_summary(run)
    assert len(text.encode("utf-8")) <= TERMINATION_LIMIT_BYTES

    summary = json.loads(text)
    assert (summary["passed"], summary["failed"], summary["revision"]) == (
        1,
        failing,
        "3f9c2a1b7d4e",
    )
    listed = summary["failing"]
    assert ("omitted" in summary) is omits
    assert len(listed) + summary.get("omitted", 0) == failing
    assert all(item.get("reason") == reason for item in listed) is keeps_full_reasons


def test_markdown_cells_escape_pipes_and_html_so_the_table_survives() -> None:
    run = run_of(failing_test(1, "answer had a | pipe and <b>tags</b>"))
    markdown = render_markdown(run)
    row = next(line for line in markdown.splitlines() if line.startswith("| FAIL"))
    assert row == (
        "| FAIL | guide | test 0001 | answer had a \\| pipe and &lt;b&gt;tags&lt;/b&gt; |"
    )
    assert "<details><summary>guide/test 0001: FAIL</summary>" in markdown


def test_an_all_passing_run_says_so_in_the_headline_and_folds_nothing() -> None:
    markdown = render_markdown(run_of(passing_test("a"), passing_test("b")))
    assert markdown.startswith("### AISpec tests for `geo`: all passed\n")
    assert "<details>" not in markdown
