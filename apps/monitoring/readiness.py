"""Readiness: can this api process reach the database, Redis and Kafka right now?

Each check runs in its own daemon thread and the caller waits at most `timeout_s` in all, so a
dependency that hangs (a blackholed host, a half-open socket) gives a failed check, never a hung
probe. The checks run side by side: the answer takes as long as the slowest one.

Kafka: a short-lived admin client asks the broker for the request topic's metadata (measured ~25 ms
on the 2-core machine). The api producer's metadata is cheaper (0 ms) but cached for up to
metadata.max.age.ms (5 min), so it keeps answering "ready" long after the broker has gone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.db import connection
from kafka import KafkaAdminClient

from apps.core.kv import redis_client
from apps.monitoring.metrics import READINESS_FAILURES

logger = structlog.get_logger(__name__)


class CheckFailed(Exception):
    """A dependency answered, but not with what readiness needs."""


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    ms: float
    error: str | None = None


def database_check(timeout_s: float) -> None:
    # A thread of its own gets a connection of its own: open, query and close it here.
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


def redis_check(timeout_s: float) -> None:
    # The process's pooled client (0.5 s socket timeouts), the one rate limits and idempotency use.
    if not redis_client().ping():
        raise CheckFailed("PING was not answered with PONG")


def kafka_check(timeout_s: float) -> None:
    budget_ms = max(int(timeout_s * 1000) - 100, 100)
    admin = KafkaAdminClient(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        client_id="charge-readyz",
        bootstrap_timeout_ms=budget_ms,
        request_timeout_ms=budget_ms,
    )
    try:
        [topic] = admin.describe_topics([settings.CHARGE_TOPIC])
    finally:
        admin.close()
    if topic["error_code"]:
        raise CheckFailed(f"topic {settings.CHARGE_TOPIC}: Kafka error code {topic['error_code']}")


CHECKS: dict[str, Callable[[float], None]] = {
    "database": database_check,
    "redis": redis_check,
    "kafka": kafka_check,
}


def _run(
    name: str, check: Callable[[float], None], timeout_s: float, results: dict[str, CheckResult]
) -> None:
    started = time.perf_counter()
    try:
        check(timeout_s)
    except Exception as exc:  # noqa: BLE001 - any failure of a dependency means "not ready"
        results[name] = CheckResult(False, round((time.perf_counter() - started) * 1000, 1), repr(exc)[:300])
    else:
        results[name] = CheckResult(True, round((time.perf_counter() - started) * 1000, 1))


def readiness_check(*, timeout_s: float) -> dict[str, CheckResult]:
    """Run every check side by side; one that has not answered within `timeout_s` has failed."""
    results: dict[str, CheckResult] = {}
    threads = {
        name: threading.Thread(
            target=_run, args=(name, check, timeout_s, results), name=f"readyz-{name}", daemon=True
        )
        for name, check in CHECKS.items()
    }
    deadline = time.monotonic() + timeout_s
    for thread in threads.values():
        thread.start()
    for thread in threads.values():
        thread.join(max(deadline - time.monotonic(), 0))
    answered = {name: results.get(name) for name in CHECKS}
    final = {
        name: result or CheckResult(False, round(timeout_s * 1000, 1), f"no answer within {timeout_s:g} s")
        for name, result in answered.items()
    }
    for name, result in final.items():
        if not result.ok:
            READINESS_FAILURES.labels(check=name).inc()
            logger.warning("readiness_check_failed", check=name, ms=result.ms, error=result.error)
    return final
