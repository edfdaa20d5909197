#!/usr/bin/env bash
# The bridge process: make sure the topics exist (waiting for the broker), then consume.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python manage.py ensure_topics --wait 120
exec .venv/bin/python manage.py run_bridge
