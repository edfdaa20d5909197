#!/usr/bin/env bash
# `make test`: ruff, mypy, then every pytest layer. The tests start their own Kafka, Redis and
# PostgreSQL on free ports (tests/conftest.py) unless KAFKA_BOOTSTRAP_SERVERS, REDIS_URL or
# DATABASE_URL point at running ones, so a `make run` stack is never touched.
set -euo pipefail
# Our own modules are compiled once and cached (__pycache__, ignored by git), not at every start of
# every process, as PYTHONDONTWRITEBYTECODE in some environments would have it.
unset PYTHONDONTWRITEBYTECODE
cd "$(dirname "$0")/../.."
export PATH=$PWD/.venv/bin:$PATH

# Tests run with DEBUG off, as production does; the key only has to exist.
export SECRET_KEY=${SECRET_KEY:-test-only-secret-key}
export CHARGE_CALLBACK_ALLOW_PRIVATE=1
export CHARGE_LOCAL_DIR=${CHARGE_LOCAL_DIR:-$PWD/.local/test}

step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

step "ruff format --check"
ruff format --check .
step "ruff check"
ruff check .
step "mypy"
mypy .
step "lint-imports (the layers in pyproject.toml)"
lint-imports
step "pytest ${PYTEST_ARGS:-}"
# --durations: every run ends with its slowest tests, where time work starts.
# shellcheck disable=SC2086
pytest --durations=15 ${PYTEST_ARGS:-}
echo "make test: all green in $((SECONDS - started)) s"
