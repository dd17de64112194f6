"""The app gateway: one AIApp served over an OpenAI-compatible HTTP API.

``aiapp gateway`` runs in the gateway Deployment the operator creates for each AIApp. It reads
the app's ``GatewayConfig`` (``aiapp.api.runtime``), picks the assistant a request names, applies
its prompt and sampling settings, retrieves knowledge from the pgvector store, turns the
assistant's ``apis[]`` into tools it runs itself, and relays the model server's answer.

The AIApp spec is read through the shared typed models of ``aiapp.api.aispec`` and API schemas
through ``aiapp.api.documents``, so the gateway accepts nothing that ``aiapp validate`` refuses.

Modules: ``errors`` (OpenAI-style error bodies, refused configs), ``upstreams``
(the model-server client), ``prompting`` (messages and templates), ``retrieving`` (knowledge),
``openapi_tools`` (APIs as tools), ``metrics``, ``server`` (the Starlette app) and ``commands``.
"""
