#!/usr/bin/env bash
# The OCPP gateway: serve stations once the database is up and the api process has migrated it
# (compose/local/api.sh migrates); run_ocpp waits for both itself, in one Python start.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/python manage.py run_ocpp --wait-s 120
