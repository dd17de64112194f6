"""Judging: the prompt that asks an evaluation model for a verdict, and reading its answer.

The judge is any OpenAI-compatible chat model. It gets the user's prompt, the assistant's
answer and the test's ``expected_output``, each inside its own tag so that text in one cannot
pose as another, and is asked for a first line ``PASS`` or ``FAIL`` and a ``Reason:`` line.

Models do not always obey, so ``parse_verdict`` reads a verdict robustly: it drops reasoning
blocks (``<think>`` and kin), Markdown emphasis and labels such as ``Verdict:``, and takes the
first line that starts with PASS or FAIL. Helix instead takes the first four characters, so a
judge that writes ``**PASS**`` fails there; here it passes. No verdict at all is a failure
whose reason quotes the start of what the judge said.

Reasoning blocks are also removed from the assistant's answer before it is judged, so a model
that muses about the right answer and then gives a wrong one is judged on the wrong one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# Tags that reasoning models wrap their thoughts in, as emitted by their chat templates.
REASONING_TAGS: Final = ("think", "thinking", "reasoning", "reflection", "thought")

_CLOSED_BLOCK: Final = re.compile(
    r"<(?P<tag>" + "|".join(REASONING_TAGS) + r")\b[^>]*>.*?</(?P=tag)\s*>",
    re.IGNORECASE | re.DOTALL,
)
# Some templates put the opening tag in the prompt, so the answer holds only the closing one.
_DANGLING_CLOSE: Final = re.compile(
    r"^.*?</(?:" + "|".join(REASONING_TAGS) + r")\s*>", re.IGNORECASE | re.DOTALL
)
# A block that was opened but never closed (the answer was cut off) hides everything after.
_UNCLOSED_OPEN: Final = re.compile(
    r"<(?:" + "|".join(REASONING_TAGS) + r")\b[^>]*>.*\Z", re.IGNORECASE | re.DOTALL
)

_VERDICT_LINE: Final = re.compile(
    r"^[\s>*_`#\-\[\(]*(?:(?:final\s+)?(?:verdict|result|answer|evaluation|grade)\s*[:=\-]?"
    r"[\s*_`\[\(]*)?(?P<verdict>PASS(?:ED)?|FAIL(?:ED)?)\b[\s*_`\]\)]*[:.,\-–—]*\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
_REASON_LABEL: Final = re.compile(
    r"^[\s>*_`#\-]*(?:reason(?:ing)?|explanation|because)\s*[:\-]?[\s*_`]*", re.IGNORECASE
)

JUDGE_SYSTEM_PROMPT: Final = (
    "You evaluate answers of an AI assistant for an automated test suite. You get the user's "
    "prompt, the assistant's response and the expected output, which describes what a good "
    "response contains or does. Decide whether the response satisfies the expected output. "
    "Be fair rather than pedantic: wording may differ, but what the expected output asks for "
    "must be there, and anything it forbids must be absent.\n"
    "Reply with exactly two lines and nothing else:\n"
    "PASS or FAIL\n"
    "Reason: one sentence saying why."
)


@dataclass(frozen=True)
class Verdict:
    """What the judge decided; ``passed`` is False also when it gave no verdict at all."""

    passed: bool
    reason: str
    found: bool = True


def strip_reasoning(text: str) -> str:
    """Remove reasoning blocks such as ``<think>...</think>`` and return the rest, trimmed."""
    text = _CLOSED_BLOCK.sub("", text)
    text = _DANGLING_CLOSE.sub("", text, count=1)
    text = _UNCLOSED_OPEN.sub("", text)
    return text.strip()


def build_judge_messages(prompt: str, answer: str, expected_output: str) -> list[dict[str, str]]:
    """The chat messages that ask the judge for a verdict on one answer."""
    user = (
        "<prompt>\n"
        f"{prompt}\n"
        "</prompt>\n"
        "<response>\n"
        f"{answer}\n"
        "</response>\n"
        "<expected_output>\n"
        f"{expected_output}\n"
        "</expected_output>\n"
        "Does the response satisfy the expected output? Answer PASS or FAIL, then the reason."
    )
    return [
        {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]


def parse_verdict(text: str) -> Verdict:
    """Read the judge's answer: the first line that opens with PASS or FAIL decides."""

    # Judge only what the model concluded, not what it considered on the way.
    visible = strip_reasoning(text)
    lines = [line.strip() for line in visible.splitlines() if line.strip()]

    # The verdict line's tail, or the lines after it, carry the reason.
    for index, line in enumerate(lines):
        match = _VERDICT_LINE.match(line)
        if match is None:
            continue
        passed = match.group("verdict").upper().startswith("PASS")
        rest = _clean_reason(match.group("rest"))
        if not rest:
            rest = " ".join(_clean_reason(later) for later in lines[index + 1 :]).strip()
        return Verdict(passed=passed, reason=rest or "the judge gave no reason")

    # No verdict: a failure, quoting enough of the reply to see what went wrong.
    quoted = " ".join(visible.split())[:200] or "(empty reply)"
    return Verdict(
        passed=False,
        reason=f"the judge gave no PASS or FAIL verdict; it said: {quoted}",
        found=False,
    )


def _clean_reason(text: str) -> str:
    text = _REASON_LABEL.sub("", text.strip())
    return text.strip(" *_`").strip()
