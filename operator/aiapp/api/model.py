"""The Model kind: how a model string that assistants name is served.

A Model (``model.aispec.org/v1alpha1``, after Helix's ``kind: Model``) says which runtime
serves a model (vLLM, Ollama, the inference simulator for clusters without GPUs, or an external
OpenAI-compatible provider), on what GPUs, with which image and arguments. The spec is
camelCase, since every field but the model string is Kubernetes vocabulary.

``resolve_model`` answers the operator's question "how is this model served?": Model objects in
the app's namespace win over the presets of ``aiapp.api.presets``. Rendering Deployments from a
spec is ``aiapp.render``'s business.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from aiapp.api.aispec import ObjectMeta, ResourceRequirements
from aiapp.api.errors import AISpecError, issues_from_validation_error

API_VERSION: Final = "model.aispec.org/v1alpha1"
KIND: Final = "Model"

Runtime = Literal["vllm", "ollama", "simulated", "external"]

# Pinned images, one per runtime that runs in the cluster.
IMAGES: Final[dict[str, str]] = {
    "vllm": "vllm/vllm-openai:v0.11.0",
    "ollama": "ollama/ollama:0.12.6",
    "simulated": "ghcr.io/llm-d/llm-d-inference-sim:v0.6.1",
}


class _CamelSpec(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
    )


class SecretKeyRef(_CamelSpec):
    """A key of a Secret in the Model's namespace."""

    name: str = Field(min_length=1, max_length=253, description="The Secret's name.")
    key: str = Field(min_length=1, max_length=253, description="The key in the Secret.")


class GPURequirements(_CamelSpec):
    """The GPUs one replica needs; more than one means tensor parallelism across them."""

    count: int = Field(default=0, ge=0, le=16, description="GPUs per replica (nvidia.com/gpu).")
    product: str = Field(
        default="",
        description="Required nvidia.com/gpu.product label value, e.g. NVIDIA-H100-80GB-HBM3.",
    )
    min_memory_gib: int = Field(
        default=0,
        ge=0,
        alias="minMemoryGiB",
        description="Least memory per GPU in GiB, compared with the nvidia.com/gpu.memory label "
        "(MiB). A 24 GB card reports about 22.5 GiB, an 80 GB card about 79.6 GiB.",
    )


class Toleration(_CamelSpec):
    """A Kubernetes toleration, as in a pod spec."""

    key: str = Field(default="", description="Taint key; empty with Exists matches all.")
    operator: Literal["Equal", "Exists"] = Field(default="Equal", description="Equal or Exists.")
    value: str = Field(default="", description="Taint value for Equal.")
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        default="", description="Taint effect; empty matches all."
    )
    toleration_seconds: int | None = Field(
        default=None, description="How long a NoExecute taint is tolerated."
    )


class Cache(_CamelSpec):
    """A volume that keeps downloaded weights across restarts."""

    size: str = Field(default="", description="PersistentVolumeClaim size, e.g. 100Gi.")
    storage_class_name: str = Field(default="", description="Storage class; empty: default.")
    existing_claim: str = Field(default="", description="Use this claim instead of a new one.")


class ExternalProvider(_CamelSpec):
    """An OpenAI-compatible provider outside the cluster."""

    provider: str = Field(
        default="openai-compatible",
        description="Who runs it: openai, togetherai, anthropic, openai-compatible, ...",
    )
    base_url: str = Field(
        alias="baseURL",
        min_length=1,
        description="Base URL of the OpenAI-compatible API, ending in /v1.",
    )
    api_key_secret: SecretKeyRef | None = Field(
        default=None, description="The Secret key that holds the API key."
    )


class ModelSpec(_CamelSpec):
    """How one model is served."""

    served_name: str = Field(
        default="",
        description="The name assistants use in 'model'; defaults to metadata.name.",
    )
    source: str = Field(
        default="",
        description="What the runtime loads: a Hugging Face repo id for vllm and simulated, "
        "an Ollama tag for ollama, the provider's model id for external (default servedName).",
    )
    runtime: Runtime = Field(default="vllm", description="vllm, ollama, simulated or external.")
    task: Literal["chat", "embedding"] = Field(
        default="chat", description="Whether the model chats or computes embeddings."
    )
    gpu: GPURequirements = Field(default_factory=GPURequirements, description="GPUs per replica.")
    context_length: int | None = Field(
        default=None, ge=256, description="Longest context in tokens (vLLM --max-model-len)."
    )
    concurrency: int | None = Field(
        default=None, ge=1, description="Requests served at once (vLLM --max-num-seqs)."
    )
    args: list[str] = Field(
        default_factory=list, max_length=64, description="Extra runtime arguments."
    )
    image: str = Field(default="", description="Container image; empty: the runtime's pin.")
    replicas: int = Field(default=1, ge=0, le=64, description="Model server pods.")
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the pods require."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="Taints the pods tolerate."
    )
    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements,
        description="CPU and memory; nvidia.com/gpu comes from gpu.count.",
    )
    cache: Cache | None = Field(default=None, description="A volume for downloaded weights.")
    hf_token_secret: SecretKeyRef | None = Field(
        default=None, description="Secret key with a Hugging Face token for gated models."
    )
    external: ExternalProvider | None = Field(
        default=None, description="Where an external model is served; runtime external only."
    )

    @model_validator(mode="after")
    def _runtime_rules(self) -> ModelSpec:
        if self.runtime == "external":
            if self.external is None:
                raise PydanticCustomError(
                    "aispec",
                    "runtime external needs the external provider's baseURL",
                    {"fix": "add external: {baseURL: https://.../v1, apiKeySecret: {...}}"},
                )
            if self.gpu.count:
                raise PydanticCustomError(
                    "aispec",
                    "an external model runs outside the cluster, so it takes no GPUs",
                    {"fix": "remove gpu, or choose runtime vllm or ollama"},
                )
        elif self.external is not None:
            raise PydanticCustomError(
                "aispec",
                f"external is set but runtime is {self.runtime}",
                {"fix": "set runtime: external, or remove external"},
            )
        if self.runtime == "vllm" and self.gpu.count < 1:
            raise PydanticCustomError(
                "aispec",
                "runtime vllm needs at least one GPU (gpu.count)",
                {"fix": "set gpu.count, or use runtime ollama or simulated"},
            )
        if self.runtime == "ollama" and self.gpu.count > 1:
            raise PydanticCustomError(
                "aispec",
                f"runtime ollama uses one GPU, but gpu.count is {self.gpu.count}",
                {"fix": "set gpu.count to 0 or 1, or use runtime vllm for tensor parallelism"},
            )
        return self

    @property
    def effective_image(self) -> str:
        """The image to run: the spec's, or the runtime's pinned one ("" for external)."""
        return self.image or IMAGES.get(self.runtime, "")

    @property
    def effective_source(self) -> str:
        """What the runtime loads: ``source``, else ``servedName``."""
        return self.source or self.served_name


class Model(_CamelSpec):
    """A model server recipe: Model in model.aispec.org/v1alpha1."""

    model_config = ConfigDict(alias_generator=None)

    api_version: Literal["model.aispec.org/v1alpha1"] = Field(
        default=API_VERSION, alias="apiVersion", description="model.aispec.org/v1alpha1"
    )
    kind: Literal["Model"] = Field(default=KIND, description="Model")
    metadata: ObjectMeta = Field(description="Object metadata; name is required.")
    spec: ModelSpec = Field(description="How the model is served.")
    status: dict[str, Any] | None = Field(
        default=None, description="Written by the operator.", exclude=True
    )

    @model_validator(mode="after")
    def _served_name_defaults_to_name(self) -> Model:
        if not self.spec.served_name:
            self.spec.served_name = self.metadata.name
        return self

    def manifest(self) -> dict[str, Any]:
        """The object as a manifest, with the keys the user set."""
        body = self.model_dump(by_alias=True, exclude_unset=True)
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": {"name": self.metadata.name, **body.get("metadata", {})},
            "spec": body["spec"],
        }


def parse_model(body: Mapping[str, Any]) -> Model:
    """Validate a Model object; raise ``AISpecError`` with every error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Model.model_validate(body)
    except ValidationError as exc:
        raise AISpecError(issues_from_validation_error(exc, Model)) from None


def resolve_model(name: str, models: Iterable[Model]) -> ModelSpec | None:
    """How the model that assistants call ``name`` is served, or None if nothing says.

    Namespace Model objects win over presets. Within each, a ``servedName`` match wins over a
    ``metadata.name`` match, so a Model named ``llama`` serving ``meta-llama/...`` is found by
    either string.
    """
    # Imported here because the presets module builds Model objects from this module.
    from aiapp.api.presets import presets

    for candidates in (list(models), presets()):
        for model in candidates:
            if model.spec.served_name == name:
                return model.spec
        for model in candidates:
            if model.metadata.name == name:
                return model.spec
    return None
