"""Everything one AIApp needs, rendered at once: what ``aiapp render`` prints and what the
operator applies.

The caller resolves model strings to ``ModelSpec`` first (Model objects, then presets); this
module only turns an app plus those answers into manifests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiapp.api.aispec import AIAppSpec
from aiapp.api.model import ModelSpec
from aiapp.api.runtime import Endpoint, GatewayConfig
from aiapp.render import gateway, jobs, model_servers
from aiapp.render.settings import RenderSettings


@dataclass
class RenderedApp:
    """The app's children by role, and facts the operator reports in status."""

    config: GatewayConfig
    model_servers: list[dict[str, Any]] = field(default_factory=list)
    gateway_config: dict[str, Any] = field(default_factory=dict)
    gateway: list[dict[str, Any]] = field(default_factory=list)
    knowledge: list[dict[str, Any]] = field(default_factory=list)
    model_names: dict[str, str] = field(default_factory=dict)

    @property
    def revision(self) -> str:
        return self.config.app.revision

    def all(self) -> list[dict[str, Any]]:
        return [*self.model_servers, self.gateway_config, *self.gateway, *self.knowledge]


def models_used(spec: AIAppSpec, settings: RenderSettings) -> list[str]:
    """Every model string the app needs served: assistants', embeddings', the judge's."""
    used = [assistant.model for assistant in spec.assistants]
    if gateway.uses_knowledge(spec) and not settings.embeddings_url:
        used.append(settings.embeddings_model)
    judge = evaluation_model(spec, settings)
    if judge:
        used.append(judge)
    return list(dict.fromkeys(used))


def evaluation_model(spec: AIAppSpec, settings: RenderSettings) -> str:
    """The judge for the app's tests: the app's choice, else the operator's; "" if no tests."""
    if not any(assistant.tests for assistant in spec.assistants):
        return ""
    return spec.testing.evaluation_model or settings.evaluation_model


def judge_endpoint(
    spec: AIAppSpec, models: dict[str, ModelSpec], namespace: str, settings: RenderSettings
) -> Endpoint | None:
    judge = evaluation_model(spec, settings)
    if not judge:
        return None
    return model_servers.endpoint(models[judge], namespace, settings)


def render_app(
    body: dict[str, Any],
    spec: AIAppSpec,
    models: dict[str, ModelSpec],
    settings: RenderSettings,
    *,
    model_owners: dict[str, list[dict[str, Any]]] | None = None,
    serving_revision: str | None = None,
    keys_version: str = "",
) -> RenderedApp:
    """Render the app's children.

    ``models`` maps every string of ``models_used`` to its spec. ``model_owners`` maps a model
    server's name to every app that uses it (default: this app alone). ``serving_revision``
    keeps the serving gateway on an older revision while a gated candidate is tested.
    """
    namespace = body["metadata"]["namespace"]
    config = gateway.gateway_config(body, spec, models, settings)
    rendered = RenderedApp(config=config)

    # Model servers, once per distinct server, each owned by every app that uses it.
    seen: set[str] = set()
    for model_string in models_used(spec, settings):
        model = models[model_string]
        name = model_servers.server_name(model)
        rendered.model_names[model_string] = name if model.runtime != "external" else ""
        if name in seen:
            continue
        seen.add(name)
        owners = (model_owners or {}).get(name) or [body]
        rendered.model_servers += model_servers.render_model_server(
            model, namespace, owners, settings)

    # The gateway serves the newest revision unless a gated rollout holds it back.
    rendered.gateway_config = gateway.render_config_map(body, config)
    revision = serving_revision or config.app.revision
    rendered.gateway = gateway.render_gateway(body, spec, models, revision, settings,
                                              keys_version=keys_version)

    # One index Job (and refresh CronJob) per knowledge entry.
    if gateway.uses_knowledge(spec):
        embeddings = gateway.embeddings_endpoint(models, namespace, settings)
        for assistant in spec.assistants:
            for knowledge in assistant.knowledge:
                rendered.knowledge += jobs.render_knowledge(
                    body, spec, assistant, knowledge, embeddings, settings)
    return rendered
