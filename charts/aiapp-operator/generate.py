#!/usr/bin/env python3
"""Writes the chart's generated files; with --check, says which are stale and exits 1.

- templates/crds/*.yaml: the repository's crds/*.yaml, wrapped so that `crds.install` and
  `crds.keep` apply. They are templates, not the chart's crds/ folder, because Helm upgrades
  templates but never touches crds/ after the first install.
- README.md: the values reference between the VALUES markers, from the `# --` comments in
  values.yaml. A value without a comment is an error, so every value stays documented.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent
REPO = CHART.parent.parent
SOURCE_CRDS = REPO / "crds"
BEGIN, END = "<!-- VALUES:BEGIN (generate.py) -->", "<!-- VALUES:END -->"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")


def crd_template(source: Path) -> str:
    text = source.read_text()
    if "\nmetadata:\n  name: " not in text or "\n  annotations:" in text.split("\nspec:")[0]:
        raise SystemExit(f"{source}: expected metadata with a name and no annotations")
    keep = ("metadata:\n"
            "  {{- if .Values.crds.keep }}\n"
            "  annotations:\n"
            "    helm.sh/resource-policy: keep\n"
            "  {{- end }}\n")
    body = text.replace("\nmetadata:\n", "\n" + keep, 1)
    return (f"{{{{- /* Copied from crds/{source.name} by charts/aiapp-operator/generate.py; "
            f"edit the source. */}}}}\n"
            "{{- if .Values.crds.install }}\n"
            f"{body.rstrip()}\n"
            "{{- end }}\n")


def documented_values(values_text: str) -> list[tuple[str, str]]:
    """(dotted key, description) for every documented value, in file order.

    A key is documented by a `# --` comment block right above it; keys below a documented
    mapping belong to it. A key that carries a value but no comment raises an error.
    """
    result: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []
    comment: list[str] | None = None
    covered_below: int | None = None
    problems: list[str] = []
    for number, line in enumerate(values_text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment = [stripped[4:].strip()]
            continue
        if stripped.startswith("#") and comment is not None:
            comment.append(stripped[1:].strip())
            continue
        if not stripped or stripped.startswith("#") or stripped.startswith("- "):
            comment = None if not stripped else comment
            continue
        match = _KEY.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([name for _, name in stack] + [match["key"]])
        if covered_below is not None and indent > covered_below:
            comment = None
            continue
        covered_below = None
        rest = match["rest"].strip()
        has_value = bool(rest) and not rest.startswith("#")
        if comment is not None:
            result.append((path, " ".join(part for part in comment if part)))
            covered_below = indent
        elif has_value:
            problems.append(f"values.yaml:{number}: {path} has no `# --` comment")
        stack.append((indent, match["key"]))
        comment = None
    if problems:
        raise ValueError("\n".join(problems))
    return result


def values_table(values_text: str) -> str:
    values = yaml.safe_load(values_text)
    rows = ["| Key | Default | Description |", "|---|---|---|"]
    for path, description in documented_values(values_text):
        node: Any = values
        for part in path.split("."):
            node = node[part]
        default = json.dumps(node, separators=(", ", ": ")).replace("|", "\\|")
        text = description.replace("|", "\\|")
        rows.append(f"| `{path}` | `{default}` | {text} |")
    return "\n".join(rows) + "\n"


def readme(current: str, values_text: str) -> str:
    before, _, rest = current.partition(BEGIN)
    _, _, after = rest.partition(END)
    if not rest:
        raise SystemExit(f"README.md lacks the markers {BEGIN} ... {END}")
    return f"{before}{BEGIN}\n{values_table(values_text)}{END}{after}"


def expected_files() -> dict[Path, str]:
    files = {CHART / "templates" / "crds" / source.name: crd_template(source)
             for source in sorted(SOURCE_CRDS.glob("*.yaml"))}
    files[CHART / "README.md"] = readme((CHART / "README.md").read_text(),
                                        (CHART / "values.yaml").read_text())
    return files


def stale_files() -> list[str]:
    """Generated files whose content differs from what this script would write, and extras."""
    expected = expected_files()
    stale = [str(path.relative_to(REPO)) for path, text in expected.items()
             if not path.exists() or path.read_text() != text]
    stale += [str(path.relative_to(REPO)) for path in (CHART / "templates" / "crds").glob("*")
              if path not in expected]
    return stale


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path} (run charts/aiapp-operator/generate.py)", file=sys.stderr)
        return 1 if stale else 0
    target = CHART / "templates" / "crds"
    target.mkdir(exist_ok=True)
    expected = expected_files()
    for path in target.glob("*"):
        if path not in expected:
            path.unlink()
    for path, text in expected.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
