"""The operator's settings, from flags and ``AIAPP_*`` environment variables."""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from aiapp.render.settings import RenderSettings


def _listen_host() -> str:
    """All interfaces inside a pod (Prometheus and kubelet reach in), loopback on a laptop."""
    return "0.0.0.0" if os.environ.get("KUBERNETES_SERVICE_HOST") else "127.0.0.1"


class OperatorSettings(BaseSettings):
    """Everything the operator is told at start; the Helm chart sets these as environment."""

    model_config = SettingsConfigDict(env_prefix="AIAPP_", extra="ignore")

    namespace: str = Field(default="aiapp-system",
                           description="The operator's own namespace (where the store Secret is).")
    image: str = Field(default="ghcr.io/aiapp-dev/aiapp:0.1.0",
                       description="Image of the gateway, index and test Jobs.")
    image_pull_policy: str = "IfNotPresent"
    vllm_image: str = "vllm/vllm-openai:v0.11.0"
    ollama_image: str = "ollama/ollama:0.12.6"
    simulator_image: str = "ghcr.io/llm-d/llm-d-inference-sim:v0.6.1"
    embeddings_model: str = Field(default="BAAI/bge-small-en-v1.5",
                                  description="Embedding model for knowledge indexes.")
    embeddings_url: str = Field(default="", description="External embeddings endpoint (/v1).")
    embeddings_api_key_secret: str = Field(
        default="", description="'<secret>/<key>' in each app namespace with the embeddings key.")
    evaluation_model: str = Field(default="", description="Default judge model for tests.")
    store_secret: str = Field(default="aiapp-store",
                              description="Secret in the operator namespace with key 'dsn'.")
    filestore_claim: str = Field(default="", description="PVC with filestore knowledge files.")
    gateway_port: int = 8080
    cluster_domain: str = "cluster.local"
    concurrent_reconciles: int = Field(default=16, ge=1,
                                       description="Apps reconciled at the same time.")
    resync_seconds: float = Field(default=300, description="Periodic re-check of every app.")
    metrics_port: int = Field(default=9090, description="Prometheus metrics port; 0 disables.")
    metrics_host: str = Field(
        default_factory=lambda: _listen_host(),
        description="Address of the metrics endpoint: all interfaces in a pod, loopback "
        "elsewhere.")

    def render(self) -> RenderSettings:
        return RenderSettings(
            image=self.image,
            image_pull_policy=self.image_pull_policy,
            vllm_image=self.vllm_image,
            ollama_image=self.ollama_image,
            simulator_image=self.simulator_image,
            embeddings_model=self.embeddings_model,
            embeddings_url=self.embeddings_url,
            embeddings_api_key_secret=self.embeddings_api_key_secret,
            evaluation_model=self.evaluation_model,
            filestore_claim=self.filestore_claim,
            gateway_port=self.gateway_port,
            cluster_domain=self.cluster_domain,
        )
