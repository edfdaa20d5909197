"""Callback deliveries: created with the decision, attempted by the worker, retried on a schedule."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta
from enum import StrEnum

import structlog
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.access.policy import Status, decision_message
from apps.callbacks.http import callback_post
from apps.callbacks.models import CallbackAttempt, CallbackDelivery
from apps.callbacks.schedule import next_attempt_at
from apps.callbacks.signing import signature_header
from apps.callbacks.urlguard import CallbackRefused, callback_target_check
from apps.charging.models import ChargingRequest
from apps.monitoring.metrics import callback_attempt_observe

logger = structlog.get_logger(__name__)

DELIVER_TASK = "callbacks.deliver"
# Retries due within this many seconds are queued at once with a countdown (prompt, and well under
# the broker's visibility timeout); later ones wait in the database for callbacks.dispatch_due.
COUNTDOWN_MAX_S = 30


class AttemptOutcome(StrEnum):
    DELIVERED = "delivered"
    STOPPED = "stopped"
    RETRYING = "retrying"
    FAILED = "failed"


def callback_body(*, request: ChargingRequest) -> str:
    """The payload, built once per decision; its exact bytes are signed and sent on every attempt."""
    payload = {
        "request_id": str(request.request_id),
        "station_id": request.station_id,
        "driver_token": request.driver_token,
        "status": request.status,
        "reason": request.reason,
        "message": decision_message(Status(request.status), request.reason),
        "requested_at": request.requested_at.isoformat(),
        "decided_at": request.decided_at.isoformat() if request.decided_at else None,
    }
    return json.dumps(payload, separators=(",", ":"))


def _deliver_task_send(*, request_id: str, due_at: datetime, countdown: float | None = None) -> None:
    """Queue one attempt, then mark the delivery as having a task waiting (`dispatched_at`).

    Marked only once the broker has the task: a process that dies in between leaves the delivery
    unmarked, and the dispatch sweep sends it again (a duplicate at worst, which the claim makes
    harmless), never a delivery that waits for a task nobody sent. The mark is conditional on
    next_attempt_at still being `due_at`: a worker that has already claimed it moved that on.
    """
    current_app.send_task(DELIVER_TASK, kwargs={"request_id": request_id}, countdown=countdown)
    CallbackDelivery.objects.filter(request_id=uuid.UUID(request_id), next_attempt_at=due_at).update(
        dispatched_at=timezone.now()
    )


def delivery_enqueue(*, request_id: str, due_at: datetime) -> None:
    """Queue one attempt once the surrounding transaction has committed."""
    transaction.on_commit(lambda: _deliver_task_send(request_id=request_id, due_at=due_at))


def delivery_create(*, request: ChargingRequest) -> CallbackDelivery | None:
    """The one delivery of a decision (call inside the transaction that records the decision)."""
    if not request.callback_url:
        return None
    now = timezone.now()
    delivery = CallbackDelivery.objects.create(
        request=request,
        client_id=request.client_id,
        url=request.callback_url,
        body=callback_body(request=request),
        next_attempt_at=now,
    )
    delivery_enqueue(request_id=str(request.request_id), due_at=now)
    return delivery


def _claim(request_id: uuid.UUID) -> CallbackDelivery | None:
    """Take the delivery for one attempt; None if it is closed, or not due (another worker has it)."""
    now = timezone.now()
    claimed = CallbackDelivery.objects.filter(
        request_id=request_id,
        status__in=[CallbackDelivery.Status.PENDING, CallbackDelivery.Status.RETRYING],
        next_attempt_at__lte=now,
    ).update(
        next_attempt_at=now + timedelta(seconds=settings.CHARGE_CALLBACK_CLAIM_LEASE_S),
        # Taken: no task waits in the queue any more. Should this worker die, the sweep sends a new
        # one once the lease has passed.
        dispatched_at=None,
    )
    if not claimed:
        return None
    return CallbackDelivery.objects.select_related("client").get(request_id=request_id)


def _secrets(delivery: CallbackDelivery) -> list[str]:
    if delivery.client is None:
        return [settings.CHARGE_DEFAULT_CALLBACK_SECRET] if settings.CHARGE_DEFAULT_CALLBACK_SECRET else []
    return delivery.client.signing_secrets(at=timezone.now())


def delivery_attempt(*, request_id: str) -> AttemptOutcome | None:
    """Make one attempt of the delivery if it is due; record it and schedule the next one."""
    delivery = _claim(uuid.UUID(request_id))
    if delivery is None:
        return None
    number = delivery.attempts + 1
    body = delivery.body.encode()
    started_at = timezone.now()
    headers = {
        "X-Charge-Request-Id": request_id,
        "X-Charge-Attempt": str(number),
        "X-Charge-Signature": signature_header(
            secrets=_secrets(delivery), timestamp=int(time.time()), body=body
        ),
        "User-Agent": "charge-service-callbacks/1",
    }
    allowed_hosts = delivery.client.allowed_callback_hosts if delivery.client else []
    try:
        target = callback_target_check(
            delivery.url, allow_private=settings.CHARGE_CALLBACK_ALLOW_PRIVATE, allowed_hosts=allowed_hosts
        )
    except CallbackRefused as exc:
        http_status, error, excerpt, duration_ms = None, f"refused: {exc}", "", 0
    else:
        result = callback_post(url=delivery.url, target=target, body=body, headers=headers)
        http_status, error, excerpt, duration_ms = (
            result.http_status,
            result.error,
            result.response_excerpt,
            result.duration_ms,
        )

    now = timezone.now()
    if http_status is not None and 200 <= http_status < 300:
        outcome, next_at = AttemptOutcome.DELIVERED, None
    elif http_status == 410:
        outcome, next_at = AttemptOutcome.STOPPED, None
    else:
        next_at = next_attempt_at(attempts_made=number, now=now)
        outcome = AttemptOutcome.RETRYING if next_at else AttemptOutcome.FAILED
        if not error:
            error = f"HTTP {http_status}"

    with transaction.atomic():
        CallbackAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=started_at,
            duration_ms=duration_ms,
            http_status=http_status,
            error=error[:500],
            response_excerpt=excerpt[:500],
        )
        CallbackDelivery.objects.filter(pk=delivery.pk).update(
            status=outcome.value,
            attempts=number,
            last_http_status=http_status,
            last_error=error[:500],
            next_attempt_at=next_at,
            delivered_at=now if outcome == AttemptOutcome.DELIVERED else None,
            dispatched_at=None,
            updated_at=now,
        )
    if next_at is not None and (delay_s := (next_at - now).total_seconds()) <= COUNTDOWN_MAX_S:
        # A little late rather than early: an attempt that arrives before next_attempt_at is not due.
        _deliver_task_send(request_id=request_id, due_at=next_at, countdown=delay_s + 0.5)
    logger.info(
        "callback_attempt",
        request_id=request_id,
        attempt=number,
        http_status=http_status,
        outcome=outcome.value,
        error=error or None,
        duration_ms=duration_ms,
    )
    callback_attempt_observe(outcome=outcome.value, duration_ms=duration_ms)
    return outcome


def deliveries_dispatch_due(*, limit: int = 1000, queue_empty: bool = False) -> int:
    """Queue an attempt for every open delivery that is due and has no task waiting (beat).

    Due and without a task: retries scheduled beyond the countdown window, attempts whose worker
    died (due again once the claim's lease has passed), and tasks queued so long ago that Redis must
    have lost them. A delivery whose task still waits in a long queue is left alone: sending it again
    would only lengthen the queue with tasks that find nothing to do. When the caller saw the queue
    empty (`queue_empty`), a task queued CHARGE_CALLBACK_REDISPATCH_IDLE_S ago and not taken is
    waiting nowhere but in a worker that exited with it, and is sent again much sooner.
    """
    now = timezone.now()
    presumed_lost_after = (
        settings.CHARGE_CALLBACK_REDISPATCH_IDLE_S if queue_empty else settings.CHARGE_CALLBACK_REDISPATCH_S
    )
    lost_before = now - timedelta(seconds=presumed_lost_after)
    due = list(
        CallbackDelivery.objects.filter(
            Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=lost_before),
            status__in=[CallbackDelivery.Status.PENDING, CallbackDelivery.Status.RETRYING],
            next_attempt_at__lte=now,
        )
        .order_by("next_attempt_at")
        .values_list("request_id", "next_attempt_at")[:limit]
    )
    for request_id, due_at in due:
        if due_at is not None:  # (always: the filter above asks next_attempt_at <= now)
            _deliver_task_send(request_id=str(request_id), due_at=due_at)
    return len(due)


def delivery_redeliver(*, delivery: CallbackDelivery) -> None:
    """Operator's replay: one more attempt now, whatever the delivery's state."""
    with transaction.atomic():
        now = timezone.now()
        CallbackDelivery.objects.filter(pk=delivery.pk).update(
            status=CallbackDelivery.Status.RETRYING, next_attempt_at=now, dispatched_at=None
        )
        delivery_enqueue(request_id=str(delivery.pk), due_at=now)
