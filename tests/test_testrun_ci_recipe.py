"""The GitHub Actions recipe's ``aiapp`` commands run as written, with the env it sets."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from aiapp.cli import main
from doubles.judge_double import JudgeDouble
from test_testrun_command import JUDGE, PASSING, SCRIPTS, app

pytestmark = pytest.mark.unit

WORKFLOW = Path(__file__).resolve().parent.parent / "examples/github-actions/aiapp.yml"
_EXPRESSION = re.compile(r"\$\{\{\s*(?P<scope>secrets|vars)\.(?P<name>\w+)\s*\}\}")


def recipe_step(workflow: dict[str, Any], command: str) -> dict[str, Any]:
    steps = workflow["jobs"]["aiapp"]["steps"]
    return next(step for step in steps if str(step.get("run", "")).startswith(command))


def expand(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: values[m.group(1) or m.group(2)], text)


def test_the_recipe_validates_then_tests_the_file_and_its_reports_exist(tmp_path: Path) -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    file = tmp_path / "app.yaml"
    file.write_text(yaml.safe_dump(app(PASSING)))
    report_dir = tmp_path / "reports"
    shell = {"AISPEC_FILE": str(file), "REPORT_DIR": str(report_dir)}

    # The validate step's command accepts the file the test step runs.
    validate = shlex.split(expand(recipe_step(workflow, "aiapp validate")["run"], shell))
    assert CliRunner().invoke(main, validate[1:]).exit_code == 0

    # The test step, with the secrets and variables the workflow maps into its env.
    step = recipe_step(workflow, "aiapp test")
    with JudgeDouble(dict(SCRIPTS), judge_model=JUDGE).serve() as double:
        settings = {"AIAPP_GATEWAY_URL": double.base_url, "AIAPP_EVALUATION_MODEL": JUDGE}
        settings["AIAPP_API_KEY"] = ""
        env = {
            name: _EXPRESSION.sub(lambda m: settings[m.group("name")], value)
            for name, value in step["env"].items()
        }
        args = shlex.split(expand(step["run"], shell))
        result = CliRunner().invoke(main, args[1:], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output

    # The comment step posts the summary the test step wrote.
    assert workflow["env"]["REPORT_DIR"] == "aiapp-reports"
    assert sorted(p.name for p in report_dir.iterdir()) == [
        "junit.xml",
        "results.json",
        "summary.md",
    ]
