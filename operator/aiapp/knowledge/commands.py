"""``aiapp index``: run one knowledge index from its configuration file.

In the cluster the operator's Job mounts ``index.json`` from the ConfigMap
``<app>-knowledge-<name>`` and the store DSN as an environment variable from a Secret. Locally
the same command runs against any PostgreSQL with pgvector: write an ``IndexConfig`` file and
export the DSN under the name it gives (``AIAPP_STORE_DSN`` by default).

Exit codes: 0 the new version is active; 1 the run failed and the previous version keeps
serving; 2 the configuration or the command line is wrong. The last line on stdout is a
one-line JSON summary, also written to ``--termination-log`` for the pod status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Final

import click
import psycopg
from pydantic import ValidationError

from aiapp.api.runtime import IndexConfig
from aiapp.knowledge.indexing import EmbeddingsTarget, RunError, run_index
from aiapp.knowledge.settings import ConfigError, KnowledgeSettings, read_knowledge

log = logging.getLogger("aiapp.knowledge")

TERMINATION_LOG_LIMIT: Final = 4000  # Kubernetes keeps at most 4096 bytes
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2


@click.command("index")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("/etc/aiapp/index.json"),
    show_default=True,
    help="The IndexConfig JSON file.",
)
@click.option(
    "--termination-log",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the summary here (Kubernetes reads /dev/termination-log).",
)
@click.option(
    "--filestore-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Override the config's filestore_root, for local runs.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log each step, not just outcomes.")
def index(
    config_path: Path,
    termination_log: Path | None,
    filestore_root: Path | None,
    verbose: bool,
) -> None:
    """Index one knowledge entry into a new version of its pgvector index."""
    _configure_logging(verbose)
    code, summary = _run(config_path, filestore_root)
    line = json.dumps(summary, sort_keys=True, separators=(",", ":"))
    click.echo(line)
    if termination_log is not None:
        _write_termination_log(termination_log, summary)
    sys.exit(code)


def _run(config_path: Path, filestore_root: Path | None) -> tuple[int, dict[str, Any]]:
    # Read and check everything the user controls before touching the store.
    try:
        config = _read_config(config_path)
        knowledge = read_knowledge(config.knowledge)
        dsn = _required_env(config.store.dsn_env, "store.dsn_env")
        api_key = os.environ.get(config.embeddings.api_key_env or "") or None
    except ConfigError as error:
        log.error("%s", error)
        return EXIT_USAGE, {"state": "invalid", "error": str(error)}

    # Run; a failure keeps the previous version, so it is reported, not raised.
    target = EmbeddingsTarget(base_url=config.embeddings.base_url,
                              model=config.embeddings.model, api_key=api_key)
    root = filestore_root or Path(config.filestore_root)
    try:
        summary = asyncio.run(_index(dsn, config, knowledge, target, root))
    except RunError as error:
        message = _redact(str(error), dsn, api_key)
        return EXIT_FAILED, {"index": config.index, "state": "failed", "error": message}
    except psycopg.OperationalError as error:
        message = _redact(str(error).strip().splitlines()[0], dsn, api_key)
        log.error("index %s: the store is unreachable: %s", config.index, message)
        return EXIT_FAILED, {"index": config.index, "state": "failed",
                             "error": f"the store is unreachable: {message}"}
    return 0, {"state": "ready", **summary}


async def _index(
    dsn: str,
    config: IndexConfig,
    knowledge: KnowledgeSettings,
    target: EmbeddingsTarget,
    root: Path,
) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        summary = await run_index(
            conn=conn,
            index=config.index,
            knowledge=knowledge,
            embeddings=target,
            filestore_root=root,
            settings_hash=config.settings_hash,
        )
    return summary.as_dict()


def _read_config(path: Path) -> IndexConfig:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--config: {path} does not exist; mount the index ConfigMap there "
                          "or pass the path of an IndexConfig JSON file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--config: {path} cannot be read: {error}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"--config: {path} is not JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg})"
        ) from None
    try:
        return IndexConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(top)'}: {item['msg']}"
            for item in error.errors()
        )
        raise ConfigError(f"--config: {path} is not a valid IndexConfig: {problems}") from None


def _required_env(name: str, field: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ConfigError(
            f"{field}: the environment variable {name} is not set; set it to the store's "
            "PostgreSQL DSN (the Job takes it from the store Secret)"
        )
    return value


def _redact(message: str, dsn: str, api_key: str | None) -> str:
    """Remove the DSN's password and the API key from a message, should a library echo them."""
    secrets = [api_key or ""]
    try:
        secrets.append(str(psycopg.conninfo.conninfo_to_dict(dsn).get("password") or ""))
    except psycopg.ProgrammingError:
        secrets.append(dsn)
    for secret in secrets:
        if secret:
            message = message.replace(str(secret), "***")
    return message


def _write_termination_log(path: Path, summary: dict[str, Any]) -> None:
    text = json.dumps(summary, sort_keys=True, separators=(",", ":"))
    if len(text.encode()) > TERMINATION_LOG_LIMIT and "error" in summary:
        summary = {**summary, "error": str(summary["error"])[:1000] + "…"}
        text = json.dumps(summary, sort_keys=True, separators=(",", ":"))
    try:
        path.write_text(text[:TERMINATION_LOG_LIMIT])
    except OSError as error:
        log.warning("--termination-log: %s cannot be written: %s", path, error)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request at INFO; the crawler reports what matters itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("trafilatura").setLevel(logging.WARNING)
