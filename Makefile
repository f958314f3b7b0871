# hookstream: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

.PHONY: venv
venv: $(STAMP) ## Create .venv and install hookstream with its dev tools

.PHONY: kafka
kafka: venv ## Resolve Kafka from Maven Central (cached under .hookstream/) and start it
	$(BIN)/hookstream kafka start

.PHONY: kafka-stop
kafka-stop: venv ## Stop the local Kafka broker
	$(BIN)/hookstream kafka stop

.PHONY: run
run: venv ## Run the whole pipeline locally (broker, topics, ingress, worker); Ctrl-C stops it
	$(BIN)/hookstream run

.PHONY: test
test: venv kafka deploy-tools browser ## Set up, start the broker if needed, run the whole suite
	PATH="$(CURDIR)/.hookstream/bin:$$PATH" $(BIN)/pytest -q

.PHONY: unit
unit: venv ## Run the pure unit tests only (no broker)
	$(BIN)/pytest -q tests/unit

.PHONY: lint
lint: venv ## ruff and mypy (strict)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: fmt
fmt: venv ## Format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: clean
clean: ## Stop the broker and remove local state (.hookstream/) and the venv
	-$(BIN)/hookstream kafka stop
	rm -rf .hookstream $(VENV)

-include mk/*.mk
