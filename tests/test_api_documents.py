"""Reading files: both forms, line numbers, API schemas, and the validate/convert commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from aiapp.api.commands import convert, validate
from aiapp.api.documents import Operation, load_documents, operations

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

PETS_SCHEMA = """\
openapi: 3.0.3
info: {title: Pets, version: "1"}
paths:
  /pets/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    get:
      operationId: getPet
      summary: Get a pet
      responses:
        "200": {description: The pet.}
    delete:
      responses:
        "204": {description: Gone.}
"""

BARE = """\
name: Pet Shop
assistants:
  - name: clerk
    model: llama3.1:8b
    apis:
      - name: pets
        schema: ./pets.yaml
"""


def problems_of(text: str, base: Path | None = None) -> list[tuple[int, str, int | None, str]]:
    _, _, problems = load_documents(text, base)
    return [(p.document, p.path, p.line, p.message) for p in problems if not p.warning]


def test_a_bare_helix_document_becomes_an_aiapp_named_after_it(tmp_path: Path) -> None:
    (tmp_path / "pets.yaml").write_text(PETS_SCHEMA)
    apps, models, problems = load_documents(BARE, tmp_path)
    assert [p for p in problems if not p.warning] == []
    (app,) = apps
    assert (app.metadata.name, app.spec.name, models) == ("pet-shop", "pet-shop", [])


def test_a_relative_schema_file_is_inlined(tmp_path: Path) -> None:
    (tmp_path / "pets.yaml").write_text(PETS_SCHEMA)
    (app,), _, _ = load_documents(BARE, tmp_path)
    assert app.spec.assistants[0].apis[0].schema_ == PETS_SCHEMA


def test_a_url_schema_is_left_alone_without_a_network_call() -> None:
    text = BARE.replace("./pets.yaml", "https://pets.invalid/openapi.yaml")
    (app,), _, problems = load_documents(text, None)
    assert app.spec.assistants[0].apis[0].schema_ == "https://pets.invalid/openapi.yaml"
    assert [p for p in problems if not p.warning] == []


def test_operations_lists_method_path_id_and_summary() -> None:
    assert operations(yaml.safe_load(PETS_SCHEMA)) == [
        Operation("GET", "/pets/{id}", "getPet", "Get a pet"),
        Operation("DELETE", "/pets/{id}", "", ""),
    ]


PROBLEM_CASES = [
    pytest.param(
        "apiVersion: app.aispec.org/v1alpha1\nkind: AIApp\nmetadata: {name: a}\nspec:\n"
        "  assistants:\n  - name: x\n    model: m\n    temprature: 1\n",
        [
            (
                0,
                "spec.assistants[0].temprature",
                8,
                "unknown field 'temprature' (Helix would silently drop it; we refuse it)",
            )
        ],
        id="a CRD-form problem names the line of the key",
    ),
    pytest.param(
        "name: shop\nassistants:\n  - name: x\n    model: m\n    temperature: hot\n",
        [
            (
                0,
                "assistants[0].temperature",
                5,
                "value should be a valid number, unable to parse string as a number",
            )
        ],
        id="a bare-form problem uses the bare path",
    ),
    pytest.param(
        "name: shop\nassistants:\n  - {name: x, model: m}\n---\nname: two\nassistants: 3\n",
        [(1, "assistants", 6, "expected a list")],
        id="problems carry their document index",
    ),
    pytest.param(
        "name: shop\nassistants: [\n",
        [
            (
                0,
                "<document>",
                3,
                "the YAML does not parse: expected the node content, but found '<stream end>'",
            )
        ],
        id="a YAML syntax error names its line",
    ),
    pytest.param(
        "name: shop\nname: again\nassistants:\n  - {name: x, model: m}\n",
        [(0, "name", 2, "key 'name' appears twice")],
        id="a key written twice is refused",
    ),
    pytest.param(
        "assistants:\n  - {name: x, model: m}\n",
        [(0, "name", 1, "the object has no name")],
        id="a bare document needs a name",
    ),
    pytest.param(
        "name: shop\nassistants: &loop\n  - *loop\n",
        [(0, "assistants[0]", 2, "the document contains itself through a YAML alias")],
        id="a document that contains itself is refused",
    ),
    pytest.param(
        BARE.replace("./pets.yaml", "|\n          2020-01-01: x\n          openapi: 3.0.3"),
        [
            (
                0,
                "assistants[0].apis[0].schema",
                7,
                "the schema has keys that are not text, or refers to itself through a YAML alias",
            )
        ],
        id="a schema with a date for a key is refused",
    ),
    pytest.param(
        "- name: shop\n",
        [(0, "<document>", 1, "a document must be a mapping (an AIApp, a Helix app or a Model)")],
        id="a document is a mapping",
    ),
    pytest.param(
        "helix:\n  name: shop\n",
        [(0, "helix", 1, "a top-level helix: key is not AISpec (Helix refuses it too)")],
        id="a helix wrapper is refused as Helix does",
    ),
    pytest.param(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\nspec: {}\n",
        [(0, "kind", 2, "kind 'ConfigMap' is not AIApp or Model")],
        id="other kinds are named",
    ),
    pytest.param(
        BARE.replace("./pets.yaml", "./missing.yaml"),
        [
            (
                0,
                "assistants[0].apis[0].schema",
                7,
                "schema file './missing.yaml' cannot be read (No such file or directory); "
                "paths are relative to the YAML file",
            )
        ],
        id="a missing schema file is named",
    ),
    pytest.param(
        BARE.replace("./pets.yaml", "|\n          openapi: 3.0.3\n          paths: {}"),
        [
            (
                0,
                "assistants[0].apis[0].schema",
                7,
                "the schema is not valid OpenAPI: 'info' is a required property",
            )
        ],
        id="an inline schema must be valid OpenAPI",
    ),
    pytest.param(
        "apiVersion: app.aispec.org/v1alpha1\nkind: AIApp\nmetadata: {name: a}\nspec:\n"
        "  assistants: [{name: x, model: m}]\n---\n"
        "apiVersion: app.aispec.org/v1alpha1\nkind: AIApp\nmetadata: {name: a}\nspec:\n"
        "  assistants: [{name: x, model: m}]\n",
        [(1, "metadata.name", 9, "AIApp 'a' is also document 1")],
        id="two apps in one stream have different names",
    ),
]


@pytest.mark.parametrize(("text", "expected"), PROBLEM_CASES)
def test_a_problem_carries_document_path_line_and_message(
    text: str, expected: list[tuple[int, str, int | None, str]], tmp_path: Path
) -> None:
    (tmp_path / "pets.yaml").write_text(PETS_SCHEMA)
    assert problems_of(text, tmp_path) == expected


def test_a_model_that_nothing_serves_is_a_warning() -> None:
    text = "name: shop\nassistants:\n  - {name: x, model: nobody-serves-this}\n"
    apps, _, problems = load_documents(text, None)
    assert len(apps) == 1
    assert [(p.warning, p.path, p.line) for p in problems] == [(True, "assistants[0].model", 3)]


# -- commands --------------------------------------------------------------------------------


def example_files() -> list[Path]:
    return sorted(
        path
        for path in EXAMPLES.glob("*/*.yaml")
        if "github-actions" not in path.parts and not path.name.endswith("openapi.yaml")
    )


@pytest.mark.parametrize("path", example_files(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_example_validates_without_problems(path: Path) -> None:
    result = CliRunner().invoke(validate, [str(path)])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    assert "is valid" in result.output


def test_validate_prints_file_line_path_message_and_fix(tmp_path: Path) -> None:
    broken = tmp_path / "app.yaml"
    broken.write_text("name: shop\nassistants:\n  - name: x\n    modle: m\n")
    result = CliRunner().invoke(validate, [str(broken)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{broken}:3: assistants[0].model: required field 'model' is missing (fix: add model: "
        "Model name: a Model's servedName or metadata.name, or a preset)",
        f"{broken}:4: assistants[0].modle: unknown field 'modle' (Helix would silently drop it; "
        "we refuse it) (fix: rename it to 'model')",
    ]


def test_validate_reads_stdin_and_lists_the_operations_of_each_api() -> None:
    text = (EXAMPLES / "jira" / "aiapp.yaml").read_text()
    result = CliRunner().invoke(validate, ["-"], input=text)
    assert result.exit_code == 0, result.output
    assert "    GET /rest/api/3/issue/{issueIdOrKey} getIssue - Get an issue by key or id" in (
        result.output.splitlines()
    )


@pytest.mark.parametrize(
    ("arguments", "exit_code"),
    [([], 2), (["/no/such/file.yaml"], 2), (["--no-such-option", "x"], 2)],
    ids=["no files", "a missing file", "an unknown option"],
)
def test_validate_exits_2_on_usage_errors(arguments: list[str], exit_code: int) -> None:
    assert CliRunner().invoke(validate, arguments).exit_code == exit_code


def test_the_converted_jira_example_is_up_to_date() -> None:
    result = CliRunner().invoke(convert, [str(EXAMPLES / "jira" / "helix.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output == (EXAMPLES / "jira" / "aiapp.yaml").read_text(), (
        "run: aiapp convert examples/jira/helix.yaml > examples/jira/aiapp.yaml"
    )


def test_convert_sets_the_namespace_and_round_trips(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        convert, [str(EXAMPLES / "jira" / "helix.yaml"), "--namespace", "team-a"]
    )
    (manifest,) = yaml.safe_load_all(result.output)
    assert manifest["metadata"] == {"name": "jira-coder", "namespace": "team-a"}
    again = tmp_path / "aiapp.yaml"
    again.write_text(result.output)
    apps, _, problems = load_documents(again.read_text(), tmp_path)
    assert [p for p in problems if not p.warning] == []
    assert apps[0].metadata.namespace == "team-a"


def test_convert_refuses_an_invalid_file(tmp_path: Path) -> None:
    broken = tmp_path / "app.yaml"
    broken.write_text("name: shop\nassistants: []\n")
    result = CliRunner().invoke(convert, [str(broken)])
    assert result.exit_code == 1
    assert "assistants: list should have at least 1 item" in result.output
