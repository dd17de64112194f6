"""Pure renderers: an AIApp (with its resolved models and the operator's settings) in,
Kubernetes manifests as plain dicts out. Nothing here talks to the API server or logs, so
``aiapp render`` and the tests call the same functions the operator does.
"""
