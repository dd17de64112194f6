"""The validator's own vocabulary for what is wrong with a document.

An ``Issue`` is one thing the user must fix (or, as a warning, should know), located by its
path inside the object. ``AISpecError`` carries every issue found at once, so that callers
(the operator, ``aiapp validate``) report them all rather than the first. ``aiapp.api.documents``
adds document indexes and line numbers on top of these.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

Path = tuple[str | int, ...]


def dotted(path: Path) -> str:
    """Write a path the way users read it: ``spec.assistants[0].model``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "<document>"


@dataclass(frozen=True)
class Issue:
    """One rule broken at one place: what is wrong, and what to write instead."""

    path: Path
    message: str
    fix: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{dotted(self.path)}: {self.message} (fix: {self.fix})"


class AISpecError(ValueError):
    """An AIApp or Model document breaks one or more rules."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(str(issue) for issue in self.issues))


def _unwrap(annotation: Any) -> Any:
    """The model class inside ``X | None``, ``list[X]`` or ``dict[str, X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _unwrap(arg)
        if found is not None:
            return found
    return None


def _model_at(root: type[BaseModel], loc: Path) -> type[BaseModel] | None:
    current: type[BaseModel] | None = root
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        fields = {info.alias or name: info for name, info in current.model_fields.items()}
        if part not in fields:
            # A dict key (headers, limits) or a union tag: stay on the dict's value model.
            continue
        current = _unwrap(fields[part].annotation)
    return current


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _issue(error: ErrorDetails, root: type[BaseModel]) -> Issue:
    loc: Path = tuple(error["loc"])
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "aispec":
        return Issue(loc, error["msg"], str(context.get("fix", "")))
    if kind == "extra_forbidden":
        owner = _model_at(root, loc[:-1])
        known = _field_names(owner) if owner else []
        key = str(loc[-1])
        close = difflib.get_close_matches(key, known, n=1)
        if close:
            fix = f"rename it to {close[0]!r}"
        elif known:
            fix = f"remove it; fields allowed here: {', '.join(known)}"
        else:
            fix = "remove it"
        # Helix reads AISpec leniently; saying so explains why a file that "worked" fails.
        note = " (Helix would silently drop it; we refuse it)" if root.__name__ == "AIApp" \
            else ""
        return Issue(loc, f"unknown field {key!r}{note}", fix)
    if kind == "missing":
        owner = _model_at(root, loc[:-1])
        key = str(loc[-1])
        about = ""
        if owner is not None:
            for name, info in owner.model_fields.items():
                if (info.alias or name) == key and info.description:
                    about = f": {info.description.rstrip('.')}"
        return Issue(loc, f"required field {key!r} is missing", f"add {key}{about}")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return Issue(loc, "expected a mapping of keys to values", "write key: value pairs here")
    if kind == "list_type":
        return Issue(loc, "expected a list", "write a list, one '- ' item per line")
    if kind == "literal_error":
        expected = str(context.get("expected", ""))
        return Issue(loc, error["msg"].replace("Input", "value"), f"use one of {expected}")
    if kind.startswith(("string", "int", "float", "bool")) and kind.endswith(
        ("_type", "_parsing", "_from_float")
    ):
        wanted = {
            "string": "text",
            "int": "a whole number",
            "float": "a number",
            "bool": "true or false",
        }[kind.split("_")[0]]
        return Issue(loc, error["msg"].replace("Input", "value"), f"write {wanted}")
    # Bounds (greater_than, too_short, ...) read well as pydantic writes them; the fix names
    # the bound the value must meet.
    message = error["msg"].replace("Input", "value").replace("List", "list")
    bounds = {
        "greater_than": "more than {gt}", "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}", "less_than_equal": "at most {le}",
        "too_short": "at least {min_length} item(s) or characters",
        "too_long": "at most {max_length} item(s) or characters",
    }
    if kind in bounds:
        try:
            return Issue(loc, message, "make it " + bounds[kind].format(**context))
        except KeyError:
            pass
    return Issue(loc, message, "change the value to meet the limit in the message")


def issues_from_validation_error(exc: ValidationError, root: type[BaseModel]) -> list[Issue]:
    """Turn pydantic's errors into issues with a message and a fix each."""
    return [_issue(error, root) for error in exc.errors(include_url=False)]
