# FruitOps — the verbs users type. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
POETRY := $(TOOLS)/poetry/bin/poetry
POETRY_VERSION := 2.5.1
# Exact pins: other torch versions download GBs here or break torchvision.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
ENV := . scripts/env.sh &&
FRUITOPS_HOME ?= $(CURDIR)/.fruitops
AIRFLOW_DB := $(FRUITOPS_HOME)/airflow/airflow.db
DEMO_LOG := $(FRUITOPS_HOME)/logs/demo-dag.log
# embedded (SQLite, local lake) or services (PostgreSQL, S3, MLflow server: make services-up)
PROFILE ?= embedded

.PHONY: help setup demo test test-fast lint format docs airflow-db airflow clean \
	services-up services-down services-status demo-embedded compose-env up down

help: ## List the verbs
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

setup: $(VENV)/.setup-done ## Create .venv: torch with pip (pinned), then the workspace with Poetry

# each step prints one line with its time; what it printed is in $(SETUP_LOG)
SETUP_LOG := $(TOOLS)/setup.log
STEP := @SETUP_LOG=$(SETUP_LOG) scripts/step

$(POETRY):
	@echo "Setting up (each step's output: $(SETUP_LOG))"
	$(STEP) "Poetry $(POETRY_VERSION) in $(TOOLS)/poetry" \
	  bash -c '$(PYTHON) -m venv $(TOOLS)/poetry && \
	    $(TOOLS)/poetry/bin/pip install -q poetry==$(POETRY_VERSION)'

$(VENV)/.torch-done:
	$(STEP) "$(VENV) with $(TORCH_PINS) (pip)" \
	  bash -c '$(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q $(TORCH_PINS)'
	@touch $@

$(VENV)/.setup-done: $(POETRY) $(VENV)/.torch-done pyproject.toml poetry.lock packages/*/pyproject.toml
	$(STEP) "PostgreSQL server binaries (services profile)" scripts/install-postgres
	$(STEP) "infra checkers (checkov, hadolint, check-jsonschema, nix)" \
	  env PYTHON=$(PYTHON) scripts/install-infra-tools
	$(STEP) "poetry.lock matches the pyproject files" $(POETRY) check --lock
	@# mlflow and mlflow-skinny ship the same files: upgrading both in parallel can fail on a
	@# file the other's uninstall took; one at a time they upgrade cleanly
	$(STEP) "the workspace's dependencies (poetry install)" \
	  bash -c '$(POETRY) install --no-interaction || \
	    POETRY_INSTALLER_PARALLEL=false $(POETRY) install --no-interaction'
	@# Poetry skips path packages whose version did not change; reinstalling them (editable,
	@# no deps) refreshes their entry points after a pyproject edit.
	$(STEP) "the FruitOps packages, editable" \
	  $(BIN)/pip install -q --no-deps $(foreach p,$(wildcard packages/*),-e $(p))
	@# Poetry installs without bytecode, and with PYTHONDONTWRITEBYTECODE set none is ever
	@# written: every command would compile its imports again (~2 s of a scorer's start-up).
	@# A few vendored files do not compile (old test data): that is not a failure.
	$(STEP) "bytecode of the installed packages" \
	  bash -c '$(BIN)/python -m compileall -q -j 0 $(VENV)/lib/python3.11/site-packages \
	    packages/*/src > /dev/null 2>&1 || true'
	@touch $@
	@echo "Set up: $(VENV) is ready (each step's output: $(SETUP_LOG))"

airflow-db: $(AIRFLOW_DB) ## Create the embedded Airflow metadata DB (SQLite) and load the DAGs

$(AIRFLOW_DB): | $(VENV)/.setup-done
	$(STEP) "Airflow's metadata database (SQLite)" scripts/airflow db migrate
	$(STEP) "the DAGs, parsed into it" scripts/airflow dags reserialize

demo: setup ## Run the DAGs with `airflow dags test` and summarise (PROFILE=embedded|services)
ifeq ($(PROFILE),services)
	@$(MAKE) services-up
	@scripts/demo-services
else ifeq ($(PROFILE),embedded)
	@$(MAKE) demo-embedded
else
	@echo "PROFILE=$(PROFILE): choose embedded (default) or services"; exit 2
endif

demo-embedded: setup airflow-db
	@mkdir -p $(dir $(DEMO_LOG))
	@echo "Running DAG fruitops_pipeline with airflow dags test (log: $(DEMO_LOG)) ..."
	@# the demo's own values (the shipped photos, few epochs): `fruitops demo --dag-conf`
	@scripts/airflow dags test fruitops_pipeline -c "$$($(BIN)/fruitops demo --dag-conf)" \
	  > $(DEMO_LOG) 2>&1 || \
	  { tail -n 60 $(DEMO_LOG); echo "DAG run failed; full log: $(DEMO_LOG)"; exit 1; }
	@grep -q "state=success" $(DEMO_LOG) || \
	  { tail -n 60 $(DEMO_LOG); echo "DAG run did not succeed; full log: $(DEMO_LOG)"; exit 1; }
	@$(ENV) fruitops demo --no-run
	@$(ENV) fruitops demo --no-run --json

test: setup lint ## Run every test (packages, Airflow, services, infra; slow ones too) and ruff
	scripts/install-chromium
	$(ENV) pytest

test-fast: setup ## Run the fast tests only
	$(ENV) pytest -m "not slow"

lint: setup ## ruff (with Airflow's AIR rules)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docs: setup ## Build the documentation site (docs/, mkdocs.yml) strictly into site/
	$(BIN)/zensical build --strict
	@echo "the site is in site/: open site/index.html in a browser"

airflow: setup airflow-db ## Run airflow with the project's settings: make airflow ARGS="dags list"
	scripts/airflow $(ARGS)

services-up: setup ## Start PostgreSQL, SeaweedFS S3 and the MLflow server on 127.0.0.1
	$(ENV) fruitops services up

services-down: setup ## Stop the services (their data stays under .fruitops/services/)
	$(ENV) fruitops services down

services-status: setup ## Each service's state and address
	$(ENV) fruitops services status

COMPOSE := docker compose -f infra/compose/compose.yaml --env-file infra/compose/.env

compose-env: ## Write infra/compose/.env with generated passwords (kept if it exists)
	scripts/compose-env

up: compose-env ## Build and start the container stack (needs Docker), wait until healthy
	@docker compose version > /dev/null 2>&1 || { echo "make up needs Docker with its Compose" \
	  "plugin (\`docker compose version\` fails here): install docker-compose-plugin"; exit 2; }
	$(COMPOSE) up -d --build --wait

down: ## Stop the container stack (volumes are kept; `docker compose down -v` drops them)
	$(COMPOSE) down

clean: ## Remove the embedded state (.fruitops); keeps the environments
	rm -rf $(FRUITOPS_HOME)
