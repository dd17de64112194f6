"""The chart's generated parts are current, and it sets every operator setting.

These read files only; tests/test_packaging_helm.py renders the chart with the real helm and
dry-runs it against the real apiserver.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from aiapp.controller.settings import OperatorSettings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "aiapp-operator"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_generate", CHART / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_crd_templates_are_unchanged_copies_of_the_repository_crds() -> None:
    """Drift shows as a stale file; the fix is to run the generator, never to edit a copy."""
    stale = generator().stale_files()
    assert not stale, f"run charts/aiapp-operator/generate.py; stale: {stale}"
    for source in sorted((REPO / "crds").glob("*.yaml")):
        copy = (CHART / "templates" / "crds" / source.name).read_text()
        # Dropping the template lines and the keep annotation gives the source back exactly.
        plain = re.sub(r"(?m)^.*\{\{.*\n|^  annotations:\n    helm.sh/resource-policy: keep\n",
                       "", copy)
        assert plain == source.read_text(), source.name


def test_a_changed_source_crd_makes_the_check_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = generator()
    sources = tmp_path / "crds"
    sources.mkdir()
    for source in (REPO / "crds").glob("*.yaml"):
        (sources / source.name).write_text(source.read_text())
    edited = sources / "models.model.aispec.org.yaml"
    edited.write_text(edited.read_text().replace("shortNames:", "shortNames:\n    - mdl", 1)
                      if "shortNames:" in edited.read_text() else edited.read_text() + "\n# x\n")
    monkeypatch.setattr(module, "SOURCE_CRDS", sources)
    assert module.stale_files() == ["charts/aiapp-operator/templates/crds/"
                                    "models.model.aispec.org.yaml"]


def test_every_value_has_a_comment_and_a_row_in_the_readme() -> None:
    values_text = (CHART / "values.yaml").read_text()
    documented = dict(generator().documented_values(values_text))
    readme = (CHART / "README.md").read_text()
    for key, description in documented.items():
        assert description, f"{key} has an empty `# --` comment"
        assert f"| `{key}` |" in readme, f"{key} is missing from README.md"

    # Every leaf of values.yaml is documented itself or inside a documented mapping.
    def leaves(node: object, prefix: str) -> list[str]:
        if isinstance(node, dict) and node:
            return [leaf for key, value in node.items()
                    for leaf in leaves(value, f"{prefix}{key}.")]
        return [prefix.rstrip(".")]

    for leaf in leaves(yaml.safe_load(values_text), ""):
        assert any(leaf == key or leaf.startswith(f"{key}.") for key in documented), leaf


def test_a_value_without_a_comment_is_refused() -> None:
    with pytest.raises(ValueError, match=r"values.yaml:2: image.tag has no `# --` comment"):
        generator().documented_values("image:\n  tag: x\n  # -- The repository.\n  repo: y\n")


def test_the_operator_deployment_sets_every_aiapp_setting_as_environment() -> None:
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    named = set(re.findall(r"- name: (AIAPP_[A-Z_]+)", deployment))
    wanted = {f"AIAPP_{field.upper()}" for field in OperatorSettings.model_fields}
    assert wanted <= named, f"not set by the chart: {sorted(wanted - named)}"
    assert named - {"AIAPP_RESYNC_SECONDS"} <= wanted, "the chart sets a setting that is gone"


def test_the_chart_defaults_match_the_operators_defaults() -> None:
    """A plain install behaves like a plain `aiapp operator`, image aside."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    defaults = OperatorSettings()
    assert values["runtimes"]["vllm"]["image"] == defaults.vllm_image
    assert values["runtimes"]["ollama"]["image"] == defaults.ollama_image
    assert values["runtimes"]["simulator"]["image"] == defaults.simulator_image
    assert values["embeddings"]["model"] == defaults.embeddings_model
    assert values["store"]["secretName"] == defaults.store_secret
    assert values["metrics"]["port"] == defaults.metrics_port
    assert values["operator"]["gatewayPort"] == defaults.gateway_port
    assert values["operator"]["resyncSeconds"] == defaults.resync_seconds
    assert values["operator"]["concurrentReconciles"] == defaults.concurrent_reconciles
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert f"{values['image']['repository']}:{chart['appVersion']}" == defaults.image
