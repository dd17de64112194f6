"""kopf handlers: what the operator reacts to. Each one hands over to ``Reconciler``.

- AIApps: created, changed, resumed after a restart, and resynced on a timer.
- Children (Deployments, Services, ConfigMaps, Jobs, CronJobs, Pods) labelled as ours: any
  change or deletion re-reconciles the owning app within a second, which repairs hand edits
  and refreshes the app's status as pods are scheduled, start or fail.
- Models: a change re-reconciles every app in the namespace.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import httpx2
import kopf
from lightkube import AsyncClient
from prometheus_client import start_http_server

from aiapp.controller import metrics
from aiapp.controller.kube import Kube
from aiapp.controller.reconciler import Indexes, Reconciler, StalledError, models_of_spec
from aiapp.controller.settings import OperatorSettings
from aiapp.render import meta

AIAPPS = ("app.aispec.org", "v1alpha1", "aiapps")
MODELS = ("model.aispec.org", "v1alpha1", "models")
OURS = {"app.kubernetes.io/managed-by": meta.MANAGER}
RESYNC_SECONDS = float(os.environ.get("AIAPP_RESYNC_SECONDS", "300"))


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger,
                    **_: Any) -> None:
    operator_settings: OperatorSettings = memo.get("settings") or OperatorSettings()

    # Our own annotation prefix and finalizer; events are posted explicitly, not per log line.
    settings.persistence.finalizer = f"{meta.DOMAIN}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=meta.DOMAIN)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=meta.DOMAIN, key="last-handled-configuration")
    settings.posting.level = logging.WARNING
    # Watches that hang silently are restarted rather than trusted.
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 30
    settings.execution.max_workers = 8

    # lightkube speaks through httpx2, so its timeout type comes from there.
    client = AsyncClient(timeout=httpx2.Timeout(60, connect=10))
    memo.reconciler = Reconciler(Kube(client), operator_settings)
    if operator_settings.metrics_port:
        start_http_server(operator_settings.metrics_port, operator_settings.metrics_host)
    logger.info(f"The operator is configured: store Secret "
                f"{operator_settings.namespace}/{operator_settings.store_secret}, embeddings "
                f"{operator_settings.embeddings_url or operator_settings.embeddings_model}.")


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    reconciler: Reconciler | None = memo.get("reconciler")
    if reconciler is not None:
        await reconciler.kube.client.close()


# --- indexes: kopf fills them before any other handler runs -----------------------------------


@kopf.index(*AIAPPS)
def app_models(namespace: str | None, name: str, uid: str, spec: kopf.Spec, memo: kopf.Memo,
               **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """(namespace, model string) -> the apps that need that model served."""
    settings = memo.get("settings") or OperatorSettings()
    owner = {"apiVersion": "app.aispec.org/v1alpha1", "kind": "AIApp",
             "metadata": {"name": name, "uid": uid}}
    assert namespace is not None, "AIApps are namespaced"
    return {(namespace, model): owner for model in models_of_spec(dict(spec), settings)}


@kopf.index(*MODELS)
def namespace_models(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """namespace -> its Model objects."""
    assert namespace is not None, "Models are namespaced"
    return {namespace: {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
                        "metadata": {"name": body.metadata.name, "namespace": namespace,
                                     "generation": body.metadata.get("generation", 0)},
                        "spec": dict(body.spec), "status": dict(body.status)}}


def _reconciler(memo: kopf.Memo, kwargs: dict[str, Any]) -> Reconciler:
    """The reconciler, told the current indexes (kopf passes them by their function names)."""
    reconciler: Reconciler = memo.reconciler
    reconciler.indexes = Indexes(app_models=kwargs["app_models"],
                                 namespace_models=kwargs["namespace_models"])
    return reconciler


# --- the app itself -----------------------------------------------------------------------------


@kopf.on.resume(*AIAPPS)
@kopf.on.create(*AIAPPS)
@kopf.on.update(*AIAPPS)
async def reconcile_app(
    namespace: str | None, name: str, logger: kopf.Logger, memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    assert namespace is not None, "AIApps and their children are namespaced"
    reconciler = _reconciler(memo, kwargs)
    try:
        outcome = await reconciler.reconcile(namespace, name, logger)
    except StalledError as stalled:
        metrics.RECONCILE_ERRORS.labels("stalled").inc()
        raise kopf.PermanentError(stalled.message) from None
    logger.info(f"Reconciled with {outcome.writes} write(s): {outcome.message}")


@kopf.timer(*AIAPPS, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
async def resync_app(
    namespace: str | None, name: str, logger: kopf.Logger, memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    assert namespace is not None, "AIApps and their children are namespaced"
    reconciler = _reconciler(memo, kwargs)
    try:
        outcome = await reconciler.reconcile(namespace, name, logger, trigger="resync")
    except StalledError:
        return  # already reported; only a change of the spec can help
    if outcome.writes:
        logger.info(f"Resync repaired the app with {outcome.writes} write(s).")


# --- children and models ------------------------------------------------------------------------


@kopf.on.event("apps", "v1", "deployments", labels=OURS)
@kopf.on.event("", "v1", "services", labels=OURS)
@kopf.on.event("", "v1", "configmaps", labels=OURS)
@kopf.on.event("batch", "v1", "jobs", labels=OURS)
@kopf.on.event("batch", "v1", "cronjobs", labels=OURS)
@kopf.on.event("", "v1", "pods", labels=OURS)
async def child_changed(
    namespace: str | None, body: kopf.Body, labels: kopf.Labels, memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    assert namespace is not None, "AIApps and their children are namespaced"
    reconciler = _reconciler(memo, kwargs)

    # A shared model server concerns every app using it, but only when its spec or status
    # changes: its owner list grows with each app and would otherwise wake all of them.
    if server := labels.get(meta.MODEL_SERVER_LABEL):
        if reconciler.server_changed(kwargs.get("type") or "", body):
            reconciler.kick_server_users(namespace, server)
        return

    owners = {ref["name"] for ref in body.metadata.get("ownerReferences", [])
              if ref.get("kind") == "AIApp"}
    if app := labels.get(meta.APP_LABEL):
        owners.add(app)
    for owner in sorted(owners):
        reconciler.kick(namespace, owner)


@kopf.on.event(*MODELS)
async def model_changed(
    namespace: str | None, memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    assert namespace is not None, "AIApps and their children are namespaced"
    reconciler = _reconciler(memo, kwargs)
    index = reconciler.indexes.app_models
    apps = {user["metadata"]["name"] for (ns, _model), users in index.items()
            if ns == namespace for user in users}
    for app in sorted(apps):
        reconciler.kick(namespace, app)
