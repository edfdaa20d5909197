"""The Kafka producer of accepted charging requests: one per process, created lazily after fork.

librdkafka (confluent-kafka): its C client costs ~0.1-0.2 ms of CPU per acknowledged message here
where kafka-python's sender thread took ~1 ms (README "Benchmarks"), and the api pays it on every
accepted request. acks=all with idempotence, so "accepted" means every in-sync replica has the
message. Every wait is bounded by CHARGE_PRODUCE_TIMEOUT_S, so a down or slow broker gives the
caller a quick `failed`/503 instead of a hang, and the message expires inside the producer at the
same moment (message.timeout.ms), so a request we answered `failed` is not delivered later behind
the caller's back.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

import structlog
from confluent_kafka import KafkaError, Message, Producer
from django.conf import settings
from redis import RedisError

from apps.charging.messages import ChargeRequestV1
from apps.core.kv import redis_client
from apps.core.process import PerProcess
from apps.monitoring.metrics import KAFKA_PRODUCE_FAILURES, KAFKA_PRODUCE_SECONDS

logger = structlog.get_logger(__name__)

# After a failure, requests within this window are refused at once instead of each waiting out the
# timeout: while the broker is down every api thread would otherwise be held ~1.5 s per request, and
# the queue in front of the api would grow until callers time out without any answer.
_BROKER_DOWN_WINDOW_S = 1.0
_broker_down_until = 0.0


class ProduceFailed(Exception):
    """The broker did not acknowledge the message in time."""


@dataclass
class _Delivery:
    """One message waiting for the broker: the poll thread fills it in and wakes the request thread."""

    done: threading.Event = field(default_factory=threading.Event)
    error: KafkaError | None = None
    partition: int = -1
    offset: int = -1

    def report(self, error: KafkaError | None, message: Message) -> None:
        self.error = error
        if error is None:
            self.partition, self.offset = message.partition() or 0, message.offset() or 0
        self.done.set()


class RequestProducer:
    """librdkafka's producer and the thread that serves its delivery reports."""

    def __init__(self) -> None:
        timeout_ms = int(settings.CHARGE_PRODUCE_TIMEOUT_S * 1000)
        self.pid = os.getpid()
        self.producer = Producer(
            {
                "bootstrap.servers": ",".join(settings.KAFKA_BOOTSTRAP_SERVERS),
                "client.id": f"charge-api-{self.pid}",
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": settings.CHARGE_PRODUCER_LINGER_MS,
                "max.in.flight.requests.per.connection": settings.CHARGE_PRODUCER_MAX_IN_FLIGHT,
                # A message not acknowledged by then is failed by the producer itself, at the moment
                # the caller is told `failed`: it is never sent later.
                "message.timeout.ms": timeout_ms,
                "request.timeout.ms": max(timeout_ms - settings.CHARGE_PRODUCER_LINGER_MS - 50, 200),
                # Reconnect quickly after a broker restart.
                "reconnect.backoff.max.ms": 1000,
                # librdkafka's own lines (every refused connection while a broker restarts) go to the
                # "kafka" logger, quiet by default (settings.LOGGING); ours log what matters.
                "logger": logging.getLogger("kafka.librdkafka"),
            }
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kafka-delivery", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # poll() runs the delivery callbacks; it returns as soon as there are some.
        while not self._stop.is_set():
            self.producer.poll(0.1)

    def close(self) -> None:
        self._stop.set()
        self.producer.purge()
        self.producer.flush(0)


# This process's producer. A forked child (an api worker, a prefork child) never reuses its parent's.
_producer: PerProcess[RequestProducer] = PerProcess(RequestProducer)


def producer_get() -> RequestProducer:
    """This process's producer, built on first use."""
    return _producer.get()


def _broker_down_mark() -> None:
    global _broker_down_until  # noqa: PLW0603
    _broker_down_until = time.monotonic() + _BROKER_DOWN_WINDOW_S


def producer_reset() -> None:
    """Drop this process's producer (its settings changed, as in tests); the next request builds one."""
    global _broker_down_until  # noqa: PLW0603
    producer = _producer.take()
    # A new producer (new settings) owes nothing to the old one's failures.
    _broker_down_until = 0.0
    if producer is not None:
        producer.close()


def _failed(message: ChargeRequestV1, error: str, reason: str) -> ProduceFailed:
    KAFKA_PRODUCE_FAILURES.labels(error=error).inc()
    logger.warning("produce_failed", request_id=str(message.request_id), error=reason)
    request_withdraw(request_id=str(message.request_id))
    _broker_down_mark()
    return ProduceFailed(reason)


def request_produce(*, message: ChargeRequestV1) -> tuple[int, int]:
    """Send one request and wait for the broker's acknowledgement; returns (partition, offset)."""
    if time.monotonic() < _broker_down_until:
        raise ProduceFailed("the broker did not answer a moment ago; not trying again yet")
    started = time.perf_counter()
    delivery = _Delivery()
    headers: list[tuple[str, str | bytes | None]] = list(message.headers())
    try:
        producer_get().producer.produce(
            settings.CHARGE_TOPIC,
            value=message.to_json(),
            key=message.station_id.encode(),
            headers=headers,
            on_delivery=delivery.report,
        )
    except BufferError as exc:  # the producer's queue is full: the broker has been away a while
        raise _failed(message, "QueueFull", repr(exc)) from exc
    if not delivery.done.wait(settings.CHARGE_PRODUCE_TIMEOUT_S + 0.25):
        raise _failed(message, "Timeout", "no delivery report in time")
    if delivery.error is not None:
        raise _failed(message, delivery.error.name(), delivery.error.str())
    KAFKA_PRODUCE_SECONDS.observe(time.perf_counter() - started)
    return delivery.partition, delivery.offset


WITHDRAWN_KEY = "charge:withdrawn:{}"
WITHDRAWN_TTL_S = 7 * 24 * 3600


def request_withdraw(*, request_id: str) -> None:
    """Record that the caller was told `failed`/503 for this request.

    A timed-out send is not always an unsent one: the broker may have written the message and died
    before acknowledging it. The bridge skips withdrawn request ids, so a request we answered
    `failed` never gets a decision behind the caller's back. (A message the bridge reads before the
    timeout fires, on a broker that is slow rather than down, is the remaining window.)
    """
    try:
        redis_client().set(WITHDRAWN_KEY.format(request_id), 1, ex=WITHDRAWN_TTL_S)
    except RedisError as exc:
        logger.error("withdraw_failed", request_id=request_id, error=repr(exc))
