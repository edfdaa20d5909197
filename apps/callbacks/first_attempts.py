"""First attempts of callbacks made in the process that decided them, beside its main loop.

The bridge decides most requests itself (CHARGE_BRIDGE_DECIDES). Handing each decided batch's
deliveries to a callbacks.deliver task cost a send_task in the bridge, a Celery task in the callbacks
worker (its pool, events for Flower, the ack) and a queue hop: about 3.5 ms of CPU and a few ms of
latency per batch at 100 requests/s, more than the POST itself (README "Benchmarks"). Here the
bridge's own threads make the first attempt with the same service (concurrent POSTs, attempts and
states in bulk, retries queued as deliver tasks), while its loop goes on polling. The callbacks
worker keeps everything after the first attempt: retries, the sweeps, the operator's redeliver,
and any batch this process has no room for.

The rows are born claimed (services.delivery_rows): stored with the lease a worker's claim would
give them, so the attempt needs no claim statement of its own and no worker takes them meanwhile.
Nothing is lost when the process dies: once the lease has passed (CHARGE_CALLBACK_CLAIM_LEASE_S)
they are due and unqueued, and the dispatch sweep sends them. One receiver that hangs holds at
most all threads but one here (each attempt bounded by the POST timeouts); whatever finds no room,
or whose attempt fails here, is made due at once and goes to the callbacks queue.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Sequence

import structlog
from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from apps.callbacks.services import (
    ClaimedDelivery,
    DueDelivery,
    deliveries_attempt_claimed,
    deliveries_send,
    deliveries_unclaim,
    receiver_of,
)
from apps.monitoring.metrics import CALLBACK_BATCH_SIZE

logger = structlog.get_logger(__name__)

Receiver = tuple[str, str, int]


class FirstAttempts:
    """A few threads that make the first attempt of committed deliveries born claimed."""

    def __init__(self, *, threads: int, by: str) -> None:
        self.threads = max(threads, 1)
        # One receiver may hold all threads but one, so another receiver always finds one.
        self.per_receiver = max(self.threads - 1, 1)
        self.by = by
        self._lock = threading.Lock()
        self._running = 0
        self._by_receiver: Counter[Receiver] = Counter()
        self._closed = False
        # Work is only queued for a thread that is free (see _take), so this never holds a backlog.
        self._work: queue.SimpleQueue[tuple[Receiver, Sequence[ClaimedDelivery]] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"first-attempts-{by}-{n}", daemon=True)
            for n in range(self.threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, claimed: Sequence[ClaimedDelivery]) -> None:
        """Attempt these (committed, born claimed) deliveries here where a thread is free, else
        queue their tasks. Never raises: what cannot be handed on at all waits out its lease."""
        groups: dict[Receiver, list[ClaimedDelivery]] = {}
        for item in claimed:
            groups.setdefault(receiver_of(item.url), []).append(item)
        elsewhere: list[ClaimedDelivery] = []
        for receiver, group in groups.items():
            for start in range(0, len(group), settings.CHARGE_CALLBACK_BATCH):
                chunk = group[start : start + settings.CHARGE_CALLBACK_BATCH]
                if self._take(receiver):
                    self._work.put((receiver, chunk))
                else:
                    elsewhere.extend(chunk)
        if elsewhere:
            self._hand_on(elsewhere)

    def _take(self, receiver: Receiver) -> bool:
        with self._lock:
            full = self._running >= self.threads or self._by_receiver[receiver] >= self.per_receiver
            if self._closed or full:
                return False
            self._running += 1
            self._by_receiver[receiver] += 1
            return True

    def _release(self, receiver: Receiver) -> None:
        with self._lock:
            self._running -= 1
            self._by_receiver[receiver] -= 1
            if self._by_receiver[receiver] <= 0:
                del self._by_receiver[receiver]

    def _serve(self) -> None:
        while (work := self._work.get()) is not None:
            self._attempt(*work)
        # This thread's database connection, kept between batches, goes with it.
        connections.close_all()

    def _attempt(self, receiver: Receiver, chunk: Sequence[ClaimedDelivery]) -> None:
        # This thread's database connection is kept between batches, as a worker's is between tasks;
        # one a database restart broke is dropped first.
        close_old_connections()
        try:
            CALLBACK_BATCH_SIZE.labels(by=self.by).observe(len(chunk))
            deliveries_attempt_claimed(claimed=chunk)
        except Exception as exc:  # noqa: BLE001 - a callbacks worker makes the attempt instead
            logger.warning("first_attempts_failed", count=len(chunk), error=repr(exc)[:300])
            close_old_connections()
            self._hand_on(chunk)
        finally:
            self._release(receiver)

    @staticmethod
    def _hand_on(claimed: Sequence[ClaimedDelivery]) -> None:
        """Make them due and queue deliver tasks for them (marked once published); should the
        database or the broker be away, the sweep sends them once due (at the latest when the
        lease they were born with has passed)."""
        try:
            deliveries_unclaim(request_ids=[item.request_id for item in claimed])
            deliveries_send(due=[DueDelivery(item.request_id, item.url, timezone.now()) for item in claimed])
        except Exception as exc:  # noqa: BLE001 - the database is away: the sweep sends them later
            logger.warning("first_attempts_unsent", count=len(claimed), error=repr(exc)[:300])

    def running(self) -> int:
        with self._lock:
            return self._running

    def close(self) -> None:
        """Wait for the attempts under way (each bounded by the POST timeouts); then the threads end.
        What is submitted afterwards goes to deliver tasks."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for _ in self._threads:
            self._work.put(None)
        for thread in self._threads:
            thread.join()
