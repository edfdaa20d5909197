"""The bridge decides the batches it stored (CHARGE_BRIDGE_DECIDES, the default) and hands a batch
it could not decide to charging.authorize tasks, so the partition moves on and nothing is lost."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from kafka import KafkaProducer

from apps.callbacks.models import CallbackDelivery
from apps.charging.messages import ChargeRequestV1
from apps.charging.models import ChargingRequest
from apps.charging.services import Consumed, charging_requests_store
from harness.processes import wait_until
from tests.conftest import Endpoint
from tests.integration.conftest import Pipeline
from tests.receiver import CallbackReceiver, Reply

STATION = "2b7e151e-8a4f-4c1d-9f0e-6a5d3c2b1a09"
TOKEN = "BRIDGE-DECIDES-TOKEN-0123"


def _accept(pipeline: Pipeline, client: Client, count: int, *, callback_url: str | None = None) -> list[str]:
    body = {
        "station_id": STATION,
        "driver_token": TOKEN,
        "callback_url": callback_url or pipeline.receiver.url(),
    }
    ids = []
    for _ in range(count):
        response = pipeline.post_json(client, "/api/v1/charging-requests", body)
        assert response.status_code == 202
        ids.append(response.json()["request_id"])
    return ids


def _allowed(request_ids: list[str]) -> None:
    rows = ChargingRequest.objects.filter(request_id__in=request_ids)
    assert sorted((row.status, row.reason) for row in rows) == [("allowed", "granted")] * len(request_ids)


def test_the_bridge_decides_without_any_authorize_worker(pipeline: Pipeline, client: Client) -> None:
    # Never pending: stored with its decision, in one transaction with its delivery.
    pipeline.post_json(client, "/api/insertACL/", {"station_id": STATION, "driver_token": TOKEN})
    bridge = pipeline.start_bridge()
    pipeline.start_worker(queues="callbacks")

    ids = _accept(pipeline, client, 5)

    for request_id in ids:
        [callback] = pipeline.receiver.wait_for(request_id)
        assert (callback.json["status"], callback.json["reason"]) == ("allowed", "granted")
    _allowed(ids)
    log = bridge.log_path.read_text()
    assert all(request_id in log for request_id in ids)
    assert '"requests_decided"' in log


def test_the_bridge_makes_the_first_attempt_and_a_callbacks_worker_the_retry(
    pipeline: Pipeline, client: Client
) -> None:
    pipeline.post_json(client, "/api/insertACL/", {"station_id": STATION, "driver_token": TOKEN})
    bridge = pipeline.start_bridge()

    # No callbacks worker at all: the bridge's own threads POST the first attempt.
    ids = _accept(pipeline, client, 3)
    for request_id in ids:
        [callback] = pipeline.receiver.wait_for(request_id)
        assert (callback.json["status"], callback.json["reason"]) == ("allowed", "granted")
    assert '"callback_batch"' in bridge.log_path.read_text()

    # A receiver that fails the first time: its retry is a callbacks.deliver task, which waits in
    # the queue until a callbacks worker runs.
    answers = iter([Reply(status=500)])
    flaky = CallbackReceiver(lambda received: next(answers, Reply())).start()
    try:
        [request_id] = _accept(pipeline, client, 1, callback_url=flaky.url("/flaky"))
        wait_until(
            lambda: CallbackDelivery.objects.filter(
                request_id=request_id, attempts=1, status="retrying"
            ).exists(),
            timeout=30,
            what="the bridge's first attempt to fail",
        )
        pipeline.start_worker(queues="callbacks")
        assert len(flaky.wait_for(request_id, count=2)) == 2
        wait_until(
            lambda: CallbackDelivery.objects.filter(request_id=request_id, status="delivered").exists(),
            timeout=30,
            what="the retry to be recorded delivered",
        )
        assert CallbackDelivery.objects.get(request_id=request_id).attempts == 2
    finally:
        flaky.stop()


@pytest.fixture
def first_decision_refused() -> Iterator[None]:
    """The first write of a decided row fails (a sequence is not rolled back with it); later ones pass.

    The bridge writes its decisions with the INSERT, an authorize task with an UPDATE: either counts.
    """
    table = ChargingRequest._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("CREATE SEQUENCE decide_refused_once")
        cursor.execute(
            "CREATE FUNCTION decide_refused_once() RETURNS trigger AS $$ BEGIN "
            "IF NEW.status <> 'pending' AND nextval('decide_refused_once') = 1 THEN "
            "RAISE EXCEPTION 'the first decision is refused by the test'; END IF; RETURN NEW; END $$ "
            "LANGUAGE plpgsql"
        )
        cursor.execute(
            f"CREATE TRIGGER decide_refused_once BEFORE INSERT OR UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION decide_refused_once()"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER IF EXISTS decide_refused_once ON {table}")
            cursor.execute("DROP FUNCTION IF EXISTS decide_refused_once()")
            cursor.execute("DROP SEQUENCE IF EXISTS decide_refused_once")


def test_a_batch_the_bridge_cannot_decide_goes_to_authorize_tasks(
    pipeline: Pipeline, client: Client, first_decision_refused: None
) -> None:
    pipeline.post_json(client, "/api/insertACL/", {"station_id": STATION, "driver_token": TOKEN})
    bridge = pipeline.start_bridge()
    worker = pipeline.start_worker()

    [request_id] = _accept(pipeline, client, 1)

    [callback] = pipeline.receiver.wait_for(request_id)
    assert (callback.json["status"], callback.json["reason"]) == ("allowed", "granted")
    _allowed([request_id])
    wait_until(
        lambda: '"bridge_decide_failed"' in bridge.log_path.read_text(),
        timeout=10,
        what="the bridge to log the refused decision",
    )
    # Decided by the task the bridge sent instead, and only once.
    worker_log = worker.log_path.read_text()
    assert request_id in worker_log
    assert worker_log.count('"requests_decided"') == 1
    assert pipeline.receiver.wait_for(request_id) == [callback]


def test_a_message_whose_row_is_pending_already_is_decided_once(
    pipeline: Pipeline, client: Client, kafka_endpoint: Endpoint
) -> None:
    """A row stored pending before (by a bridge that died before deciding, or one with
    CHARGE_BRIDGE_DECIDES off) and its message read again: decided from the row's values, once."""
    pipeline.post_json(client, "/api/insertACL/", {"station_id": STATION, "driver_token": TOKEN})
    now = timezone.now()
    message = ChargeRequestV1(
        request_id=uuid.uuid4(),
        client_id=None,
        station_id=STATION,
        driver_token=TOKEN,
        callback_url=pipeline.receiver.url(),
        received_at=now,
        deadline=now + timedelta(seconds=10),
    )
    charging_requests_store(consumed=[Consumed(message=message, partition=0, offset=0)])
    pipeline.start_bridge()
    pipeline.start_worker(queues="callbacks")

    producer = KafkaProducer(bootstrap_servers=kafka_endpoint.url, acks="all")
    for _ in range(2):
        producer.send(pipeline.topic, value=message.to_json(), key=STATION.encode())
    producer.flush(timeout=10)
    producer.close()

    [callback] = pipeline.receiver.wait_for(str(message.request_id))
    assert (callback.json["status"], callback.json["reason"]) == ("allowed", "granted")
    _allowed([str(message.request_id)])
    assert CallbackDelivery.objects.filter(request_id=message.request_id).count() == 1
