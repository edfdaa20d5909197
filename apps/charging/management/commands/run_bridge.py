from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Consume charging_requests from Kafka and fan each request into a charging.authorize task."

    def handle(self, *args: Any, **options: Any) -> None:
        from workers.bridge import Bridge  # noqa: PLC0415 - apps import workers only at run time

        bridge = Bridge()
        bridge.install_signal_handlers()
        bridge.run()
