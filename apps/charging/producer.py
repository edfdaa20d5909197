"""The Kafka producer of accepted charging requests: one per process, created lazily after fork.

acks=all with idempotence, so "accepted" means every in-sync replica has the message. Every wait is
bounded by CHARGE_PRODUCE_TIMEOUT_S, so a down or slow broker gives the caller a quick `failed`/503
instead of a hang, and the record expires inside the producer at the same moment, so a request we
answered `failed` is not delivered later behind the caller's back.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import structlog
from django.conf import settings
from kafka import KafkaProducer
from kafka.errors import KafkaError
from redis import RedisError

from apps.charging.messages import ChargeRequestV1
from apps.monitoring.metrics import KAFKA_PRODUCE_FAILURES, KAFKA_PRODUCE_SECONDS
from project.kv import redis_client

logger = structlog.get_logger(__name__)

_lock = threading.Lock()
_producer: KafkaProducer | None = None
_producer_pid: int | None = None
# After a failure, requests within this window are refused at once instead of each waiting out the
# timeout: while the broker is down every api thread would otherwise be held ~1.5 s per request, and
# the queue in front of the api would grow until callers time out without any answer.
_BROKER_DOWN_WINDOW_S = 1.0
_broker_down_until = 0.0


class ProduceFailed(Exception):
    """The broker did not acknowledge the message in time."""


def _producer_create() -> KafkaProducer:
    timeout_ms = int(settings.CHARGE_PRODUCE_TIMEOUT_S * 1000)
    linger_ms = settings.CHARGE_PRODUCER_LINGER_MS
    return KafkaProducer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        client_id=f"charge-api-{os.getpid()}",
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        # The three bounds below keep every path of send() within the caller's timeout.
        max_block_ms=timeout_ms,
        request_timeout_ms=max(timeout_ms - linger_ms - 50, 200),
        delivery_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
        # Topics are created by `ensure_topics`, never by a typo in a setting.
        allow_auto_create_topics=False,
        # Reconnect quickly after a broker restart.
        reconnect_backoff_max_ms=1000,
    )


def producer_get() -> KafkaProducer:
    """This process's producer. A forked child (gunicorn worker) never reuses its parent's sockets."""
    global _producer, _producer_pid  # noqa: PLW0603 - the per-process singleton is the point
    pid = os.getpid()
    if _producer is not None and _producer_pid == pid:
        return _producer
    with _lock:
        # Threads that queued on the lock behind a failed creation must not each try again.
        if time.monotonic() < _broker_down_until:
            raise ProduceFailed("the broker did not answer a moment ago; not trying again yet")
        if _producer is None or _producer_pid != pid:
            try:
                _producer = _producer_create()
            except KafkaError:
                _broker_down_mark()  # before the lock is released to the threads waiting on it
                raise
            _producer_pid = pid
        return _producer


def _broker_down_mark() -> None:
    global _broker_down_until  # noqa: PLW0603
    _broker_down_until = time.monotonic() + _BROKER_DOWN_WINDOW_S


def producer_reset() -> None:
    """Drop the producer after a failure; the next request builds a fresh one."""
    global _producer
    with _lock:
        producer, _producer = _producer, None
    if producer is not None:
        with contextlib.suppress(Exception):
            producer.close(timeout=0)


def request_produce(*, message: ChargeRequestV1) -> tuple[int, int]:
    """Send one request and wait for the broker's acknowledgement; returns (partition, offset)."""
    started = time.perf_counter()
    try:
        producer = producer_get()
        future = producer.send(
            settings.CHARGE_TOPIC,
            value=message.to_json(),
            key=message.station_id.encode(),
            headers=message.headers(),
        )
        metadata = future.get(timeout=settings.CHARGE_PRODUCE_TIMEOUT_S + 0.25)
    except KafkaError as exc:
        KAFKA_PRODUCE_FAILURES.labels(error=type(exc).__name__).inc()
        logger.warning("produce_failed", request_id=str(message.request_id), error=repr(exc))
        request_withdraw(request_id=str(message.request_id))
        _broker_down_mark()
        producer_reset()
        raise ProduceFailed(str(exc)) from exc
    KAFKA_PRODUCE_SECONDS.observe(time.perf_counter() - started)
    return int(metadata.partition), int(metadata.offset)


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
