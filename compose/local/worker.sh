#!/usr/bin/env bash
# A Celery worker. Usage: worker.sh QUEUES POOL CONCURRENCY
#   authorize  threads  4   decisions in batches: mostly database round trips; a thread pool kept up
#                           at twice the rate prefork x2 did (README "Benchmarks")
#   callbacks  threads  16  HTTP POSTs that mostly wait, so a slow receiver never holds up decisions
# -E sends task events to Flower.
set -euo pipefail
cd "$(dirname "$0")/../.."
queues=${1:-authorize,callbacks}
pool=${2:-prefork}
concurrency=${3:-2}
# The pool processes write their metrics to one directory per worker instance (emptied at start);
# the main process serves it on CHARGE_WORKER_METRICS_PORT (the Procfile gives each worker its own).
export PROMETHEUS_MULTIPROC_DIR=${CHARGE_LOCAL_DIR:-.local}/metrics/worker-${queues%%,*}
rm -rf "$PROMETHEUS_MULTIPROC_DIR"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
exec .venv/bin/celery -A workers worker -Q "$queues" -E --pool "$pool" \
  --concurrency "$concurrency" --loglevel INFO --hostname "${queues%%,*}@%h"
