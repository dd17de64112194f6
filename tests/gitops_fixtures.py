"""Fixtures for the gitops tier: Flux's real controllers and a git server, both on loopback.

- ``flux``: source-controller and kustomize-controller (built by ``tools/build.sh`` from the
  modules pinned in ``tools/flux``) run against the local cluster as processes, with their CRDs
  installed from the same modules in Go's module cache.
- ``git_server``: a smart-HTTP git server (dulwich) serving repositories the test writes to;
  a commit made in a served repository is what a merged pull request looks like to Flux.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
from dulwich.protocol import CAPABILITY_THIN_PACK
from dulwich.repo import Repo
from dulwich.server import DEFAULT_HANDLERS, DictBackend, UploadPackHandler
from dulwich.web import make_wsgi_chain

from aiapp.localcluster import LocalCluster
from aiapp.localcluster.cluster import free_port

REPO = Path(__file__).resolve().parent.parent
FLUX_MODULES = ("source-controller", "kustomize-controller")
FLUX_NAMESPACE = "flux-system"
START_TIMEOUT = 60.0


def flux_versions() -> dict[str, str]:
    """The controller versions tools/flux/go.mod pins, e.g. {"source-controller": "v1.9.6"}."""
    text = (REPO / "tools" / "flux" / "go.mod").read_text()
    return {name: re.search(rf"github\.com/fluxcd/{name} (v\S+)", text).group(1)  # type: ignore[union-attr]
            for name in FLUX_MODULES}


def flux_crds() -> list[Path]:
    """Every Flux CRD file from the pinned modules, as `go build` left them in the cache."""
    cache = os.environ.get("GOMODCACHE") or subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=False,
        env=os.environ | {"GOTOOLCHAIN": "local"}).stdout.strip() or \
        os.path.expanduser("~/go/pkg/mod")
    files: list[Path] = []
    for name, version in flux_versions().items():
        folder = Path(cache) / "github.com" / "fluxcd" / f"{name}@{version}" / "config" / "crd" \
            / "bases"
        found = sorted(folder.glob("*.yaml"))
        if not found:
            pytest.fail(f"Flux CRDs are not in {folder}; build Flux with `tools/build.sh` "
                        "(it downloads the modules that carry them).", pytrace=False)
        files += found
    return files


# --- git ------------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Requests are not worth a line each in the test output."""


class _UploadPack(UploadPackHandler):
    """dulwich's upload-pack without demanding thin-pack, which go-git does not advertise.

    dulwich refuses such clients outright. Flux clones afresh each time (no objects to build a
    thin pack against), so sending full packs changes nothing for it.
    """

    @classmethod
    def required_capabilities(cls) -> tuple[bytes, ...]:
        return tuple(c for c in super().required_capabilities() if c != CAPABILITY_THIN_PACK)


@dataclass
class GitRepository:
    """A repository with a work tree, served read-only at ``url``; commit to publish."""

    path: Path
    url: str

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(self.path), *args], check=True, capture_output=True, text=True,
            env=os.environ | {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "t@example.com",
                              "GIT_COMMITTER_NAME": "test",
                              "GIT_COMMITTER_EMAIL": "t@example.com"},
        ).stdout.strip()

    def commit(self, message: str, files: dict[str, str | None]) -> str:
        """Write (or, for None, delete) files and commit them; returns the new commit's sha."""
        for name, text in files.items():
            target = self.path / name
            if text is None:
                self.git("rm", "-q", name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
                self.git("add", name)
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")


@dataclass
class GitServer:
    root: Path
    port: int = 0
    repositories: dict[bytes, Repo] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.backend = DictBackend(self.repositories)
        self.server: WSGIServer = make_server(
            "127.0.0.1", self.port,
            make_wsgi_chain(self.backend,
                            handlers=DEFAULT_HANDLERS | {b"git-upload-pack": _UploadPack}),
            handler_class=_QuietHandler)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def create(self, name: str) -> GitRepository:
        """A new repository on branch main, served as ``http://127.0.0.1:<port>/<name>.git``."""
        path = self.root / name
        path.mkdir(parents=True)
        repository = GitRepository(path, f"http://127.0.0.1:{self.port}/{name}.git")
        repository.git("init", "-q", "--initial-branch=main")
        self.repositories[f"/{name}.git".encode()] = Repo(str(path))
        return repository

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for repository in self.repositories.values():
            repository.close()


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    server = GitServer(tmp_path / "git")
    try:
        yield server
    finally:
        server.close()


# --- Flux -----------------------------------------------------------------------------------


@dataclass
class FluxControllers:
    cluster: LocalCluster
    workdir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def start(self) -> None:
        bin_dir = self.cluster.bin_dir
        missing = [name for name in FLUX_MODULES if not (bin_dir / name).exists()]
        if missing:
            pytest.fail(f"{', '.join(missing)} not built in {bin_dir}; build them with "
                        "`tools/build.sh` (the flux family, minutes the first time).",
                        pytrace=False)
        self.cluster.kubectl("create", "namespace", FLUX_NAMESPACE, check=False)
        for crd in flux_crds():
            self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        self.cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                             "crd/gitrepositories.source.toolkit.fluxcd.io",
                             "crd/kustomizations.kustomize.toolkit.fluxcd.io")

        storage = self.workdir / "storage"
        storage.mkdir(parents=True)
        storage_addr = f"127.0.0.1:{free_port()}"
        health = {name: free_port() for name in FLUX_MODULES}
        common = ["--watch-all-namespaces=true", "--log-level=info",
                  "--enable-leader-election=false"]
        arguments = {
            "source-controller": [
                f"--storage-path={storage}", f"--storage-addr={storage_addr}",
                f"--storage-adv-addr={storage_addr}"],
            "kustomize-controller": ["--no-remote-bases=true"],
        }
        env = self.cluster.env() | {"RUNTIME_NAMESPACE": FLUX_NAMESPACE}
        for name in FLUX_MODULES:
            log = (self.workdir / f"{name}.log").open("ab")
            self.processes[name] = subprocess.Popen(
                [str(bin_dir / name), *common, *arguments[name],
                 f"--metrics-addr=127.0.0.1:{free_port()}",
                 f"--health-addr=127.0.0.1:{health[name]}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )
        for name, port in health.items():
            self._wait_ready(name, port)

    def _wait_ready(self, name: str, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n"
                            f"{self.log(name)[-3000:]}", pytrace=False)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).is_success:
                    return
            time.sleep(0.3)
        pytest.fail(f"{name} was not ready in {START_TIMEOUT:.0f}s:\n{self.log(name)[-3000:]}",
                    pytrace=False)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="session")
def flux(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        FluxControllers]:
    """Flux's source- and kustomize-controller watching every namespace of the cluster."""
    controllers = FluxControllers(cluster, tmp_path_factory.mktemp("flux"))
    try:
        controllers.start()
        yield controllers
    finally:
        controllers.stop()
