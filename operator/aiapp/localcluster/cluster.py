"""Start and stop the local control plane's processes.

Two tiers: ``api`` runs etcd and kube-apiserver only (CRDs, admission, server-side apply);
``cluster`` adds kube-controller-manager, kube-scheduler and kwok with simulated GPU nodes, so
Deployments get pods that are scheduled, become Ready, and Jobs complete.

The harness is hand-written rather than driven through kwokctl: it needs no second Go build,
binds every port to 127.0.0.1 (kwokctl's default is all interfaces), keeps all state in one
folder, and owns the whole process tree, so a test failure, Ctrl-C or a killed parent leaves
no process or port behind.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import enum
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx
import yaml

from aiapp.localcluster import nodes, pki, stages

BINARIES = {
    "api": ("etcd", "kube-apiserver", "kubectl"),
    "cluster": ("etcd", "kube-apiserver", "kubectl", "kube-controller-manager",
                "kube-scheduler", "kwok"),
}
START_TIMEOUT = 120.0
# Processes get a short grace period: the cluster state is thrown away anyway.
STOP_TIMEOUT = 5.0


class ClusterTier(enum.StrEnum):
    API = "api"
    CLUSTER = "cluster"


class MissingBinaryError(RuntimeError):
    """A control-plane binary is not built; the message says how to build it."""


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message has its error output."""


class ClusterStartError(RuntimeError):
    """A process of the control plane failed to start; the message has its last log lines."""


def default_bin_dir() -> Path:
    """Where ``tools/build.sh`` links the binaries it built (``--print`` says the same)."""
    if explicit := os.environ.get("AIAPP_BIN_DIR"):
        return Path(explicit)
    cache = os.environ.get("AIAPP_TOOLS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "aiapp-tools"
    )
    return Path(cache) / "bin"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """Ask Linux to kill the child if the Python process dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class LocalCluster:
    """A real control plane on loopback; use as a context manager or call start/stop."""

    workdir: Path
    tier: ClusterTier = ClusterTier.CLUSTER
    bin_dir: Path = field(default_factory=default_bin_dir)
    simulated_nodes: Sequence[nodes.SimulatedNode] = nodes.DEFAULT_NODES
    log: Callable[[str], None] = lambda message: None

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).absolute()
        self.kubeconfig = self.workdir / "kubeconfig"
        self.apiserver_port = 0
        self._processes: list[_Process] = []
        self._pki: pki.ClusterPKI | None = None

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every process of the tier and wait until the cluster answers and is ready."""
        self._check_binaries()
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._pki = pki.create_pki(self.workdir / "pki")
            self._start_etcd()
            self._start_apiserver()
            self._write_kubeconfig()
            if self.tier is ClusterTier.CLUSTER:
                self._start_controllers()
                self._create_nodes()
                self._wait_for_cluster()
        except BaseException:
            self.stop()
            raise
        self.log(f"Local {self.tier.value} control plane is up in "
                 f"{time.monotonic() - started:.1f}s at {self.server}.")

    def stop(self) -> None:
        """Stop the processes in reverse order: SIGTERM, then SIGKILL after a grace period."""
        for process in reversed(self._processes):
            if process.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in reversed(self._processes):
            try:
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.popen.pid, signal.SIGKILL)
                process.popen.wait()
            process.log_file.close()
        self._processes.clear()

    # --- conveniences for tests and commands ----------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment for child commands: this cluster's kubeconfig and the binaries on PATH."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster; a failure carries kubectl's message."""
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            check=False, capture_output=True, text=True, input=input, timeout=timeout,
        )
        if check and result.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def http_client(self) -> httpx.Client:
        """An httpx client authenticated as the cluster admin."""
        assert self._pki is not None
        context = ssl.create_default_context(cafile=str(self._pki.ca_cert))
        context.load_cert_chain(str(self._pki.admin_cert), str(self._pki.admin_key))
        return httpx.Client(base_url=self.server, verify=context, timeout=10)

    # --- steps -----------------------------------------------------------------------------

    def _check_binaries(self) -> None:
        missing = [b for b in BINARIES[self.tier.value] if not (self.bin_dir / b).exists()]
        if missing:
            raise MissingBinaryError(
                f"The local control plane needs {', '.join(missing)} in {self.bin_dir}, "
                "which are not built. Build them with `tools/build.sh` (minutes the first time; "
                "cached after), or point AIAPP_BIN_DIR at a folder that has them."
            )

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> _Process:
        log_path = self.workdir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = log_path.open("ab")
        popen = subprocess.Popen(
            [str(self.bin_dir / name), *args],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_die_with_parent, env=env,
        )
        process = _Process(name, popen, log_path, log_file)
        self._processes.append(process)
        return process

    def _wait(self, process: _Process, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise ClusterStartError(
                    f"{process.name} exited with {process.popen.returncode} before {what}; "
                    f"last lines of {process.log_path}:\n{process.tail()}"
                )
            with contextlib.suppress(httpx.HTTPError, OSError, subprocess.SubprocessError):
                if ready():
                    return
            time.sleep(0.2)
        raise ClusterStartError(
            f"{process.name} did not get {what} within {START_TIMEOUT:.0f}s; "
            f"last lines of {process.log_path}:\n{process.tail()}"
        )

    def _start_etcd(self) -> None:
        client_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        process = self._spawn("etcd", [
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            # Tests throw the data away, so durability is wasted disk time.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ])
        self._wait(process, lambda: httpx.get(f"{self.etcd_url}/health").is_success, "healthy")

    def _start_apiserver(self) -> None:
        assert self._pki is not None
        self.apiserver_port = free_port()
        args = [
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.apiserver_port}",
            f"--tls-cert-file={self._pki.serving_cert}",
            f"--tls-private-key-file={self._pki.serving_key}",
            f"--client-ca-file={self._pki.ca_cert}",
            f"--service-account-key-file={self._pki.service_account_pub}",
            f"--service-account-signing-key-file={self._pki.service_account_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            # Loopback cannot be published as the kubernetes Service's endpoint.
            "--endpoint-reconciler-type=none",
            f"--cert-dir={self.workdir / 'pki'}",
        ]
        if self.tier is ClusterTier.API:
            # Without a controller-manager no default ServiceAccount exists, so the admission
            # plugin would refuse every pod; the api tier creates none that need it.
            args.append("--disable-admission-plugins=ServiceAccount")
        process = self._spawn("kube-apiserver", args)

        def ready() -> bool:
            with self.http_client() as client:
                return client.get("/readyz").is_success

        self._wait(process, ready, "ready")

    def _write_kubeconfig(self) -> None:
        assert self._pki is not None

        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "aiapp-local", "cluster": {
                "server": self.server,
                "certificate-authority-data": b64(self._pki.ca_cert),
            }}],
            "users": [{"name": "aiapp-admin", "user": {
                "client-certificate-data": b64(self._pki.admin_cert),
                "client-key-data": b64(self._pki.admin_key),
            }}],
            "contexts": [{"name": "aiapp-local", "context": {
                "cluster": "aiapp-local", "user": "aiapp-admin", "namespace": "default",
            }}],
            "current-context": "aiapp-local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def _start_controllers(self) -> None:
        assert self._pki is not None
        kubeconfig = f"--kubeconfig={self.kubeconfig}"
        self._spawn("kube-controller-manager", [
            kubeconfig,
            "--leader-elect=false",
            "--secure-port=0",
            f"--root-ca-file={self._pki.ca_cert}",
            f"--service-account-private-key-file={self._pki.service_account_key}",
            "--use-service-account-credentials=false",
            "--controllers=*",
            # Finished Jobs and deleted owners are collected quickly in tests.
            "--concurrent-gc-syncs=5",
        ])
        self._spawn("kube-scheduler", [
            kubeconfig,
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
        ])
        stages_path = self.workdir / "kwok-stages.yaml"
        stages_path.write_text(stages.STAGES)
        self._spawn("kwok", [
            kubeconfig,
            f"--config={stages_path}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={nodes.KWOK_ANNOTATION}=fake",
            f"--server-address=127.0.0.1:{free_port()}",
            "--node-ip=10.0.0.1",
            "--cidr=10.244.0.0/16",
            "--node-lease-duration-seconds=40",
        ])

    def _create_nodes(self) -> None:
        documents = [nodes.node_manifest(node) for node in self.simulated_nodes]
        self.kubectl("apply", "--server-side", "-f", "-",
                     input=yaml.safe_dump_all(documents))

    def _wait_for_cluster(self) -> None:
        """Ready means: every node Ready and the default ServiceAccount exists (pods admit)."""
        names = {node.name for node in self.simulated_nodes}
        controller = next(p for p in self._processes if p.name == "kube-controller-manager")

        def ready() -> bool:
            with self.http_client() as client:
                listed = client.get("/api/v1/nodes").json().get("items", [])
                ready_nodes = {
                    item["metadata"]["name"] for item in listed
                    if any(c.get("type") == "Ready" and c.get("status") == "True"
                           for c in item.get("status", {}).get("conditions", []))
                }
                account = client.get("/api/v1/namespaces/default/serviceaccounts/default")
                return names <= ready_nodes and account.is_success

        self._wait(controller, ready, "simulated nodes Ready and the default ServiceAccount")
        for process in self._processes:
            if process.popen.poll() is not None:
                raise ClusterStartError(
                    f"{process.name} exited with {process.popen.returncode}; last lines of "
                    f"{process.log_path}:\n{process.tail()}"
                )

