#!/usr/bin/env bash
# The OCPP gateway: wait until the api process has migrated the database, then serve stations.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python manage.py wait_for_db --timeout 60
# The api process migrates (compose/local/api.sh); the gateway's tables must be there first.
for _ in $(seq 120); do
  .venv/bin/python manage.py migrate --check >/dev/null 2>&1 && break
  sleep 1
done
exec .venv/bin/python manage.py run_ocpp
