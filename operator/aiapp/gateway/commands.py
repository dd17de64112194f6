"""``aiapp gateway``: load the app's gateway config, check it, and serve it with uvicorn.

Everything the gateway needs to refuse comes out here as one clear line and exit status 2:
an unreadable or invalid config file, a spec the gateway cannot serve, or no API keys (the env
named by ``auth.api_keys_env`` is unset) without ``--allow-anonymous``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
from pydantic import ValidationError

from aiapp.api.runtime import GatewayConfig
from aiapp.gateway.errors import SpecError


def load_config(path: Path) -> GatewayConfig:
    """Read and check a gateway config file; raise ``click.UsageError`` naming the problem."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise click.UsageError(f"--config {path}: cannot read the file ({exc.strerror}).") from exc
    except ValueError as exc:
        raise click.UsageError(f"--config {path}: not valid JSON ({exc}).") from exc
    try:
        return GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise click.UsageError(
            f"--config {path}: {where}: {first['msg']} "
            f"({exc.error_count()} problem(s); the operator renders this file, so re-render it)."
        ) from exc


def api_keys_from_env(name: str) -> frozenset[str] | None:
    """The comma-separated keys in env ``name``; ``None`` when it is unset or empty."""
    keys = frozenset(k.strip() for k in os.environ.get(name, "").split(",") if k.strip())
    return keys or None


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("/etc/aiapp/config.json"),
    show_default=True,
    help="The gateway config the operator renders (GatewayConfig JSON).",
)
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8080, show_default=True, help="Port to listen on.")
@click.option(
    "--allow-anonymous",
    is_flag=True,
    help="Serve without API keys when the keys env is unset (local development only).",
)
@click.option(
    "--upstream-timeout",
    type=float,
    default=120.0,
    show_default=True,
    help="Seconds to wait for a model server to connect and between streamed chunks.",
)
@click.option(
    "--tool-timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds an API call made for the model may take.",
)
@click.option(
    "--max-tool-rounds",
    type=click.IntRange(0, 20),
    default=5,
    show_default=True,
    help="Tool-calling rounds before the model must answer.",
)
@click.option("--log-level", default="info", show_default=True, help="uvicorn log level.")
def gateway(
    config_path: Path,
    host: str,
    port: int,
    allow_anonymous: bool,
    upstream_timeout: float,
    tool_timeout: float,
    max_tool_rounds: int,
    log_level: str,
) -> None:
    """Serve one AIApp over an OpenAI-compatible API."""
    import uvicorn

    from aiapp.gateway.server import GatewayOptions, create_app

    # Refuse to start on anything a request would otherwise trip over later.
    config = load_config(config_path)
    api_keys = api_keys_from_env(config.auth.api_keys_env)
    if api_keys is None and not allow_anonymous:
        raise click.UsageError(
            f"no API keys: the environment variable {config.auth.api_keys_env} "
            "(auth.api_keys_env) is unset or empty. Set it to comma-separated keys, or pass "
            "--allow-anonymous to serve without authentication."
        )
    options = GatewayOptions(
        upstream_timeout_s=upstream_timeout,
        tool_timeout_s=tool_timeout,
        max_tool_rounds=max_tool_rounds,
    )
    try:
        app = create_app(config, api_keys=api_keys, options=options)
    except SpecError as exc:
        raise click.UsageError(f"--config {config_path}: {exc}") from exc

    # Serve until the pod stops; uvicorn handles SIGTERM by draining open requests.
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=False)
