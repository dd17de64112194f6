"""``aiapp render``: print every object the operator would create for an AIApp, offline."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import yaml

from aiapp.api.documents import load_documents
from aiapp.api.model import resolve_model
from aiapp.api.presets import preset_names
from aiapp.render.app import models_used, render_app
from aiapp.render.jobs import render_test_job
from aiapp.render.model_servers import endpoint
from aiapp.render.settings import RenderSettings


class _PlainDumper(yaml.SafeDumper):
    """Writes shared dicts out in full: anchors and aliases confuse readers of manifests."""

    def ignore_aliases(self, data: object) -> bool:
        return True


@click.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(path_type=Path, exists=True, dir_okay=False, allow_dash=True))
@click.option("-n", "--namespace", default="default", show_default=True,
              help="Namespace of apps that do not name one.")
@click.option("--evaluation-model", default="", help="Judge model for the test Job.")
@click.option("--embeddings-model", default=RenderSettings.embeddings_model, show_default=True)
@click.option("--image", default=RenderSettings.image, show_default=True)
def render(files: tuple[Path, ...], namespace: str, evaluation_model: str,
           embeddings_model: str, image: str) -> None:
    """Render the children of each AIApp in FILES (use - for stdin) as YAML."""
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace):
        raise click.BadParameter(
            f"{namespace!r} is not a namespace name (lower-case letters, digits and '-', at "
            "most 63)", param_hint="--namespace")
    settings = RenderSettings(evaluation_model=evaluation_model,
                              embeddings_model=embeddings_model, image=image)
    documents: list[dict[str, object]] = []
    failed = False
    for file in files:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
        apps, models, problems = load_documents(text, None if str(file) == "-" else file.parent)
        errors = [p for p in problems if not p.warning]
        for problem in errors:
            click.echo(f"{file}:{problem.line or 0}: {problem.path}: {problem.message} "
                       f"(fix: {problem.fix})", err=True)
        if errors:
            failed = True
            continue
        for app in apps:
            body = app.manifest()
            body["metadata"].setdefault("namespace", namespace)
            body["metadata"].setdefault("uid", "")

            # Resolve models as the operator would: Models in the files, then presets.
            resolved = {}
            for model_string in models_used(app.spec, settings):
                spec = resolve_model(model_string, models)
                if spec is None:
                    click.echo(
                        f"{file}: no Model or preset serves {model_string!r} (fix: add a Model "
                        f"with servedName {model_string!r} to the files, or use a preset: "
                        f"{', '.join(preset_names())})", err=True)
                    failed = True
                    break
                resolved[model_string] = spec
            else:
                rendered = render_app(body, app.spec, resolved, settings)
                documents += rendered.all()
                if evaluation_model and any(a.tests for a in app.spec.assistants):
                    judge = resolved[evaluation_model]
                    documents.append(render_test_job(
                        body, app.spec, rendered.revision,
                        endpoint(judge, body["metadata"]["namespace"], settings), settings))
    # Offline objects have no owner yet; the operator sets ownerReferences when it applies.
    for document in documents:
        metadata = document.get("metadata")
        if isinstance(metadata, dict):
            metadata.pop("ownerReferences", None)
    click.echo(yaml.dump_all(documents, Dumper=_PlainDumper, sort_keys=False), nl=False)
    sys.exit(1 if failed else 0)
