"""Writes of the decision log: accept, store from Kafka, decide, expire."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from celery import current_app
from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from apps.access.policy import Decision, Reason, Status
from apps.access.services import authorization_decide, authorizations_decide, authorizations_decide_grouped
from apps.callbacks.first_attempts import FirstAttempts
from apps.callbacks.publisher import deliveries_publish_soon
from apps.callbacks.services import (
    DecidedRequest,
    deliveries_create,
    deliveries_hand_on_commit,
    deliveries_queue_on_commit,
    delivery_rows,
)
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
from apps.core.sql import insert_sql, insert_values_sql
from apps.core.tasks import AUTHORIZE_TASK
from apps.monitoring.metrics import decision_observe, decisions_observe

logger = structlog.get_logger(__name__)


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


# Errors that say the database refuses a message's values (PostgreSQL's DataError for a value it
# cannot hold, a driver's UnicodeEncodeError for a lone surrogate), as opposed to a database that is
# away (OperationalError, InterfaceError) or a fault of ours (ProgrammingError): only these make a
# message unstorable. The others are retried, with the batch, until they pass.
UNSTORABLE_ERRORS: tuple[type[Exception], ...] = (DataError, IntegrityError, ValueError)


@dataclass(frozen=True)
class Consumed:
    """A v1 message as the bridge read it, with where it sits in the topic."""

    message: ChargeRequestV1
    partition: int
    offset: int


def _rows_of(consumed: Sequence[Consumed], *, clients_checked: bool = True) -> list[ChargingRequest]:
    """Pending rows of a batch; a client_id the database does not know (deleted meanwhile) is
    dropped, after one read of the batch's clients (`clients_checked`, else taken as sent)."""
    sent = {c.message.client_id for c in consumed if c.message.client_id}
    known = (
        set(ApiClient.objects.filter(pk__in=sent).values_list("pk", flat=True)) if clients_checked else sent
    )
    return [
        ChargingRequest(
            request_id=c.message.request_id,
            client_id=c.message.client_id if c.message.client_id in known else None,
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


def charging_requests_store(*, consumed: Sequence[Consumed]) -> None:
    """Insert pending rows for a batch; rows already stored (a redelivered batch) are left alone."""
    ChargingRequest.objects.bulk_create(_rows_of(consumed), ignore_conflicts=True, batch_size=500)


class _Decidable(Protocol):
    """A pending row (a values row) or a row about to be stored: what deciding it reads."""

    @property
    def request_id(self) -> uuid.UUID: ...
    @property
    def station_id(self) -> str: ...
    @property
    def driver_token(self) -> str: ...
    @property
    def deadline(self) -> datetime: ...


def _decisions_of(
    rows: Sequence[_Decidable], *, at: datetime, backend_failed: bool = False
) -> dict[uuid.UUID, Decision]:
    """One ACL read for the rows still in time, decide() per row; past its deadline a row is unknown
    (timeout, or backend_unavailable when the database was away meanwhile)."""
    overdue = Decision(Status.UNKNOWN, Reason.BACKEND_UNAVAILABLE if backend_failed else Reason.TIMEOUT)
    in_time = [row for row in rows if at <= row.deadline]
    verdicts = authorizations_decide(pairs=[(row.station_id, row.driver_token) for row in in_time], at=at)
    return {
        row.request_id: verdicts[(row.station_id, row.driver_token)] if at <= row.deadline else overdue
        for row in rows
    }


def _request_ids(fetched: Sequence[Sequence[Any]]) -> set[uuid.UUID]:
    """The request_id column RETURNING gave back: a UUID on PostgreSQL, its hex text on SQLite."""
    return {row[0] if isinstance(row[0], uuid.UUID) else uuid.UUID(str(row[0])) for row in fetched}


def _insert_new(rows: Sequence[ChargingRequest]) -> set[uuid.UUID]:
    """INSERT rows in one statement, skipping ids already stored; returns the ids this call inserted.

    Django's bulk_create(ignore_conflicts=True) cannot say which rows it inserted, and which ones
    did is what gives each request exactly one decision and one delivery here.
    """
    sql, params = insert_sql(rows)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} ON CONFLICT (request_id) DO NOTHING RETURNING request_id", params)
        return _request_ids(cursor.fetchall())


def _deliveries_create(decided: Sequence[DecidedRequest], first_attempts: FirstAttempts | None) -> None:
    """The batch's deliveries: born claimed for `first_attempts` (the bridge's threads) to make
    their first attempt once the transaction commits, else queued as callbacks.deliver tasks then."""
    deliveries_create(decided=decided, first_attempts=first_attempts.submit if first_attempts else None)


def charging_requests_store_decided(
    *, consumed: Sequence[Consumed], first_attempts: FirstAttempts | None = None
) -> list[uuid.UUID]:
    """The bridge's batch stored already decided: returns the ids that were stored before.

    One ACL read for the batch's pairs and the pure decide() per message (one past its deadline is
    unknown/timeout), then the rows with their decisions and the deliveries: on PostgreSQL in one
    round trip (_store_decided_at_once), should that find a row stored before or a client gone,
    and on SQLite, in one transaction of an INSERT that leaves rows already there alone and one
    of the deliveries of the rows it inserted (_store_decided). Callbacks are queued once it
    commits. No row is written pending and read back. A row that was there already (a batch read
    twice, or stored by a bridge that did not decide) keeps its own values and is decided, if
    still pending, by charging_requests_decide on the ids returned.
    """
    if not consumed:
        return []
    at = timezone.now()
    rows = _rows_of(consumed, clients_checked=False)
    decided = _Decided(at, _decisions_of(rows, at=at))
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        try:
            return _store_decided_at_once(decided.applied(rows), decided, first_attempts)
        except IntegrityError:
            pass  # a row stored before (a batch read twice), or a client deleted since: one at a time
    return _store_decided(decided.applied(_rows_of(consumed)), decided, first_attempts)


@dataclass(frozen=True)
class _Decided:
    """A batch's decisions, made once: the fallback from the one-round-trip store reuses them."""

    at: datetime
    decisions: dict[uuid.UUID, Decision]

    def applied(self, rows: list[ChargingRequest]) -> list[ChargingRequest]:
        for row in rows:
            decision = self.decisions[row.request_id]
            row.status, row.reason, row.decided_at = decision.status.value, decision.reason.value, self.at
        return rows


def _store_decided_at_once(
    rows: list[ChargingRequest], decided: _Decided, first_attempts: FirstAttempts | None
) -> list[uuid.UUID]:
    """PostgreSQL, the usual batch (new rows of known clients): the decided rows and their
    deliveries in one round trip, both INSERTs in one query string (one implicit transaction:
    both commit or neither). The api wrote each client_id from a key it had just verified, so the
    clients are not read first. A row stored before fails the primary key, a client deleted since
    the foreign key (at the commit: Django's are deferred), and nothing of the batch is written.
    """
    deliveries = delivery_rows(
        decided=[decided_request_of(row) for row in rows], claimed=first_attempts is not None
    )
    statements = [insert_sql(rows), *([insert_sql(deliveries)] if deliveries else [])]
    with connection.cursor() as cursor:
        cursor.execute(
            "; ".join(sql for sql, _ in statements), [p for _, params in statements for p in params]
        )
    deliveries_hand_on_commit(deliveries, first_attempts=first_attempts.submit if first_attempts else None)
    _decided_announce(
        [(row.request_id, row.source, row.requested_at) for row in rows], decided.decisions, at=decided.at
    )
    return []


def _store_decided(
    rows: list[ChargingRequest], decided: _Decided, first_attempts: FirstAttempts | None
) -> list[uuid.UUID]:
    """One transaction: the rows not stored before, then the deliveries of those."""
    with transaction.atomic():
        won = _insert_new(rows)
        new = [row for row in rows if row.request_id in won]
        _deliveries_create([decided_request_of(row) for row in new], first_attempts)
    _decided_announce(
        [(row.request_id, row.source, row.requested_at) for row in new], decided.decisions, at=decided.at
    )
    return [row.request_id for row in rows if row.request_id not in won]


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
            deliveries_create(decided=[decided_request_of(request)])
    if created:
        decision_observe(
            status=request.status,
            reason=request.reason,
            source=request.source,
            requested_at=now,
            decided_at=now,
        )
    return True


def decided_request_of(request: ChargingRequest) -> DecidedRequest:
    """A decided row of the log as the plain values its callback delivery is made of."""
    return DecidedRequest(
        request_id=request.request_id,
        client_id=request.client_id,
        station_id=request.station_id,
        driver_token=request.driver_token,
        callback_url=request.callback_url,
        status=request.status,
        reason=request.reason,
        requested_at=request.requested_at,
        decided_at=request.decided_at or request.requested_at,
    )


@dataclass(frozen=True)
class _Pending:
    """A pending row as the batch decision reads it (a values row, no model instance)."""

    request_id: uuid.UUID
    client_id: int | None
    station_id: str
    driver_token: str
    callback_url: str
    source: str
    requested_at: datetime
    deadline: datetime


_PENDING_FIELDS = (
    "request_id",
    "client_id",
    "station_id",
    "driver_token",
    "callback_url",
    "source",
    "requested_at",
    "deadline",
)


def _decisions_record(decisions: dict[uuid.UUID, Decision], *, at: datetime) -> set[uuid.UUID]:
    """Write every decision of a batch in one conditional UPDATE; returns the rows this call won.

    Only rows still pending change, so a redelivered task, two overlapping batches or the sweep
    racing a worker leave each request with exactly one decision: the ids RETURNING gives back are
    the ones decided here, and only they get a delivery.
    """
    pk = ChargingRequest._meta.pk
    assert pk is not None  # noqa: S101 - a model always has one; this narrows the type
    # A batch holds few distinct outcomes: one CASE branch per (status, reason), not one per row.
    by_outcome: dict[tuple[str, str], list[Any]] = {}
    for request_id, decision in decisions.items():
        outcome = (decision.status.value, decision.reason.value)
        by_outcome.setdefault(outcome, []).append(pk.get_db_prep_value(request_id, connection))
    status_cases, reason_cases, params_status, params_reason = [], [], [], []
    for (status, reason), keys in by_outcome.items():
        holes = ", ".join(["%s"] * len(keys))
        status_cases.append(f"WHEN request_id IN ({holes}) THEN %s")
        reason_cases.append(f"WHEN request_id IN ({holes}) THEN %s")
        params_status += [*keys, status]
        params_reason += [*keys, reason]
    all_keys = [key for keys in by_outcome.values() for key in keys]
    sql = (
        f"UPDATE {ChargingRequest._meta.db_table} SET "  # noqa: S608 - names from the model, values as parameters
        f"status = CASE {' '.join(status_cases)} END, reason = CASE {' '.join(reason_cases)} END, "
        f"decided_at = %s WHERE request_id IN ({', '.join(['%s'] * len(all_keys))}) AND status = %s "
        "RETURNING request_id"
    )
    params = [
        *params_status,
        *params_reason,
        connection.ops.adapt_datetimefield_value(at),
        *all_keys,
        Status.PENDING.value,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return _request_ids(cursor.fetchall())


def charging_requests_decide(
    *,
    request_ids: Sequence[str | uuid.UUID],
    backend_failed: bool = False,
    first_attempts: FirstAttempts | None = None,
) -> int:
    """The authorize task's work: decide a batch of pending requests set-wise; returns how many it decided.

    One read of the rows still pending, one ACL read for all their (station, token) pairs, the pure
    decide() per row (a row past its deadline is unknown/timeout, or unknown/backend_unavailable
    after the database was away), one conditional UPDATE that returns the rows it won, one INSERT of
    their deliveries, and the callback tasks once that commits. Ids already decided, or not stored
    (yet), are skipped.
    """
    ids = [rid if isinstance(rid, uuid.UUID) else uuid.UUID(str(rid)) for rid in request_ids]
    if not ids:
        return 0
    pending = [
        _Pending(*row)
        for row in ChargingRequest.objects.filter(request_id__in=ids, status=Status.PENDING).values_list(
            *_PENDING_FIELDS
        )
    ]
    if not pending:
        return 0
    at = timezone.now()
    decisions = _decisions_of(pending, at=at, backend_failed=backend_failed)
    with transaction.atomic():
        won = _decisions_record(decisions, at=at)
        decided = [row for row in pending if row.request_id in won]
        _deliveries_create(
            [
                DecidedRequest(
                    request_id=row.request_id,
                    client_id=row.client_id,
                    station_id=row.station_id,
                    driver_token=row.driver_token,
                    callback_url=row.callback_url,
                    status=decisions[row.request_id].status.value,
                    reason=decisions[row.request_id].reason.value,
                    requested_at=row.requested_at,
                    decided_at=at,
                )
                for row in decided
            ],
            first_attempts,
        )
    _decided_announce([(row.request_id, row.source, row.requested_at) for row in decided], decisions, at=at)
    return len(decided)


def _decided_announce(
    decided: Sequence[tuple[uuid.UUID, str, datetime]], decisions: dict[uuid.UUID, Decision], *, at: datetime
) -> None:
    """Metrics and the batch's log line for the (request_id, source, requested_at) rows decided."""
    for request_id, source, requested_at in decided:
        decision = decisions[request_id]
        decision_observe(
            status=decision.status.value,
            reason=decision.reason.value,
            source=source,
            requested_at=requested_at,
            decided_at=at,
        )
    if decided:
        # One line per batch: grep a request_id and it is here, without a line per decision.
        logger.info(
            "requests_decided",
            count=len(decided),
            request_ids=[str(request_id) for request_id, _, _ in decided],
            statuses=sorted({decisions[request_id].status.value for request_id, _, _ in decided}),
        )


def charging_requests_expire_overdue(*, grace: timedelta, limit: int = 1000) -> int:
    """Decide `unknown/timeout` for pending requests past their deadline (beat: charging.expire_overdue).

    The same set-wise decision as the authorize task, on the overdue ids: past its deadline a row
    can only be decided unknown/timeout.
    """
    cutoff = timezone.now() - grace
    overdue = list(
        ChargingRequest.objects.filter(status=Status.PENDING, deadline__lt=cutoff)
        .order_by("deadline")
        .values_list("request_id", flat=True)[:limit]
    )
    expired = sum(
        charging_requests_decide(request_ids=chunk)
        for chunk in chunks_of(overdue, settings.CHARGE_AUTHORIZE_BATCH)
    )
    if expired:
        logger.warning("overdue_requests_expired", count=expired)
    return expired


def chunks_of(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def authorize_tasks_send(*, request_ids: Sequence[str | uuid.UUID], producer: Any = None) -> int:
    """Queue charging.authorize tasks of up to CHARGE_AUTHORIZE_BATCH ids each; returns how many tasks."""
    chunks = chunks_of([str(rid) for rid in request_ids], settings.CHARGE_AUTHORIZE_BATCH)
    with current_app.producer_or_acquire(producer) as connected:
        for chunk in chunks:
            current_app.send_task(
                AUTHORIZE_TASK,
                kwargs={"request_ids": list(chunk)},
                producer=connected,
                # What Flower and Celery's log show instead of every id.
                kwargsrepr=f"{{'requests': {len(chunk)}, 'first': '{chunk[0]}'}}",
            )
    return len(chunks)


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
    if stale:
        authorize_tasks_send(request_ids=stale)
        logger.warning("stale_requests_requeued", count=len(stale))
    return len(stale)


def _rows_insert_at_once(rows: Sequence[Any]) -> None:
    """Store a decision and its delivery together, in as few round trips as the database allows.

    PostgreSQL: one statement, the first INSERT in a WITH clause (every data-modifying statement of
    a WITH runs to completion, and the statement commits or fails whole), so a sync decision with a
    callback is one round trip in autocommit instead of BEGIN, two INSERTs and COMMIT. Elsewhere
    (SQLite): the INSERTs in one transaction; a single row is one autocommitted INSERT either way.
    """
    if len(rows) == 1 or connection.vendor != "postgresql" or connection.in_atomic_block:
        with transaction.atomic() if len(rows) > 1 else contextlib.nullcontext():
            for row in rows:
                row.save(force_insert=True)
        return
    statements = [insert_sql([row]) for row in rows]
    ctes = ", ".join(f"stored_{n} AS ({sql})" for n, (sql, _) in enumerate(statements[:-1]))
    params = [value for _, values in statements for value in values]
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {ctes} {statements[-1][0]}", params)


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
    request = _sync_row(
        decision,
        client=client,
        station_id=station_id,
        driver_token=driver_token,
        callback_url=callback_url,
        source=source,
        requested_at=requested_at,
        deadline=deadline,
        now=now,
    )
    structlog.contextvars.bind_contextvars(request_id=str(request.request_id))
    deliveries = delivery_rows(decided=[decided_request_of(request)]) if callback_url else []
    _rows_insert_at_once([request, *deliveries])
    deliveries_queue_on_commit(deliveries, publish=deliveries_publish_soon)
    _sync_observe(request, decided_at=now)
    return request, decision


def _sync_row(
    decision: Decision,
    *,
    client: ApiClient | None,
    station_id: str,
    driver_token: str,
    callback_url: str,
    source: str,
    requested_at: datetime,
    deadline: datetime,
    now: datetime,
) -> ChargingRequest:
    """The decision-log row of a synchronous decision: decided when it was asked, never queued."""
    return ChargingRequest(
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


def _sync_observe(row: ChargingRequest, *, decided_at: datetime) -> None:
    decision_observe(
        status=row.status,
        reason=row.reason,
        source=row.source,
        requested_at=row.requested_at,
        decided_at=decided_at,
    )


@dataclass(frozen=True)
class SyncAnswer:
    request_id: uuid.UUID
    decision: Decision
    # The token's group name, for answers that carry it (OCPP's parentIdTag / groupIdToken).
    group: str | None


# The decision-log columns a synchronous batch writes; the rest stay NULL (no client, no Kafka offset).
_SYNC_BATCH_COLUMNS = (
    "request_id",
    "station_id",
    "driver_token",
    "callback_url",
    "source",
    "status",
    "reason",
    "requested_at",
    "decided_at",
    "deadline",
)


def charging_requests_decide_sync(*, asks: Sequence[tuple[str, str]], source: str) -> list[SyncAnswer]:
    """Decide synchronous asks that arrived together (the OCPP gateway's Authorize calls), in order.

    One ACL read and one INSERT of their decision rows, autocommitted (all stored or none), however
    many there are: under load the gateway hands over every call that waited, so the database sees
    a few statements per batch instead of three per call. No callbacks: the answers go back on the
    callers' connections. `asks` are (station_id, driver_token) pairs already normalized.

    The rows are written from plain values (insert_values_sql), not model instances: building and
    preparing a ChargingRequest per call was a third of the gateway's CPU for a batch of one.
    """
    now = timezone.now()
    deadline = now + timedelta(seconds=settings.CHARGE_DECISION_TIMEOUT_S)
    decided = authorizations_decide_grouped(pairs=asks, at=now)
    answers = []
    rows = []
    for station_id, driver_token in asks:
        decision, group = decided[station_id, driver_token]
        request_id = uuid.uuid4()
        status, reason = decision.status.value, decision.reason.value
        rows.append((request_id, station_id, driver_token, "", source, status, reason, now, now, deadline))
        answers.append(SyncAnswer(request_id, decision, group))
    if rows:
        sql, params = insert_values_sql(ChargingRequest, _SYNC_BATCH_COLUMNS, rows)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    decisions_observe(
        [(answer.decision.status.value, answer.decision.reason.value) for answer in answers],
        source=source,
        latency_s=0.0,
    )
    return answers
