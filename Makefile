# Charge Service — the two commands are `make run` and `make test`; the rest are their parts.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: help install install-python install-system install-browser run test lint typecheck pytest bench reset

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

install: install-system install-python  ## install what is missing (system packages, Kafka jars, Python venv)

install-system:
	@bash compose/local/install-system.sh
	@bash compose/local/kafka.sh fetch

install-browser:  # the browser test drives Debian's chromium; only `make test` needs it
	@bash compose/local/install-system.sh --browser

install-python:
	@bash compose/local/install-python.sh

run: install  ## start the whole stack in the foreground (Ctrl-C stops it); DB=postgres for PostgreSQL
	@bash compose/local/run.sh

test: install install-browser  ## ruff, mypy, the import layers and every pytest layer against real Kafka, Redis and PostgreSQL
	@bash compose/local/test.sh

lint: install-python  ## ruff format check, lint and the import layers (lint-imports)
	@ruff format --check . && ruff check . && lint-imports

typecheck: install-python  ## mypy only
	@SECRET_KEY=typecheck mypy .

bench: install  ## the benchmarks (PostgreSQL, then SQLite; the floors; every process local); writes benchmarks/results/
	@bash compose/local/bench.sh

reset:  ## stop nothing, delete local data (.local/ except the download cache)
	@find .local -mindepth 1 -maxdepth 1 ! -name cache -exec rm -rf {} + 2>/dev/null || true
	@echo "local data removed (kept .local/cache)"
