"""Names, labels and hashes that every child of an AIApp shares.

Names are deterministic (server-side apply needs them) and stay valid DNS labels: a long
name is cut and given a short hash of the whole, so two long names never collide.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

DOMAIN = "aiapp.dev"
MANAGER = "aiapp-operator"
APP_LABEL = f"{DOMAIN}/app"
COMPONENT_LABEL = f"{DOMAIN}/component"
MODEL_SERVER_LABEL = f"{DOMAIN}/model-server"
KNOWLEDGE_LABEL = f"{DOMAIN}/knowledge"
REVISION_LABEL = f"{DOMAIN}/revision"
CONFIG_HASH_ANNOTATION = f"{DOMAIN}/config-hash"
SETTINGS_HASH_ANNOTATION = f"{DOMAIN}/settings-hash"
KEYS_VERSION_ANNOTATION = f"{DOMAIN}/keys-version"

# Parent labels and annotations with these prefixes are tools' bookkeeping, not the user's, and
# must not reach the children (where they would confuse the same tools).
PRIVATE_PREFIXES = (
    "kopf.zalando.org/",
    "kubectl.kubernetes.io/",
    "kustomize.toolkit.fluxcd.io/",
    "helm.sh/",
    "meta.helm.sh/",
    "app.kubernetes.io/",
    f"{DOMAIN}/",
)


def content_hash(value: Any, length: int = 10) -> str:
    """A short stable hash of any JSON-able value."""
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:length]


def dns_label(*parts: str, limit: int = 63) -> str:
    """Join parts into a DNS-1035 label; cut long ones and add a hash so they stay unique."""
    raw = "-".join(p for p in parts if p)
    slug = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    slug = re.sub(r"-{2,}", "-", slug)
    if not slug or not slug[0].isalpha():
        slug = f"x-{slug}"
    if len(slug) <= limit and slug == raw:
        return slug
    suffix = content_hash(raw, 6)
    return f"{slug[: limit - len(suffix) - 1].rstrip('-')}-{suffix}"


def propagated(values: dict[str, str] | None) -> dict[str, str]:
    """The parent's labels or annotations that children should carry too."""
    return {k: v for k, v in (values or {}).items() if not k.startswith(PRIVATE_PREFIXES)}


def labels(app: str, component: str, **extra: str) -> dict[str, str]:
    """Standard labels of a child of ``app``."""
    result = {
        "app.kubernetes.io/name": "aiapp",
        "app.kubernetes.io/instance": app,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGER,
        APP_LABEL: app,
        COMPONENT_LABEL: component,
    }
    result.update(extra)
    return result


def owner_reference(owner: dict[str, Any], *, controller: bool = True) -> dict[str, Any]:
    """An ownerReference to an AIApp body, so the garbage collector removes children with it."""
    return {
        "apiVersion": owner.get("apiVersion", "app.aispec.org/v1alpha1"),
        "kind": owner.get("kind", "AIApp"),
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"].get("uid", ""),
        "controller": controller,
        "blockOwnerDeletion": True,
    }
