"""Batched tasks on the real stack: one charging.authorize task decides many requests set-wise, one
callbacks.deliver task posts one receiver's batch; each stays exactly-once when run twice.

Pending rows are written the way the bridge writes them (charging_requests_store), then the tasks go
through the real Redis broker to real worker processes; callbacks arrive at real receivers.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import timedelta

from django.utils import timezone

from apps.access.services import (
    grant_create,
    station_create,
    station_disable,
    token_block,
    token_create,
)
from apps.callbacks.models import CallbackAttempt, CallbackDelivery
from apps.charging.messages import ChargeRequestV1
from apps.charging.models import ChargingRequest
from apps.charging.services import Consumed, charging_requests_store
from harness.processes import wait_until
from tests.integration.conftest import Pipeline, worker_wait_ready
from tests.receiver import CallbackReceiver, Reply

STATION = "7a0c6a0e-4b1e-4d55-9a7e-3c1f2b9d8e71"
BARE_STATION = "7b6f3c1e-2d4a-4f8b-9c7d-6e5a4b3c2d1f"
DISABLED_STATION = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
TOKEN = "BATCH-TOKEN-0123456789"
BLOCKED = "BLOCKED-TOKEN-01234567"


def _acl() -> None:
    station = station_create(station_id=STATION)
    station_create(station_id=BARE_STATION)
    disabled = station_create(station_id=DISABLED_STATION)
    token = token_create(value=TOKEN)
    blocked = token_create(value=BLOCKED)
    grant_create(token=token, station=station)
    grant_create(token=token, station=disabled)
    grant_create(token=blocked, station=station)
    token_block(token=blocked)
    station_disable(station=disabled)


def _pending(pipeline: Pipeline, station: str, token: str, *, url: str, overdue: bool = False) -> str:
    """A pending row, stored as the bridge stores a consumed message."""
    now = timezone.now()
    received = now - timedelta(seconds=30) if overdue else now
    message = ChargeRequestV1(
        request_id=uuid.uuid4(),
        client_id=pipeline.api_client.pk,
        station_id=station,
        driver_token=token,
        callback_url=url,
        received_at=received,
        deadline=received + timedelta(seconds=10),
    )
    charging_requests_store(consumed=[Consumed(message=message, partition=0, offset=0)])
    return str(message.request_id)


def _authorize(request_ids: list[str]) -> None:
    from workers import app

    app.send_task("charging.authorize", kwargs={"request_ids": request_ids})


def _decided_in_one_line(pipeline: Pipeline, request_ids: list[str]) -> bool:
    """Some worker log line reports these requests decided together, by one task."""
    for path in pipeline.log_dir.glob("worker-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if '"requests_decided"' in line:
                entry = json.loads(line)
                if (
                    set(request_ids) <= set(entry["request_ids"])
                    and entry.get("task") == "charging.authorize"
                ):
                    return True
    return False


def test_one_task_decides_a_mixed_batch_each_with_its_reason(pipeline: Pipeline) -> None:
    _acl()
    pipeline.start_worker()
    url = pipeline.receiver.url()
    expected = {
        _pending(pipeline, STATION, TOKEN, url=url): ("allowed", "granted"),
        _pending(pipeline, BARE_STATION, TOKEN, url=url): ("not_allowed", "no_grant"),
        _pending(pipeline, STATION, "NOBODY-KNOWS-THIS-TOKEN", url=url): ("not_allowed", "unknown_token"),
        _pending(pipeline, STATION, BLOCKED, url=url): ("not_allowed", "token_blocked"),
        _pending(pipeline, DISABLED_STATION, TOKEN, url=url): ("not_allowed", "station_disabled"),
        _pending(pipeline, STATION, TOKEN, url=url, overdue=True): ("unknown", "timeout"),
    }
    ids = list(expected)

    _authorize(ids)

    for request_id, (status, reason) in expected.items():
        [callback] = pipeline.receiver.wait_for(request_id)
        assert (callback.json["status"], callback.json["reason"]) == (status, reason), request_id
    rows = ChargingRequest.objects.filter(request_id__in=ids).values_list("request_id", "status", "reason")
    assert {str(request_id): (status, reason) for request_id, status, reason in rows} == expected
    assert CallbackDelivery.objects.filter(request_id__in=ids).count() == len(ids)
    wait_until(lambda: _decided_in_one_line(pipeline, ids), timeout=10, what="one log line for the batch")


def test_a_batch_run_twice_and_overlapping_batches_decide_each_request_once(pipeline: Pipeline) -> None:
    _acl()
    callbacks = pipeline.start_worker(queues="callbacks", pool="threads", concurrency=4)
    authorize = pipeline.start_worker(queues="authorize", concurrency=2)
    url = pipeline.receiver.url()
    first = [_pending(pipeline, STATION, TOKEN, url=url) for _ in range(30)]
    more = [_pending(pipeline, BARE_STATION, TOKEN, url=url) for _ in range(10)]

    # The same batch twice, and one that shares half its ids, all at once on two pool processes.
    _authorize(first)
    _authorize(first)
    _authorize(first[::2] + more)
    everyone = first + more
    for request_id in everyone:
        pipeline.receiver.wait_for(request_id)
    # Tasks sent after the others: once both pool processes and the callbacks worker ran these, the
    # duplicates (and any callback task they could have queued) have run too.
    for _ in range(2):
        worker_wait_ready(authorize, pipeline.env["REDIS_URL"])
    worker_wait_ready(callbacks, pipeline.env["REDIS_URL"], queue="callbacks")

    assert ChargingRequest.objects.filter(request_id__in=everyone, status="pending").count() == 0
    assert CallbackDelivery.objects.filter(request_id__in=everyone).count() == len(everyone)
    attempted = CallbackAttempt.objects.filter(delivery_id__in=everyone).values_list("delivery_id", flat=True)
    attempts = Counter(str(delivery_id) for delivery_id in attempted)
    assert attempts == Counter(dict.fromkeys(everyone, 1))
    arrivals = Counter(r.headers["x-charge-request-id"] for r in pipeline.receiver.received)
    assert arrivals == Counter(dict.fromkeys(everyone, 1))


def test_a_hanging_receiver_holds_only_its_own_callbacks(pipeline: Pipeline) -> None:
    _acl()
    hanging = CallbackReceiver(lambda _: Reply(200, hang_s=30)).start()
    try:
        pipeline.start_worker(queues="callbacks", pool="threads", concurrency=4)
        pipeline.start_worker(queues="authorize", concurrency=2)
        stuck = [_pending(pipeline, STATION, TOKEN, url=hanging.url()) for _ in range(5)]
        fine = [_pending(pipeline, STATION, TOKEN, url=pipeline.receiver.url()) for _ in range(20)]

        # Stuck ones first, in the same authorize task: their deliver task is queued first too.
        sent_at = time.monotonic()
        _authorize(stuck + fine)

        for request_id in fine:
            pipeline.receiver.wait_for(request_id, timeout=30)
        # Well before the hanging receiver's first 5 s timeout ends: nothing waited for it.
        fine_after_s = time.monotonic() - sent_at
        assert fine_after_s < 3.0, f"the healthy receiver's callbacks took {fine_after_s:.1f} s"

        def timed_out_and_scheduled() -> bool:
            rows = CallbackDelivery.objects.filter(request_id__in=stuck)
            return all(row.status == "retrying" and row.next_attempt_at for row in rows)

        wait_until(timed_out_and_scheduled, timeout=30, what="the hanging receiver's attempts to time out")
        for attempt in CallbackAttempt.objects.filter(delivery_id__in=stuck):
            assert attempt.error.startswith("timeout"), attempt.error
            assert attempt.http_status is None
        # And retried on the schedule (+5 s ±20 %): a second attempt reaches the hanging receiver.
        wait_until(
            lambda: CallbackAttempt.objects.filter(delivery_id__in=stuck, number=2).count() == len(stuck),
            timeout=30,
            what="the second attempts",
        )
        gaps = [
            (second.started_at - first.started_at).total_seconds()
            for first, second in (
                (
                    CallbackAttempt.objects.get(delivery_id=rid, number=1),
                    CallbackAttempt.objects.get(delivery_id=rid, number=2),
                )
                for rid in stuck
            )
        ]
        # Attempt 1 lasts the 5 s timeout, then the retry waits 4-6 s.
        assert all(8.5 <= gap <= 13 for gap in gaps), gaps
    finally:
        hanging.stop()


def test_an_old_single_id_task_still_decides_its_request(pipeline: Pipeline) -> None:
    """Tasks queued before an upgrade carry one request_id: they run for one release."""
    from workers import app

    _acl()
    pipeline.start_worker()
    request_id = _pending(pipeline, STATION, TOKEN, url=pipeline.receiver.url())

    app.send_task("charging.authorize", kwargs={"request_id": request_id})

    [callback] = pipeline.receiver.wait_for(request_id)
    assert (callback.json["status"], callback.json["reason"]) == ("allowed", "granted")
