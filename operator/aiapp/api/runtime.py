"""Runtime configuration: what the operator hands to the workloads it runs.

The operator renders these documents into ConfigMaps; the gateway, the indexer and the test
runner read them back. They never hold secret values: a secret travels as the name of an
environment variable that the pod gets from a Secret reference. The AIApp spec travels as the
plain dict the API server stored, so each workload parses it with ``aiapp.api.aispec``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AppRef(_Contract):
    """Which app a workload serves, and the configuration revision it was rendered from."""

    namespace: str
    name: str
    revision: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class Endpoint(_Contract):
    """An OpenAI-compatible endpoint: a model server in the cluster or an external provider."""

    base_url: str = Field(description="Base URL ending in /v1.")
    model: str = Field(description="The model name to send in requests.")
    api_key_env: str | None = Field(default=None, description="Env var holding the API key.")


class KnowledgeBinding(_Contract):
    index: str = Field(description='The store key "<namespace>/<app>/<knowledge>".')


class AssistantBinding(_Contract):
    upstream: Endpoint
    knowledge: dict[str, KnowledgeBinding] = Field(default_factory=dict)


class StoreRef(_Contract):
    dsn_env: str = "AIAPP_STORE_DSN"


class AuthRef(_Contract):
    api_keys_env: str = "AIAPP_API_KEYS"


class GatewayConfig(_Contract):
    """The gateway's whole view of its app (ConfigMap ``<app>-gateway``, key ``config.json``)."""

    app: AppRef
    spec: dict[str, Any]
    assistants: dict[str, AssistantBinding]
    embeddings: Endpoint | None = None
    store: StoreRef = StoreRef()
    auth: AuthRef = AuthRef()

    def app_body(self) -> dict[str, Any]:
        """The app as an AIApp object, for ``aiapp.api.aispec.parse_app``."""
        return {
            "apiVersion": "app.aispec.org/v1alpha1",
            "kind": "AIApp",
            "metadata": {"name": self.app.name, "namespace": self.app.namespace},
            "spec": self.spec,
        }


class IndexConfig(_Contract):
    """One knowledge index run (ConfigMap ``<app>-knowledge-<name>``, key ``index.json``)."""

    app: AppRef
    index: str = Field(description='The store key "<namespace>/<app>/<knowledge>".')
    knowledge: dict[str, Any] = Field(description="The AISpec knowledge entry, as written.")
    embeddings: Endpoint
    store: StoreRef = StoreRef()
    filestore_root: str = Field(default="/data/filestore", description="Where PVC files live.")
    settings_hash: str = Field(default="", description="Hash of sources and rag_settings.")
