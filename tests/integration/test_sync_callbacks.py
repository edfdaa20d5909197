"""Synchronous decisions with a callback, through the real api server: the wiring the test client skips.

The api process must publish the callback task through our Celery app and its Redis broker (it once
used Celery's default app, AMQP on localhost, and answered 500 after committing the decision). With
the broker away the caller still gets the decision, and the dispatch sweep sends the callback later.
"""

from __future__ import annotations

from typing import Any

import httpx

from apps.access.services import acl_insert
from apps.callbacks.models import CallbackDelivery
from apps.callbacks.services import deliveries_dispatch_due
from harness.processes import free_port, wait_until
from tests.integration.conftest import Pipeline

STATION = "9e0c6a0e-4b1e-4d55-9a7e-3c1f2b9d8e71"
TOKEN = "SYNC-CALLBACK-TOKEN-0123"


def _check_authority(api_url: str, pipeline: Pipeline, callback_url: str) -> httpx.Response:
    return httpx.post(
        f"{api_url}/checkauthority/",
        json={"station_id": STATION, "driver_token": TOKEN, "callback_url": callback_url},
        headers={"Authorization": f"Bearer {pipeline.api_key}"},
        timeout=10,
    )


def test_checkauthority_with_a_callback_answers_the_decision_and_the_callback_follows(
    pipeline: Pipeline,
) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)
    pipeline.start_worker(queues="callbacks", pool="threads", concurrency=2)
    api_url = pipeline.start_api()

    answer = _check_authority(api_url, pipeline, pipeline.receiver.url())

    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert (body["status"], body["reason"], body["message"]) == ("allowed", "granted", "Access granted")
    [callback] = pipeline.receiver.wait_for(body["request_id"])
    assert (callback.json["status"], callback.json["reason"]) == ("allowed", "granted")


def test_with_the_broker_away_the_caller_still_gets_the_decision(pipeline: Pipeline) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)
    # This api's broker is a port nobody listens on; its rate limits keep the real Redis.
    api_url = pipeline.start_api(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")

    answer = _check_authority(api_url, pipeline, pipeline.receiver.url())

    assert answer.status_code == 200, answer.text
    request_id = answer.json()["request_id"]
    assert answer.json()["status"] == "allowed"

    # Committed with its delivery, marked queued; the api's publisher, refused by the broker, unmarks
    # it, and the dispatch sweep sends it once the broker is back (here: this process's broker, the
    # real one), and a worker delivers it.
    def unmarked() -> bool:
        delivery = CallbackDelivery.objects.get(request_id=request_id)
        return (delivery.status, delivery.dispatched_at) == ("pending", None)

    wait_until(unmarked, timeout=30, what="the refused delivery unmarked by the api's publisher")
    pipeline.start_worker(queues="callbacks", pool="threads", concurrency=2)
    assert deliveries_dispatch_due(queue_empty=True) >= 1
    [callback] = pipeline.receiver.wait_for(request_id)
    assert callback.json["status"] == "allowed"
