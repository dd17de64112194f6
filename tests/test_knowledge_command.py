"""``aiapp index`` end to end: exit codes, the summary line, the termination log, no secrets."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from aiapp.cli import main
from aiapp.knowledge import store
from doubles.embeddings_double import EmbeddingsDouble
from knowledge_fixtures import embeddings, pg_dsn  # noqa: F401

pytestmark = pytest.mark.unit

PASSWORD = "hunter2-never-printed"


def write_config(path: Path, double: EmbeddingsDouble, index: str, **changes: Any) -> Path:
    config: dict[str, Any] = {
        "app": {"namespace": "tests", "name": "cli"},
        "index": index,
        "knowledge": {"name": "notes", "rag_settings": {"chunk_size": 80},
                      "source": {"text": " ".join(f"Fact {n} about bees." for n in range(20))}},
        "embeddings": {"base_url": double.base_url, "model": double.model,
                       "api_key_env": "TEST_EMBEDDINGS_KEY"},
        "store": {"dsn_env": "TEST_STORE_DSN"},
    }
    config.update(changes)
    path.write_text(json.dumps(config))
    return path


def with_password(dsn: str) -> str:
    """The session DSN with a password added; the server trusts local sockets and ignores it."""
    return dsn.replace("postgres:@", f"postgres:{PASSWORD}@", 1)


async def read_status(dsn: str, index: str) -> store.IndexStatus | None:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        return await store.status(conn, index)


def invoke(args: list[str], env: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(main, ["index", *args], env=env, catch_exceptions=False)
    lines = result.stdout.strip().splitlines()
    return result.exit_code, json.loads(lines[-1]) if lines else {}, result.output


def test_a_successful_run_prints_and_records_a_one_line_summary(
    tmp_path: Path,
    pg_dsn: str,  # noqa: F811
    embeddings: EmbeddingsDouble,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = write_config(tmp_path / "index.json", embeddings, "tests/cli/ok")
    log = tmp_path / "termination-log"
    env = {"TEST_STORE_DSN": with_password(pg_dsn), "TEST_EMBEDDINGS_KEY": "emb-key"}

    code, summary, output = invoke(["--config", str(config), "--termination-log", str(log)], env)
    again, second, _ = invoke(["--config", str(config)], env)

    assert code == 0
    assert summary["state"] == "ready"
    assert summary["version"] == 1
    assert summary["documents"] == 1
    assert summary["chunks"] == summary["embedded"] == embeddings.inputs > 1
    assert summary["reused"] == 0
    assert json.loads(log.read_text()) == summary
    assert len(log.read_bytes()) < 4096
    assert embeddings.api_keys[0] == "emb-key"
    assert (again, second["version"], second["embedded"]) == (0, 2, 0)
    assert second["reused"] == summary["chunks"]
    assert PASSWORD not in output + caplog.text
    assert "emb-key" not in output + caplog.text


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing file", r"--config: .* does not exist"),
        ("not json", r"--config: .* is not JSON \(line 1"),
        ("no index key", r"not a valid IndexConfig: index: Field required"),
        ("s3 source", r"knowledge\[notes\]\.source\.s3: not supported yet"),
        ("dsn unset", r"store.dsn_env: the environment variable TEST_STORE_DSN is not set"),
    ],
)
def test_a_configuration_error_exits_2_naming_the_field(
    tmp_path: Path,
    pg_dsn: str,  # noqa: F811
    embeddings: EmbeddingsDouble,  # noqa: F811
    case: str,
    message: str,
) -> None:
    path = tmp_path / "index.json"
    env = {"TEST_STORE_DSN": pg_dsn}
    if case == "not json":
        path.write_text("{nope")
    elif case == "no index key":
        write_config(path, embeddings, "x")
        raw = json.loads(path.read_text())
        del raw["index"]
        path.write_text(json.dumps(raw))
    elif case == "s3 source":
        write_config(path, embeddings, "x", knowledge={"name": "notes",
                                                       "source": {"s3": {"bucket": "b"}}})
    elif case == "dsn unset":
        write_config(path, embeddings, "x")
        env = {"TEST_STORE_DSN": ""}

    code, summary, output = invoke(["--config", str(path)], env)

    assert code == 2
    assert summary["state"] == "invalid"
    assert re.search(message, summary["error"])
    assert "Traceback" not in output


def test_a_failed_run_exits_1_and_the_previous_version_keeps_serving(
    tmp_path: Path,
    pg_dsn: str,  # noqa: F811
    embeddings: EmbeddingsDouble,  # noqa: F811
) -> None:
    index = "tests/cli/fails"
    env = {"TEST_STORE_DSN": with_password(pg_dsn)}
    first = write_config(tmp_path / "first.json", embeddings, index)
    assert invoke(["--config", str(first)], env)[0] == 0
    changed = write_config(tmp_path / "changed.json", embeddings, index,
                           knowledge={"name": "notes", "source": {"text": "Different text."}})
    embeddings.fail_after = 0

    code, summary, output = invoke(["--config", str(changed)], env)

    assert code == 1
    assert summary["state"] == "failed"
    assert "HTTP 500" in summary["error"]
    assert PASSWORD not in output
    status = asyncio.run(read_status(pg_dsn, index))
    assert status is not None
    assert (status.active_version, status.last_run_state) == (1, "failed")


def test_an_unreachable_store_exits_1_without_printing_the_password(
    tmp_path: Path,
    embeddings: EmbeddingsDouble,  # noqa: F811
) -> None:
    config = write_config(tmp_path / "index.json", embeddings, "tests/cli/nowhere")
    dsn = f"postgresql://app:{PASSWORD}@/db?host={tmp_path}/no-such-socket-dir"

    code, summary, output = invoke(["--config", str(config)], {"TEST_STORE_DSN": dsn})

    assert code == 1
    assert summary["error"].startswith("the store is unreachable")
    assert PASSWORD not in output
