"""``aiapp test``: run an app's AISpec tests against its gateway and write the reports.

Used from a laptop or CI against any gateway URL, and by the operator's test Jobs against the
app's own gateway (with ``--config`` pointing at the rendered runtime config and
``--termination-log`` at the container's termination log). Exit status: 0 when every test
passed, 1 when any failed or errored, 2 when the command was used wrongly (bad flags, a file
that holds no usable tests, no evaluation model chosen, a report that cannot be written).

The evaluation model comes from ``--evaluation-model``, else the app's
``testing.evaluation_model``, else ``AIAPP_EVALUATION_MODEL`` (the operator's setting). With
none of them the command stops: judging with whatever model a server lists first, as Helix
does, makes results depend on the server's ordering.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import click

from aiapp.testrun import reports
from aiapp.testrun.cases import (
    PlanError,
    TestPlan,
    load_plan_from_aispec,
    load_plan_from_gateway_config,
)
from aiapp.testrun.results import RunResult
from aiapp.testrun.running import Endpoint, RunSettings, normalize_base_url, run_plan

EVALUATION_MODEL_ENV = "AIAPP_EVALUATION_MODEL"
GATEWAY_URL_ENV = "AIAPP_GATEWAY_URL"
DEFAULT_API_KEY_ENV = "AIAPP_API_KEY"
DEFAULT_PARALLELISM = 4
DEFAULT_TIMEOUT_SECONDS = 120.0

_existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)
_output_file = click.Path(dir_okay=False, path_type=Path)


class UsageProblem(click.UsageError):
    """A usage error (exit 2) whose message already names the flag or field and the fix."""


@dataclass(frozen=True)
class ReportPaths:
    json: Path | None
    junit: Path | None
    markdown: Path | None
    termination_log: Path | None


@click.command("test")
@click.option("-f", "--file", "file", type=_existing_file, help="AISpec file (bare or AIApp form).")
@click.option(
    "--config",
    type=_existing_file,
    help="Gateway runtime config JSON (config.json) instead of an AISpec file.",
)
@click.option(
    "--url",
    envvar=GATEWAY_URL_ENV,
    help=f"Gateway base URL, with or without /v1 [env {GATEWAY_URL_ENV}].",
)
@click.option(
    "--api-key-env",
    metavar="NAME",
    help=f"Env var holding the gateway's API key [default: {DEFAULT_API_KEY_ENV}, if set].",
)
@click.option(
    "--evaluation-model",
    help=f"Judge model [default: spec testing.evaluation_model, then env {EVALUATION_MODEL_ENV}].",
)
@click.option("--judge-url", help="OpenAI-compatible base URL of the judge [default: --url].")
@click.option(
    "--judge-api-key-env",
    metavar="NAME",
    help="Env var holding the judge's API key [default: the gateway's key without --judge-url].",
)
@click.option(
    "--parallel",
    type=click.IntRange(min=1),
    help=f"Tests run at once [default: spec testing.parallelism, else {DEFAULT_PARALLELISM}].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds each model call may take [default: spec testing.timeout_seconds, else 120].",
)
@click.option(
    "--assistant",
    "assistants",
    multiple=True,
    metavar="NAME",
    help="Run only this assistant's tests (repeatable).",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write results.json, junit.xml and summary.md here.",
)
@click.option("--junit", "junit_path", type=_output_file, help="Write JUnit XML here.")
@click.option("--json", "json_path", type=_output_file, help="Write the full JSON results here.")
@click.option(
    "--markdown", "markdown_path", type=_output_file, help="Write a Markdown summary here."
)
@click.option(
    "--termination-log",
    type=_output_file,
    help="Write a compact JSON summary (at most 4 KiB) here, e.g. /dev/termination-log.",
)
def test(
    file: Path | None,
    config: Path | None,
    url: str | None,
    api_key_env: str | None,
    evaluation_model: str | None,
    judge_url: str | None,
    judge_api_key_env: str | None,
    parallel: int | None,
    timeout: float | None,
    assistants: tuple[str, ...],
    report_dir: Path | None,
    junit_path: Path | None,
    json_path: Path | None,
    markdown_path: Path | None,
    termination_log: Path | None,
) -> None:
    """Run every AISpec test of an app against its gateway, judged by an evaluation model."""

    # Read the tests first: a broken file is the most likely mistake and costs no calls.
    plan = _load_plan(file, config)
    plan = _select_assistants(plan, assistants)
    if not plan.cases:
        raise UsageProblem(
            "the app has no tests: add assistants[].tests[] with a name and steps "
            "(prompt, expected_output)"
        )

    # Settle every setting before the first call, so usage errors never follow a partial run.
    settings = _run_settings(
        plan,
        url=url,
        api_key_env=api_key_env,
        evaluation_model=evaluation_model,
        judge_url=judge_url,
        judge_api_key_env=judge_api_key_env,
        parallel=parallel,
        timeout=timeout,
    )
    paths = _report_paths(report_dir, junit_path, json_path, markdown_path, termination_log)

    # Run, then report in every requested form; the exit status follows the outcome.
    click.echo(
        f"Running {len(plan.cases)} tests of {plan.app_name or 'the app'} against "
        f"{settings.gateway.base_url} ({settings.parallelism} at a time, judged by "
        f"{settings.evaluation_model})",
        err=True,
    )
    run = asyncio.run(run_plan(plan, settings))
    reports.print_table(run)
    _write_reports(run, paths)
    raise SystemExit(0 if run.ok else 1)


def _load_plan(file: Path | None, config: Path | None) -> TestPlan:
    if file is not None and config is not None:
        raise UsageProblem("give either -f/--file or --config, not both")
    if file is None and config is None:
        raise UsageProblem(
            "say which tests to run: -f/--file an AISpec file, or --config a gateway config.json"
        )
    try:
        if config is not None:
            return load_plan_from_gateway_config(config)
        if file is not None:
            return load_plan_from_aispec(file)
    except PlanError as error:
        raise UsageProblem(str(error)) from None
    raise AssertionError("unreachable: one of file and config is set")


def _select_assistants(plan: TestPlan, wanted: tuple[str, ...]) -> TestPlan:
    if not wanted:
        return plan
    unknown = [name for name in wanted if name not in plan.assistants]
    if unknown:
        known = ", ".join(plan.assistants) or "none with tests"
        raise UsageProblem(
            f"--assistant {unknown[0]!r}: the app has no assistant with tests by that name; "
            f"choose from: {known}"
        )
    cases = tuple(case for case in plan.cases if case.assistant in wanted)
    return TestPlan(
        app_name=plan.app_name,
        namespace=plan.namespace,
        revision=plan.revision,
        settings=plan.settings,
        cases=cases,
    )


def _run_settings(
    plan: TestPlan,
    *,
    url: str | None,
    api_key_env: str | None,
    evaluation_model: str | None,
    judge_url: str | None,
    judge_api_key_env: str | None,
    parallel: int | None,
    timeout: float | None,
) -> RunSettings:

    # The gateway URL has no sensible default: guessing one would test the wrong app.
    if not url or not url.strip():
        raise UsageProblem(f"--url: required; give the gateway's URL or set {GATEWAY_URL_ENV}")
    for flag, value in (("--url", url), ("--judge-url", judge_url)):
        if value is not None and not value.strip().startswith(("http://", "https://")):
            raise UsageProblem(f"{flag}: {value!r} is not an http(s) URL; write http://host:port")

    # An explicitly named key variable must exist; the default one is optional. The gateway's
    # key goes to the judge only when the judge is the gateway, never to another host.
    gateway_key = _api_key("--api-key-env", api_key_env)
    judge_key = gateway_key if judge_url is None else None
    if judge_api_key_env is not None:
        judge_key = _api_key("--judge-api-key-env", judge_api_key_env)

    # The judge model: flag, then the app's setting, then the operator's; never a guess.
    model = (
        (evaluation_model or "").strip()
        or plan.settings.evaluation_model
        or os.environ.get(EVALUATION_MODEL_ENV, "").strip()
    )
    if not model:
        raise UsageProblem(
            "--evaluation-model: required; name the judge model with --evaluation-model, "
            f"testing.evaluation_model in the app, or env {EVALUATION_MODEL_ENV}"
        )

    gateway = Endpoint(normalize_base_url(url), gateway_key)
    judge = Endpoint(normalize_base_url(judge_url), judge_key) if judge_url else gateway
    return RunSettings(
        gateway=gateway,
        judge=judge,
        evaluation_model=model,
        parallelism=parallel or plan.settings.parallelism or DEFAULT_PARALLELISM,
        timeout_seconds=timeout or plan.settings.timeout_seconds or DEFAULT_TIMEOUT_SECONDS,
    )


def _api_key(flag: str, name: str | None) -> str | None:
    if name is None:
        return os.environ.get(DEFAULT_API_KEY_ENV) or None
    value = os.environ.get(name)
    if not value:
        raise UsageProblem(
            f"{flag} {name}: that environment variable is not set or empty; export it "
            "with the API key, or leave the flag out"
        )
    return value


def _report_paths(
    report_dir: Path | None,
    junit_path: Path | None,
    json_path: Path | None,
    markdown_path: Path | None,
    termination_log: Path | None,
) -> ReportPaths:
    # An explicit path wins over the report directory's file of the same kind.
    if report_dir is not None:
        json_path = json_path or report_dir / "results.json"
        junit_path = junit_path or report_dir / "junit.xml"
        markdown_path = markdown_path or report_dir / "summary.md"
    return ReportPaths(json_path, junit_path, markdown_path, termination_log)


def _write_reports(run: RunResult, paths: ReportPaths) -> None:
    writers = (
        ("--json", paths.json, reports.write_json),
        ("--junit", paths.junit, reports.write_junit),
        ("--markdown", paths.markdown, reports.write_markdown),
        ("--termination-log", paths.termination_log, reports.write_termination_log),
    )
    for flag, path, write in writers:
        if path is None:
            continue
        try:
            write(run, path)
        except OSError as error:
            raise UsageProblem(
                f"{flag} {path}: cannot write the report ({error.strerror}); choose a writable path"
            ) from None
