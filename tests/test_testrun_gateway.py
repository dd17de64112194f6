"""``aiapp test`` drives the real app gateway, which stands in front of a model-server double.

The gateway adds the assistant's system prompt and relays to its upstream, here
``judge_double``; the judge is reached directly, because the gateway serves only the app's
assistants, not an evaluation model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from aiapp.cli import main
from aiapp.gateway.server import create_app
from doubles import gateway_config, serve_app
from doubles.judge_double import JudgeDouble
from test_testrun_command import FAILING, JUDGE, MULTI_STEP, PASSING, SCRIPTS, app

pytestmark = pytest.mark.unit

GATEWAY_KEY = "sk-gateway-test-3b9e"


def test_aiapp_test_runs_every_test_through_the_gateway_and_reports_the_revision(
    tmp_path: Path,
) -> None:
    spec = app(PASSING, FAILING, MULTI_STEP)
    spec["assistants"][0]["system_prompt"] = "You answer geography questions."
    out = tmp_path / "out"

    # The operator's view of the app: a runtime config whose upstream is the double.
    with JudgeDouble(dict(SCRIPTS), judge_model=JUDGE).serve() as model_server:
        config = gateway_config(spec, model_server.base_url.removesuffix("/v1"))
        config_path = tmp_path / "config.json"
        config_path.write_text(config.model_dump_json())
        gateway = create_app(config, api_keys=frozenset({GATEWAY_KEY}))
        with serve_app(gateway) as gateway_url:
            result = CliRunner().invoke(
                main,
                [
                    "test",
                    "--config", str(config_path),
                    "--url", gateway_url,
                    "--judge-url", model_server.base_url,
                    "--evaluation-model", JUDGE,
                    "--api-key-env", "GATEWAY_KEY",
                    "--report-dir", str(out),
                    "--termination-log", str(out / "termination-log"),
                ],
                env={"GATEWAY_KEY": GATEWAY_KEY},
                catch_exceptions=False,
            )  # fmt: skip

    # Outcomes are the judge's, reached through the gateway's answers.
    assert result.exit_code == 1, result.output
    data = json.loads((out / "results.json").read_text())
    assert {t["name"]: t["outcome"] for t in data["tests"]} == {
        "france": "passed",
        "australia": "failed",
        "colours": "passed",
    }
    summary = json.loads((out / "termination-log").read_text())
    assert summary == {
        "passed": 2,
        "failed": 1,
        "revision": config.app.revision,
        "failing": [
            {"test": "guide/australia", "reason": "the response does not mention Canberra."}
        ],
    }

    # The gateway added the system prompt and carried the conversation to the model.
    second_colour_call = [
        body
        for body in model_server.app_requests
        if body["messages"][-1]["content"] == "Which colour did you pick?"
    ][0]
    assert [(m["role"], m["content"]) for m in second_colour_call["messages"]] == [
        ("system", "You answer geography questions."),
        ("user", "Pick a colour and say only its name."),
        ("assistant", "Teal"),
        ("user", "Which colour did you pick?"),
    ]
