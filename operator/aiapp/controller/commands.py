"""``aiapp operator``: run the operator (kopf) with settings from flags and environment."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from typing import Any

import click
import kopf

from aiapp.controller.settings import OperatorSettings


@click.command()
@click.option("-n", "--namespace", "namespaces", multiple=True,
              help="Watch these namespaces (globs allowed); repeat for several.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Watch the whole cluster.")
@click.option("--standalone", is_flag=True,
              help="Do not coordinate with other replicas (the default without --peering).")
@click.option("--peering", default=None, envvar="AIAPP_PEERING",
              help="kopf peering object that keeps two replicas from acting at once (the "
              "Helm chart sets aiapp-operator and installs its CRDs). Without it the operator "
              "runs alone: start only one.")
@click.option("--health-port", type=int, default=8081, show_default=True,
              help="Port of the /healthz liveness endpoint; 0 disables it.")
@click.option("--health-host", default=None,
              help="Address the liveness endpoint listens on (default: all interfaces in a "
              "pod, 127.0.0.1 elsewhere).")
@click.option("--metrics-port", type=int, default=None,
              help="Prometheus port (default: AIAPP_METRICS_PORT or 9090; 0 disables).")
@click.option("--evaluation-model", default=None, help="Default judge model for tests.")
@click.option("--image", default=None, help="Image of the gateway, index and test Jobs.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def operator(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    standalone: bool,
    peering: str | None,
    health_port: int,
    health_host: str | None,
    metrics_port: int | None,
    evaluation_model: str | None,
    image: str | None,
    verbose: bool,
) -> None:
    """Run the AIApp operator against the cluster in KUBECONFIG (or in-cluster)."""
    if not namespaces and not all_namespaces:
        raise click.UsageError("say which namespaces to watch: -n NAME (repeatable) or -A")
    if namespaces and all_namespaces:
        raise click.UsageError("-n and -A exclude each other; choose one")
    overrides: dict[str, Any] = {key: value for key, value in {
        "metrics_port": metrics_port, "evaluation_model": evaluation_model, "image": image,
    }.items() if value is not None}
    settings = OperatorSettings(**overrides)

    # Import for the side effect of registering the handlers with kopf.
    from aiapp.controller import handlers  # noqa: F401

    # FULL puts a timestamp, level and [namespace/name] before every line.
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.FULL)
    logging.getLogger("aiapp").setLevel(logging.DEBUG if verbose else logging.INFO)
    for chatty in ("httpx", "httpcore", "httpx2", "httpcore2"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    memo = kopf.Memo(settings=settings)
    asyncio.run(kopf.operator(
        clusterwide=all_namespaces,
        namespaces=list(namespaces),
        standalone=standalone or not peering,
        peering_name=None if standalone else peering,
        # Peers of equal priority all pause; a random one makes exactly one replica active
        # and the others stand by until it goes.
        priority=int(os.environ.get("AIAPP_PRIORITY") or secrets.randbelow(1_000_000) + 1),
        liveness_endpoint=(f"http://{health_host or settings.metrics_host}:{health_port}/healthz"
                           if health_port else None),
        memo=memo,
    ))
