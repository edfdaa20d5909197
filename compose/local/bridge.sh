#!/usr/bin/env bash
# The bridge process: make sure the topics exist (waiting for the broker), then consume.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python manage.py ensure_topics --wait 120
# Static group membership: restarted under the same id, the bridge takes its partitions back at once.
default_instance='{hostname}-bridge'
export CHARGE_BRIDGE_INSTANCE_ID=${CHARGE_BRIDGE_INSTANCE_ID-$default_instance}
exec .venv/bin/python manage.py run_bridge
