# The two commands: `make demo` runs the main job, `make test` runs the tests (what CI runs).
# Everything else here is a step of those two.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help venv tools demo test test-unit lint crds clean

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/aiapp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

venv: $(BIN)/aiapp  ## Create .venv with the package and its test tools.

tools:  ## Build (or reuse) etcd, kube-apiserver, controllers, kubectl and kwok from pinned Go modules.
	bash tools/build.sh >/dev/null

demo: venv tools  ## The main job: local cluster with GPU nodes, operator, examples until Ready.
	$(BIN)/python -m aiapp.demo

test: venv tools  ## Every test tier: unit, api and cluster (and gitops where Flux is built).
	$(BIN)/python -m pytest

test-unit: venv  ## Only the tests that need no cluster.
	$(BIN)/python -m pytest -m unit

lint: venv  ## ruff and mypy.
	$(BIN)/ruff check operator tests
	$(BIN)/mypy

crds: venv  ## Regenerate crds/ from the pydantic models.
	$(BIN)/aiapp crds --output-dir crds

clean:  ## Remove the venv and local cluster state (the Go build cache stays).
	rm -rf $(VENV) .aiapp
