"""The deliver tasks of the api's synchronous decisions, published a batch at a time.

A synchronous route (/api/checkauthority/ with a callback_url) answers its caller with the decision
itself; the callback is the copy for the caller's system. Publishing a callbacks.deliver task per
request cost the api a send_task (~0.75 ms) and the callbacks worker a Celery task per callback
(~3 ms, README "Benchmarks"). Here the request thread hands its committed delivery to this
process's publisher and answers; the publisher's thread sends what gathered within
CHARGE_CALLBACK_PUBLISH_LINGER_MS, or CHARGE_CALLBACK_BATCH deliveries if that comes first, as one
task per receiver (deliveries_send), so a callback leaves at most the linger later.

Nothing is lost when the process dies first: the rows were committed marked queued, and the
dispatch sweep sends such a delivery once the callbacks queue is empty and it has waited
CHARGE_CALLBACK_REDISPATCH_IDLE_S (docs/operations.md). A process that stops publishes what it holds.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Sequence

from django.conf import settings
from django.db import connection

from apps.callbacks.services import DueDelivery, deliveries_send
from apps.core.process import PerProcess


class DeliveryPublisher:
    """A buffer of committed deliveries and the thread that publishes it."""

    def __init__(self, *, linger_s: float) -> None:
        self.linger_s = linger_s
        self._due: list[DueDelivery] = []
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._serve, name="callback-publisher", daemon=True)
        self._thread.start()

    def submit(self, due: Sequence[DueDelivery]) -> None:
        with self._ready:
            self._due.extend(due)
            self._ready.notify()

    def pending(self) -> int:
        with self._ready:
            return len(self._due)

    def flush(self) -> int:
        """Publish what is buffered now; returns how many deliveries were taken."""
        with self._ready:
            due, self._due = self._due, []
        if not due:
            return 0
        try:
            deliveries_send(due=due, marked=True)
        finally:
            # deliveries_send writes only when the broker refused (it unmarks those rows); this
            # thread's connection is not kept between batches.
            connection.close()
        return len(due)

    def _serve(self) -> None:
        batch = settings.CHARGE_CALLBACK_BATCH
        while True:
            with self._ready:
                while not self._due:
                    self._ready.wait()
                # The requests of the linger join this batch, unless it is full before.
                until = time.monotonic() + self.linger_s
                while len(self._due) < batch and (left := until - time.monotonic()) > 0:
                    self._ready.wait(left)
            self.flush()


def _publisher_start() -> DeliveryPublisher:
    started = DeliveryPublisher(linger_s=settings.CHARGE_CALLBACK_PUBLISH_LINGER_MS / 1000)
    atexit.register(started.flush)
    return started


# This process's publisher, created on first use (a forked child never shares its parent's).
_publisher: PerProcess[DeliveryPublisher] = PerProcess(_publisher_start)


def delivery_publisher() -> DeliveryPublisher:
    return _publisher.get()


def deliveries_publish_soon(due: Sequence[DueDelivery]) -> None:
    """Hand committed deliveries to this process's publisher (at once with a linger of 0)."""
    if settings.CHARGE_CALLBACK_PUBLISH_LINGER_MS <= 0:
        deliveries_send(due=due, marked=True)
        return
    delivery_publisher().submit(due)
