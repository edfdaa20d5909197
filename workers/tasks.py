"""Celery tasks: thin wrappers that take ids, re-read state and call one app service.

Every task is safe to run twice: the services make conditional updates.
"""

from __future__ import annotations

import socket
from datetime import timedelta

import redis
from celery import shared_task
from celery.app.task import Task
from celery.signals import task_postrun, task_prerun
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from apps.callbacks.services import deliveries_attempt, deliveries_dispatch_due
from apps.charging.services import (
    charging_requests_decide,
    charging_requests_expire_overdue,
    charging_requests_requeue_stale,
)
from apps.core.kv import redis_client
from apps.core.tasks import (
    AUTHORIZE_QUEUE,
    AUTHORIZE_TASK,
    CALLBACKS_QUEUE,
    DELIVER_TASK,
    DISPATCH_DUE_TASK,
    EXPIRE_OVERDUE_TASK,
    PING_TASK,
    REQUEUE_STALE_TASK,
    queue_lengths,
)
from apps.monitoring.metrics import CALLBACK_BATCH_SIZE, DECISION_BATCH_SIZE, TASK_BATCH_SIZE

# While the database is unreachable the authorize task retries at this pace; once the request's
# deadline has passed, the next successful run records unknown/backend_unavailable.
DB_RETRY_DELAY_S = 1.0
DB_MAX_RETRIES = 600


@task_prerun.connect
@task_postrun.connect
def _drop_unusable_connections(**kwargs: object) -> None:
    # Connections are reused across tasks (CELERY_DB_REUSE_MAX); one broken by a database restart
    # must be dropped before the next task, not reused.
    close_old_connections()


def _queue_length(queue: str) -> int:
    """Messages waiting in a Celery queue on the Redis broker (a Redis list named after the queue)."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2)
    try:
        return queue_lengths(client, [queue])[queue]
    finally:
        client.close()


def _ids(request_ids: list[str] | None, request_id: str | None) -> list[str]:
    # The single-id form is what tasks queued before batching carry; it stays for one release.
    return list(request_ids or []) + ([request_id] if request_id else [])


@shared_task(name=AUTHORIZE_TASK, bind=True, max_retries=DB_MAX_RETRIES)
def authorize(
    self: Task,
    *,
    request_ids: list[str] | None = None,
    request_id: str | None = None,
    backend_failed: bool = False,
) -> int:
    """Decide a batch of pending charging requests, log them and create their callback deliveries."""
    ids = _ids(request_ids, request_id)
    TASK_BATCH_SIZE.labels(task="authorize").observe(len(ids))
    DECISION_BATCH_SIZE.labels(by="authorize").observe(len(ids))
    try:
        return charging_requests_decide(request_ids=ids, backend_failed=backend_failed)
    except (OperationalError, InterfaceError) as exc:
        raise self.retry(
            kwargs={"request_ids": ids, "backend_failed": True}, countdown=DB_RETRY_DELAY_S, exc=exc
        ) from exc


@shared_task(name=DELIVER_TASK, bind=True, max_retries=DB_MAX_RETRIES)
def deliver(self: Task, *, request_ids: list[str] | None = None, request_id: str | None = None) -> int:
    """One attempt of each due delivery of a batch (one receiver's); the schedule lives in the database."""
    ids = _ids(request_ids, request_id)
    TASK_BATCH_SIZE.labels(task="deliver").observe(len(ids))
    CALLBACK_BATCH_SIZE.labels(by="task").observe(len(ids))
    try:
        return sum(deliveries_attempt(request_ids=ids).values())
    except (OperationalError, InterfaceError) as exc:
        # The database is away (a restart): this task is its deliveries' queued one, so it must come
        # back itself; the dispatch sweep leaves a delivery with a queued task alone.
        raise self.retry(kwargs={"request_ids": ids}, countdown=DB_RETRY_DELAY_S, exc=exc) from exc


@shared_task(name=EXPIRE_OVERDUE_TASK)
def expire_overdue() -> int:
    """Beat: pending requests past their deadline (plus a grace for busy workers) → unknown/timeout."""
    return charging_requests_expire_overdue(grace=timedelta(seconds=settings.CHARGE_OVERDUE_GRACE_S))


@shared_task(name=REQUEUE_STALE_TASK)
def requeue_stale() -> int:
    """Beat: pending requests whose task was lost with a killed worker get another task.

    Only when the authorize queue is empty: with a backlog the pending rows' tasks are still queued,
    and sending them again would only add to the backlog.
    """
    if _queue_length(AUTHORIZE_QUEUE) > 0:
        return 0
    return charging_requests_requeue_stale(older_than=timedelta(seconds=settings.CHARGE_REQUEUE_AFTER_S))


@shared_task(name=DISPATCH_DUE_TASK)
def dispatch_due() -> int:
    """Beat: enqueue an attempt for every callback delivery whose next attempt is due."""
    return deliveries_dispatch_due(queue_empty=_queue_length(CALLBACKS_QUEUE) == 0)


@shared_task(name=PING_TASK)
def ping(*, nonce: str) -> None:
    """Record in Redis that a worker ran this task: how tests and operators see a live worker."""
    redis_client().set(f"charge:ping:{nonce}", socket.gethostname(), ex=300)
