"""Benchmark (not a test): the operator at 1, 100 and 1,000 AIApps on the local cluster.

For each size, on a fresh simulated cluster: the time from ``kubectl apply`` of N apps to every
app's children applied (its gateway Deployment exists) and to every app Ready; the API writes
the operator sends during one resync of N unchanged apps (goal: zero); and the operator's peak
resident memory. Run from the repository root:

    .venv/bin/python benchmarks/operator_scale.py --sizes 1 100 1000
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from aiapp.localcluster import ClusterTier, LocalCluster
from aiapp.localcluster.cluster import free_port
from aiapp.localcluster.nodes import DEFAULT_NODES, SimulatedNode

REPO = Path(__file__).resolve().parent.parent
RESYNC_SECONDS = 60


def app(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "app.aispec.org/v1alpha1",
        "kind": "AIApp",
        "metadata": {"name": f"bench-{index:04d}"},
        "spec": {"assistants": [{"name": "helper", "model": "llama3.1:8b",
                                 "system_prompt": f"You are helper number {index}."}]},
    }


def writes(metrics_url: str) -> float:
    text = httpx.get(metrics_url, timeout=10).text
    match = re.search(r"^aiapp_api_writes_total (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else 0.0


def wait_for(check: Any, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(1)
    raise TimeoutError("gave up waiting")


def run(size: int, workdir: Path) -> dict[str, Any]:
    # Enough CPU nodes for every gateway pod (110 pods each), besides the GPU nodes.
    extra = [SimulatedNode(f"cpu-bench-{i}", cpu="64", memory="256Gi")
             for i in range(size // 100 + 1)]
    cluster = LocalCluster(workdir / f"cluster-{size}", ClusterTier.CLUSTER,
                           simulated_nodes=(*DEFAULT_NODES, *extra))
    cluster.start()
    operator: subprocess.Popen[bytes] | None = None
    try:
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "crd/aiapps.app.aispec.org")
        cluster.kubectl("create", "namespace", "bench")
        port = free_port()
        env = cluster.env() | {"AIAPP_RESYNC_SECONDS": str(RESYNC_SECONDS),
                               "AIAPP_METRICS_PORT": str(port),
                               "AIAPP_METRICS_HOST": "127.0.0.1"}
        log = (workdir / f"operator-{size}.log").open("wb")
        operator = subprocess.Popen(
            [sys.executable, "-m", "aiapp", "operator", "-A", "--standalone",
             "--health-port", "0"], env=env, stdout=log, stderr=subprocess.STDOUT)
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: _answers(metrics_url), 60)

        # Apply every app at once, as a Flux sync of a repository would.
        started = time.monotonic()
        cluster.kubectl("apply", "--server-side", "-n", "bench", "-f", "-",
                        input=yaml.safe_dump_all([app(i) for i in range(size)]), timeout=600)

        def gateways() -> bool:
            listed = cluster.kubectl("get", "deployments", "-n", "bench", "-l",
                                     "aiapp.dev/component=gateway", "-o", "name", timeout=120)
            return len(listed.stdout.split()) >= size

        def all_ready() -> bool:
            listed = json.loads(cluster.kubectl("get", "aiapps", "-n", "bench", "-o", "json",
                                                timeout=120).stdout)["items"]
            return sum(
                any(c["type"] == "Ready" and c["status"] == "True"
                    for c in (a.get("status") or {}).get("conditions", []))
                for a in listed) >= size

        wait_for(gateways, 3600)
        applied = time.monotonic() - started
        wait_for(all_ready, 3600)
        ready = time.monotonic() - started

        # Let events settle, then count writes over one whole resync period.
        settled = writes(metrics_url)
        time.sleep(10)
        while writes(metrics_url) != settled:
            settled = writes(metrics_url)
            time.sleep(10)
        time.sleep(RESYNC_SECONDS + 15)
        resync_writes = writes(metrics_url) - settled
        return {"apps": size, "children_applied_s": round(applied, 1),
                "ready_s": round(ready, 1), "writes_per_resync": resync_writes,
                "peak_rss_mib": round(peak_rss_mib(operator.pid), 1)}
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=30)
        cluster.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).is_success
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 1000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            result = run(size, Path(folder))
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
