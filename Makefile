# The README's commands. Everything installs itself on first use: a fresh clone needs only python3 (3.11+),
# node/npm, and (for the browser tests) Debian's chromium, which `make test` installs when run as root.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.9.30
SAM_VERSION := 1.170.0
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
SAM := $(TOOLS)/sam/bin/sam
# The Lambda runtime and architecture the layer is built for and deployed with: the same defaults as
# template.yaml, samconfig.toml and layers/Makefile (tests/deploy/test_runtime.py).
PYTHON_RUNTIME ?= python3.13
ARCHITECTURE ?= x86_64

.PHONY: help run test lint test-js test-py better-auth build deploy bench soak frontend conformance clean requirements check-requirements reference-servers

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --quiet
	@touch $@

frontend/node_modules/.package-lock.json: frontend/package-lock.json
	npm ci --prefix frontend --no-audit --no-fund --loglevel=error

frontend: frontend/node_modules/.package-lock.json ## Build the chat sheet bundle (frontend/dist)
	npm run --silent --prefix frontend build

# The MCP conformance suite and the Node 22 it needs (Debian's node is 20), both pinned in its lockfile.
tests/conformance/node_modules/.package-lock.json: tests/conformance/package-lock.json
	npm ci --prefix tests/conformance --no-audit --no-fund --loglevel=error

conformance: tests/conformance/node_modules/.package-lock.json

run: $(VENV)/.synced frontend ## Serve the demo app on http://127.0.0.1:3000 (reads .env; EXAMPLE=1: with the example host app's MCP server)
	$(PY) -m $(if $(EXAMPLE),examples.projects.demo,chatbot.local)

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The Better Auth host of the end-to-end identity test (tests/e2e/test_better_auth.py): the pinned npm package.
BETTER_AUTH := tests/e2e/better_auth
$(BETTER_AUTH)/node_modules/.package-lock.json: $(BETTER_AUTH)/package-lock.json
	npm ci --prefix $(BETTER_AUTH) --no-audit --no-fund --loglevel=error

better-auth: $(BETTER_AUTH)/node_modules/.package-lock.json

test-js: frontend
	npm test --silent --prefix frontend

# The MCP reference server the remote MCP client is tested against (Node >= 20, pinned in its own lockfile).
EVERYTHING := tests/reference/server-everything
$(EVERYTHING)/node_modules/.package-lock.json: $(EVERYTHING)/package-lock.json
	npm ci --prefix $(EVERYTHING) --no-audit --no-fund --loglevel=error

reference-servers: $(EVERYTHING)/node_modules/.package-lock.json

test-py: $(VENV)/.synced frontend better-auth conformance reference-servers
	@scripts/ensure-chromium
	$(VENV)/bin/pytest -n 2 --dist loadfile -m 'not serial' $(PYTEST_ARGS)
	@# Load tests measure the app under load: they get the machine to themselves.
	$(VENV)/bin/pytest -m serial $(PYTEST_ARGS)

test: lint test-js test-py ## Run every check and test (lint, types, JS unit tests, pytest incl. browser)

bench: $(VENV)/.synced frontend ## Benchmarks → docs/BENCHMARKS.md
	$(PY) -m bench

soak: $(VENV)/.synced ## Heavier load and fault runs (not part of make test)
	$(VENV)/bin/pytest -m soak --run-soak $(PYTEST_ARGS)

$(SAM):
	$(PYTHON) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/pip install --quiet aws-sam-cli==$(SAM_VERSION)

SAM_PARAMETERS = PythonRuntime=$(PYTHON_RUNTIME) Architecture=$(ARCHITECTURE)
UV_EXPORT = $(UV) export --no-dev --no-hashes --no-emit-project --frozen --quiet

requirements: $(UV) ## Regenerate layers/requirements.txt (the layer's pins) from uv.lock
	$(UV_EXPORT) -o layers/requirements.txt

check-requirements: $(UV)
	@diff -u <(grep -v '^#' layers/requirements.txt) <($(UV_EXPORT) | grep -v '^#') \
		|| { echo "layers/requirements.txt is out of sync with uv.lock: run 'make requirements'" >&2; exit 1; }

# The layer's compiled wheels are for PYTHON_RUNTIME/ARCHITECTURE (layers/Makefile has pip fetch that
# runtime's wheels, whatever Python runs the build), so deploy passes the same values: a layer built for
# 3.11 under a 3.13 function would fail at import.
build: check-requirements $(SAM) ## sam validate --lint && sam build for PYTHON_RUNTIME (default python3.13)
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint
	PYTHON_RUNTIME=$(PYTHON_RUNTIME) ARCHITECTURE=$(ARCHITECTURE) PIP="$(abspath $(TOOLS)/bin/pip)" \
		SAM_CLI_TELEMETRY=0 $(SAM) build --parameter-overrides $(SAM_PARAMETERS)
	@# sam build unpacks wheels without compiling them and /opt is read-only in Lambda, so without .pyc files
	@# every cold start compiles the whole layer from source (3.3 s instead of 1.9 s to import the app here:
	@# docs/BENCHMARKS.md). unchecked-hash: valid whatever timestamps the files get in the zip. The pyc tag
	@# must match the runtime, hence the runtime's own interpreter.
	@if $(PYTHON_RUNTIME) -c '' 2>/dev/null; then \
		$(PYTHON_RUNTIME) -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build/ChatbotLayer/python \
			.aws-sam/build/ChatbotFunction >/dev/null || echo "warning: some files did not compile" >&2; \
	else echo "warning: $(PYTHON_RUNTIME) not found: the layer ships without .pyc files (slower cold starts)" >&2; fi

deploy: build ## sam deploy --guided (answers are saved in samconfig.toml)
	$(SAM) deploy --guided --parameter-overrides $(SAM_PARAMETERS)

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam frontend/dist frontend/node_modules $(BETTER_AUTH)/node_modules tests/conformance/node_modules $(EVERYTHING)/node_modules
