# Switchyard — the verbs a newcomer needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# llama-cpp-python compiles llama.cpp on install. A portable AVX2 build: the default native build
# can emit instructions that a virtual machine's CPU advertises but does not execute.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF

PACKAGES := -e libs/contracts -e "libs/runtime[embedded]" -e services/gateway \
	-e "services/inference[local]" -e services/retrieval -e services/tools
MANIFESTS := $(wildcard libs/*/pyproject.toml services/*/pyproject.toml) requirements-dev.txt

.DEFAULT_GOAL := help
.PHONY: help install run test lint format clean bench bench-quick bench-retrieval

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## Create .venv and install every package (editable) plus the dev tools

$(VENV)/.installed: $(MANIFESTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PACKAGES) -r requirements-dev.txt
	touch $@

run: install ## Bring the whole suite up: NATS, PostgreSQL, every service; gateway on :8080
	$(BIN)/python -m switchyard.runtime.devstack

test: install ## Run the tests (real NATS, PostgreSQL, services and local model)
	$(BIN)/python -m pytest

lint: install ## Ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install ## Benchmark vs a mock provider and LiteLLM (~12 min); updates docs/benchmarks.md
	$(BIN)/python bench/run.py --docs docs/benchmarks.md

bench-quick: install ## Short benchmark run (under 2 minutes); results in bench/results/
	$(BIN)/python bench/run.py --quick

bench-retrieval: install ## Retrieval benchmark: search at 100k chunks, ingestion (~10 min); updates docs/benchmarks.md
	$(BIN)/python bench/retrieval.py --docs docs/benchmarks.md

format: install ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## Remove the virtual environment and caches (keeps .data/)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
