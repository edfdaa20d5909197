"""GET /api/readyz on the real database, Redis and Kafka: 200 when all answer, else 503 naming the failure."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from apps.charging.topics import topics_ensure
from apps.monitoring import readiness


@pytest.fixture
def topic(services: dict[str, str], settings: Any) -> str:
    """The request topic, created on the fixture broker under a name of this test's own."""
    suffix = uuid.uuid4().hex[:8]
    settings.CHARGE_TOPIC = f"charging_requests-readyz-{suffix}"
    settings.CHARGE_DLQ_TOPIC = f"{settings.CHARGE_TOPIC}.dlq"
    topics_ensure(wait_s=30)
    return str(settings.CHARGE_TOPIC)


def _readyz(client: Client) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    response = client.get("/api/readyz")
    return response.status_code, response.json(), time.monotonic() - started


def test_ready_when_database_redis_and_kafka_answer(client: Client, db: None, topic: str) -> None:
    status, body, _ = _readyz(client)

    assert status == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "kafka"}
    for name, check in body["checks"].items():
        assert check["ok"] is True, (name, check)
        assert 0 <= check["ms"] < 1000, (name, check)


def test_not_ready_when_redis_is_unreachable(client: Client, db: None, topic: str, settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    status, body, took_s = _readyz(client)

    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["kafka"]["ok"] is True
    assert took_s < 2


def test_not_ready_when_the_request_topic_is_missing(
    client: Client, db: None, topic: str, settings: Any
) -> None:
    settings.CHARGE_TOPIC = f"no-such-topic-{uuid.uuid4().hex[:8]}"

    status, body, _ = _readyz(client)

    assert status == 503
    assert body["checks"]["kafka"]["ok"] is False
    assert settings.CHARGE_TOPIC in body["checks"]["kafka"]["error"]


@pytest.fixture
def hanging_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A database check that never answers (until the test ends): a blackholed host, say."""
    released = threading.Event()
    monkeypatch.setitem(readiness.CHECKS, "database", lambda timeout_s: released.wait(60))
    yield
    released.set()


def test_a_hanging_check_fails_within_the_bound(
    client: Client, db: None, topic: str, settings: Any, hanging_database: None
) -> None:
    settings.CHARGE_READYZ_TIMEOUT_S = 0.5

    status, body, took_s = _readyz(client)

    assert status == 503
    assert body["checks"]["database"] == {"ok": False, "ms": 500.0, "error": "no answer within 0.5 s"}
    assert took_s < 1.5
