"""The operator's Kubernetes client: server-side apply with one field manager, and reads.

Everything goes through lightkube's async client, so no call blocks kopf's event loop.
``needs_apply`` decides, without a request, whether a live object already has every field the
operator renders; only then is an apply skipped, which keeps a resync of an unchanged app at
zero writes.
"""

from __future__ import annotations

import logging
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import CronJob, Job
from lightkube.resources.core_v1 import (
    ConfigMap,
    PersistentVolumeClaim,
    Pod,
    Secret,
    Service,
)
from lightkube.types import CascadeType, PatchType
from lightkube.utils.quantity import parse_quantity

from aiapp.render.meta import MANAGER

logger = logging.getLogger("aiapp.kube")

AIAppResource = create_namespaced_resource(
    "app.aispec.org", "v1alpha1", "AIApp", "aiapps")
ModelResource = create_namespaced_resource(
    "model.aispec.org", "v1alpha1", "Model", "models")

# Typed as Any: lightkube's overloads want one concrete kind per call, not a union of them.
RESOURCES: dict[str, Any] = {
    "Deployment": Deployment,
    "Service": Service,
    "ConfigMap": ConfigMap,
    "Secret": Secret,
    "Job": Job,
    "CronJob": CronJob,
    "PersistentVolumeClaim": PersistentVolumeClaim,
    "Pod": Pod,
    "AIApp": AIAppResource,
    "Model": ModelResource,
}


def resource_of(kind: str) -> Any:
    return RESOURCES[kind]


def to_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    result: dict[str, Any] = obj.to_dict()
    return result


QUANTITY_KEYS = {"resources", "storage"}


def _same_quantity(desired: Any, live: Any) -> bool:
    """Whether two resource quantities are equal however written ("0.5" and "500m")."""
    try:
        return bool(parse_quantity(str(desired)) == parse_quantity(str(live)))
    except (ValueError, TypeError, ArithmeticError):
        return False


def needs_apply(desired: Any, live: Any, quantities: bool = False) -> bool:
    """Whether ``live`` lacks or differs in any field that ``desired`` sets.

    Fields only the server sets (defaults, status, metadata bookkeeping) are ignored, since
    ``desired`` does not mention them. Lists compare item by item, because every list the
    renderers write is one the API server keeps in order.
    """
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return True
        return any(needs_apply(value, live.get(key), quantities or key in QUANTITY_KEYS)
                   for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return True
        return any(needs_apply(want, have, quantities)
                   for want, have in zip(desired, live, strict=True))
    if quantities and desired != live and live is not None:
        # The API server writes quantities in canonical form.
        return not _same_quantity(desired, live)
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is not live
    if isinstance(desired, int | float) and isinstance(live, int | float):
        return desired != live
    if desired in ("", None) and live in ("", None):
        return False
    return bool(desired != live)


class Kube:
    """The few verbs the operator uses, on plain dicts."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.writes = 0

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj = await self.client.get(resource_of(kind), name, namespace=namespace)
        except ApiError as error:
            if error.status.code == 404:
                return None
            raise
        return to_dict(obj)

    async def list(
        self, kind: str, namespace: str, labels: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        return [
            to_dict(obj)
            async for obj in self.client.list(
                resource_of(kind), namespace=namespace, labels=dict(labels or {}))
        ]

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply as the operator, taking fields over from hand edits."""
        self.writes += 1
        metadata = manifest["metadata"]
        logger.debug(f"Applying {manifest['kind']} {metadata.get('namespace')}/{metadata['name']}.")
        obj = await self.client.patch(
            resource_of(manifest["kind"]), metadata["name"], manifest,
            namespace=metadata.get("namespace"), patch_type=PatchType.APPLY,
            field_manager=MANAGER, force=True,
        )
        return to_dict(obj)

    async def ensure(
        self, manifest: dict[str, Any], live: dict[str, Any] | None = None,
        shared_by: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Apply ``manifest`` unless the live object already matches; say whether it wrote.

        For an object several apps share, ``shared_by`` is the uid of the app applying it:
        the live object matches when that app is among its owners and everything else is
        the same, so the owner list is rewritten once per app that joins, not each time
        another app reconciles.
        """
        metadata = manifest["metadata"]
        if live is None:
            live = await self.get(manifest["kind"], metadata["namespace"], metadata["name"])
        if live is not None and shared_by is not None:
            owners = {ref.get("uid") for ref in live["metadata"].get("ownerReferences") or []}
            rest = {**manifest, "metadata": {k: v for k, v in metadata.items()
                                             if k != "ownerReferences"}}
            if shared_by in owners and not needs_apply(rest, live):
                return live, False
        if live is not None and not needs_apply(manifest, live):
            return live, False
        if live is not None and manifest["kind"] in ("Job", "PersistentVolumeClaim"):
            # A Job's pod template is immutable, and a Job is named after what it does: an
            # existing one has run or is running this exact work, so it is left as it is.
            # A claim's spec is immutable too (but for growing), and holds downloaded weights.
            return live, False
        return await self.apply(manifest), True

    async def disown(self, obj: dict[str, Any], uid: str) -> None:
        """Remove one owner from a shared object, or delete it when that owner was the last.

        A JSON patch guarded by the resourceVersion edits only the owner list (an apply would
        drop every field not sent), and fails rather than overwrite a concurrent change; the
        next reconcile then sees the new state.
        """
        metadata = obj["metadata"]
        refs = metadata.get("ownerReferences") or []
        remaining = [ref for ref in refs if ref.get("uid") != uid]
        if len(remaining) == len(refs):
            return
        self.writes += 1
        if not remaining:
            logger.debug(f"Deleting {obj['kind']} {metadata['namespace']}/{metadata['name']}: "
                         "its last owner is gone.")
            try:
                await self.client.delete(
                    resource_of(obj["kind"]), metadata["name"], namespace=metadata["namespace"],
                    cascade=CascadeType.BACKGROUND)
            except ApiError as error:
                if error.status.code != 404:
                    raise
            return
        logger.debug(f"Removing an owner from {obj['kind']} "
                     f"{metadata['namespace']}/{metadata['name']}.")
        await self.client.patch(
            resource_of(obj["kind"]), metadata["name"],
            [{"op": "test", "path": "/metadata/resourceVersion",
              "value": metadata["resourceVersion"]},
             {"op": "replace", "path": "/metadata/ownerReferences", "value": remaining}],
            namespace=metadata["namespace"], patch_type=PatchType.JSON)

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        self.writes += 1
        logger.debug(f"Deleting {kind} {namespace}/{name}.")
        try:
            await self.client.delete(resource_of(kind), name, namespace=namespace,
                                     cascade=CascadeType.BACKGROUND)
        except ApiError as error:
            if error.status.code == 404:
                return False
            raise
        return True

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        self.writes += 1
        logger.debug(f"Patching the status of {kind} {namespace}/{name}.")
        await self.client.patch(
            resource_of(kind).Status, name, {"status": status},
            namespace=namespace, patch_type=PatchType.MERGE,
        )

