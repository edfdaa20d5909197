"""The bridge's own threads make the first attempt of the callbacks it decided
(apps/callbacks/first_attempts.py): no deliver task for a batch that gets a thread, a task for one
that finds none or fails, and rows born claimed, left for the dispatch sweep once their lease has
passed should the process die first.

Real PostgreSQL (committed: the attempts run in other threads) and real HTTP receivers on loopback;
only the broker is replaced (the `sent` fixture records the deliver tasks queued).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.access.services import acl_insert
from apps.callbacks import first_attempts as module
from apps.callbacks.first_attempts import FirstAttempts
from apps.callbacks.models import CallbackAttempt, CallbackDelivery
from apps.callbacks.services import ClaimedDelivery, deliveries_attempt, deliveries_dispatch_due
from apps.charging.messages import ChargeRequestV1
from apps.charging.services import Consumed, charging_requests_store_decided
from harness.processes import wait_until
from tests.app.callers import STATION, TOKEN, SentTasks
from tests.receiver import CallbackReceiver, Received, Reply

pytestmark = pytest.mark.usefixtures("transactional_db")


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    started = CallbackReceiver().start()
    yield started
    started.stop()


@pytest.fixture
def attempts() -> Iterator[FirstAttempts]:
    made = FirstAttempts(threads=2, by="test")
    yield made
    made.close()


def _consumed(url: str) -> Consumed:
    received = timezone.now()
    message = ChargeRequestV1(
        request_id=uuid.uuid4(),
        client_id=None,
        station_id=STATION,
        driver_token=TOKEN,
        callback_url=url,
        received_at=received,
        deadline=received + timedelta(seconds=10),
    )
    return Consumed(message=message, partition=0, offset=0)


def _ids(batch: list[Consumed]) -> list[str]:
    return sorted(str(item.message.request_id) for item in batch)


def test_a_decided_batch_gets_its_first_attempt_here_without_a_task(
    receiver: CallbackReceiver, attempts: FirstAttempts, sent: SentTasks
) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)
    batch = [_consumed(receiver.url(f"/cb/{n}")) for n in range(3)]

    charging_requests_store_decided(consumed=batch, first_attempts=attempts)
    attempts.close()  # waits for the attempts under way

    assert sorted(r.headers["x-charge-request-id"] for r in receiver.received) == _ids(batch)
    assert sent.request_ids == []  # no deliver task
    deliveries = CallbackDelivery.objects.filter(request_id__in=_ids(batch))
    assert sorted(d.status for d in deliveries) == ["delivered"] * 3
    assert [d.attempts for d in deliveries] == [1, 1, 1]
    assert sorted((str(a.delivery_id), a.number, a.http_status) for a in CallbackAttempt.objects.all()) == [
        (rid, 1, 200) for rid in _ids(batch)
    ]


def test_rows_whose_process_died_before_the_attempt_are_the_sweeps_once_their_lease_has_passed(
    receiver: CallbackReceiver, sent: SentTasks, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.CHARGE_CALLBACK_CLAIM_LEASE_S = 1.0
    # A process that dies between the commit and the attempt: nothing ever reaches its threads.
    dead = FirstAttempts(threads=1, by="test")
    monkeypatch.setattr(dead, "submit", lambda claimed: None)
    batch = [_consumed(receiver.url()) for _ in range(2)]

    charging_requests_store_decided(consumed=batch, first_attempts=dead)

    # Born claimed: no worker takes them while the process that claimed them may still be at it...
    assert list(CallbackDelivery.objects.values_list("dispatched_at", flat=True)) == [None, None]
    assert deliveries_dispatch_due() == 0
    assert deliveries_attempt(request_ids=_ids(batch)) == {}
    # ...and once the lease has passed, the next sweep sends them.
    wait_until(lambda: deliveries_dispatch_due() == 2, timeout=10, what="the sweep to find the lease passed")
    assert sorted(sent.request_ids) == _ids(batch)
    assert receiver.received == []
    dead.close()


def test_a_receiver_that_hangs_holds_all_threads_but_one(
    attempts: FirstAttempts, sent: SentTasks, settings: Any
) -> None:
    settings.CHARGE_CALLBACK_BATCH = 1
    release = threading.Event()

    def hang(received: Received) -> Reply:
        release.wait(30)
        return Reply()

    hanging, fine = CallbackReceiver(hang).start(), CallbackReceiver().start()
    try:
        slow_batch = [_consumed(hanging.url(f"/cb/{n}")) for n in range(3)]
        charging_requests_store_decided(consumed=slow_batch, first_attempts=attempts)
        # One thread of two took the first; the other two went to deliver tasks at once.
        assert len(sent.request_ids) == 2
        assert attempts.running() == 1

        fine_batch = [_consumed(fine.url())]
        charging_requests_store_decided(consumed=fine_batch, first_attempts=attempts)
        # The other receiver's callback arrives while the hanging one is still held.
        [arrived] = fine.wait_for(_ids(fine_batch)[0], timeout=10)
        assert arrived.headers["x-charge-request-id"] == _ids(fine_batch)[0]
        assert not release.is_set()
        assert len(sent.request_ids) == 2
    finally:
        release.set()
        attempts.close()
        hanging.stop()
        fine.stop()
    assert CallbackDelivery.objects.filter(status="delivered").count() == 2


def test_an_attempt_that_fails_here_goes_to_a_deliver_task(
    receiver: CallbackReceiver, attempts: FirstAttempts, sent: SentTasks, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**kwargs: Any) -> dict[str, int]:
        raise RuntimeError("the attempt broke here")

    monkeypatch.setattr(module, "deliveries_attempt_claimed", broken)
    batch = [_consumed(receiver.url()) for _ in range(2)]

    charging_requests_store_decided(consumed=batch, first_attempts=attempts)
    attempts.close()

    assert sorted(sent.request_ids) == _ids(batch)
    # Due now (no longer claimed) and marked queued once their task was published: the worker takes
    # them at once and the sweep leaves them to it.
    assert None not in set(CallbackDelivery.objects.values_list("dispatched_at", flat=True))
    assert CallbackDelivery.objects.filter(next_attempt_at__lte=timezone.now()).count() == 2


def test_a_batch_larger_than_a_task_is_cut_per_receiver(
    attempts: FirstAttempts, sent: SentTasks, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CHARGE_CALLBACK_BATCH = 2
    release = threading.Event()
    made: list[list[str]] = []

    def attempt(*, claimed: list[ClaimedDelivery]) -> dict[str, int]:
        release.wait(30)  # still under way while the rest of the batch is handed out
        made.append([str(item.request_id) for item in claimed])
        return {}

    monkeypatch.setattr(module, "deliveries_attempt_claimed", attempt)
    due = [ClaimedDelivery(uuid.uuid4(), None, "http://127.0.0.1:9/cb", "{}", 1) for _ in range(5)]

    attempts.submit(due)  # three chunks for one receiver; two threads leave it room for one
    release.set()
    attempts.close()

    assert made == [[str(item.request_id) for item in due[:2]]]
    assert sorted(sent.request_ids) == sorted(str(item.request_id) for item in due[2:])
