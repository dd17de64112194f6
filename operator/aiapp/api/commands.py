"""``aiapp validate``, ``aiapp convert`` and ``aiapp crds``: the API's command line.

``validate`` reads files (or ``-`` for stdin), prints every problem as
``FILE:LINE: path: message (fix: ...)``, then the operations of each API and a line per valid
object; it exits 0 when everything is valid, 1 when something is not, and 2 on usage errors.
``convert`` writes a bare Helix file as AIApp manifests with relative schema files inlined.
``crds`` writes the generated CRDs, or with ``--check`` exits 1 when the committed ones drift.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml

from aiapp.api.crdgen import crds as generate_crds
from aiapp.api.crdgen import render_crd
from aiapp.api.documents import Problem, app_operations, load_documents
from aiapp.api.presets import preset_names


def _read(source: str) -> tuple[str, str, Path]:
    """(label, text, base directory) of a file argument or of stdin for ``-``."""
    if source == "-":
        return "<stdin>", sys.stdin.read(), Path.cwd()
    path = Path(source)
    try:
        return source, path.read_text("utf-8"), path.parent
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise click.UsageError(f"cannot read {source}: {reason}") from None


def _print_problems(label: str, problems: list[Problem], *, err: bool = False) -> None:
    for problem in problems:
        click.echo(problem.format(label), err=err)


@click.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--quiet", "-q", is_flag=True, help="Print problems only.")
def validate(files: tuple[str, ...], quiet: bool) -> None:
    """Check AIApp and Model documents (both AIApp forms; '-' reads stdin).

    Exit status: 0 when every document is valid, 1 when one is not, 2 on usage errors.
    """
    invalid = False
    for source in files:
        label, text, base = _read(source)
        apps, models, problems = load_documents(text, base)

        # Problems first, in file order, so editors and CI logs link to the lines.
        _print_problems(label, problems)
        invalid = invalid or any(not problem.warning for problem in problems)
        if quiet:
            continue

        # Then what each valid object offers.
        for app in apps:
            assistants = app.spec.assistants
            tests = sum(len(assistant.tests) for assistant in assistants)
            knowledge = sum(len(assistant.knowledge) for assistant in assistants)
            click.echo(
                f"{label}: AIApp {app.metadata.name} is valid: {len(assistants)} assistant(s), "
                f"{knowledge} knowledge source(s), {tests} test(s)"
            )
            for assistant, api, operations in app_operations(app):
                if operations is None:
                    click.echo(f"  api {api} ({assistant}): schema is a URL, not fetched")
                    continue
                click.echo(f"  api {api} ({assistant}): {len(operations)} operation(s)")
                for op in operations:
                    named = f" {op.operation_id}" if op.operation_id else ""
                    summary = f" - {op.summary}" if op.summary else ""
                    click.echo(f"    {op.method} {op.path}{named}{summary}")
        for model in models:
            click.echo(
                f"{label}: Model {model.metadata.name} is valid: serves "
                f"{model.spec.served_name!r} on {model.spec.runtime}"
            )
    if invalid:
        sys.exit(1)


validate.epilog = "Presets (usable as an assistant's model without a Model): " + ", ".join(
    preset_names()
)


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings (inlined schemas, prompts) as readable blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_LiteralDumper.add_representer(str, _represent_str)


def dump_manifests(manifests: list[dict[str, Any]]) -> str:
    """Manifests as multi-document YAML, keys in the order written."""
    return yaml.dump_all(
        manifests, Dumper=_LiteralDumper, sort_keys=False, width=100, allow_unicode=True
    )


@click.command()
@click.argument("file")
@click.option("--namespace", "-n", default="", help="metadata.namespace of the manifests.")
def convert(file: str, namespace: str) -> None:
    """Write a Helix AISpec file as AIApp manifests on stdout ('-' reads stdin).

    Relative API schema files are inlined, so the manifest works in the cluster. Models in the
    file are written too. Exit status 1 when the file is invalid (problems go to stderr).
    """
    label, text, base = _read(file)
    apps, models, problems = load_documents(text, base)
    _print_problems(label, problems, err=True)
    if any(not problem.warning for problem in problems):
        sys.exit(1)
    manifests: list[dict[str, Any]] = []
    for app in apps:
        if namespace:
            app.metadata.namespace = namespace
        manifests.append(app.manifest())
    for model in models:
        manifest = model.manifest()
        if namespace:
            manifest["metadata"]["namespace"] = namespace
        manifests.append(manifest)
    click.echo(dump_manifests(manifests), nl=False)


@click.command()
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("crds"),
    show_default=True,
    help="Where the CRD files go.",
)
@click.option("--check", is_flag=True, help="Exit 1 if the files differ from the models.")
def crds(output_dir: Path, check: bool) -> None:
    """Generate the AIApp and Model CustomResourceDefinitions from the models."""
    drifted: list[str] = []
    for name, crd in generate_crds().items():
        target = output_dir / name
        text = render_crd(crd)
        if check:
            current = target.read_text("utf-8") if target.exists() else None
            if current != text:
                drifted.append(str(target))
            continue
        output_dir.mkdir(parents=True, exist_ok=True)
        target.write_text(text, "utf-8")
        click.echo(f"wrote {target}")
    if drifted:
        click.echo(
            f"{', '.join(drifted)} differ from the models; run 'aiapp crds --output-dir "
            f"{output_dir}' and commit the result",
            err=True,
        )
        sys.exit(1)
