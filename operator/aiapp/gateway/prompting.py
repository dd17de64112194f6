"""What the gateway sends a model: messages, system prompt, sampling, and rendered knowledge.

Requests arrive in OpenAI's chat format. This module checks their shape (a malformed request
gets a 400 naming the field), trims history to the assistant's ``context_limit`` while keeping
system messages, puts the assistant's system prompt first, fills in its sampling settings where
the client set none, and renders retrieved knowledge into the question.

Knowledge templates: Helix writes ``rag_settings.prompt_template`` as a Go template over
``.RagResults`` and ``.KnowledgeResults``. ``go_template_to_jinja`` translates the subset such
templates use (field access, ``range`` with or without variables, ``if``/``else``/``with``,
``end``, trim markers, comments and the functions ``len``, ``add``, ``index``, ``eq``, ``ne``,
``lt``, ``le``, ``gt``, ``ge``, ``and``, ``or``, ``not``) into a sandboxed Jinja2 template;
anything else is refused with an error naming the construct. Templates see ``.Question``, the
user's last message, as well.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from jinja2 import ChainableUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from aiapp.api.aispec import Assistant
from aiapp.gateway.errors import invalid_request

ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool"})

# Assistant fields that pass straight into the upstream request when the assistant sets them.
SAMPLING_KEYS: Final = (
    "temperature",
    "top_p",
    "max_tokens",
    "presence_penalty",
    "frequency_penalty",
    "reasoning_effort",
)

DEFAULT_KNOWLEDGE_TEMPLATE: Final = (
    "Use the numbered sources below to answer the question. Cite each source you rely on by "
    "its number, like [1]. If the sources do not contain the answer, say so.\n"
    "{% for r in RagResults %}\n[{{ loop.index }}] {{ r.Source or r.DocumentID }}\n"
    "{{ r.Content }}\n{% endfor %}\nQuestion: {{ Question }}"
)


class KnowledgeTemplateError(ValueError):
    """A prompt_template the gateway cannot translate or render."""


@dataclass(frozen=True)
class RetrievedPassage:
    """One retrieved chunk, with the knowledge entry it came from."""

    knowledge: str
    content: str
    source: str
    document_id: str
    chunk_offset: int
    score: float


def parse_chat_request(body: Any) -> dict[str, Any]:
    """Check the shape of a chat completion request body; raise a 400 naming the field."""
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_request(
            "'messages' must be a non-empty array of chat messages.", param="messages"
        )
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise invalid_request(f"'{param}' must be an object with a role.", param=param)
        role = message.get("role")
        if role not in ROLES:
            raise invalid_request(
                f"'{param}.role' must be one of assistant, developer, system, tool, user; "
                f"got {role!r}.",
                param=f"{param}.role",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise invalid_request(
                f"'{param}.content' must be a string or an array of content parts.",
                param=f"{param}.content",
            )
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise invalid_request("'model' must be a string naming an assistant.", param="model")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise invalid_request("'stream' must be true or false.", param="stream")
    return body


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message whose content is a string or an array of content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def last_user_index(messages: Sequence[Mapping[str, Any]]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "user":
            return index
    return None


def build_messages(
    assistant: Assistant,
    messages: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The conversation the model sees: system prompt first, history trimmed."""

    # Trim history to the last context_limit messages, keeping every system message.
    kept = [dict(m) for m in messages]
    limit = assistant.context_limit or 0
    if limit > 0:
        system = [m for m in kept if m.get("role") in ("system", "developer")]
        rest = [m for m in kept if m.get("role") not in ("system", "developer")]
        rest = rest[-limit:]
        # A tool result is meaningless without the assistant turn that asked for it.
        while rest and rest[0].get("role") == "tool":
            rest.pop(0)
        kept = system + rest

    # The assistant's system prompt comes before whatever the client sent.
    if assistant.system_prompt:
        kept.insert(0, {"role": "system", "content": assistant.system_prompt})
    return kept


def apply_sampling(assistant: Assistant, body: dict[str, Any]) -> None:
    """Fill in the assistant's sampling settings the client did not set itself."""
    for key in SAMPLING_KEYS:
        value = getattr(assistant, key)
        # Unset fields stay unset upstream, so the model server's own defaults apply.
        if value is None or (key == "reasoning_effort" and value == "none"):
            continue
        body.setdefault(key, value)


def render_knowledge(
    template_text: str,
    question: str,
    passages: Sequence[RetrievedPassage],
    descriptions: Mapping[str, str],
) -> str:
    """Render retrieved passages into the user's turn with the assistant's template.

    Args:
        template_text: the knowledge's Go ``prompt_template``; empty means the default, which
            numbers the sources so answers can cite them.
        question: the user's last message.
        passages: retrieved chunks, best first.
        descriptions: each knowledge entry's description, by name.

    Returns:
        The text that replaces the user's last message.

    Raises:
        KnowledgeTemplateError: the template uses Go template features outside the subset.
    """
    rag_results = [
        {
            "Content": p.content,
            "Source": p.source,
            "DocumentID": p.document_id,
            "ContentOffset": p.chunk_offset,
            "Score": p.score,
            "Knowledge": p.knowledge,
        }
        for p in passages
    ]
    knowledge_results = [
        {
            "Name": name,
            "Description": description,
            "Content": "\n\n".join(p.content for p in passages if p.knowledge == name),
            "Results": [r for r in rag_results if r["Knowledge"] == name],
        }
        for name, description in descriptions.items()
    ]
    source = go_template_to_jinja(template_text) if template_text else DEFAULT_KNOWLEDGE_TEMPLATE
    try:
        rendered = _ENV.from_string(source).render(
            RagResults=rag_results,
            KnowledgeResults=knowledge_results,
            Question=question,
        )
    except TemplateError as exc:
        raise KnowledgeTemplateError(f"rendering failed: {exc}") from exc
    if template_text and "Question" not in template_text:
        # Helix's templates describe the context only; the question follows them.
        rendered = f"{rendered.rstrip()}\n\n{question}"
    return rendered


# Like Go's templates over maps, a missing field renders empty instead of failing the answer.
_ENV: Final = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)

_ACTION: Final = re.compile(r"\{\{(-?)(\s*)(.*?)(\s*)(-?)\}\}", re.DOTALL)
_TOKEN: Final = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|\(|\)|[^\s()]+')
_FUNCTIONS: Final = {
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
}


def go_template_to_jinja(source: str) -> str:
    """Translate the Go template subset Helix knowledge templates use into Jinja2.

    Raises:
        KnowledgeTemplateError: a construct outside the subset, named in the message.
    """
    out: list[str] = []
    # Each open block: its closing Jinja tag and the Go dot inside it; dots[-1] is the current.
    blocks: list[tuple[str, str]] = []
    dots: list[str] = [""]
    counter = 0
    position = 0
    for match in _ACTION.finditer(source):
        out.append(_literal(source[position : match.start()]))
        position = match.end()
        left = "-" if match.group(1) else ""
        right = "-" if match.group(5) else ""
        action = match.group(3).strip()
        dot = dots[-1]
        if action.startswith("/*"):
            continue
        words = action.split(None, 1)
        keyword = words[0] if words else ""
        rest = words[1] if len(words) > 1 else ""
        if keyword == "range":
            counter += 1
            variables, _, pipeline = rest.rpartition(":=")
            expression = _expression(pipeline.strip(), dot)
            names = [v.strip() for v in variables.split(",") if v.strip()]
            element = f"_item{counter}"
            prelude = ""
            if len(names) == 1:
                element = _variable(names[0])
            elif len(names) == 2:
                prelude = f"{{% set {_variable(names[0])} = loop.index0 %}}"
                element = _variable(names[1])
            elif names:
                raise KnowledgeTemplateError(f"range declares too many variables: {{{{{action}}}}}")
            out.append(f"{{%{left} for {element} in {expression} {right}%}}{prelude}")
            blocks.append(("endfor", element))
            dots.append(element)
        elif keyword == "with":
            counter += 1
            element = f"_with{counter}"
            expression = _expression(rest, dot)
            out.append(f"{{%{left} set {element} = {expression} %}}{{% if {element} {right}%}}")
            blocks.append(("endif", element))
            dots.append(element)
        elif keyword == "if":
            out.append(f"{{%{left} if {_expression(rest, dot)} {right}%}}")
            blocks.append(("endif", dot))
            dots.append(dot)
        elif keyword == "else":
            if not blocks:
                raise KnowledgeTemplateError("{{else}} without an open block")
            condition = rest.strip()
            if condition.startswith("if "):
                out.append(f"{{%{left} elif {_expression(condition[3:], dots[-2])} {right}%}}")
            else:
                out.append(f"{{%{left} else {right}%}}")
        elif keyword == "end":
            if not blocks:
                raise KnowledgeTemplateError("{{end}} without an open block")
            closing, _ = blocks.pop()
            dots.pop()
            out.append(f"{{%{left} {closing} {right}%}}")
        elif keyword in ("define", "template", "block", "break", "continue"):
            raise KnowledgeTemplateError(f"{{{{{keyword}}}}} is not supported; inline the text")
        else:
            out.append(f"{{{{{left} {_expression(action, dot)} {right}}}}}")
    out.append(_literal(source[position:]))
    if blocks:
        raise KnowledgeTemplateError("a range/if/with block is missing its {{end}}")
    return "".join(out)


def _literal(text: str) -> str:
    if "{%" in text or "{#" in text or "{{" in text:
        return "{% raw %}" + text + "{% endraw %}"
    return text


def _variable(name: str) -> str:
    if not re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", name):
        raise KnowledgeTemplateError(f"{name!r} is not a template variable like $item")
    return "v_" + name[1:]


def _expression(pipeline: str, dot: str) -> str:
    if "|" in pipeline:
        raise KnowledgeTemplateError(f"pipelines are not supported: {pipeline!r}")
    tokens = _TOKEN.findall(pipeline)
    if not tokens:
        raise KnowledgeTemplateError("an empty action {{ }}")
    expression, used = _call(tokens, 0, dot)
    if used != len(tokens):
        raise KnowledgeTemplateError(f"cannot translate {pipeline!r}")
    return expression


def _call(tokens: list[str], start: int, dot: str) -> tuple[str, int]:
    """Translate a function call or a single operand starting at tokens[start]."""
    head = tokens[start]
    if head in _FUNCTIONS or head in ("len", "add", "index", "and", "or", "not"):
        args: list[str] = []
        position = start + 1
        while position < len(tokens) and tokens[position] != ")":
            operand, position = _operand(tokens, position, dot)
            args.append(operand)
        return _apply(head, args, tokens), position
    return _operand(tokens, start, dot)


def _operand(tokens: list[str], position: int, dot: str) -> tuple[str, int]:
    token = tokens[position]
    if token == "(":
        inner, end = _call(tokens, position + 1, dot)
        if end >= len(tokens) or tokens[end] != ")":
            raise KnowledgeTemplateError("unbalanced parentheses in a template action")
        return f"({inner})", end + 1
    return _term(token, dot), position + 1


def _apply(name: str, args: list[str], tokens: list[str]) -> str:
    arity = {"len": 1, "not": 1, "add": 2, "index": 2}.get(name, 2)
    if name in ("and", "or") and len(args) >= 2:
        return "(" + f" {name} ".join(args) + ")"
    if len(args) != arity:
        raise KnowledgeTemplateError(f"{name} takes {arity} arguments in {' '.join(tokens)!r}")
    if name == "len":
        return f"({args[0]} | length)"
    if name == "not":
        return f"(not {args[0]})"
    if name == "add":
        return f"({args[0]} + {args[1]})"
    if name == "index":
        return f"{args[0]}[{args[1]}]"
    return f"({args[0]} {_FUNCTIONS[name]} {args[1]})"


def _term(token: str, dot: str) -> str:
    if token.startswith('"') or re.fullmatch(r"-?\d+(\.\d+)?", token):
        return token
    if token.startswith("`"):
        return repr(token[1:-1])
    if token in ("true", "false"):
        return token
    if token == ".":
        if not dot:
            raise KnowledgeTemplateError("{{ . }} at the top level is not supported")
        return dot
    if token.startswith("$."):
        return _fields(token[2:])
    if token == "$":
        raise KnowledgeTemplateError("{{ $ }} alone is not supported; name a field, like $.X")
    if token.startswith("$"):
        name, _, path = token.partition(".")
        base = _variable(name)
        return f"{base}.{_fields(path)}" if path else base
    if token.startswith("."):
        path = _fields(token[1:])
        return f"{dot}.{path}" if dot else path
    raise KnowledgeTemplateError(f"the function or word {token!r} is not supported")


def _fields(path: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", path):
        raise KnowledgeTemplateError(f"{path!r} is not a field path like .Content")
    return path
