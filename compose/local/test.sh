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
step "lint-imports (the layers in pyproject.toml)"
lint-imports

# --durations: every run ends with its slowest tests, where time work starts.
if [ -n "${PYTEST_ARGS:-}${DATABASE_URL:-}${REDIS_URL:-}${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  # A chosen subset (PYTEST_ARGS="tests/unit -k ocpp"), or services given from outside, which two
  # sessions would share (one test database name): mypy, then pytest, one after the other.
  step "mypy"
  mypy .
  step "pytest ${PYTEST_ARGS:-}"
  # shellcheck disable=SC2086
  pytest --durations=15 ${PYTEST_ARGS:-}
  echo "make test: all green in $((SECONDS - started)) s"
  exit 0
fi

# Everything: mypy and the unit and app layers run beside the integration and browser layers. Those
# mostly wait on the processes they start (a broker restart, a callback's timeout), so on two cores
# the CPU-bound checks fit in their waits (README "Tests"). Each pytest session starts its own Kafka,
# Redis and PostgreSQL on free ports; the side one gets a CHARGE_LOCAL_DIR of its own. The side jobs'
# output is printed when they end; the integration layer's shows as it runs.
side=$(mktemp -d "${TMPDIR:-/tmp}/charge-test-XXXXXX")
side_pid=''
side_stop() {
  [ -z "$side_pid" ] || kill -- "-$side_pid" 2>/dev/null || true
  rm -rf "$side"
}
trap side_stop EXIT
# One after the other on the side, so the integration layer's first services start beside one of
# them, not both; each writes its status beside its log.
side_run() {
  if mypy . >"$side/mypy.log" 2>&1; then echo 0; else echo 1; fi >"$side/mypy.status"
  if CHARGE_LOCAL_DIR=$CHARGE_LOCAL_DIR/side pytest --durations=10 tests/unit tests/app \
    >"$side/fast.log" 2>&1; then echo 0; else echo 1; fi >"$side/fast.status"
}
set -m # the side job in a process group of its own, so the trap ends it whole
side_run &
side_pid=$!
set +m
echo "mypy, then pytest tests/unit tests/app, run beside it (their output follows when they end)"

step "pytest tests/integration tests/browser"
failed=()
pytest --durations=15 tests/integration tests/browser || failed+=("pytest tests/integration tests/browser")

wait "$side_pid" || true
step "mypy"
cat "$side/mypy.log"
[ "$(cat "$side/mypy.status" 2>/dev/null)" = 0 ] || failed+=(mypy)
step "pytest tests/unit tests/app"
if [ "$(cat "$side/fast.status" 2>/dev/null)" = 0 ]; then
  tail -n 20 "$side/fast.log"
else
  cat "$side/fast.log"
  failed+=("pytest tests/unit tests/app")
fi

if [ "${#failed[@]}" -gt 0 ]; then
  printf 'make test: FAILED: %s\n' "${failed[*]}" >&2
  exit 1
fi
echo "make test: all green in $((SECONDS - started)) s"
