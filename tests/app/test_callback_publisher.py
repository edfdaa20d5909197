"""Synchronous decisions publish their deliver tasks a batch at a time (apps/callbacks/publisher.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.access.services import acl_insert
from apps.callbacks import publisher
from apps.callbacks.models import CallbackDelivery
from apps.callbacks.publisher import delivery_publisher
from apps.callbacks.services import DueDelivery
from tests.app.callers import CALLBACK, STATION, TOKEN, Caller, SentTasks

CHECK = "/api/checkauthority/"


def wait_for(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("not within the time")
        time.sleep(0.01)


@pytest.fixture
def linger(settings: Any) -> float:
    # Long enough that a loaded machine answers three requests within it.
    settings.CHARGE_CALLBACK_PUBLISH_LINGER_MS = 1000
    publisher._publisher.take()  # the next one has this linger
    return 1.0


def test_sync_decisions_within_the_linger_share_one_deliver_task(
    client: Client, caller: Caller, sent: SentTasks, linger: float, django_capture_on_commit_callbacks: Any
) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)
    body = {"station_id": STATION, "driver_token": TOKEN, "callback_url": CALLBACK}

    with django_capture_on_commit_callbacks(execute=True):
        answers = [caller.post_json(client, CHECK, body) for _ in range(3)]
    assert sent.request_ids == []  # answered before their tasks are published
    wait_for(lambda: len(sent.request_ids) == 3)

    assert [answer.json()["status"] for answer in answers] == ["allowed"] * 3
    assert len(sent.countdowns) == 1  # one task for the three
    assert set(sent.request_ids) == {str(d.request_id) for d in CallbackDelivery.objects.all()}
    assert delivery_publisher().pending() == 0


@pytest.mark.usefixtures("transactional_db", "linger")
def test_a_refused_publish_unmarks_the_rows_for_the_sweep(
    client: Client, caller: Caller, sent: SentTasks
) -> None:
    sent.refuse = True
    body = {"station_id": STATION, "driver_token": TOKEN, "callback_url": CALLBACK}

    caller.post_json(client, CHECK, body)
    delivery = CallbackDelivery.objects.get()
    assert delivery.dispatched_at is not None  # marked queued by the INSERT
    wait_for(lambda: CallbackDelivery.objects.get().dispatched_at is None)


def test_what_a_process_holds_is_published_on_flush(sent: SentTasks, linger: float) -> None:

    due = [DueDelivery(request_id=uuid.uuid4(), url=CALLBACK, due_at=timezone.now()) for _ in range(2)]
    delivery_publisher().submit(due)

    assert delivery_publisher().flush() == 2
    assert sent.request_ids == [str(item.request_id) for item in due]


@pytest.fixture
def long_linger(settings: Any) -> Iterator[float]:
    # Far beyond wait_for's 5 s: a batch that left can only have left because it was full.
    settings.CHARGE_CALLBACK_PUBLISH_LINGER_MS = 60_000
    publisher._publisher.take()
    yield 60.0
    publisher._publisher.take()  # later tests get a publisher of their own linger


def test_a_full_batch_leaves_before_the_linger(sent: SentTasks, settings: Any, long_linger: float) -> None:
    settings.CHARGE_CALLBACK_BATCH = 2
    due = [DueDelivery(request_id=uuid.uuid4(), url=CALLBACK, due_at=timezone.now()) for _ in range(2)]
    started = time.monotonic()

    delivery_publisher().submit(due)
    wait_for(lambda: len(sent.request_ids) == 2)

    assert time.monotonic() - started < long_linger
