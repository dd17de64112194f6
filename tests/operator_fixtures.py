"""Fixtures that run the real operator (``aiapp operator``) against the local cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiapp.localcluster import LocalCluster
from aiapp.localcluster.cluster import free_port

REPO = Path(__file__).resolve().parent.parent
OPERATOR_NAMESPACE = "aiapp-system"


class OperatorProcess:
    """``aiapp operator -A`` in a subprocess, restartable, with its log kept for failures."""

    def __init__(self, cluster: LocalCluster, log_path: Path) -> None:
        self.cluster = cluster
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_port = free_port()
        self.health_port = free_port()

    def start(self) -> None:
        env = self.cluster.env() | {
            "AIAPP_NAMESPACE": OPERATOR_NAMESPACE,
            "AIAPP_RESYNC_SECONDS": "20",
            "AIAPP_METRICS_PORT": str(self.metrics_port),
            "AIAPP_METRICS_HOST": "127.0.0.1",
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aiapp", "operator", "-A", "--standalone",
             "--health-port", str(self.health_port), "--health-host", "127.0.0.1",
             "--verbose"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Stop it the hard way, as a node failure or OOM kill would."""
        if self.process:
            self.process.kill()
            self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def operator(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """CRDs installed, the store Secret in place, and the operator running cluster-wide."""
    cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/aiapps.app.aispec.org",
                    "crd/models.model.aispec.org")
    cluster.kubectl("create", "namespace", OPERATOR_NAMESPACE, check=False)
    cluster.kubectl("create", "secret", "generic", "aiapp-store", "-n", OPERATOR_NAMESPACE,
                    "--from-literal=dsn=postgresql://aiapp@aiapp-postgres:5432/aiapp",
                    check=False)
    process = OperatorProcess(cluster, tmp_path_factory.mktemp("operator") / "operator.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()
        sys.stderr.write("\n--- operator log (tail) ---\n" + process.log()[-4000:] + "\n")


def apply(cluster: LocalCluster, namespace: str, *documents: dict[str, Any] | str) -> None:
    text = "\n---\n".join(d if isinstance(d, str) else yaml.safe_dump(d) for d in documents)
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=text)


def get(cluster: LocalCluster, namespace: str, *what: str) -> Any:
    result = cluster.kubectl("get", "-n", namespace, *what, "-o", "json", check=False)
    if result.returncode != 0:
        if "NotFound" in result.stderr:
            return None
        raise AssertionError(result.stderr)
    return json.loads(result.stdout)


def wait_until(check: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def condition(app: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for item in ((app or {}).get("status") or {}).get("conditions", []):
        if item["type"] == kind:
            return dict(item)
    return {}


def app_body(name: str, model: str = "llama3.1:8b", *, system_prompt: str = "Be brief.",
             **spec: Any) -> dict[str, Any]:
    """A small AIApp in the CRD form."""
    assistant = {"name": "helper", "model": model, "system_prompt": system_prompt}
    assistant.update(spec.pop("assistant", {}))
    return {
        "apiVersion": "app.aispec.org/v1alpha1",
        "kind": "AIApp",
        "metadata": {"name": name},
        "spec": {"assistants": [assistant], **spec},
    }
