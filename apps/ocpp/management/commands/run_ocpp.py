from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from django.db.migrations.executor import MigrationExecutor

from apps.monitoring.exposition import metrics_server_start, multiprocess_dir
from apps.ocpp.gateway import gateway_run
from apps.ocpp.processes import gateways_run


def _migrations_pending() -> bool:
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))


class Command(BaseCommand):
    help = "Serve OCPP 1.6J and 2.0.1 stations on ws://OCPP_HOST:OCPP_PORT/ocpp/<identity> until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.OCPP_HOST)
        parser.add_argument("--port", type=int, default=settings.OCPP_PORT, help="0: any free port")
        parser.add_argument(
            "--wait-s",
            type=float,
            default=0.0,
            help="first wait this long at most for the database and its migrations (another process "
            "migrates); checked in this process, so a restarted gateway listens ~2 s sooner than "
            "after separate wait_for_db and migrate --check commands",
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=settings.OCPP_PROCESSES,
            help="gateway processes sharing the port (apps/ocpp/processes.py); 1: this process serves",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["wait_s"]:
            self._wait_for_schema(options["wait_s"])

        def metrics() -> bool:
            if options["processes"] > 1 and not multiprocess_dir() and settings.CHARGE_OCPP_METRICS_PORT:
                # Each process would count in its own memory, which the parent cannot serve.
                self.stderr.write(
                    "run_ocpp: no metrics server: several processes need PROMETHEUS_MULTIPROC_DIR "
                    "(compose/local/ocpp.sh sets it)"
                )
                return False
            return metrics_server_start(port=settings.CHARGE_OCPP_METRICS_PORT, process="ocpp")

        where = {"host": options["host"], "port": options["port"], "db_threads": settings.OCPP_DB_THREADS}
        if options["processes"] < 1:
            raise CommandError(f"--processes must be at least 1, not {options['processes']}")
        if options["processes"] == 1:
            metrics()
            gateway_run(**where)
            return
        status = gateways_run(**where, processes=options["processes"], started=metrics)
        if status:
            raise CommandError("a gateway process died; all of them were stopped")

    def _wait_for_schema(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        said = False
        while True:
            try:
                pending = _migrations_pending()
                problem = "migrations not applied yet"
            except OperationalError as exc:
                pending, problem = True, f"database not reachable: {exc}"
            finally:
                connections.close_all()
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise CommandError(f"after {wait_s:.0f} s: {problem}")
            if not said:
                self.stderr.write(f"run_ocpp: waiting ({problem})")
                said = True
            time.sleep(0.5)
