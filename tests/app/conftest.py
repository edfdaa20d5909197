"""Fixtures of the app layer: API clients with keys of chosen scopes, and decision-log rows.

Kafka and Celery are not running in this layer. Producing is replaced by a guard that fails the
test, so a test that accidentally sends a valid request to an accepting route says so at once
instead of waiting for a broker timeout.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.charging.models import ChargingRequest
from apps.clients.models import ApiClient
from apps.clients.selectors import api_client_cache_clear, api_key_cache_clear
from apps.clients.services import ALL_SCOPES, api_client_get_or_create, api_key_create
from tests.app.callers import CALLBACK, STATION, TOKEN, Caller, LogRow, MakeCaller, SentTasks


@pytest.fixture(autouse=True)
def _real_redis(redis_endpoint: Any, settings: Any) -> None:
    """Rate limits and idempotency keys live in Redis: the app layer uses the fixture's real one."""
    settings.REDIS_URL = redis_endpoint.url


@pytest.fixture(autouse=True)
def _fresh_caches() -> Any:
    """Each test starts with this process's key and client caches empty (the database is new too)."""
    api_key_cache_clear()
    api_client_cache_clear()
    yield
    api_key_cache_clear()
    api_client_cache_clear()


@pytest.fixture(autouse=True)
def _no_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kwargs: Any) -> None:
        pytest.fail(f"the app layer has no Kafka, yet a request was produced: {kwargs}")

    monkeypatch.setattr("apps.charging.services.request_produce", refuse)


@pytest.fixture
def make_caller(db: None) -> MakeCaller:
    """A key with exactly `scopes` for the client named `client` (created if missing)."""

    def make(*scopes: str, client: str = "acme-charging", expires_at: datetime | None = None) -> Caller:
        api_client = api_client_get_or_create(name=client)
        key, plaintext = api_key_create(client=api_client, scopes=scopes, expires_at=expires_at)
        return Caller(client=api_client, key=key, plaintext=plaintext)

    return make


@pytest.fixture
def caller(make_caller: MakeCaller) -> Caller:
    """A key with every scope."""
    return make_caller(*ALL_SCOPES)


@pytest.fixture
def other_caller(make_caller: MakeCaller) -> Caller:
    """A key of another client, with every scope."""
    return make_caller(*ALL_SCOPES, client="other-platform")


@pytest.fixture
def log_row(db: None) -> LogRow:
    """Build (unsaved) decision-log rows; each call is one second older than the previous one."""
    start = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
    counter = itertools.count()

    def build(*, client: ApiClient | None, **fields: Any) -> ChargingRequest:
        requested_at = fields.pop("requested_at", None) or start - timedelta(seconds=next(counter))
        values: dict[str, Any] = {
            "request_id": uuid.uuid4(),
            "client": client,
            "station_id": STATION,
            "driver_token": TOKEN,
            "callback_url": CALLBACK,
            "source": ChargingRequest.Source.LEGACY_SYNC,
            "status": ChargingRequest.DecisionStatus.ALLOWED,
            "reason": "granted",
            "requested_at": requested_at,
            "decided_at": requested_at + timedelta(milliseconds=5),
            "deadline": requested_at + timedelta(seconds=10),
        }
        values.update(fields)
        return ChargingRequest(**values)

    return build


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> SentTasks:
    """Deliver tasks the callbacks services send, recorded instead of published."""
    tasks = SentTasks()
    monkeypatch.setattr("apps.callbacks.services.current_app", tasks)
    return tasks
