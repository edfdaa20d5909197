from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.monitoring.exposition import metrics_server_start


class Command(BaseCommand):
    help = "Consume charging_requests from Kafka and fan each request into a charging.authorize task."

    def handle(self, *args: Any, **options: Any) -> None:
        from workers.bridge import Bridge  # noqa: PLC0415 - apps import workers only at run time

        metrics_server_start(port=settings.CHARGE_BRIDGE_METRICS_PORT, process="bridge")
        bridge = Bridge()
        bridge.install_signal_handlers()
        bridge.run()
