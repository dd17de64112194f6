"""``aiapp cluster``: run the local control plane by hand, for people and the quickstart."""

from __future__ import annotations

import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from aiapp.localcluster.cluster import (
    ClusterStartError,
    ClusterTier,
    LocalCluster,
    MissingBinaryError,
    default_bin_dir,
)


@click.group()
def cluster() -> None:
    """Run a real local control plane with simulated GPU nodes (no Docker needed)."""


@cluster.command()
@click.option("--dir", "workdir", type=click.Path(path_type=Path), default=Path(".aiapp/cluster"),
              show_default=True, help="Folder for certificates, etcd data, logs and kubeconfig.")
@click.option("--tier", type=click.Choice([t.value for t in ClusterTier]), default="cluster",
              show_default=True, help="api: etcd + kube-apiserver; cluster: plus controllers, "
              "scheduler and kwok nodes.")
@click.option("--bin-dir", type=click.Path(path_type=Path), default=None,
              help="Where the binaries are (default: the tools/build.sh cache).")
@click.option("--keep-state", is_flag=True,
              help="Keep the objects of the last run (etcd data) instead of starting empty.")
def up(workdir: Path, tier: str, bin_dir: Path | None, keep_state: bool) -> None:
    """Start the cluster and keep it running until Ctrl-C or SIGTERM."""
    if workdir.exists() and not keep_state:
        shutil.rmtree(workdir)
    local = LocalCluster(workdir, ClusterTier(tier), bin_dir=bin_dir or default_bin_dir(),
                         log=lambda message: click.echo(message, err=True))
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        local.start()
    except (MissingBinaryError, ClusterStartError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    try:
        (local.workdir / "ready").write_text(str(local.kubeconfig))
        click.echo(f"Cluster ready. In another shell:\n  export KUBECONFIG={local.kubeconfig}\n"
                   f"  export PATH={local.bin_dir}:$PATH\n"
                   "  kubectl get nodes -L nvidia.com/gpu.product\nPress Ctrl-C to stop.")
        stop.wait()
    finally:
        (local.workdir / "ready").unlink(missing_ok=True)
        local.stop()
        click.echo("Cluster stopped.", err=True)
