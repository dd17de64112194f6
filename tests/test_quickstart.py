"""The quickstart: `make demo`'s program on the local control plane, and the kind path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aiapp.localcluster.cluster import default_bin_dir

REPO = Path(__file__).resolve().parent.parent
APPS = ("minimal", "jira-coder", "docs-assistant", "release-notes")


@pytest.mark.cluster
def test_the_demo_brings_every_example_to_ready_and_prints_the_table(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiapp.demo", "--local", "--exit-when-ready",
         "--workdir", str(tmp_path / "demo"), "--timeout", "240"],
        capture_output=True, text=True, timeout=600,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = result.stdout[result.stdout.index("NAME "):]
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:5]}
    assert set(rows) == set(APPS)
    assert all(row[1] == "True" for row in rows.values())
    assert "kind: Deployment" in result.stdout
    assert "Cleaned up" in result.stdout


@pytest.mark.kind
def test_the_kind_path_brings_every_example_to_ready() -> None:
    # helm and kubectl come from tools/build.sh; docker and kind from the machine.
    path = f"{default_bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}"
    missing = [tool for tool in ("docker", "kind", "helm", "kubectl")
               if shutil.which(tool, path=path) is None]
    if missing:
        pytest.skip(f"the kind path needs {', '.join(missing)}, which this machine lacks "
                    "(no Docker engine); it runs on machines with Docker")
    result = subprocess.run(["bash", str(REPO / "scripts" / "kind-demo.sh")],
                            capture_output=True, text=True, timeout=3600,
                            env={**os.environ, "KIND_DEMO_EXIT": "1", "PATH": path})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert all(app in result.stdout for app in APPS)
