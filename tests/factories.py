"""Small factories for AIApp and Model bodies, so tests state only what they are about.

Each returns a plain dict, as the apiserver or a YAML file would hand it over; keyword
arguments replace or add keys.
"""

from __future__ import annotations

from typing import Any


def step(**overrides: Any) -> dict[str, Any]:
    return {"prompt": "What is 2 + 2?", "expected_output": "Says 4.", **overrides}


def scenario(name: str = "adds", **overrides: Any) -> dict[str, Any]:
    """One AISpec test (named so that pytest does not collect it)."""
    return {"name": name, "steps": [step()], **overrides}


def knowledge(name: str = "docs", **overrides: Any) -> dict[str, Any]:
    return {"name": name, "source": {"text": "The office opens at nine."}, **overrides}


def api(name: str = "jira", **overrides: Any) -> dict[str, Any]:
    return {"name": name, "schema": "https://example.com/openapi.yaml", **overrides}


def assistant(name: str = "helper", **overrides: Any) -> dict[str, Any]:
    return {"name": name, "model": "llama3.1:8b", "system_prompt": "Be brief.", **overrides}


def secret(name: str = "JIRA_TOKEN", **overrides: Any) -> dict[str, Any]:
    return {"name": name, "secret_name": "jira", "key": "token", **overrides}


def spec(*assistants: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {"assistants": list(assistants) or [assistant()], **overrides}


def aiapp(name: str = "demo", *assistants: dict[str, Any], **spec_overrides: Any) -> dict[str, Any]:
    """An AIApp in the CRD form."""
    return {
        "apiVersion": "app.aispec.org/v1alpha1",
        "kind": "AIApp",
        "metadata": {"name": name},
        "spec": spec(*assistants, **spec_overrides),
    }


def bare(name: str = "Demo", *assistants: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """An AIApp in Helix's bare form."""
    return {"name": name, **spec(*assistants, **overrides)}


def model(name: str = "small", **spec_overrides: Any) -> dict[str, Any]:
    return {
        "apiVersion": "model.aispec.org/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {"runtime": "vllm", "gpu": {"count": 1}, **spec_overrides},
    }
