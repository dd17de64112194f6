"""The judge's verdict is read robustly, and reasoning never reaches the judge or the verdict."""

from __future__ import annotations

import pytest

from aiapp.testrun.judging import build_judge_messages, parse_verdict, strip_reasoning

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("reply", "passed", "reason"),
    [
        pytest.param("PASS\nReason: it names Paris.", True, "it names Paris.", id="plain pass"),
        pytest.param("FAIL\nReason: it says Sydney.", False, "it says Sydney.", id="plain fail"),
        pytest.param("PASS - names Paris", True, "names Paris", id="reason on the verdict line"),
        pytest.param("**PASS**\n\nThe answer is right.", True, "The answer is right.", id="bold"),
        pytest.param("Verdict: FAIL\nReason: wrong city", False, "wrong city", id="labelled"),
        pytest.param("**Verdict: PASS**\n**Reason:** ok", True, "ok", id="labelled and bold"),
        pytest.param("passed. Looks good", True, "Looks good", id="lower case past tense"),
        pytest.param(
            "<think>Should I PASS this? No.</think>\nFAIL\nReason: no city named",
            False,
            "no city named",
            id="a verdict inside a think block is ignored",
        ),
        pytest.param(
            "I considered it carefully.\nPASS\nReason: fine",
            True,
            "fine",
            id="preamble before the verdict line",
        ),
        pytest.param("PASS", True, "the judge gave no reason", id="verdict without a reason"),
    ],
)
def test_a_verdict_is_read_from_the_first_line_that_opens_with_pass_or_fail(
    reply: str, passed: bool, reason: str
) -> None:
    verdict = parse_verdict(reply)
    assert (verdict.passed, verdict.reason, verdict.found) == (passed, reason, True)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param("", id="empty"),
        pytest.param("I cannot decide.", id="no verdict word"),
        pytest.param("Passing judgement is hard.", id="a word that only starts like PASS"),
        pytest.param("<think>PASS</think>", id="a verdict only inside reasoning"),
    ],
)
def test_a_reply_without_a_verdict_is_a_failure_that_quotes_the_reply(reply: str) -> None:
    verdict = parse_verdict(reply)
    assert not verdict.passed
    assert not verdict.found
    assert "no PASS or FAIL verdict" in verdict.reason


@pytest.mark.parametrize(
    ("text", "visible"),
    [
        pytest.param("<think>Sydney? No.</think>Canberra.", "Canberra.", id="think block"),
        pytest.param("<thinking>\nhmm\n</thinking>\nCanberra", "Canberra", id="thinking block"),
        pytest.param("<reasoning>x</reasoning>A<think>y</think>B", "AB", id="two blocks"),
        pytest.param("musing without an opening tag</think>Canberra", "Canberra", id="dangling"),
        pytest.param("Canberra.<think>and then the answer was cut", "Canberra.", id="unclosed"),
        pytest.param("No reasoning here.", "No reasoning here.", id="nothing to strip"),
    ],
)
def test_reasoning_blocks_are_stripped_and_the_answer_kept(text: str, visible: str) -> None:
    assert strip_reasoning(text) == visible


def test_the_judge_prompt_fences_the_prompt_answer_and_expected_output_apart() -> None:
    messages = build_judge_messages("Capital of France?", "Paris.", 'Names "Paris".')
    assert [message["role"] for message in messages] == ["system", "user"]
    assert "PASS or FAIL" in messages[0]["content"]
    user = messages[1]["content"]
    assert "<prompt>\nCapital of France?\n</prompt>" in user
    assert "<response>\nParis.\n</response>" in user
    assert '<expected_output>\nNames "Paris".\n</expected_output>' in user
