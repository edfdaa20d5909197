"""The request pipeline end to end on real services: API → Kafka → bridge → Celery → log → callback."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Any

from django.test import Client
from kafka import KafkaConsumer, KafkaProducer

from apps.callbacks.models import CallbackAttempt, CallbackDelivery
from apps.callbacks.signing import signature_verify
from apps.charging.models import ChargingRequest
from harness.processes import wait_until
from tests.conftest import Endpoint
from tests.integration.conftest import Pipeline, worker_wait_ready
from tests.receiver import now_unix

STATION = "5f0c6a0e-4b1e-4d55-9a7e-3c1f2b9d8e71"
OTHER_STATION = "0b6f3c1e-2d4a-4f8b-9c7d-6e5a4b3c2d1f"
TOKEN = "DRIVER-TOKEN-0123456789"


def _status(client: Client, pipeline: Pipeline, request_id: str) -> dict[str, Any] | None:
    response = client.get(f"/api/v1/charging-requests/{request_id}", **pipeline.auth)
    return response.json() if response.status_code == 200 else None


def _wait_status(client: Client, pipeline: Pipeline, request_id: str, *statuses: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen["state"] = _status(client, pipeline, request_id)
        return bool(seen["state"]) and seen["state"]["status"] in statuses

    wait_until(reached, timeout=30, what=f"request {request_id} to be {statuses}")
    return seen["state"]


def test_the_original_first_use_flow(pipeline: Pipeline, client: Client) -> None:
    pipeline.start_bridge()
    pipeline.start_worker()

    inserted = pipeline.post_json(client, "/api/insertACL/", {"station_id": STATION, "driver_token": TOKEN})
    accepted = pipeline.post_json(
        client,
        "/api/chargingRequestValidator/",
        {"station_id": STATION, "driver_token": TOKEN, "callback_url": pipeline.receiver.url()},
    )

    assert inserted.json() == {"flag": "success"}
    assert accepted.status_code == 200
    body = accepted.json()
    assert body["status"] == "accepted"
    assert body["message"].startswith("Request is being processed asynchronously.")
    request_id = body["request_id"]

    [callback] = pipeline.receiver.wait_for(request_id)
    assert callback.json["status"] == "allowed"
    assert callback.json["reason"] == "granted"
    assert callback.json["message"] == "Access granted"
    assert callback.json["station_id"] == STATION
    assert callback.headers["x-charge-attempt"] == "1"
    assert signature_verify(
        header=callback.headers["x-charge-signature"],
        secret=pipeline.api_client.callback_secret,
        body=callback.body,
        now=now_unix(),
    )

    log = client.get("/api/getrequestlog/", **pipeline.auth).json()
    assert log[0]["id"] == request_id
    assert log[0]["decision"] == "allowed"
    assert log[0]["decision_time"] is not None

    # A token the ACL does not know is refused, and the caller hears so.
    refused = pipeline.post_json(
        client,
        "/api/chargingRequestValidator/",
        {
            "station_id": STATION,
            "driver_token": "UNKNOWN-TOKEN-99999999",
            "callback_url": pipeline.receiver.url(),
        },
    ).json()
    [refusal] = pipeline.receiver.wait_for(refused["request_id"])
    assert (refusal.json["status"], refusal.json["reason"]) == ("not_allowed", "unknown_token")
    assert refusal.json["message"] == "Access denied"

    # A known token without a grant at this station is refused too.
    pipeline.post_json(client, "/api/insertACL/", {"station_id": OTHER_STATION, "driver_token": TOKEN})
    elsewhere = pipeline.post_json(
        client,
        "/api/chargingRequestValidator/",
        {
            "station_id": STATION.replace("5f0c", "6f0c"),
            "driver_token": TOKEN,
            "callback_url": pipeline.receiver.url(),
        },
    ).json()
    [no_grant] = pipeline.receiver.wait_for(elsewhere["request_id"])
    assert (no_grant.json["status"], no_grant.json["reason"]) == ("not_allowed", "no_grant")


def test_v1_request_is_pending_until_a_worker_decides_it(pipeline: Pipeline, client: Client) -> None:
    # The authorize tasks' path: a bridge that does not decide itself (test_bridge_decides.py has
    # the default, where it does).
    pipeline.start_bridge(CHARGE_BRIDGE_DECIDES="0")
    pipeline.post_json(client, "/api/insertACL/", {"station_id": STATION, "driver_token": TOKEN})

    response = pipeline.post_json(
        client,
        "/api/v1/charging-requests",
        {"station_id": STATION, "driver_token": TOKEN, "callback_url": pipeline.receiver.url()},
    )

    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "accepted"
    assert accepted["status_url"].endswith(f"/api/v1/charging-requests/{accepted['request_id']}")
    pending = _wait_status(client, pipeline, accepted["request_id"], "pending")
    assert pending["decided_at"] is None
    assert pending["callback"] is None

    pipeline.start_worker()

    decided = _wait_status(client, pipeline, accepted["request_id"], "allowed")
    assert decided["reason"] == "granted"
    assert decided["decided_at"] is not None
    pipeline.receiver.wait_for(accepted["request_id"])
    delivered = _wait_status(client, pipeline, accepted["request_id"], "allowed")
    wait_until(
        lambda: (
            (_status(client, pipeline, accepted["request_id"]) or {}).get("callback", {}).get("status")
            == "delivered"
        ),
        timeout=30,
        what="delivery recorded",
    )
    delivered = _status(client, pipeline, accepted["request_id"]) or {}
    assert delivered["callback"] == {"status": "delivered", "attempts": 1, "last_http_status": 200}


def test_a_request_whose_deadline_passed_before_the_worker_ran_is_unknown(
    pipeline: Pipeline, client: Client, settings: Any
) -> None:
    settings.CHARGE_DECISION_TIMEOUT_S = 1.0
    pipeline.post_json(client, "/api/insertACL/", {"station_id": STATION, "driver_token": TOKEN})
    accepted = pipeline.post_json(
        client,
        "/api/v1/charging-requests",
        {"station_id": STATION, "driver_token": TOKEN, "callback_url": pipeline.receiver.url()},
    ).json()
    sent_at = time.monotonic()
    # The bridge is down while the deadline passes.
    wait_until(lambda: time.monotonic() - sent_at > 1.5, timeout=5, what="the deadline to pass")

    pipeline.start_bridge()
    pipeline.start_worker()

    [callback] = pipeline.receiver.wait_for(accepted["request_id"])
    assert (callback.json["status"], callback.json["reason"]) == ("unknown", "timeout")
    assert callback.json["message"] == "Request is too old"
    row = ChargingRequest.objects.get(request_id=accepted["request_id"])
    assert row.decided_at is not None
    assert row.decided_at > row.deadline


def test_malformed_messages_go_to_the_dead_letter_topic_and_answerable_ones_are_invalid(
    pipeline: Pipeline, client: Client, kafka_endpoint: Endpoint
) -> None:
    pipeline.start_bridge()
    pipeline.start_worker()
    request_id = str(uuid.uuid4())
    producer = KafkaProducer(bootstrap_servers=kafka_endpoint.url, acks="all")
    producer.send(pipeline.topic, value=b"\xff not json at all", key=b"x")
    producer.send(
        pipeline.topic,
        value=json.dumps(
            {
                "v": 1,
                "request_id": request_id,
                "client_id": None,
                "station_id": STATION,
                "driver_token": "not a token",
                "callback_url": pipeline.receiver.url(),
                "received_at": datetime.now().astimezone().isoformat(),
                "deadline": datetime.now().astimezone().isoformat(),
            }
        ).encode(),
        key=STATION.encode(),
    )
    producer.flush(timeout=10)
    producer.close()

    [callback] = pipeline.receiver.wait_for(request_id)
    assert (callback.json["status"], callback.json["reason"]) == ("invalid", "invalid_token_format")
    row = ChargingRequest.objects.get(request_id=request_id)
    assert (row.status, row.reason) == ("invalid", "invalid_token_format")

    consumer = KafkaConsumer(
        pipeline.env["CHARGE_DLQ_TOPIC"],
        bootstrap_servers=kafka_endpoint.url,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
    )
    dead = []
    for record in consumer:
        dead.append(record)
        if len(dead) == 2:
            break
    consumer.close()
    errors = sorted(dict(record.headers)["error"].decode() for record in dead)
    assert errors[0].startswith("driver_token:")
    assert errors[1].startswith("not UTF-8 JSON")

    # The bridge goes on: a good request after the bad ones is decided.
    accepted = pipeline.post_json(
        client,
        "/api/v1/charging-requests",
        {"station_id": STATION, "driver_token": TOKEN, "callback_url": pipeline.receiver.url()},
    ).json()
    [after] = pipeline.receiver.wait_for(accepted["request_id"])
    assert after.json["reason"] == "unknown_token"


def test_a_redelivered_authorize_task_changes_nothing(pipeline: Pipeline, client: Client) -> None:
    from workers import app

    pipeline.start_bridge()
    worker = pipeline.start_worker()
    pipeline.post_json(client, "/api/insertACL/", {"station_id": STATION, "driver_token": TOKEN})
    accepted = pipeline.post_json(
        client,
        "/api/v1/charging-requests",
        {"station_id": STATION, "driver_token": TOKEN, "callback_url": pipeline.receiver.url()},
    ).json()
    request_id = accepted["request_id"]
    pipeline.receiver.wait_for(request_id)
    first = ChargingRequest.objects.get(request_id=request_id)

    app.send_task("charging.authorize", kwargs={"request_id": request_id})
    app.send_task("charging.authorize", kwargs={"request_id": request_id})
    # Tasks sent after the duplicates: once a worker ran these, it has taken the duplicates too.
    worker_wait_ready(worker, pipeline.env["REDIS_URL"])
    worker_wait_ready(worker, pipeline.env["REDIS_URL"])

    again = ChargingRequest.objects.get(request_id=request_id)
    assert (again.status, again.decided_at) == (first.status, first.decided_at)
    assert CallbackDelivery.objects.filter(request_id=request_id).count() == 1
    assert CallbackAttempt.objects.filter(delivery_id=request_id).count() == 1
    assert len(pipeline.receiver.for_request(request_id)) == 1
