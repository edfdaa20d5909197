"""Writes of the decision log: accept, store from Kafka, decide, expire."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.access.policy import Decision, Reason, Status
from apps.access.services import authorization_decide
from apps.callbacks.services import delivery_create
from apps.charging.idempotency import (
    body_fingerprint,
    idempotency_complete,
    idempotency_release,
    idempotency_reserve,
)
from apps.charging.messages import ChargeRequestV1, MalformedMessage
from apps.charging.models import ChargingRequest
from apps.charging.producer import request_produce
from apps.clients.models import ApiClient
from apps.monitoring.metrics import decision_observe

logger = structlog.get_logger(__name__)

AUTHORIZE_TASK = "charging.authorize"


def charging_request_accept(
    *,
    client: ApiClient,
    station_id: str,
    driver_token: str,
    callback_url: str,
    source: str,
    request_id: uuid.UUID | None = None,
) -> ChargeRequestV1:
    """Produce a validated request to Kafka and return it once the broker acknowledged it.

    Raises ProduceFailed when the broker did not acknowledge in time: nothing was accepted then.
    """
    now = timezone.now()
    message = ChargeRequestV1(
        request_id=request_id or uuid.uuid4(),
        client_id=client.pk,
        station_id=station_id,
        driver_token=driver_token,
        callback_url=callback_url,
        received_at=now,
        deadline=now + timedelta(seconds=settings.CHARGE_DECISION_TIMEOUT_S),
        source=source,
    )
    # Every later log line of this HTTP request carries it (the middleware clears it afterwards).
    structlog.contextvars.bind_contextvars(request_id=str(message.request_id))
    request_produce(message=message)
    logger.info("request_accepted", request_id=str(message.request_id), station_id=station_id)
    return message


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with another body."""


class IdempotencyInFlight(Exception):
    """A request with this Idempotency-Key is being accepted right now."""


@dataclass(frozen=True)
class Acceptance:
    request_id: uuid.UUID
    replayed: bool


def charging_request_accept_once(
    *,
    client: ApiClient,
    idempotency_key: str,
    station_id: str,
    driver_token: str,
    callback_url: str,
    source: str,
) -> Acceptance:
    """charging_request_accept under an Idempotency-Key: a repeat returns the first request_id.

    Raises IdempotencyConflict (same key, other body), IdempotencyInFlight, ProduceFailed, and
    redis.RedisError when the keys cannot be checked (then nothing is accepted).
    """
    fields = {"station_id": station_id, "driver_token": driver_token, "callback_url": callback_url}
    fingerprint = body_fingerprint(fields)
    request_id = uuid.uuid4()
    prior = idempotency_reserve(
        client_id=client.pk, key=idempotency_key, fingerprint=fingerprint, request_id=request_id
    )
    if prior is not None:
        if prior.fingerprint != fingerprint:
            raise IdempotencyConflict
        if prior.state == "pending":
            raise IdempotencyInFlight
        return Acceptance(request_id=prior.request_id, replayed=True)
    try:
        charging_request_accept(
            client=client,
            request_id=request_id,
            station_id=station_id,
            driver_token=driver_token,
            callback_url=callback_url,
            source=source,
        )
    except BaseException:
        idempotency_release(client_id=client.pk, key=idempotency_key)
        raise
    idempotency_complete(
        client_id=client.pk, key=idempotency_key, fingerprint=fingerprint, request_id=request_id
    )
    return Acceptance(request_id=request_id, replayed=False)


@dataclass(frozen=True)
class Consumed:
    """A v1 message as the bridge read it, with where it sits in the topic."""

    message: ChargeRequestV1
    partition: int
    offset: int


def charging_requests_store(*, consumed: Sequence[Consumed]) -> None:
    """Insert pending rows for a batch; rows already stored (a redelivered batch) are left alone."""
    known_clients = set(
        ApiClient.objects.filter(
            pk__in={c.message.client_id for c in consumed if c.message.client_id}
        ).values_list("pk", flat=True)
    )
    rows = [
        ChargingRequest(
            request_id=c.message.request_id,
            client_id=c.message.client_id if c.message.client_id in known_clients else None,
            station_id=c.message.station_id,
            driver_token=c.message.driver_token,
            callback_url=c.message.callback_url,
            source=c.message.source,
            requested_at=c.message.received_at,
            deadline=c.message.deadline,
            kafka_partition=c.partition,
            kafka_offset=c.offset,
        )
        for c in consumed
    ]
    ChargingRequest.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)


def charging_request_store_invalid(*, error: MalformedMessage, partition: int, offset: int) -> bool:
    """Log a malformed message that carries a request_id as decided `invalid`; False if it carries none."""
    salvage: dict[str, Any] = error.salvage
    if "request_id" not in salvage:
        return False
    now = timezone.now()
    client_id = salvage.get("client_id")
    if client_id is not None and not ApiClient.objects.filter(pk=client_id).exists():
        client_id = None
    with transaction.atomic():
        request, created = ChargingRequest.objects.get_or_create(
            request_id=salvage["request_id"],
            defaults={
                "client_id": client_id,
                "station_id": salvage.get("station_id", ""),
                "driver_token": salvage.get("driver_token", ""),
                "callback_url": salvage.get("callback_url", ""),
                "source": ChargingRequest.Source.TOPIC,
                "status": Status.INVALID,
                "reason": error.reason,
                "requested_at": now,
                "decided_at": now,
                "deadline": now,
                "kafka_partition": partition,
                "kafka_offset": offset,
            },
        )
        if created:
            delivery_create(request=request)
    if created:
        decision_observe(
            status=request.status,
            reason=request.reason,
            source=request.source,
            requested_at=now,
            decided_at=now,
        )
    return True


def decision_record(*, request: ChargingRequest, decision: Decision, at: datetime) -> bool:
    """Record the decision of a pending request and create its callback delivery, exactly once.

    `request` is the row as read while pending. The update is conditional on it still being
    pending, so a redelivered task, or the sweep racing a worker, changes nothing: False tells the
    caller another decision was there first.
    """
    with transaction.atomic():
        updated = ChargingRequest.objects.filter(request_id=request.request_id, status=Status.PENDING).update(
            status=decision.status.value, reason=decision.reason.value, decided_at=at
        )
        if not updated:
            return False
        # The row is ours now: the values just written are its values (no second read).
        request.status, request.reason, request.decided_at = (
            decision.status.value,
            decision.reason.value,
            at,
        )
        delivery_create(request=request)
    logger.info(
        "request_decided",
        request_id=str(request.request_id),
        status=decision.status.value,
        reason=decision.reason.value,
    )
    decision_observe(
        status=decision.status.value,
        reason=decision.reason.value,
        source=request.source,
        requested_at=request.requested_at,
        decided_at=at,
    )
    return True


def charging_request_decide(*, request_id: str, backend_failed: bool = False) -> bool:
    """The authorize task's work: decide a pending request against the ACL (or as overdue)."""
    request = ChargingRequest.objects.filter(request_id=request_id, status=Status.PENDING).first()
    if request is None:
        return False  # already decided, or not stored (yet): nothing to do
    at = timezone.now()
    if at > request.deadline:
        reason = Reason.BACKEND_UNAVAILABLE if backend_failed else Reason.TIMEOUT
        decision = Decision(Status.UNKNOWN, reason)
    else:
        decision = authorization_decide(
            station_id=request.station_id, driver_token=request.driver_token, at=at
        )
    return decision_record(request=request, decision=decision, at=at)


def charging_requests_expire_overdue(*, grace: timedelta, limit: int = 1000) -> int:
    """Decide `unknown/timeout` for pending requests past their deadline (beat: charging.expire_overdue)."""
    cutoff = timezone.now() - grace
    overdue = list(
        ChargingRequest.objects.filter(status=Status.PENDING, deadline__lt=cutoff).order_by("deadline")[
            :limit
        ]
    )
    expired = 0
    for request in overdue:
        if decision_record(
            request=request, decision=Decision(Status.UNKNOWN, Reason.TIMEOUT), at=timezone.now()
        ):
            expired += 1
    return expired


def charging_requests_requeue_stale(*, older_than: timedelta, limit: int = 1000) -> int:
    """Send the authorize task again for requests pending longer than `older_than` but not yet overdue.

    A worker killed with -9 takes the tasks it had reserved with it until the broker's visibility
    timeout brings them back, long after their deadline. Sending them again (the task is idempotent)
    lets a live worker decide them in time instead of the overdue sweep answering `unknown`.
    """
    now = timezone.now()
    stale = list(
        ChargingRequest.objects.filter(
            status=Status.PENDING, deadline__gte=now, requested_at__lt=now - older_than
        )
        .order_by("deadline")
        .values_list("request_id", flat=True)[:limit]
    )
    for request_id in stale:
        current_app.send_task(AUTHORIZE_TASK, kwargs={"request_id": str(request_id)})
    if stale:
        logger.warning("stale_requests_requeued", count=len(stale))
    return len(stale)


def charging_request_decide_sync(
    *,
    client: ApiClient | None,
    station_id: str,
    driver_token: str,
    callback_url: str,
    source: str,
    requested_at: datetime | None = None,
) -> tuple[ChargingRequest, Decision]:
    """Decide at once (/authorize, checkauthority), log the decision, and deliver a callback if asked."""
    now = timezone.now()
    requested_at = requested_at or now
    deadline = requested_at + timedelta(seconds=settings.CHARGE_DECISION_TIMEOUT_S)
    if now > deadline:
        decision = Decision(Status.UNKNOWN, Reason.TIMEOUT)
    else:
        decision = authorization_decide(station_id=station_id, driver_token=driver_token, at=now)
    # With a callback, the decision and its delivery commit together. Without one the decision is a
    # single INSERT, durable on its own in autocommit, without a BEGIN and a COMMIT round trip each.
    with transaction.atomic() if callback_url else contextlib.nullcontext():
        request = ChargingRequest.objects.create(
            request_id=uuid.uuid4(),
            client=client,
            station_id=station_id,
            driver_token=driver_token,
            callback_url=callback_url,
            source=source,
            status=decision.status.value,
            reason=decision.reason.value,
            requested_at=requested_at,
            decided_at=now,
            deadline=deadline,
        )
        structlog.contextvars.bind_contextvars(request_id=str(request.request_id))
        delivery_create(request=request)
    decision_observe(
        status=decision.status.value,
        reason=decision.reason.value,
        source=source,
        requested_at=requested_at,
        decided_at=now,
    )
    return request, decision
