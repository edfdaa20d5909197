"""callbacks.dispatch_due queues a task only for due deliveries that have none waiting.

A backlog in the callbacks queue must not be multiplied: a sweep every few seconds that re-sent
every due delivery put tens of thousands of duplicate tasks in the queue in `make bench`, and the
callbacks stopped arriving. The broker here is replaced by a list of sent request ids (the app layer
runs no Celery); the database is the real one.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.callbacks import services
from apps.callbacks.models import CallbackDelivery
from apps.charging.models import ChargingRequest
from apps.charging.services import decided_request_of as decided_of
from tests.app.callers import LogRow, SentTasks


@pytest.fixture
def delivery(log_row: LogRow) -> Any:
    def make(*, due_in_s: float, dispatched_s_ago: float | None, status: str = "pending") -> str:
        request = log_row(client=None)
        request.save()
        now = timezone.now()
        CallbackDelivery.objects.create(
            request=request,
            url=request.callback_url,
            body="{}",
            status=status,
            next_attempt_at=now + timedelta(seconds=due_in_s),
            dispatched_at=None if dispatched_s_ago is None else now - timedelta(seconds=dispatched_s_ago),
        )
        return str(request.request_id)

    return make


def test_only_due_deliveries_without_a_waiting_task_are_sent(sent: SentTasks, delivery: Any) -> None:
    queued = delivery(due_in_s=-5, dispatched_s_ago=5)  # its task waits in the queue
    never_queued = delivery(due_in_s=-5, dispatched_s_ago=None, status="retrying")  # a later retry
    lost = delivery(due_in_s=-600, dispatched_s_ago=400)  # queued longer than the visibility timeout
    not_due = delivery(due_in_s=60, dispatched_s_ago=None)

    assert services.deliveries_dispatch_due() == 2
    assert sorted(sent.request_ids) == sorted([never_queued, lost])

    # Marked as queued: the next sweep, a second later, sends nothing again.
    assert services.deliveries_dispatch_due() == 0
    assert len(sent.request_ids) == 2
    assert CallbackDelivery.objects.get(request_id=not_due).dispatched_at is None
    assert CallbackDelivery.objects.get(request_id=queued).dispatched_at is not None


def test_a_claimed_delivery_whose_worker_died_is_sent_again_after_its_lease(
    sent: SentTasks, delivery: Any, settings: Any
) -> None:
    request_id = delivery(due_in_s=-1, dispatched_s_ago=1)
    # A worker takes it: the claim clears the mark and pushes next_attempt_at by the lease.
    assert services._claim([uuid.UUID(request_id)], timezone.now())
    row = CallbackDelivery.objects.get(request_id=request_id)
    assert row.dispatched_at is None
    assert services.deliveries_dispatch_due() == 0  # within the lease: the worker may still finish

    # The worker died; once the lease has passed the sweep sends it again.
    CallbackDelivery.objects.filter(request_id=request_id).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    assert services.deliveries_dispatch_due() == 1
    assert sent.request_ids == [request_id]


def test_a_task_the_broker_refused_is_sent_by_the_next_sweep(
    sent: SentTasks, log_row: LogRow, django_capture_on_commit_callbacks: Any
) -> None:
    request = log_row(client=None, status=ChargingRequest.DecisionStatus.ALLOWED)
    request.save()
    sent.refuse = True
    # The decision is committed: a broker that is away is logged, never raised to the caller.
    with django_capture_on_commit_callbacks(execute=True):
        services.deliveries_create(decided=[decided_of(request)])
    # The decision and its delivery stay, not marked as having a queued task: the sweep sends it.
    assert CallbackDelivery.objects.get(request_id=request.request_id).dispatched_at is None

    sent.refuse = False
    assert services.deliveries_dispatch_due() == 1
    assert sent.request_ids == [str(request.request_id)]


def test_a_new_delivery_is_marked_once_its_task_is_sent(
    sent: SentTasks, log_row: LogRow, django_capture_on_commit_callbacks: Any
) -> None:
    request = log_row(client=None, status=ChargingRequest.DecisionStatus.ALLOWED)
    request.save()
    with django_capture_on_commit_callbacks(execute=True):
        services.deliveries_create(decided=[decided_of(request)])
    assert sent.request_ids == [str(request.request_id)]
    assert CallbackDelivery.objects.get(request_id=request.request_id).dispatched_at is not None
    assert services.deliveries_dispatch_due() == 0


def test_with_the_queue_empty_a_task_not_taken_for_long_is_sent_again(
    sent: SentTasks, delivery: Any, settings: Any
) -> None:
    """A callbacks worker that exits on a Redis restart can take its unacknowledged tasks with it.

    kombu gives them back only after the visibility timeout (minutes). With the queue empty, a task
    queued for longer than CHARGE_CALLBACK_REDISPATCH_IDLE_S and not taken waits nowhere else.
    """
    settings.CHARGE_CALLBACK_REDISPATCH_IDLE_S = 30
    held_by_a_dead_worker = delivery(due_in_s=-60, dispatched_s_ago=60)
    just_queued = delivery(due_in_s=-5, dispatched_s_ago=5)

    # With tasks waiting in the queue, either may still be among them.
    assert services.deliveries_dispatch_due(queue_empty=False) == 0
    # With the queue empty, only the one queued long ago is sent again, and only once.
    assert services.deliveries_dispatch_due(queue_empty=True) == 1
    assert services.deliveries_dispatch_due(queue_empty=True) == 0
    assert sent.request_ids == [held_by_a_dead_worker]
    assert CallbackDelivery.objects.get(request_id=just_queued).dispatched_at is not None
