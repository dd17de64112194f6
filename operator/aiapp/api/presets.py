"""Presets: Model specs for popular open models, shipped with the package.

The data lives in ``aiapp/presets/models.yaml`` so that it reads like the Model objects users
write. ``aiapp.api.model.resolve_model`` consults the presets after the namespace's own Model
objects.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml

from aiapp.api.model import Model, parse_model


@cache
def _load() -> tuple[Model, ...]:
    text = resources.files("aiapp").joinpath("presets", "models.yaml").read_text("utf-8")
    return tuple(parse_model(document) for document in yaml.safe_load_all(text) if document)


def presets() -> list[Model]:
    """Every preset Model, in file order (copies, so callers may change them)."""
    return [model.model_copy(deep=True) for model in _load()]


def preset_names() -> list[str]:
    """The model strings the presets serve (their servedName values)."""
    return [model.spec.served_name for model in _load()]
