"""The container image's recipe: what the Dockerfile installs works in a clean environment.

No Docker engine runs here, so the image itself is not built. Instead the test installs the
package from the same paths the Dockerfile's builder stage copies into a fresh virtual
environment (no packages of the project's venv leak in) and starts every entrypoint. The rest
of the Dockerfile's promises (pinned base, non-root user, no compiler in the final stage) are
read from the file.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
ENTRYPOINTS = ("operator", "gateway", "index", "test")


def stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split into build stages."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


def copied_sources() -> list[str]:
    """Every source path (globs kept) the builder stage copies from the build context."""
    sources: list[str] = []
    for instruction in stages()[0]:
        if instruction.upper().startswith("COPY ") and "--from" not in instruction:
            sources.extend(instruction.split()[1:-1])
    return sources


@pytest.fixture(scope="module")
def clean_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the package installed from a copy of the Dockerfile's build context."""
    root = tmp_path_factory.mktemp("image")
    context = root / "context"
    context.mkdir()
    for pattern in copied_sources():
        for path in REPO.glob(pattern.rstrip("/")):
            target = context / path.relative_to(REPO)
            if path.is_dir():
                shutil.copytree(path, target, ignore=shutil.ignore_patterns(
                    "__pycache__", "*.egg-info"))
            else:
                shutil.copy2(path, target)
    environment = root / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(environment)
    python = environment / "bin" / "python"
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # pip's wheel cache (~/.cache/pip) keeps reruns to seconds; the index is PyPI as configured.
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
         str(context)],
        capture_output=True, text=True, env=env, timeout=900,
    )
    if installed.returncode != 0:
        pytest.fail(f"pip could not install the package into a clean venv:\n"
                    f"{installed.stdout[-3000:]}\n{installed.stderr[-3000:]}", pytrace=False)
    return environment


def test_the_builder_stage_copies_only_what_the_dockerignore_lets_through() -> None:
    allowed = [line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    for source in copied_sources():
        assert any(fnmatch.fnmatch(source.rstrip("/"), pattern) or
                   fnmatch.fnmatch(pattern, source.rstrip("/")) for pattern in allowed), source
    assert "pyproject.toml" in copied_sources()


def test_both_stages_start_from_one_exactly_pinned_python_3_11_image() -> None:
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert default, "the base image is an ARG with a default"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", default.group(1))
    bases = [stage[0].split()[1] for stage in stages()]
    assert bases == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]


def test_the_final_stage_has_no_compiler_runs_as_uid_10001_and_enters_through_aiapp() -> None:
    final = stages()[-1]
    text = "\n".join(final)
    assert "build-essential" not in text and "gcc" not in text
    assert "apt-get install" not in text
    assert [line for line in final if line.startswith("USER ")] == ["USER 10001:10001"]
    assert [line for line in final if line.startswith("ENTRYPOINT ")] == ['ENTRYPOINT ["aiapp"]']
    # The wheels reach the final stage through a bind mount, never through a COPY layer.
    assert not any(line.startswith("COPY") for line in final)


@pytest.mark.parametrize("command", ENTRYPOINTS)
def test_every_entrypoint_of_a_clean_install_answers_help(
    clean_install: Path, command: str
) -> None:
    result = subprocess.run(
        [str(clean_install / "bin" / "aiapp"), command, "--help"],
        capture_output=True, text=True, timeout=120,
        env={"PATH": f"{clean_install / 'bin'}{os.pathsep}/usr/bin:/bin", "HOME": "/tmp"},
    )
    assert result.returncode == 0, f"aiapp {command} --help failed:\n{result.stderr[-3000:]}"
    assert "Usage:" in result.stdout


def test_the_clean_install_does_not_import_from_the_repository(clean_install: Path) -> None:
    result = subprocess.run(
        [str(clean_install / "bin" / "python"), "-c", "import aiapp; print(aiapp.__file__)"],
        capture_output=True, text=True, check=True, cwd="/", env={"HOME": "/tmp"},
    )
    assert str(clean_install) in result.stdout
    assert sys.prefix not in result.stdout
