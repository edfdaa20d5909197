#!/usr/bin/env bash
# One Celery worker serving both queues; -E sends task events to Flower.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/celery -A workers worker -Q authorize,callbacks -E \
  --concurrency "${WORKER_CONCURRENCY:-2}" --loglevel INFO --hostname "worker@%h"
