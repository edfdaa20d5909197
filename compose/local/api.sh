#!/usr/bin/env bash
# The api process: wait for the database, migrate, seed the dev admin and API client, then serve.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -n "${CHARGE_LOCAL_POSTGRES:-}" ]; then
  # Our PostgreSQL starts beside us under the same supervisor: wait for it, then create the database.
  for _ in $(seq 60); do
    pg_isready -q -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres && break
    sleep 1
  done
  bash compose/local/postgres.sh ensure-db --port "$POSTGRES_PORT" --data "$CHARGE_LOCAL_DIR/postgres" --db charge
fi
.venv/bin/python manage.py wait_for_db --timeout 60
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py dev_seed
.venv/bin/python manage.py collectstatic --noinput -v 0
# Every api worker process writes its metrics here and /metrics merges them; stale files of an earlier
# run would be counted again, so the directory starts empty.
export PROMETHEUS_MULTIPROC_DIR=$CHARGE_LOCAL_DIR/metrics/api
rm -rf "$PROMETHEUS_MULTIPROC_DIR"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
# Behind nginx (make run, make bench: compose/local/nginx.sh listens on API_PORT) the server takes
# API_UPSTREAM_PORT; alone, API_PORT (compose/local/serve.sh).
exec bash compose/local/serve.sh
