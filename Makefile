# One obvious command each. See README.md.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: venv run test test-fast test-plugin test-swarm chaos check bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11+ or run make PYTHON=python3"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,proxy]'
	@touch $@

## Run the service with the embedded defaults (SQLite under ./data, local Docker, demo challenges).
run:
	scripts/run

## The whole test suite (unit, store, API, real Docker engine; PostgreSQL too when INSTANCER_TEST_POSTGRES_URL is set).
test: venv
	$(BIN)/pytest -q

## Only the tests that need neither Docker nor PostgreSQL.
test-fast: venv
	$(BIN)/pytest -q tests/unit tests/services tests/api -k sqlite -p no:cacheprovider

## The CTFd plugin's tests inside a real CTFd (needs CTFD_PATH=<CTFd 3.8.7 checkout outside this repo>).
test-plugin:
	scripts/test-plugin

## The multi-node swarm tests at full size (30 instances over 3 nodes, drain, node loss, image
## sync; `make test` runs them short). Needs root: it starts engines of its own in network
## namespaces (never touching the host's engine or its swarm state).
test-swarm: venv
	INSTANCER_SWARM=full $(BIN)/pytest -q -p no:cacheprovider tests/swarm

## The chaos suite at full size (the default suite runs it short): SIGKILL mid-burst,
## dockerd stopped for 20 s, two replicas on PostgreSQL. Needs root (it stops dockerd).
chaos: venv
	INSTANCER_CHAOS=full $(BIN)/pytest -q tests/chaos

## Issue 8's benchmarks in one process and one run: figures, PASS/MISS ratios against the
## baselines of the same run, JSON and a chart under benchmarks/results/. --swarm-init: if the
## engine is in no swarm, make a single-node one for the Swarm part only, and leave it.
bench: venv
	$(BIN)/pip install -q 'matplotlib>=3.8'  # for the chart only
	$(BIN)/python benchmarks/run.py --swarm-init

## Lint, types and the layering rules.
check: venv
	$(BIN)/ruff check src tests benchmarks plugin
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
