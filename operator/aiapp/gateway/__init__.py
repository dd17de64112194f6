"""The app gateway: one AIApp served over an OpenAI-compatible HTTP API.

``aiapp gateway`` runs in the gateway Deployment the operator creates for each AIApp. It reads
the app's ``GatewayConfig`` (``aiapp.api.runtime``), picks the assistant a request names, applies
its prompt and sampling settings, retrieves knowledge from the pgvector store, turns the
assistant's ``apis[]`` into tools it runs itself, and relays the model server's answer.

Modules: ``assistants`` (the spec view), ``errors`` (OpenAI-style error bodies), ``upstreams``
(the model-server client), ``prompting`` (messages and templates), ``retrieving`` (knowledge),
``openapi_tools`` (APIs as tools), ``metrics``, ``server`` (the Starlette app) and ``commands``.
"""
