#!/usr/bin/env bash
# The OCPP gateway: serve stations once the database is up and the api process has migrated it
# (compose/local/api.sh migrates); run_ocpp waits for both itself, in one Python start.
# Its OCPP_PROCESSES processes write their metrics to one directory (emptied at start); the parent
# serves it on CHARGE_OCPP_METRICS_PORT.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PROMETHEUS_MULTIPROC_DIR=${CHARGE_LOCAL_DIR:-.local}/metrics/ocpp
rm -rf "$PROMETHEUS_MULTIPROC_DIR"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
exec .venv/bin/python manage.py run_ocpp --wait-s 120
