"""No message holds its partition: what cannot be stored is set aside, the messages behind it go on.

The topic is a public interface, so these messages are produced straight to it, all with the same
key (one partition) and in one burst, so the bridge's poll holds the bad one among good ones.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from kafka import KafkaConsumer, KafkaProducer

from apps.access.services import acl_insert
from apps.charging.models import ChargingRequest
from tests.conftest import Endpoint
from tests.integration.conftest import Pipeline

STATION = "8d0c6a0e-4b1e-4d55-9a7e-3c1f2b9d8e71"
TOKEN = "POISON-TEST-TOKEN-01234"
REFUSED_TOKEN = "REFUSED-BY-THE-DATABASE-0"


def _message(request_id: str, *, callback_url: str, token: str = TOKEN, source: str = "topic") -> bytes:
    now = datetime.now().astimezone()
    body: dict[str, Any] = {
        "v": 1,
        "request_id": request_id,
        "client_id": None,
        "station_id": STATION,
        "driver_token": token,
        "callback_url": callback_url,
        "received_at": now.isoformat(),
        "deadline": (now + timedelta(seconds=10)).isoformat(),
        "source": source,
    }
    # json.dumps writes a lone surrogate as the escape "\ud800", as any JSON producer may.
    return json.dumps(body).encode()


def _produce(kafka: Endpoint, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka.url, acks="all")
    for value in values:
        producer.send(topic, value=value, key=STATION.encode())
    producer.flush(timeout=10)
    producer.close()


def _dead_letters(kafka: Endpoint, topic: str, count: int) -> list[Any]:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=kafka.url, auto_offset_reset="earliest", consumer_timeout_ms=20_000
    )
    found = []
    for record in consumer:
        found.append(record)
        if len(found) == count:
            break
    consumer.close()
    return found


def _decided_in_time(request_ids: list[str]) -> None:
    rows = ChargingRequest.objects.filter(request_id__in=request_ids)
    assert rows.count() == len(request_ids)
    for row in rows:
        assert (row.status, row.reason) == ("allowed", "granted")
        assert row.decided_at is not None
        assert row.decided_at <= row.deadline


def test_a_lone_surrogate_is_dead_lettered_and_the_partition_moves_on(
    pipeline: Pipeline, kafka_endpoint: Endpoint
) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)
    url = pipeline.receiver.url()
    before, after = [str(uuid.uuid4()) for _ in range(3)], [str(uuid.uuid4()) for _ in range(3)]
    poisoned = str(uuid.uuid4())
    pipeline.start_bridge()
    pipeline.start_worker()
    _produce(
        kafka_endpoint,
        pipeline.topic,
        [_message(rid, callback_url=url) for rid in before]
        + [_message(poisoned, callback_url=url + "\ud800")]
        + [_message(rid, callback_url=url) for rid in after],
    )

    for request_id in before + after:
        pipeline.receiver.wait_for(request_id)
    _decided_in_time(before + after)
    [dead] = _dead_letters(kafka_endpoint, pipeline.env["CHARGE_DLQ_TOPIC"], 1)
    assert "callback_url" in dict(dead.headers)["error"].decode()
    # Logged as invalid; its callback URL cannot be stored, so there is nowhere to tell.
    row = ChargingRequest.objects.get(request_id=poisoned)
    assert (row.status, row.reason, row.callback_url) == ("invalid", "malformed_message", "")


@pytest.fixture
def database_refuses_one_token() -> Iterator[None]:
    """A CHECK the pending rows of REFUSED_TOKEN break: a value the database refuses, whatever it is."""
    table = ChargingRequest._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT poison_test "
            f"CHECK (NOT (driver_token = '{REFUSED_TOKEN}' AND source = 'legacy'))"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS poison_test")


def test_a_message_the_database_refuses_is_found_and_set_aside(
    pipeline: Pipeline, kafka_endpoint: Endpoint, database_refuses_one_token: None
) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)
    url = pipeline.receiver.url()
    good = [str(uuid.uuid4()) for _ in range(12)]
    refused = str(uuid.uuid4())
    values = [_message(rid, callback_url=url, source="legacy") for rid in good]
    values.insert(7, _message(refused, callback_url=url, token=REFUSED_TOKEN, source="legacy"))
    pipeline.start_bridge()
    pipeline.start_worker()
    _produce(kafka_endpoint, pipeline.topic, values)

    for request_id in good:
        pipeline.receiver.wait_for(request_id)
    _decided_in_time(good)
    [dead] = _dead_letters(kafka_endpoint, pipeline.env["CHARGE_DLQ_TOPIC"], 1)
    assert dict(dead.headers)["error"].decode().startswith("the database refused the message")
    # Decided `invalid` where it can be (its row of what it carried fits), and the caller told.
    [callback] = pipeline.receiver.wait_for(refused)
    assert (callback.json["status"], callback.json["reason"]) == ("invalid", "malformed_message")
