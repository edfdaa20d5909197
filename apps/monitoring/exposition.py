"""Serving the metrics: what a scrape of the api, the bridge or a worker returns.

- api (granian, several worker processes): GET /metrics merges the files every worker process wrote to
  PROMETHEUS_MULTIPROC_DIR, and adds the pipeline state read at scrape time (PipelineStateCollector).
- bridge (one process): its own port, CHARGE_BRIDGE_METRICS_PORT.
- a Celery worker (prefork children, or threads): its main process serves the directory its
  children write to on CHARGE_WORKER_METRICS_PORT; one port per worker instance.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime

import redis
import structlog
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from apps.core.tasks import queue_lengths
from apps.monitoring.metrics import SCRAPE_GAUGES

logger = structlog.get_logger(__name__)

# The pending/overdue count must never make a scrape slow, even with a huge backlog.
STATE_QUERY_TIMEOUT_MS = 500
# Redis calls of a scrape fail fast when the broker is away.
REDIS_TIMEOUT_S = 0.5


def multiprocess_dir() -> str | None:
    """The directory this process group's metric files go to, when it has several processes."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def process_registry() -> CollectorRegistry:
    """What this process serves: its process group's merged files, or its own in-memory registry."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return REGISTRY


def metrics_server_start(*, port: int, process: str) -> bool:
    """Serve this process group's metrics on `port` (0: no server). A busy port is logged, not fatal."""
    if not port:
        return False
    try:
        start_http_server(port, addr=settings.CHARGE_METRICS_BIND, registry=process_registry())
    except OSError as exc:
        # The process's real work matters more than its metrics: run on without them.
        logger.warning("metrics_server_unavailable", process=process, port=port, error=repr(exc))
        return False
    logger.info("metrics_server_started", process=process, port=port, addr=settings.CHARGE_METRICS_BIND)
    return True


# How many decision-log rows are pending and how many of them overdue, at a moment: the app that
# owns the log registers its reader here (apps.charging's ready()), so monitoring imports no app.
PendingCounts = Callable[[datetime], tuple[int, int]]
_pending_counts_reader: PendingCounts | None = None


def pending_counts_register(reader: PendingCounts) -> None:
    global _pending_counts_reader  # noqa: PLW0603 - one reader per process, set once at start-up
    _pending_counts_reader = reader


def _celery_queues() -> list[str]:
    routes = settings.CELERY_TASK_ROUTES.values()
    return sorted({route["queue"] for route in routes} | {settings.CELERY_TASK_DEFAULT_QUEUE})


class PipelineStateCollector:
    """Pending and overdue decision-log rows and Celery queue lengths, read when Prometheus scrapes.

    On scrape rather than by a beat task: always current, nothing to keep in sync, and two cheap
    reads (an aggregate over the partial index of pending rows; LLEN per queue) every scrape interval.
    """

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        errors = GaugeMetricFamily(
            "charge_scrape_errors", SCRAPE_GAUGES["charge_scrape_errors"], labels=["source"]
        )
        counts: tuple[int, int] | None = None
        try:
            counts = self._pending_counts()
        except DatabaseError as exc:
            logger.warning("metrics_state_unavailable", source="database", error=repr(exc))
            errors.add_metric(["database"], 1)
        else:
            errors.add_metric(["database"], 0)
        if counts is not None:
            pending, overdue = counts
            yield GaugeMetricFamily(
                "charge_requests_pending", SCRAPE_GAUGES["charge_requests_pending"], value=pending
            )
            yield GaugeMetricFamily(
                "charge_requests_overdue", SCRAPE_GAUGES["charge_requests_overdue"], value=overdue
            )
        try:
            lengths = self._queue_lengths()
        except redis.RedisError as exc:
            logger.warning("metrics_state_unavailable", source="redis", error=repr(exc))
            errors.add_metric(["redis"], 1)
        else:
            errors.add_metric(["redis"], 0)
            queues = GaugeMetricFamily(
                "charge_celery_queue_length", SCRAPE_GAUGES["charge_celery_queue_length"], labels=["queue"]
            )
            for queue, length in lengths.items():
                queues.add_metric([queue], length)
            yield queues
        yield errors

    @staticmethod
    def _pending_counts() -> tuple[int, int] | None:
        if _pending_counts_reader is None:
            return None
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL statement_timeout = {STATE_QUERY_TIMEOUT_MS}")
            return _pending_counts_reader(timezone.now())

    @staticmethod
    def _queue_lengths() -> dict[str, int]:
        broker = settings.CELERY_BROKER_URL
        if not broker.startswith(("redis://", "rediss://", "unix://")):
            return {}
        queues = _celery_queues()
        client = redis.Redis.from_url(
            broker, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        try:
            return queue_lengths(client, queues)
        finally:
            client.close()


state_registry = CollectorRegistry()
state_registry.register(PipelineStateCollector())
