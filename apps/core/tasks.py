"""The Celery task and queue names, defined once: the tasks, their senders, the routes, beat, and
every reader of a queue's length use these. Plain constants (the settings import them too)."""

from __future__ import annotations

from collections.abc import Sequence

import redis

AUTHORIZE_QUEUE = "authorize"
CALLBACKS_QUEUE = "callbacks"
QUEUES = (AUTHORIZE_QUEUE, CALLBACKS_QUEUE)

AUTHORIZE_TASK = "charging.authorize"
DELIVER_TASK = "callbacks.deliver"
EXPIRE_OVERDUE_TASK = "charging.expire_overdue"
REQUEUE_STALE_TASK = "charging.requeue_stale"
DISPATCH_DUE_TASK = "callbacks.dispatch_due"
PING_TASK = "ops.ping"
# The beat-driven sweeps; each returns how many rows it handled.
SWEEP_TASKS = frozenset({EXPIRE_OVERDUE_TASK, REQUEUE_STALE_TASK, DISPATCH_DUE_TASK})


def queue_lengths(broker: redis.Redis, queues: Sequence[str] = QUEUES) -> dict[str, int]:
    """Tasks waiting in each Celery queue on a Redis broker (kombu keeps a queue as a list named
    after it), read in one round trip."""
    with broker.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.llen(queue)
        return dict(zip(queues, (int(n) for n in pipe.execute()), strict=True))
