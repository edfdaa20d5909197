#!/usr/bin/env bash
# `make run`: every process of the stack under one supervisor (honcho) in the foreground.
# Ctrl-C or SIGTERM stops them all. DB=postgres starts a local PostgreSQL instead of SQLite.
set -euo pipefail
# Our own modules are compiled once and cached (__pycache__, ignored by git), not at every start of
# every process, as PYTHONDONTWRITEBYTECODE in some environments would have it.
unset PYTHONDONTWRITEBYTECODE
cd "$(dirname "$0")/../.."
ROOT=$PWD

export CHARGE_LOCAL_DIR=${CHARGE_LOCAL_DIR:-$ROOT/.local}
export API_PORT=${API_PORT:-8000}
# The api server (granian) listens here, behind nginx on API_PORT (compose/local/nginx.sh says why).
export API_UPSTREAM_PORT=${API_UPSTREAM_PORT:-8001}
export FLOWER_PORT=${FLOWER_PORT:-5555}
export OCPP_PORT=${OCPP_PORT:-9000}
export KAFKA_PORT=${KAFKA_PORT:-9092}
export KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
export REDIS_PORT=${REDIS_PORT:-6379}
export POSTGRES_PORT=${POSTGRES_PORT:-5433}
mkdir -p "$CHARGE_LOCAL_DIR"

processes=(kafka redis api nginx bridge ocpp worker callbacks beat flower)
ports=(API_PORT API_UPSTREAM_PORT FLOWER_PORT OCPP_PORT KAFKA_PORT KAFKA_CONTROLLER_PORT REDIS_PORT)
if [ -z "${DATABASE_URL:-}" ] && [ "${DB:-sqlite}" = postgres ]; then
  export DATABASE_URL="postgres://postgres@127.0.0.1:$POSTGRES_PORT/charge"
  export CHARGE_LOCAL_POSTGRES=1
  processes+=(postgres)
  ports+=(POSTGRES_PORT)
fi

# Refuse to start half a stack: every port must be free before anything starts.
for var in "${ports[@]}"; do
  port=${!var}
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "make run: port $port is already in use (is a stack already running?); set $var to a free port." >&2
    exit 2
  fi
done

export DEBUG=${DEBUG:-1}
# honcho pipes every process's output, so they cannot see the terminal themselves: tell them.
if [ -t 1 ]; then export LOG_FORMAT=${LOG_FORMAT:-console}; fi
export CHARGE_CALLBACK_ALLOW_PRIVATE=${CHARGE_CALLBACK_ALLOW_PRIVATE:-1}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}
export KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$KAFKA_PORT}

.venv/bin/python manage.py dev_env --file "$CHARGE_LOCAL_DIR/dev.env"
set -a
# shellcheck disable=SC1091
. "$CHARGE_LOCAL_DIR/dev.env"
set +a

exec .venv/bin/honcho --procfile compose/local/Procfile --app-root "$ROOT" --no-prefix start "${processes[@]}"
