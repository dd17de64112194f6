"""The operator-wide settings that renderers need: images, the embedding model, the store."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RenderSettings:
    """What every rendered child depends on besides its AIApp."""

    image: str = "ghcr.io/aiapp-dev/aiapp:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    vllm_image: str = "vllm/vllm-openai:v0.11.0"
    ollama_image: str = "ollama/ollama:0.12.6"
    simulator_image: str = "ghcr.io/llm-d/llm-d-inference-sim:v0.6.1"
    embeddings_model: str = "BAAI/bge-small-en-v1.5"
    embeddings_url: str = ""
    embeddings_api_key_secret: str = ""
    evaluation_model: str = ""
    filestore_claim: str = ""
    gateway_port: int = 8080
    cluster_domain: str = "cluster.local"
    job_ttl_seconds: int = 86400
