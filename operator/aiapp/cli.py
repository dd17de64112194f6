"""The ``aiapp`` command: one entry point whose subcommands live beside the code they drive.

Subcommands are imported only when they are invoked, so ``aiapp validate`` does not pay for the
gateway's or the indexer's imports, and each area owns its own ``commands`` module.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# Subcommand name -> "module:attribute" of its click command.
SUBCOMMANDS: dict[str, str] = {
    "validate": "aiapp.api.commands:validate",
    "convert": "aiapp.api.commands:convert",
    "crds": "aiapp.api.commands:crds",
    "render": "aiapp.render.commands:render",
    "operator": "aiapp.controller.commands:operator",
    "gateway": "aiapp.gateway.commands:gateway",
    "index": "aiapp.knowledge.commands:index",
    "test": "aiapp.testrun.commands:test",
    "cluster": "aiapp.localcluster.commands:cluster",
}


class LazyGroup(click.Group):
    """A click group that imports each subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command: Any = getattr(importlib.import_module(module_name), attribute)
        return command  # type: ignore[no-any-return]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aiapp")
def main() -> None:
    """Serve AISpec AIApps on Kubernetes: validate, render, operate, serve, index and test."""
