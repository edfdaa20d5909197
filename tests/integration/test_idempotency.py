"""Idempotency-Key on POST /api/v1/charging-requests, with the real broker and the real Redis."""

from __future__ import annotations

from django.test import Client
from kafka import KafkaConsumer

from tests.conftest import Endpoint
from tests.integration.conftest import Pipeline

STATION = "5f0c6a0e-4b1e-4d55-9a7e-3c1f2b9d8e71"
TOKEN = "DRIVER-TOKEN-0123456789"


def _messages_on(topic: str, kafka_endpoint: Endpoint) -> list[bytes]:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=kafka_endpoint.url, auto_offset_reset="earliest", consumer_timeout_ms=3_000
    )
    values = [record.value for record in consumer]
    consumer.close()
    return values


def test_a_repeated_idempotency_key_returns_the_first_answer_and_produces_nothing_new(
    pipeline: Pipeline, client: Client, kafka_endpoint: Endpoint
) -> None:
    body = {"station_id": STATION, "driver_token": TOKEN, "callback_url": pipeline.receiver.url()}

    first = pipeline.post_json(client, "/api/v1/charging-requests", body, HTTP_IDEMPOTENCY_KEY="order-42")
    again = pipeline.post_json(client, "/api/v1/charging-requests", body, HTTP_IDEMPOTENCY_KEY="order-42")
    other_body = pipeline.post_json(
        client,
        "/api/v1/charging-requests",
        {**body, "driver_token": "ANOTHER-TOKEN-000000000"},
        HTTP_IDEMPOTENCY_KEY="order-42",
    )
    fresh = pipeline.post_json(client, "/api/v1/charging-requests", body, HTTP_IDEMPOTENCY_KEY="order-43")

    assert first.status_code == 202
    assert again.status_code == 202
    assert again.json() == first.json()
    assert other_body.status_code == 422
    assert other_body.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert fresh.status_code == 202
    assert fresh.json()["request_id"] != first.json()["request_id"]
    messages = _messages_on(pipeline.topic, kafka_endpoint)
    assert len(messages) == 2
    assert sum(first.json()["request_id"].encode() in value for value in messages) == 1


def test_an_unusable_idempotency_key_is_422(pipeline: Pipeline, client: Client) -> None:
    body = {"station_id": STATION, "driver_token": TOKEN, "callback_url": pipeline.receiver.url()}

    response = pipeline.post_json(client, "/api/v1/charging-requests", body, HTTP_IDEMPOTENCY_KEY="x" * 256)

    assert response.status_code == 422
