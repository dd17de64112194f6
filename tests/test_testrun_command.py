"""``aiapp test`` runs an app's tests against an OpenAI-compatible server and reports them.

The server is ``judge_double`` on 127.0.0.1: it answers the app's prompts from scripts and
judges answers in the PASS/FAIL protocol, passing those that mention the "quoted" terms of
the expected output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from junitparser import Error, Failure, JUnitXml

from aiapp.cli import main
from doubles.judge_double import Fails, JudgeDouble, Messages, Rendezvous, Script, Slow

pytestmark = pytest.mark.unit

JUDGE = "judge-double"
API_KEY = "sk-double-not-a-real-key-7f3a"


def previous_colour(messages: Messages) -> str:
    """Answers from the conversation: only a carried history lets it recall the colour."""
    earlier = [m["content"] for m in messages if m.get("role") == "assistant"]
    return f"I picked {earlier[-1]}." if earlier else "I have not picked a colour yet."


SCRIPTS: dict[str, Script] = {
    "What is the capital of France?": "The capital of France is Paris.",
    "What is the capital of Australia?": (
        "<think>The capital is Canberra, but people say Sydney.</think>It is Sydney."
    ),
    "Tell me a joke.": Fails(500, "CUDA out of memory"),
    "Summarise War and Peace.": Slow(),
    "Pick a colour and say only its name.": "Teal",
    "Which colour did you pick?": previous_colour,
    "Say anything.": "Anything.",
}


def step(prompt: str, expected: str) -> dict[str, str]:
    return {"prompt": prompt, "expected_output": expected}


def case(name: str, *steps: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "steps": list(steps)}


def app(*tests: dict[str, Any], assistant: str = "guide", **extra: Any) -> dict[str, Any]:
    assistants = [{"name": assistant, "model": "llama3.1:8b", "tests": list(tests)}]
    return {"name": "geo", "assistants": assistants, **extra}


PASSING = case("france", step("What is the capital of France?", 'Names "Paris".'))
FAILING = case("australia", step("What is the capital of Australia?", 'Names "Canberra".'))
ERRORING = case("joke", step("Tell me a joke.", 'Says "knock knock".'))
SLOW = case("summary", step("Summarise War and Peace.", 'Mentions "Natasha".'))
MULTI_STEP = case(
    "colours",
    step("Pick a colour and say only its name.", 'Names a colour, "Teal".'),
    step("Which colour did you pick?", 'Says it picked "Teal".'),
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The command reads these; a developer's shell must not decide a test's outcome.
    for name in ("AIAPP_EVALUATION_MODEL", "AIAPP_GATEWAY_URL", "AIAPP_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def double() -> Iterator[JudgeDouble]:
    with JudgeDouble(dict(SCRIPTS), judge_model=JUDGE).serve() as served:
        yield served


def write_app(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def run_test(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["test", *args], env=env, catch_exceptions=False)


def run_app(tmp_path: Path, double: JudgeDouble, document: dict[str, Any], *args: str) -> Result:
    path = write_app(tmp_path, document)
    return run_test("-f", str(path), "--url", double.base_url, "--evaluation-model", JUDGE, *args)


def results(tmp_path: Path, result: Result) -> dict[str, Any]:
    path = tmp_path / "out" / "results.json"
    assert path.exists(), result.output
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize(
    ("test", "outcome", "reason"),
    [
        pytest.param(PASSING, "passed", "", id="an answer the judge accepts passes"),
        pytest.param(
            FAILING,
            "failed",
            "does not mention Canberra",
            id="an answer whose right idea sat only in its think block fails",
        ),
        pytest.param(
            ERRORING,
            "error",
            "HTTP 500",
            id="a server error is an error with the server's message",
        ),
        pytest.param(
            SLOW, "error", "no answer within 0.5s", id="a call past the timeout is an error"
        ),
    ],
)
def test_each_test_gets_an_outcome_and_a_cause_and_only_all_passing_exits_zero(
    tmp_path: Path, double: JudgeDouble, test: dict[str, Any], outcome: str, reason: str
) -> None:
    result = run_app(
        tmp_path, double, app(test), "--timeout", "0.5", "--report-dir", str(tmp_path / "out")
    )
    (reported,) = results(tmp_path, result)["tests"]
    assert reported["outcome"] == outcome
    assert reason in reported["reason"]
    assert result.exit_code == (0 if outcome == "passed" else 1), result.output


def test_a_server_error_reports_the_servers_own_message(
    tmp_path: Path, double: JudgeDouble
) -> None:
    result = run_app(tmp_path, double, app(ERRORING), "--report-dir", str(tmp_path / "out"))
    (reported,) = results(tmp_path, result)["tests"]
    assert "CUDA out of memory" in reported["reason"]


def test_the_second_step_of_a_test_sees_the_first_answer(
    tmp_path: Path, double: JudgeDouble
) -> None:
    result = run_app(tmp_path, double, app(MULTI_STEP))
    assert result.exit_code == 0, result.output

    # The second call carried the whole conversation, the first answer included.
    second = double.app_requests[1]["messages"]
    assert [(m["role"], m["content"]) for m in second] == [
        ("user", "Pick a colour and say only its name."),
        ("assistant", "Teal"),
        ("user", "Which colour did you pick?"),
    ]


def test_a_step_without_an_answer_skips_the_rest_of_its_conversation(
    tmp_path: Path, double: JudgeDouble
) -> None:
    broken = case("broken", ERRORING["steps"][0], step("Which colour did you pick?", '"Teal"'))
    result = run_app(tmp_path, double, app(broken), "--report-dir", str(tmp_path / "out"))
    (reported,) = results(tmp_path, result)["tests"]
    assert [s["outcome"] for s in reported["steps"]] == ["error", "skipped"]
    assert reported["reason"].startswith("step 1: the assistant gave no answer")
    assert result.exit_code == 1
    assert len(double.app_requests) == 1


@pytest.mark.parametrize(
    ("style", "judge_fails", "outcome", "reason"),
    [
        pytest.param("decorated", False, "passed", "", id="a reasoning judge in Markdown"),
        pytest.param("plain", True, "error", "the judge gave no verdict: HTTP 503"),
    ],
)
def test_the_judges_reply_or_its_failure_decides_the_step(
    tmp_path: Path, style: str, judge_fails: bool, outcome: str, reason: str
) -> None:
    judge = JudgeDouble(dict(SCRIPTS), judge_model=JUDGE, judge_style=style)
    judge.judge_fails = judge_fails
    with judge.serve():
        result = run_app(tmp_path, judge, app(PASSING), "--report-dir", str(tmp_path / "out"))
    (reported,) = results(tmp_path, result)["tests"]
    assert (reported["outcome"], result.exit_code) == (outcome, 0 if outcome == "passed" else 1)
    assert reason in reported["reason"]


def test_a_judge_reply_without_a_verdict_fails_the_step(
    tmp_path: Path, double: JudgeDouble
) -> None:
    vague = case("vague", step("Say anything.", "Something sensible."))
    result = run_app(tmp_path, double, app(vague), "--report-dir", str(tmp_path / "out"))
    (reported,) = results(tmp_path, result)["tests"]
    assert reported["outcome"] == "failed"
    assert "no PASS or FAIL verdict" in reported["reason"]
    assert result.exit_code == 1


def test_tests_run_in_parallel_up_to_the_limit(tmp_path: Path) -> None:
    # Each pair only answers once both of its calls are in flight together, so the run can
    # finish only if two tests run at once; the double counts how many ever ran together.
    scripts: dict[str, Script] = {
        f"Prompt {n}?": Rendezvous(group=f"pair{n // 2}", size=2, answer='Done "ok"')
        for n in range(4)
    }
    tests = [case(f"t{n}", step(f"Prompt {n}?", 'Says "ok".')) for n in range(4)]
    with JudgeDouble(scripts, judge_model=JUDGE).serve() as double:
        result = run_app(tmp_path, double, app(*tests), "--parallel", "2")
    assert result.exit_code == 0, result.output
    assert double.peak_in_flight == 2


@pytest.mark.parametrize(
    ("judge_args", "judge_authorization"),
    [
        pytest.param([], None, id="without a judge key the gateway's key stays home"),
        pytest.param(
            ["--judge-api-key-env", "JUDGE_KEY"], "Bearer sk-judge", id="with its own judge key"
        ),
    ],
)
def test_a_separate_judge_url_gets_every_verdict_request_and_only_its_own_key(
    tmp_path: Path, judge_args: list[str], judge_authorization: str | None
) -> None:
    with (
        JudgeDouble(dict(SCRIPTS), judge_model=JUDGE, api_key=API_KEY).serve() as gateway,
        JudgeDouble({}, judge_model=JUDGE).serve() as judge,
    ):
        path = write_app(tmp_path, app(PASSING))
        result = run_test(
            "-f", str(path), "--url", gateway.base_url, "--evaluation-model", JUDGE,
            "--api-key-env", "GEO_KEY", "--judge-url", judge.base_url, *judge_args,
            env={"GEO_KEY": API_KEY, "JUDGE_KEY": "sk-judge"},
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (len(gateway.judge_requests), len(judge.judge_requests)) == (0, 1)
    assert judge.judge_requests[0]["temperature"] == 0.0
    assert judge.authorizations == [judge_authorization]


def test_every_report_format_describes_the_same_run(tmp_path: Path, double: JudgeDouble) -> None:
    out = tmp_path / "out"
    result = run_app(
        tmp_path,
        double,
        app(PASSING, FAILING, ERRORING, MULTI_STEP),
        "--report-dir",
        str(out),
        "--termination-log",
        str(tmp_path / "termination-log"),
    )
    assert result.exit_code == 1

    # JSON: counts and every test in the file's order.
    data = json.loads((out / "results.json").read_text())
    assert (data["passed"], data["failed"], data["total"]) == (2, 2, 4)
    assert [t["name"] for t in data["tests"]] == ["france", "australia", "joke", "colours"]
    assert data["evaluation_model"] == JUDGE

    # JUnit: parses with a JUnit library; FAIL is a failure, no answer an error.
    xml = JUnitXml.fromfile(str(out / "junit.xml"))
    suites = list(xml)
    assert [suite.name for suite in suites] == ["geo.guide"]
    cases = {c.name: c for c in suites[0]}
    assert (suites[0].tests, suites[0].failures, suites[0].errors) == (4, 1, 1)
    assert cases["france"].is_passed
    assert isinstance(cases["australia"].result[0], Failure)
    assert "Canberra" in (cases["australia"].result[0].message or "")
    assert isinstance(cases["joke"].result[0], Error)
    assert "I picked Teal." in (cases["colours"].system_out or "")

    # Markdown: a headline, a table row per test, the failures folded with their steps.
    markdown = (out / "summary.md").read_text()
    assert markdown.startswith("### AISpec tests for `geo`: 2 of 4 failed")
    assert "| FAIL | guide | australia |" in markdown
    assert "| PASS | guide | colours |" in markdown
    assert "<summary>guide/joke: ERROR</summary>" in markdown
    assert "&lt;think&gt;" not in markdown  # the stripped reasoning stays out of the comment

    # Termination log: compact JSON with the failing names and reasons.
    summary = json.loads((tmp_path / "termination-log").read_text())
    assert (summary["passed"], summary["failed"]) == (2, 2)
    assert [f["test"] for f in summary["failing"]] == ["guide/australia", "guide/joke"]

    # Terminal: a line per test and the closing count.
    assert "4 tests: 2 passed, 2 failed" in result.stdout
    assert "FAIL    guide" in result.stdout


def test_the_api_key_is_sent_to_the_server_but_never_written_anywhere(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with JudgeDouble(dict(SCRIPTS), judge_model=JUDGE, api_key=API_KEY).serve() as double:
        path = write_app(tmp_path, app(PASSING, ERRORING))
        result = run_test(
            "-f", str(path), "--url", double.base_url, "--evaluation-model", JUDGE,
            "--api-key-env", "GEO_KEY", "--report-dir", str(out),
            "--termination-log", str(out / "termination-log"),
            env={"GEO_KEY": API_KEY},
        )  # fmt: skip
    assert result.exit_code == 1  # the joke errors; the key itself was accepted
    assert json.loads((out / "results.json").read_text())["passed"] == 1
    written = [result.output, *(p.read_text() for p in out.iterdir())]
    assert not any(API_KEY in text for text in written)


def test_the_gateway_config_run_reports_the_revision_it_tested(
    tmp_path: Path, double: JudgeDouble
) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "app": {"namespace": "team-a", "name": "geo", "revision": "3f9c2a1b7d4e"},
                "spec": app(FAILING, testing={"evaluation_model": JUDGE}),
                "assistants": {},
            }
        )
    )
    log = tmp_path / "termination-log"
    result = run_test(
        "--config", str(config), "--url", double.base_url, "--termination-log", str(log)
    )
    assert result.exit_code == 1
    summary = json.loads(log.read_text())
    assert summary["revision"] == "3f9c2a1b7d4e"
    assert "does not mention Canberra" in summary["failing"][0]["reason"]


def test_the_evaluation_model_can_come_from_the_operators_environment(
    tmp_path: Path, double: JudgeDouble
) -> None:
    path = write_app(tmp_path, app(PASSING))
    result = run_test(
        "-f", str(path), "--url", double.base_url, env={"AIAPP_EVALUATION_MODEL": JUDGE}
    )
    assert result.exit_code == 0, result.output
    assert double.judge_requests[0]["model"] == JUDGE


def test_only_the_chosen_assistants_tests_run(tmp_path: Path, double: JudgeDouble) -> None:
    document = {
        "name": "geo",
        "assistants": [
            {"name": "guide", "model": "llama3.1:8b", "tests": [PASSING]},
            {"name": "jester", "model": "llama3.1:8b", "tests": [ERRORING]},
        ],
    }
    result = run_app(tmp_path, double, document, "--assistant", "guide")
    assert result.exit_code == 0, result.output
    assert {body["model"] for body in double.app_requests} == {"guide"}


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        pytest.param(
            ["-f", "{app}", "--url", "{url}"],
            {},
            "--evaluation-model: required",
            id="no evaluation model anywhere",
        ),
        pytest.param(
            ["-f", "{app}", "--evaluation-model", JUDGE],
            {},
            "--url: required",
            id="no gateway url",
        ),
        pytest.param(
            ["-f", "{app}", "--url", "localhost:8080", "--evaluation-model", JUDGE],
            {},
            "is not an http(s) URL",
            id="a url without a scheme",
        ),
        pytest.param(
            ["--url", "{url}", "--evaluation-model", JUDGE],
            {},
            "-f/--file an AISpec file, or --config",
            id="no file",
        ),
        pytest.param(
            ["-f", "{app}", "--config", "{app}", "--url", "{url}"],
            {},
            "not both",
            id="both a file and a config",
        ),
        pytest.param(
            ["-f", "{app}", "--url", "{url}", "--evaluation-model", JUDGE, "--assistant", "x"],
            {},
            "--assistant 'x'",
            id="an assistant the app does not have",
        ),
        pytest.param(
            [
                "-f",
                "{app}",
                "--url",
                "{url}",
                "--evaluation-model",
                JUDGE,
                "--api-key-env",
                "NOT_SET_ANYWHERE",
            ],
            {},
            "--api-key-env NOT_SET_ANYWHERE: that environment variable is not set",
            id="an api key variable that is not set",
        ),  # fmt: skip
        pytest.param(
            ["-f", "{app}", "--url", "{url}", "--evaluation-model", JUDGE, "--parallel", "0"],
            {},
            "--parallel",
            id="parallelism of zero",
        ),
        pytest.param(
            ["-f", "{empty}", "--url", "{url}", "--evaluation-model", JUDGE],
            {},
            "the app has no tests",
            id="an app without tests",
        ),
        pytest.param(
            ["-f", "{broken}", "--url", "{url}", "--evaluation-model", JUDGE],
            {},
            "assistants[0].tests[0].steps[0].prompt: required field",
            id="a step without a prompt",
        ),
    ],
)
def test_usage_errors_exit_two_with_a_message_naming_the_flag_or_field(
    tmp_path: Path, double: JudgeDouble, args: list[str], env: dict[str, str], message: str
) -> None:
    files = {
        "{app}": str(write_app(tmp_path, app(PASSING))),
        "{empty}": str(tmp_path / "empty.yaml"),
        "{broken}": str(tmp_path / "broken.yaml"),
        "{url}": double.base_url,
    }
    (tmp_path / "empty.yaml").write_text(yaml.safe_dump(app()))
    broken = app(case("t", {"expected_output": "e"}))
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    result = run_test(*(files.get(arg, arg) for arg in args), env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert double.requests == []  # nothing was sent before the usage was settled
