"""Reports: one run's results as a terminal table, JSON, JUnit XML, Markdown and a summary.

Each writer reads a ``RunResult`` and nothing else. The JSON holds everything, answers
included; JUnit XML feeds CI test views (one suite per assistant, one case per test, FAIL as
a failure and no answer as an error); the Markdown fits a pull-request comment (a table, then
the failing conversations folded away); the termination summary is the compact JSON that a
test Job writes to its termination log, which Kubernetes truncates at 4 KiB, so this writer
shortens reasons and drops names until the document fits, and keeps it valid JSON.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Final

import click
from junitparser import Error, Failure, JUnitXml, TestSuite
from junitparser import TestCase as JUnitCase

from aiapp.testrun.results import Outcome, RunResult, StepResult, TestResult

TERMINATION_LIMIT_BYTES: Final = 4096

_MARKS: Final = {
    Outcome.PASSED: "PASS",
    Outcome.FAILED: "FAIL",
    Outcome.ERROR: "ERROR",
    Outcome.SKIPPED: "SKIP",
}
_COLORS: Final = {
    Outcome.PASSED: "green",
    Outcome.FAILED: "red",
    Outcome.ERROR: "red",
    Outcome.SKIPPED: "yellow",
}


def to_dict(run: RunResult) -> dict[str, Any]:
    """The whole run as JSON-ready data: the format of ``--json``."""
    return {
        "app": {"namespace": run.namespace, "name": run.app_name, "revision": run.revision},
        "gateway_url": run.gateway_url,
        "evaluation_model": run.evaluation_model,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat(),
        "passed": run.passed,
        "failed": run.failed,
        "total": len(run.tests),
        "tests": [_test_dict(test) for test in run.tests],
    }


def write_json(run: RunResult, path: Path) -> None:
    _write(path, json.dumps(to_dict(run), indent=2, ensure_ascii=False) + "\n")


def write_junit(run: RunResult, path: Path) -> None:
    """JUnit XML: a suite per assistant, a case per test, the conversation as system-out."""

    xml = JUnitXml(name=f"aiapp test {run.app_name}".strip())
    suites: dict[str, TestSuite] = {}
    for test in run.tests:
        # One suite per assistant, named so CI views group by app and assistant.
        suite = suites.get(test.assistant)
        if suite is None:
            name = f"{run.app_name}.{test.assistant}" if run.app_name else test.assistant
            suite = TestSuite(name)
            suite.add_property("evaluation_model", run.evaluation_model)
            if run.revision:
                suite.add_property("revision", run.revision)
            suites[test.assistant] = suite

        # The case's result element carries the first reason; the transcript has the rest.
        case = JUnitCase(test.name, classname=suite.name, time=round(test.seconds, 3))
        if test.outcome is Outcome.FAILED:
            case.result = [Failure(test.reason, type_="AssertionFailed")]
        elif test.outcome is Outcome.ERROR:
            case.result = [Error(test.reason, type_="NoAnswer")]
        case.system_out = _transcript(test)
        suite.add_testcase(case)

    # add_testcase keeps each suite's counts; the document's totals are summed here.
    for suite in suites.values():
        xml.add_testsuite(suite)
    xml.update_statistics()  # type: ignore[no-untyped-call]  # junitparser is partly typed
    path.parent.mkdir(parents=True, exist_ok=True)
    xml.write(str(path), pretty=True)


def render_markdown(run: RunResult) -> str:
    """A pull-request comment: the counts, a table of tests, then each failure's steps."""

    # Headline first: reviewers read the first line in notifications.
    status = "all passed" if run.ok else f"{run.failed} of {len(run.tests)} failed"
    title = f"`{run.app_name}`" if run.app_name else "the app"
    lines = [f"### AISpec tests for {title}: {status}", ""]
    facts = [f"{run.passed} passed", f"{run.failed} failed"]
    facts.append(f"judged by `{run.evaluation_model}`")
    if run.revision:
        facts.append(f"revision `{run.revision}`")
    lines += [" · ".join(facts), ""]

    # The table: one row per test, reasons kept to a line.
    lines += ["| | Assistant | Test | Reason |", "|---|---|---|---|"]
    for test in run.tests:
        reason = _md_cell(_shorten(test.reason, 200)) if test.reason else ""
        lines.append(
            f"| {_MARKS[test.outcome]} | {_md_cell(test.assistant)} | {_md_cell(test.name)} "
            f"| {reason} |"
        )

    # Failing conversations, folded, so the comment stays short.
    for test in run.failing:
        lines += ["", f"<details><summary>{_html(test.key)}: {_MARKS[test.outcome]}</summary>", ""]
        for number, step in enumerate(test.steps, start=1):
            lines += [
                f"**Step {number}** ({_MARKS[step.outcome]})",
                "",
                f"- Prompt: {_md_inline(step.prompt)}",
                f"- Expected: {_md_inline(step.expected_output)}",
                f"- Answer: {_md_inline(_shorten(step.answer, 600)) or '(none)'}",
                f"- Reason: {_md_inline(step.reason)}",
                "",
            ]
        lines.append("</details>")
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(run: RunResult, path: Path) -> None:
    _write(path, render_markdown(run))


def termination_summary(run: RunResult, limit: int = TERMINATION_LIMIT_BYTES) -> str:
    """Compact JSON for a termination log: counts, revision, failing tests and reasons.

    Shortens reasons, then drops failing entries (counting them in ``omitted``) until the
    UTF-8 encoding fits ``limit`` bytes.
    """

    failing = [{"test": test.key, "reason": test.reason} for test in run.failing]
    base: dict[str, Any] = {"passed": run.passed, "failed": run.failed}
    if run.revision:
        base["revision"] = run.revision

    # Try ever shorter reasons before giving up whole entries.
    for reason_limit in (300, 160, 80, 40, 0):
        kept = [
            {"test": item["test"], "reason": _shorten(item["reason"], reason_limit)}
            if reason_limit
            else {"test": item["test"]}
            for item in failing
        ]
        text = _compact({**base, "failing": kept})
        if len(text.encode("utf-8")) <= limit:
            return text

    # Still too long: keep as many names as fit and say how many were left out.
    kept = [{"test": _shorten(item["test"], 120)} for item in failing]
    while kept:
        kept.pop()
        text = _compact({**base, "failing": kept, "omitted": len(failing) - len(kept)})
        if len(text.encode("utf-8")) <= limit:
            return text
    return _compact({**base, "failing": [], "omitted": len(failing)})


def write_termination_log(run: RunResult, path: Path) -> None:
    _write(path, termination_summary(run))


def print_table(run: RunResult, color: bool | None = None) -> None:
    """The terminal view: one line per test, then the counts."""

    # Fit the reason column to the terminal; names keep their full width.
    width = shutil.get_terminal_size((120, 24)).columns
    rows = [(_MARKS[test.outcome], test.assistant, test.name, test.reason) for test in run.tests]
    assistant_width = max([len("ASSISTANT"), *(len(row[1]) for row in rows)])
    name_width = max([len("TEST"), *(len(row[2]) for row in rows)])
    reason_width = max(width - (6 + assistant_width + name_width + 6), 30)

    header = f"{'RESULT':<6}  {'ASSISTANT':<{assistant_width}}  {'TEST':<{name_width}}  REASON"
    click.echo(header, color=color)
    for test, (mark, assistant, name, reason) in zip(run.tests, rows, strict=True):
        styled = click.style(f"{mark:<6}", fg=_COLORS[test.outcome])
        line = f"{styled}  {assistant:<{assistant_width}}  {name:<{name_width}}  "
        click.echo(line + _shorten(reason, reason_width), color=color)

    # The closing count line is what a reader of CI logs looks for.
    summary = (
        f"{len(run.tests)} tests: {run.passed} passed, {run.failed} failed "
        f"(judged by {run.evaluation_model})"
    )
    click.echo(click.style(summary, bold=True, fg="green" if run.ok else "red"), color=color)


def _test_dict(test: TestResult) -> dict[str, Any]:
    return {
        "assistant": test.assistant,
        "name": test.name,
        "outcome": test.outcome.value,
        "reason": test.reason,
        "seconds": round(test.seconds, 3),
        "steps": [_step_dict(step) for step in test.steps],
    }


def _step_dict(step: StepResult) -> dict[str, Any]:
    return {
        "prompt": step.prompt,
        "expected_output": step.expected_output,
        "answer": step.answer,
        "outcome": step.outcome.value,
        "reason": step.reason,
        "inference_seconds": round(step.inference_seconds, 3),
        "evaluation_seconds": round(step.evaluation_seconds, 3),
    }


def _transcript(test: TestResult) -> str:
    parts = []
    for number, step in enumerate(test.steps, start=1):
        parts.append(
            f"step {number} [{step.outcome.value}]\n"
            f"  prompt: {step.prompt}\n"
            f"  expected: {step.expected_output}\n"
            f"  answer: {step.answer}\n"
            f"  reason: {step.reason}"
        )
    return "\n".join(parts)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _md_cell(text: str) -> str:
    return _md_inline(text).replace("|", "\\|")


def _md_inline(text: str) -> str:
    # One line, with HTML-looking text shown rather than interpreted by the comment renderer.
    return _html(" ".join(text.split()))


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _compact(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
