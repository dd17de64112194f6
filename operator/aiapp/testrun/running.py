"""Running: drive every test case through the gateway and the judge, in parallel.

Each case is one conversation with one assistant, through the gateway's OpenAI-compatible
``/v1/chat/completions`` with ``model`` set to the assistant's name. Its steps run in order
and each sends the whole history so far, so the second step sees the first answer (Helix's
runner drops the history; this one does not). Each answer, reasoning blocks removed, goes to
the evaluation model with the judging prompt, through the judge endpoint (the gateway unless
told otherwise).

Cases run concurrently, at most ``parallelism`` at a time. Every model call has its own
deadline. A failure of the assistant's call (HTTP error, timeout, unreadable response) is an
error for that step and skips the rest of the case, whose conversation is now broken; a FAIL
verdict does not, since the answer still exists and later steps can still be judged. A failed
judge call is an error for its step only.

The runner never logs or reports an API key: keys travel only in request headers.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from aiapp.testrun.cases import TestCase, TestPlan
from aiapp.testrun.judging import build_judge_messages, parse_verdict, strip_reasoning
from aiapp.testrun.results import Outcome, RunResult, StepResult, TestResult

_MAX_DETAIL: int = 300


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible base URL (ending in ``/v1``) and the key to send, if any."""

    base_url: str
    api_key: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


@dataclass(frozen=True)
class RunSettings:
    """How one run talks to the gateway and the judge."""

    gateway: Endpoint
    judge: Endpoint
    evaluation_model: str
    parallelism: int = 4
    timeout_seconds: float = 120.0


class CallError(Exception):
    """A model call gave no usable answer; the message is the cause, fit for a report."""


def normalize_base_url(url: str) -> str:
    """Accept a gateway URL with or without its ``/v1`` suffix and return the ``/v1`` form."""
    url = url.strip().rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


async def run_plan(plan: TestPlan, settings: RunSettings) -> RunResult:
    """Run every case of the plan and return what each step found."""

    # One client for the run: connections are pooled across cases and steps.
    started_at = datetime.now(UTC)
    limits = httpx.Limits(max_connections=max(settings.parallelism * 2, 10))
    gate = asyncio.Semaphore(settings.parallelism)
    async with httpx.AsyncClient(limits=limits, timeout=settings.timeout_seconds) as client:

        async def run_gated(case: TestCase) -> TestResult:
            async with gate:
                return await run_case(client, case, settings)

        # gather keeps the plan's order, so reports list tests as the file does.
        tests = await asyncio.gather(*(run_gated(case) for case in plan.cases))

    return RunResult(
        app_name=plan.app_name,
        namespace=plan.namespace,
        revision=plan.revision,
        gateway_url=settings.gateway.base_url,
        evaluation_model=settings.evaluation_model,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        tests=tuple(tests),
    )


async def run_case(client: httpx.AsyncClient, case: TestCase, settings: RunSettings) -> TestResult:
    """Run one case's steps in one conversation, judging each answer."""

    started = time.monotonic()
    history: list[dict[str, str]] = []
    steps: list[StepResult] = []
    for index, step in enumerate(case.steps):
        # Ask the assistant with the conversation so far; on error the rest cannot follow.
        history.append({"role": "user", "content": step.prompt})
        asked = time.monotonic()
        try:
            raw_answer = await chat(
                client, settings.gateway, case.assistant, history, settings.timeout_seconds
            )
        except CallError as error:
            steps.append(
                StepResult(
                    prompt=step.prompt,
                    expected_output=step.expected_output,
                    outcome=Outcome.ERROR,
                    reason=f"the assistant gave no answer: {error}",
                    inference_seconds=time.monotonic() - asked,
                )
            )
            steps.extend(_skipped(case, index + 1))
            break
        inference_seconds = time.monotonic() - asked
        history.append({"role": "assistant", "content": raw_answer})

        # Judge the visible answer; a judge failure costs this step only.
        answer = strip_reasoning(raw_answer)
        judged = time.monotonic()
        try:
            verdict_text = await chat(
                client,
                settings.judge,
                settings.evaluation_model,
                build_judge_messages(step.prompt, answer, step.expected_output),
                settings.timeout_seconds,
                temperature=0.0,
            )
        except CallError as error:
            outcome, reason = Outcome.ERROR, f"the judge gave no verdict: {error}"
        else:
            verdict = parse_verdict(verdict_text)
            outcome = Outcome.PASSED if verdict.passed else Outcome.FAILED
            reason = verdict.reason
        steps.append(
            StepResult(
                prompt=step.prompt,
                expected_output=step.expected_output,
                outcome=outcome,
                reason=reason,
                answer=answer,
                inference_seconds=inference_seconds,
                evaluation_seconds=time.monotonic() - judged,
            )
        )

    return TestResult(
        assistant=case.assistant,
        name=case.name,
        steps=tuple(steps),
        seconds=time.monotonic() - started,
    )


async def chat(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    model: str,
    messages: list[dict[str, str]],
    timeout_seconds: float,
    *,
    temperature: float | None = None,
) -> str:
    """One non-streaming chat completion; returns the first choice's text or raises CallError."""

    # The deadline covers the whole call, since httpx's timeout is per network operation.
    body: dict[str, Any] = {"model": model, "messages": list(messages), "stream": False}
    if temperature is not None:
        body["temperature"] = temperature
    url = f"{endpoint.base_url}/chat/completions"
    try:
        async with asyncio.timeout(timeout_seconds):
            response = await client.post(url, json=body, headers=endpoint.headers)
    except TimeoutError:
        raise CallError(f"no answer within {timeout_seconds:g}s (--timeout)") from None
    except httpx.TimeoutException:
        raise CallError(f"no answer within {timeout_seconds:g}s (--timeout)") from None
    except httpx.HTTPError as error:
        raise CallError(f"cannot reach {url}: {type(error).__name__} {error}") from None

    # Report the server's own error message: it usually says what is wrong.
    if response.status_code != 200:
        raise CallError(f"HTTP {response.status_code}: {_error_detail(response)}")
    try:
        payload = response.json()
        content = payload["choices"][0]["message"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise CallError(
            f"the response of {url} is not a chat completion: {_clip(response.text)}"
        ) from None
    if not isinstance(content, str):
        raise CallError("the response has no text content (a tool call or an empty message)")
    return content


def _skipped(case: TestCase, start: int) -> list[StepResult]:
    return [
        StepResult(
            prompt=step.prompt,
            expected_output=step.expected_output,
            outcome=Outcome.SKIPPED,
            reason="skipped: an earlier step of this conversation has no answer",
        )
        for step in case.steps[start:]
    ]


def _error_detail(response: httpx.Response) -> str:
    # OpenAI-compatible servers put a message under error.message; others send plain text.
    try:
        payload = response.json()
    except ValueError:
        return _clip(response.text) or response.reason_phrase
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _clip(error["message"])
        if isinstance(error, str):
            return _clip(error)
        if isinstance(payload.get("detail"), str):
            return _clip(payload["detail"])
    return _clip(response.text)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"
