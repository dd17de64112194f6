"""The quickstart (``make demo``): every example served on a cluster, in one command.

Where Docker and kind exist, the cluster is a kind cluster (``scripts/kind-demo.sh``). Elsewhere
it is the local control plane with simulated GPU nodes, which needs only Go and Python. Then the
CRDs go in, the operator runs, the examples are applied, and once every app is Ready the demo
prints ``kubectl get aiapps``, what the operator renders for one app, and what to try next. It
keeps running until Ctrl-C (or exits at once with ``--exit-when-ready``), and cleans up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from aiapp.localcluster import ClusterTier, LocalCluster, MissingBinaryError

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ("minimal", "jira", "docs-assistant", "external-provider")
NAMESPACE = "demo"
OPERATOR_NAMESPACE = "aiapp-system"
EVALUATION_MODEL = "llama3.1:8b"


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def build_tools() -> None:
    """Build the control plane from pinned Go modules; the first time takes minutes."""
    say("Building the local control plane from pinned Go modules (cached after the first "
        "run; a cold build on 2 cores takes about 15 minutes, progress below)...")
    subprocess.run(["bash", str(REPO / "tools" / "build.sh")], check=True,
                   stdout=subprocess.DEVNULL)


def prepare(cluster: LocalCluster) -> None:
    """CRDs, the operator's namespace and store Secret, the demo namespace and its Secrets."""
    say("Installing the CRDs and the demo's namespaces and Secrets...")
    cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/aiapps.app.aispec.org",
                    "crd/models.model.aispec.org")
    for namespace in (OPERATOR_NAMESPACE, NAMESPACE):
        cluster.kubectl("create", "namespace", namespace, check=False)
    # Stand-in credentials: nothing in the simulated cluster calls out with them.
    for namespace, name, pair in (
        (OPERATOR_NAMESPACE, "aiapp-store", "dsn=postgresql://aiapp@aiapp-postgres:5432/aiapp"),
        (NAMESPACE, "jira", "token=demo-token"),
        (NAMESPACE, "openai", "api-key=sk-demo"),
    ):
        cluster.kubectl("create", "secret", "generic", name, "-n", namespace,
                        f"--from-literal={pair}", check=False)


def start_operator(cluster: LocalCluster, log_path: Path) -> subprocess.Popen[bytes]:
    say(f"Starting the operator (log: {log_path})...")
    env = cluster.env() | {"AIAPP_NAMESPACE": OPERATOR_NAMESPACE,
                           "AIAPP_EVALUATION_MODEL": EVALUATION_MODEL,
                           "AIAPP_METRICS_PORT": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "aiapp", "operator", "-n", NAMESPACE, "--standalone",
         "--health-port", "0"],
        env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )


def apply_examples(cluster: LocalCluster) -> list[str]:
    say(f"Applying the examples into namespace {NAMESPACE}...")
    names = []
    for example in EXAMPLES:
        result = cluster.kubectl("apply", "--server-side", "-n", NAMESPACE,
                                 "-f", str(REPO / "examples" / example / "aiapp.yaml"))
        names += [line.split()[0].split("/")[-1] for line in result.stdout.splitlines()
                  if line.startswith("aiapp")]
    cluster.kubectl("apply", "--server-side", "-n", NAMESPACE,
                    "-f", str(REPO / "examples" / "models"))
    return names


def wait_ready(cluster: LocalCluster, names: list[str], timeout: float) -> bool:
    say(f"Waiting for {len(names)} apps to become Ready...")
    deadline = time.monotonic() + timeout
    pending = set(names)
    while time.monotonic() < deadline:
        listed = json.loads(cluster.kubectl("get", "aiapps", "-n", NAMESPACE, "-o",
                                            "json").stdout)["items"]
        ready = {app["metadata"]["name"] for app in listed if _ready(app)}
        if ready >= set(names):
            return True
        if pending - ready != pending:
            say(f"Ready: {', '.join(sorted(ready))}")
            pending -= ready
        time.sleep(2)
    return False


def _ready(app: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (app.get("status") or {}).get("conditions", []))


def show(cluster: LocalCluster) -> None:
    print(cluster.kubectl("get", "aiapps", "-n", NAMESPACE).stdout, flush=True)
    print(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide").stdout, flush=True)
    say("What the operator renders for examples/minimal/aiapp.yaml (aiapp render):")
    rendered = subprocess.run(
        [sys.executable, "-m", "aiapp", "render", str(REPO / "examples/minimal/aiapp.yaml"),
         "-n", NAMESPACE], capture_output=True, text=True, check=True).stdout
    kinds = [line for line in rendered.splitlines() if line.startswith(("kind:", "  name:"))]
    print("\n".join(f"  {line.strip()}" for line in kinds), flush=True)
    print(f"""
Next:
  export KUBECONFIG={cluster.kubeconfig}
  export PATH={cluster.bin_dir}:$PATH
  kubectl get aiapps -n {NAMESPACE} -o wide          # every column, including the endpoint
  kubectl describe aiapp minimal -n {NAMESPACE}      # conditions and events
  kubectl get pods -n {NAMESPACE} -o wide            # model servers on the GPU nodes
  .venv/bin/aiapp render examples/jira/aiapp.yaml    # what the operator makes of an app
Press Ctrl-C to stop the operator and the cluster.
""", flush=True)


def kind_available() -> bool:
    if not (shutil.which("docker") and shutil.which("kind")):
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Run every example on a local cluster.")
    parser.add_argument("--exit-when-ready", action="store_true",
                        help="Stop and clean up once every app is Ready (for tests and CI).")
    parser.add_argument("--timeout", type=float, default=300,
                        help="Seconds to wait for the apps to become Ready.")
    parser.add_argument("--workdir", type=Path, default=REPO / ".aiapp" / "demo")
    parser.add_argument("--local", action="store_true",
                        help="Use the local control plane even where kind is available.")
    args = parser.parse_args()

    if kind_available() and not args.local:
        say("Docker and kind found: running the kind path (scripts/kind-demo.sh).")
        return subprocess.run(["bash", str(REPO / "scripts" / "kind-demo.sh")]).returncode

    # Ctrl-C and SIGTERM end the wait below; the finally clauses clean up.
    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    say("No Docker here: using the local control plane with simulated GPU nodes.")
    try:
        build_tools()
    except subprocess.CalledProcessError:
        say("Building the control plane failed; see the messages above.")
        return 1
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    cluster = LocalCluster(args.workdir, ClusterTier.CLUSTER, log=say)
    operator: subprocess.Popen[bytes] | None = None
    try:
        cluster.start()
        prepare(cluster)
        operator = start_operator(cluster, args.workdir / "operator.log")
        names = apply_examples(cluster)
        if not wait_ready(cluster, names, args.timeout):
            say("Not every app became Ready in time:")
            print(cluster.kubectl("get", "aiapps", "-n", NAMESPACE, "-o", "wide").stdout)
            return 1
        show(cluster)
        if not args.exit_when_ready:
            while operator.poll() is None:
                time.sleep(1)
            say(f"The operator exited with {operator.returncode}; see its log.")
            return 1
        return 0
    except KeyboardInterrupt:
        say("Stopping...")
        return 0
    except MissingBinaryError as error:
        say(str(error))
        return 1
    finally:
        if operator is not None and operator.poll() is None:
            operator.terminate()
            try:
                operator.wait(timeout=20)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                operator.kill()  # a second Ctrl-C while stopping means: now
        cluster.stop()
        say("Cleaned up: the operator and the cluster are stopped.")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
