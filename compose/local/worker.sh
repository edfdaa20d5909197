#!/usr/bin/env bash
# A Celery worker. Usage: worker.sh QUEUES POOL CONCURRENCY
#   authorize  prefork  2   decisions: short CPU+DB tasks, one process per core
#   callbacks  threads  16  HTTP POSTs that mostly wait, so a slow receiver never holds up decisions
# -E sends task events to Flower.
set -euo pipefail
cd "$(dirname "$0")/../.."
queues=${1:-authorize,callbacks}
pool=${2:-prefork}
concurrency=${3:-2}
exec .venv/bin/celery -A workers worker -Q "$queues" -E --pool "$pool" \
  --concurrency "$concurrency" --loglevel INFO --hostname "${queues%%,*}@%h"
