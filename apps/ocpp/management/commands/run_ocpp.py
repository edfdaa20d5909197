from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.monitoring.exposition import metrics_server_start
from apps.ocpp.gateway import gateway_run


class Command(BaseCommand):
    help = "Serve OCPP 1.6J and 2.0.1 stations on ws://OCPP_HOST:OCPP_PORT/ocpp/<identity> until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.OCPP_HOST)
        parser.add_argument("--port", type=int, default=settings.OCPP_PORT, help="0: any free port")

    def handle(self, *args: Any, **options: Any) -> None:
        metrics_server_start(port=settings.CHARGE_OCPP_METRICS_PORT, process="ocpp")
        gateway_run(host=options["host"], port=options["port"], db_threads=settings.OCPP_DB_THREADS)
