"""Callback deliveries: created with the decision, attempted in batches per receiver, retried on a schedule.

A decision's delivery is a row; each try is an attempt row (after Saleor's webhooks). Deliveries
travel in `callbacks.deliver` tasks of up to CHARGE_CALLBACK_BATCH ids of one receiver (scheme,
host, port), so a slow or hanging receiver holds only its own tasks. A task claims its batch in one
statement, POSTs the batch concurrently, and records every attempt and state in one transaction.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import structlog
from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.access.policy import Status, decision_message
from apps.callbacks.http import Post, PostResult, callbacks_post
from apps.callbacks.models import CallbackAttempt, CallbackDelivery
from apps.callbacks.schedule import next_attempt_at
from apps.callbacks.signing import signature_header
from apps.callbacks.urlguard import CallbackRefused, CheckedTarget, callback_target_check
from apps.clients.models import ApiClient
from apps.clients.selectors import api_clients_by_id
from apps.core.sql import insert_sql, one_of, placeholders, typed_hole
from apps.core.tasks import DELIVER_TASK
from apps.monitoring.metrics import CALLBACK_ENQUEUE_FAILURES, callback_attempt_observe

logger = structlog.get_logger(__name__)

# Retries due within this many seconds are queued at once with a countdown (prompt, and well under
# the broker's visibility timeout); later ones wait in the database for callbacks.dispatch_due.
COUNTDOWN_MAX_S = 30
_OPEN = (CallbackDelivery.Status.PENDING.value, CallbackDelivery.Status.RETRYING.value)


class AttemptOutcome(StrEnum):
    DELIVERED = "delivered"
    STOPPED = "stopped"
    RETRYING = "retrying"
    FAILED = "failed"


@dataclass(frozen=True)
class DecidedRequest:
    """What a delivery needs of a decision, as plain values."""

    request_id: uuid.UUID
    client_id: int | None
    station_id: str
    driver_token: str
    callback_url: str
    status: str
    reason: str
    requested_at: datetime
    decided_at: datetime


def callback_body(*, decided: DecidedRequest) -> str:
    """The payload, built once per decision; its exact bytes are signed and sent on every attempt."""
    payload = {
        "request_id": str(decided.request_id),
        "station_id": decided.station_id,
        "driver_token": decided.driver_token,
        "status": decided.status,
        "reason": decided.reason,
        "message": decision_message(Status(decided.status), decided.reason),
        "requested_at": decided.requested_at.isoformat(),
        "decided_at": decided.decided_at.isoformat(),
    }
    return json.dumps(payload, separators=(",", ":"))


def receiver_of(url: str) -> tuple[str, str, int]:
    """Who receives a callback: (scheme, host, port). A deliver task carries one receiver's deliveries."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True)
class DueDelivery:
    """A delivery to queue an attempt for: its id, its URL (for grouping), and when it is due."""

    request_id: uuid.UUID
    url: str
    due_at: datetime


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def deliveries_send(
    *, due: Sequence[DueDelivery], countdown: float | None = None, marked: bool = False
) -> int:
    """Queue deliver tasks, one per chunk of one receiver's deliveries; returns how many were queued.

    `dispatched_at` says a task waits in the queue, so the dispatch sweep leaves the delivery alone.
    On the hot paths (`marked`) the statement that created or rescheduled the rows has set it
    already, saving a statement per batch: only what the broker refused is unmarked here, for the
    sweep to send (a process killed between its commit and this publish leaves its rows marked;
    the sweep then sends them once the queue is empty, CHARGE_CALLBACK_REDISPATCH_IDLE_S later).
    Otherwise (sweep, redeliver) rows are marked once the broker has their tasks, skipping any a
    fast worker has claimed meanwhile (the claim moved next_attempt_at past every due time here).
    A broker that is away is logged and counted, never raised: the decision is committed.
    """
    by_receiver: dict[tuple[str, str, int], list[DueDelivery]] = defaultdict(list)
    for item in due:
        by_receiver[receiver_of(item.url)].append(item)
    sent: list[DueDelivery] = []
    try:
        # One broker connection for every task of the call.
        with current_app.producer_or_acquire() as producer:
            for group in by_receiver.values():
                for chunk in _chunks(group, settings.CHARGE_CALLBACK_BATCH):
                    ids = [str(item.request_id) for item in chunk]
                    current_app.send_task(
                        DELIVER_TASK,
                        kwargs={"request_ids": ids},
                        countdown=countdown,
                        producer=producer,
                        # What Flower and Celery's log show instead of every id.
                        kwargsrepr=f"{{'requests': {len(ids)}, 'first': '{ids[0]}'}}",
                    )
                    sent.extend(chunk)
    except Exception as exc:  # noqa: BLE001 - the broker is away: the sweep sends the unmarked ones
        CALLBACK_ENQUEUE_FAILURES.inc(len(due) - len(sent))
        logger.warning("callback_enqueue_failed", error=repr(exc), unsent=len(due) - len(sent))
    sent_ids = {item.request_id for item in sent}
    if marked:
        unsent = [item.request_id for item in due if item.request_id not in sent_ids]
        if unsent:
            CallbackDelivery.objects.filter(request_id__in=unsent).update(dispatched_at=None)
    elif sent:
        CallbackDelivery.objects.filter(
            request_id__in=sent_ids, next_attempt_at__lte=max(item.due_at for item in sent)
        ).update(dispatched_at=timezone.now())
    return len(sent)


def delivery_rows(*, decided: Sequence[DecidedRequest], claimed: bool = False) -> list[CallbackDelivery]:
    """The unsaved delivery of each decision that has a callback URL: marked queued (its task is
    sent once this commits), or `claimed` for a first attempt made in this process
    (apps/callbacks/first_attempts.py): leased as a worker's claim would lease it, so no worker
    takes it meanwhile and the dispatch sweep sends it once the lease has passed should this
    process die first. Born claimed, it needs no claim statement before its first attempt."""
    now = timezone.now()
    due_at = now + timedelta(seconds=settings.CHARGE_CALLBACK_CLAIM_LEASE_S) if claimed else now
    return [
        CallbackDelivery(
            request_id=item.request_id,
            client_id=item.client_id,
            url=item.callback_url,
            body=callback_body(decided=item),
            next_attempt_at=due_at,
            # Its task is queued once this commits (deliveries_send unmarks it if the broker refuses).
            dispatched_at=None if claimed else now,
        )
        for item in decided
        if item.callback_url
    ]


def deliveries_queue_on_commit(
    rows: Sequence[CallbackDelivery], *, publish: Callable[[Sequence[DueDelivery]], object] | None = None
) -> None:
    """Queue the deliver tasks of stored rows once the transaction commits (in autocommit: now), by
    `publish` when given (the api's batching publisher), else at once."""
    due = [
        DueDelivery(request_id=row.request_id, url=row.url, due_at=row.next_attempt_at or timezone.now())
        for row in rows
    ]
    if not due:
        return
    if publish is None:
        transaction.on_commit(lambda: deliveries_send(due=due, marked=True))
    else:
        transaction.on_commit(lambda: publish(due))


def deliveries_create(
    *,
    decided: Sequence[DecidedRequest],
    publish: Callable[[Sequence[DueDelivery]], object] | None = None,
    first_attempts: Callable[[Sequence[ClaimedDelivery]], object] | None = None,
) -> int:
    """The one delivery of each decision that has a callback URL, in one INSERT.

    Call inside the transaction that records the decisions; once it commits their tasks are
    queued, or they go to `publish` (a batching publisher), or, born claimed, to `first_attempts`
    (the bridge's threads, apps/callbacks/first_attempts.py).
    """
    rows = delivery_rows(decided=decided, claimed=first_attempts is not None)
    if not rows:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(*insert_sql(rows))
    deliveries_hand_on_commit(rows, publish=publish, first_attempts=first_attempts)
    return len(rows)


def deliveries_hand_on_commit(
    rows: Sequence[CallbackDelivery],
    *,
    publish: Callable[[Sequence[DueDelivery]], object] | None = None,
    first_attempts: Callable[[Sequence[ClaimedDelivery]], object] | None = None,
) -> None:
    """Once the transaction that stored `rows` commits: their claimed first attempts to
    `first_attempts`, else their tasks queued (by `publish`, or at once)."""
    if not rows:
        return
    if first_attempts is not None:
        claimed = [ClaimedDelivery(row.request_id, row.client_id, row.url, row.body, 1) for row in rows]
        transaction.on_commit(lambda: first_attempts(claimed))
    else:
        deliveries_queue_on_commit(rows, publish=publish)


# --- one batch of attempts --------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery leased to this process for one attempt: what the attempt sends."""

    request_id: uuid.UUID
    client_id: int | None
    url: str
    body: str
    number: int  # of the attempt about to be made


def _pk(value: uuid.UUID) -> Any:
    return CallbackDelivery._meta.pk.get_db_prep_value(value, connection)


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _claim(request_ids: Sequence[uuid.UUID], now: datetime) -> list[ClaimedDelivery]:
    """Take the due, open deliveries among `request_ids` for one attempt each, in one statement.

    The lease moves next_attempt_at ahead, so no other worker takes them meanwhile; should this
    worker die, they are due again once it has passed. dispatched_at is cleared: no task waits for
    them in the queue any more.
    """
    table = CallbackDelivery._meta.db_table
    lease_until = now + timedelta(seconds=settings.CHARGE_CALLBACK_CLAIM_LEASE_S)
    ids, id_params = one_of(CallbackDelivery, "request", [_pk(rid) for rid in request_ids])
    sql = (
        f"UPDATE {table} SET next_attempt_at = %s, dispatched_at = NULL "  # noqa: S608 - names from the model
        f"WHERE {ids} AND status IN (%s, %s) AND next_attempt_at <= %s "
        "RETURNING request_id, client_id, url, body, attempts"
    )
    adapt = connection.ops.adapt_datetimefield_value
    params = [adapt(lease_until), *id_params, *_OPEN, adapt(now)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        ClaimedDelivery(_as_uuid(rid), client_id, url, body, attempts + 1)
        for rid, client_id, url, body, attempts in rows
    ]


@dataclass(frozen=True)
class _Result:
    claimed: ClaimedDelivery
    outcome: AttemptOutcome
    http_status: int | None
    error: str
    excerpt: str
    duration_ms: int
    started_at: datetime
    next_at: datetime | None


def _signing_secrets(client: ApiClient | None, at: datetime) -> list[str]:
    if client is None:
        return [settings.CHARGE_DEFAULT_CALLBACK_SECRET] if settings.CHARGE_DEFAULT_CALLBACK_SECRET else []
    return client.signing_secrets(at=at)


def _outcome(
    http_status: int | None, *, final: bool, number: int, now: datetime
) -> tuple[AttemptOutcome, datetime | None]:
    if http_status is not None and 200 <= http_status < 300:
        return AttemptOutcome.DELIVERED, None
    if http_status == 410:
        return AttemptOutcome.STOPPED, None
    if final:
        return AttemptOutcome.FAILED, None
    next_at = next_attempt_at(attempts_made=number, now=now)
    return (AttemptOutcome.RETRYING if next_at else AttemptOutcome.FAILED), next_at


def _attempts_make(claimed: Sequence[ClaimedDelivery]) -> list[_Result]:
    """Check every target, sign every body, POST the batch concurrently; one result per delivery."""
    now = timezone.now()
    clients = api_clients_by_id(c.client_id for c in claimed if c.client_id)
    timestamp = int(time.time())
    # One SSRF check per receiver and client (the allow-list is the client's) instead of one per delivery.
    targets: dict[tuple[tuple[str, str, int], int | None], CheckedTarget | CallbackRefused] = {}
    posts: list[Post] = []
    posted: list[ClaimedDelivery] = []
    refused: list[tuple[ClaimedDelivery, CallbackRefused]] = []
    broken: list[tuple[ClaimedDelivery, Exception]] = []
    for item in claimed:
        client = clients.get(item.client_id) if item.client_id else None
        key = (receiver_of(item.url), item.client_id)
        try:
            if key not in targets:
                try:
                    targets[key] = callback_target_check(
                        item.url,
                        allow_private=settings.CHARGE_CALLBACK_ALLOW_PRIVATE,
                        allowed_hosts=client.allowed_callback_hosts if client else [],
                    )
                except CallbackRefused as exc:
                    targets[key] = exc
            target = targets[key]
            if isinstance(target, CallbackRefused):
                refused.append((item, target))
                continue
            body = item.body.encode()
            headers = {
                "X-Charge-Request-Id": str(item.request_id),
                "X-Charge-Attempt": str(item.number),
                "X-Charge-Signature": signature_header(
                    secrets=_signing_secrets(client, now), timestamp=timestamp, body=body
                ),
                "User-Agent": "charge-service-callbacks/1",
            }
        except Exception as exc:
            logger.exception("callback_prepare_failed", request_id=str(item.request_id))
            broken.append((item, exc))
            continue
        posts.append(Post(url=item.url, target=target, body=body, headers=headers))
        posted.append(item)

    answers: list[tuple[ClaimedDelivery, PostResult, bool]] = [
        (item, PostResult(None, f"refused: {exc}", "", 0), exc.final) for item, exc in refused
    ]
    answers += [
        (item, PostResult(None, f"unexpected {type(exc).__name__}: {exc}", "", 0), False)
        for item, exc in broken
    ]
    results = callbacks_post(posts, concurrency=settings.CHARGE_CALLBACK_CONCURRENCY)
    answers += [(item, result, False) for item, result in zip(posted, results, strict=True)]
    done = timezone.now()
    out = []
    for item, result, final in answers:
        outcome, next_at = _outcome(result.http_status, final=final, number=item.number, now=done)
        error = result.error or ("" if outcome == AttemptOutcome.DELIVERED else f"HTTP {result.http_status}")
        out.append(
            _Result(
                item, outcome, result.http_status, error[:500], result.response_excerpt[:500],
                result.duration_ms, now, next_at,
            )
        )  # fmt: skip
    return out


def _results_record(results: Sequence[_Result], now: datetime, *, queued: set[uuid.UUID]) -> None:
    """Every attempt row in one INSERT and every delivery's new state in one UPDATE, together:
    on PostgreSQL one statement (the INSERT in a WITH clause, so both commit or neither, in one
    round trip instead of BEGIN, two statements and COMMIT), elsewhere one transaction.

    `queued`: deliveries whose next attempt is queued right after this, with a countdown; they are
    marked as having a task waiting in the same statement.
    """
    adapt = connection.ops.adapt_datetimefield_value
    columns: dict[str, list[Any]] = {
        "status": [r.outcome.value for r in results],
        "attempts": [r.claimed.number for r in results],
        "last_http_status": [r.http_status for r in results],
        "last_error": [r.error for r in results],
        "next_attempt_at": [adapt(r.next_at) for r in results],
        "delivered_at": [adapt(now) if r.outcome == AttemptOutcome.DELIVERED else None for r in results],
        "dispatched_at": [adapt(now) if r.claimed.request_id in queued else None for r in results],
    }
    keys = [_pk(r.claimed.request_id) for r in results]
    table = CallbackDelivery._meta.db_table
    if len(results) > 1 and connection.vendor == "postgresql":
        # One array per column (unnest): the same text for every batch size, so psycopg converts it
        # once and PostgreSQL parses eight parameters, not two per value (as apps/core/sql.py does;
        # a single row keeps the plain form, which is cheaper to send than eight one-item arrays).
        arrays = ", ".join(typed_hole(CallbackDelivery, name, array=True) for name in ["request", *columns])
        update = (
            f"UPDATE {table} AS d SET {', '.join(f'{name} = v.{name}' for name in columns)}, "  # noqa: S608
            f"updated_at = %s FROM unnest({arrays}) AS v(request_id, {', '.join(columns)}) "
            "WHERE d.request_id = v.request_id"
        )
        params: list[Any] = [adapt(now), keys, *columns.values()]
    else:
        assignments, params = [], []
        for column, values in columns.items():
            hole = typed_hole(CallbackDelivery, column)
            assignments.append(
                f"{column} = CASE request_id {' '.join([f'WHEN %s THEN {hole}'] * len(keys))} END"
            )
            for key, value in zip(keys, values, strict=True):
                params += [key, value]
        update = (
            f"UPDATE {table} SET {', '.join(assignments)}, updated_at = %s "  # noqa: S608
            f"WHERE request_id IN ({placeholders(len(keys))})"
        )
        params += [adapt(now), *keys]
    insert, insert_params = insert_sql(
        [
            CallbackAttempt(
                delivery_id=r.claimed.request_id,
                number=r.claimed.number,
                started_at=r.started_at,
                duration_ms=r.duration_ms,
                http_status=r.http_status,
                error=r.error,
                response_excerpt=r.excerpt,
            )
            for r in results
        ]
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"WITH recorded AS ({insert}) {update}", insert_params + params)
            return
        with transaction.atomic():
            cursor.execute(insert, insert_params)
            cursor.execute(update, params)


def deliveries_attempt(*, request_ids: Sequence[str | uuid.UUID]) -> dict[str, int]:
    """One attempt of each delivery among `request_ids` that is open and due; returns counts by outcome.

    Safe to run twice: a delivery claimed by another run is not due, so it is skipped.
    """
    ids = [_as_uuid(rid) for rid in request_ids]
    if not ids:
        return {}
    return deliveries_attempt_claimed(claimed=_claim(ids, timezone.now()))


def deliveries_unclaim(*, request_ids: Sequence[uuid.UUID]) -> int:
    """Make deliveries born claimed due now, for a worker: the process that claimed them has no
    room for their first attempt, or it failed. Only those not attempted yet: one whose attempt
    was recorded keeps the schedule that recorded it."""
    now = timezone.now()
    return CallbackDelivery.objects.filter(request_id__in=request_ids, attempts=0, status__in=_OPEN).update(
        next_attempt_at=now, updated_at=now
    )


def deliveries_attempt_claimed(*, claimed: Sequence[ClaimedDelivery]) -> dict[str, int]:
    """One attempt of each of these deliveries, claimed already (by _claim, or born claimed)."""
    if not claimed:
        return {}
    results = _attempts_make(claimed)
    now = timezone.now()
    soon = [
        r for r in results if r.next_at is not None and (r.next_at - now).total_seconds() <= COUNTDOWN_MAX_S
    ]
    _results_record(results, now, queued={r.claimed.request_id for r in soon})
    if soon:
        # A little late rather than early: an attempt that arrives before next_attempt_at is not due.
        delay_s = max((r.next_at - now).total_seconds() for r in soon if r.next_at is not None) + 0.5
        deliveries_send(
            due=[DueDelivery(r.claimed.request_id, r.claimed.url, r.next_at) for r in soon if r.next_at],
            countdown=delay_s,
            marked=True,
        )
    counts: dict[str, int] = defaultdict(int)
    for r in results:
        counts[r.outcome.value] += 1
        callback_attempt_observe(outcome=r.outcome.value, duration_ms=r.duration_ms)
        if r.outcome != AttemptOutcome.DELIVERED:
            # Failures one line each (they are what an operator looks for); successes in the batch line.
            logger.info(
                "callback_attempt",
                request_id=str(r.claimed.request_id),
                attempt=r.claimed.number,
                http_status=r.http_status,
                outcome=r.outcome.value,
                error=r.error or None,
                duration_ms=r.duration_ms,
            )
    # One line per request per batch: the delivered ones here, each other one in its own line above.
    logger.info(
        "callback_batch",
        receiver="{}://{}:{}".format(*receiver_of(claimed[0].url)),
        attempts=len(results),
        **counts,
        request_ids=[str(r.claimed.request_id) for r in results if r.outcome == AttemptOutcome.DELIVERED],
    )
    return dict(counts)


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
    due = [
        DueDelivery(request_id, url, due_at or now)  # (due_at is set: the filter asks next_attempt_at <= now)
        for request_id, url, due_at in CallbackDelivery.objects.filter(
            Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=lost_before),
            status__in=_OPEN,
            next_attempt_at__lte=now,
        )
        .order_by("next_attempt_at")
        .values_list("request_id", "url", "next_attempt_at")[:limit]
    ]
    if due:
        deliveries_send(due=due)
        logger.info("callbacks_dispatched", count=len(due))
    return len(due)


def delivery_redeliver(*, delivery: CallbackDelivery) -> None:
    """Operator's replay: one more attempt now, whatever the delivery's state."""
    with transaction.atomic():
        now = timezone.now()
        CallbackDelivery.objects.filter(pk=delivery.pk).update(
            status=CallbackDelivery.Status.RETRYING, next_attempt_at=now, dispatched_at=None
        )
        due = [DueDelivery(request_id=delivery.pk, url=delivery.url, due_at=now)]
        transaction.on_commit(lambda: deliveries_send(due=due))
