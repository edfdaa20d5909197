from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.monitoring.exposition import metrics_server_start
from workers.bridge import Bridge


class Command(BaseCommand):
    help = "Consume charging_requests from Kafka: store and decide each batch, then call back."

    def handle(self, *args: Any, **options: Any) -> None:
        metrics_server_start(port=settings.CHARGE_BRIDGE_METRICS_PORT, process="bridge")
        bridge = Bridge()
        bridge.install_signal_handlers()
        bridge.run()
