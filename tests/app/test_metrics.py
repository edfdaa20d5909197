"""GET /metrics: Prometheus text with requests by route pattern, decisions and the pending backlog."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.charging.models import ChargingRequest
from tests.app.callers import OTHER_TOKEN, STATION, Caller, LogRow


def _samples(body: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def _value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _scrape(client: Client, **extra: Any) -> dict[Any, float]:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return _samples(response.content)


def test_requests_are_counted_by_route_pattern_and_status(client: Client, db: None) -> None:
    request_id = uuid.uuid4()
    before = _scrape(client)

    client.get("/api/healthz")
    client.get(f"/api/v1/charging-requests/{request_id}")  # no key: 401
    client.get("/api/no-such-route")
    after = _scrape(client)

    def grew(**labels: str) -> float:
        name = "charge_http_requests_total"
        return (_value(after, name, **labels) or 0) - (_value(before, name, **labels) or 0)

    assert grew(method="GET", route="/api/healthz", status="200") == 1
    assert grew(method="GET", route="/api/v1/charging-requests/<request_id>", status="401") == 1
    assert grew(method="GET", route="<unmatched>", status="404") == 1
    # The pattern, never the path: ids must not become label values.
    assert not any(str(request_id) in str(labels) for _, labels in after)
    assert _value(after, "charge_http_request_duration_seconds_count", method="GET", route="/api/healthz")


def test_decisions_are_counted_by_status_reason_and_source(client: Client, caller: Caller) -> None:
    name = "charge_decisions_total"
    labels = {"status": "not_allowed", "reason": "unknown_token", "source": "sync"}
    before = _value(_scrape(client), name, **labels) or 0

    answer = caller.post_json(
        client, "/api/v1/authorize", {"station_id": STATION, "driver_token": OTHER_TOKEN}
    )
    after = _scrape(client)

    assert answer.status_code == 200
    assert _value(after, name, **labels) == before + 1
    assert _value(after, "charge_decision_latency_seconds_count", source="sync")


def test_pending_and_overdue_rows_are_counted_on_scrape(
    client: Client, log_row: LogRow, services: dict[str, str]
) -> None:
    now = timezone.now()
    pending = {"status": ChargingRequest.DecisionStatus.PENDING, "reason": "", "decided_at": None}
    ChargingRequest.objects.bulk_create(
        [
            log_row(client=None, **pending, requested_at=now, deadline=now + timedelta(seconds=10)),
            log_row(client=None, **pending, requested_at=now, deadline=now + timedelta(seconds=10)),
            log_row(
                client=None,
                **pending,
                requested_at=now - timedelta(minutes=1),
                deadline=now - timedelta(seconds=30),
            ),
            log_row(client=None),  # decided: neither
        ]
    )

    samples = _scrape(client)

    assert _value(samples, "charge_requests_pending") == 3
    assert _value(samples, "charge_requests_overdue") == 1
    assert _value(samples, "charge_scrape_errors", source="database") == 0
    assert _value(samples, "charge_scrape_errors", source="redis") == 0
    assert _value(samples, "charge_celery_queue_length", queue="authorize") is not None
    assert _value(samples, "charge_celery_queue_length", queue="callbacks") is not None


def test_every_family_the_dashboards_use_is_described(client: Client, db: None) -> None:
    families = {
        family.name for family in text_string_to_metric_families(client.get("/metrics").content.decode())
    }

    for family in [
        "charge_http_requests",
        "charge_kafka_produce_seconds",
        "charge_kafka_produce_failures",
        "charge_bridge_batch_size",
        "charge_decisions",
        "charge_decision_latency_seconds",
        "charge_callback_attempts",
        "charge_callback_attempt_duration_seconds",
        "charge_requests_pending",
        "charge_requests_overdue",
    ]:
        assert family in families, family


def test_metrics_need_no_key_but_an_allowed_network(client: Client, db: None, settings: Any) -> None:
    settings.CHARGE_METRICS_ALLOWED_NETS = ["10.0.0.0/8"]

    refused = client.get("/metrics")  # the test client comes from 127.0.0.1
    allowed = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    mapped = client.get("/metrics", REMOTE_ADDR="::ffff:10.9.8.7")

    assert refused.status_code == 403
    assert allowed.status_code == 200
    assert mapped.status_code == 200
