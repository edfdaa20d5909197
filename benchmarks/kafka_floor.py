"""The Kafka floor: a bare produce → consume round trip on the stack's broker, nothing of ours between.

The producer is the api's (apps.charging.producer: acks=all, idempotence, the same linger and
timeouts), in this process; the consumer reads in a process of its own, with the bridge's fetch
setting (fetch_max_wait_ms=100) and the partitions assigned directly (no group protocol). Both
stamp time.monotonic() (one clock for every process on the machine), so a message's round trip is
its arrival at the consumer minus its send, and its ack latency the producer's callback minus its
send. Measured at a few fixed offered rates, then as fast as the producer takes messages (max rate).

Needs Django set up (the producer reads its settings); benchmarks/floors.py calls `round_trip`.
"""

# Django and the apps are imported inside functions: only after the environment is prepared.
# ruff: noqa: PLC0415

from __future__ import annotations

import functools
import multiprocessing
import time
import uuid
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from benchmarks import loadgen

# About a ChargeRequestV1's size on the wire (its JSON is ~330 bytes).
PAD = b"x" * 320
CONSUMER_FETCH_MAX_WAIT_MS = 100  # the bridge's (workers/bridge.py)
COLLECT_TIMEOUT_S = 30.0


def topic_create(*, bootstrap: Sequence[str], name: str, partitions: int) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=list(bootstrap), client_id="bench-floor-admin")
    try:
        admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1}}, wait_for_metadata=True
        )
    finally:
        admin.close()


def _consume(bootstrap: list[str], topic: str, partitions: int, conn: Connection) -> None:
    """The consumer process: records (index, arrival) of every message; hands them over when asked."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="bench-floor-consumer",
        enable_auto_commit=False,
        fetch_max_wait_ms=CONSUMER_FETCH_MAX_WAIT_MS,
        max_poll_records=500,
    )
    assigned = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(assigned)
    consumer.seek_to_end(*assigned)
    for tp in assigned:
        consumer.position(tp)  # resolves the end offsets now, before anything is sent
    conn.send("ready")
    received: list[tuple[int, float]] = []
    try:
        while True:
            batch = consumer.poll(timeout_ms=50)
            now = time.monotonic()
            for records in batch.values():
                received.extend((int(record.value.split(b"|", 1)[0]), now) for record in records)
            if conn.poll():
                if conn.recv() == "stop":
                    return
                conn.send(received)
                received = []
    finally:
        consumer.close()


class _RoundTrips:
    """The producer side: sends indexed messages, records send and ack times, collects arrivals."""

    def __init__(self, producer: Any, topic: str, conn: Connection) -> None:
        self.producer = producer
        self.topic = topic
        self.conn = conn
        self.sent: dict[int, float] = {}
        self.acked: dict[int, float] = {}
        self.arrived: dict[int, float] = {}
        self.next_index = 0
        keys = [str(uuid.UUID(int=(0xF1 << 120) | n)) for n in range(200)]
        self.keys = [key.encode() for key in keys]

    def _ack(self, index: int, error: object, message: object) -> None:
        if error is None:
            self.acked[index] = time.monotonic()

    def send(self, count: int, *, rate: float | None) -> list[int]:
        """`count` messages at `rate` per second (open loop), or back to back when rate is None."""
        first = self.next_index
        self.next_index += count
        t0 = time.monotonic() + 0.01
        for n in range(count):
            if rate is not None:
                delay = t0 + n / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            index = first + n
            self.sent[index] = time.monotonic()
            # The api's own producer (librdkafka); its thread serves the delivery reports.
            self.producer.producer.produce(
                self.topic,
                value=b"%d|" % index + PAD,
                key=self.keys[index % len(self.keys)],
                on_delivery=functools.partial(self._ack, index),
            )
        self.producer.producer.flush(COLLECT_TIMEOUT_S)
        return list(range(first, first + count))

    def collect(self, indexes: list[int]) -> int:
        """Wait until these arrived at the consumer (or the timeout); returns how many did."""
        deadline = time.monotonic() + COLLECT_TIMEOUT_S
        while time.monotonic() < deadline:
            self.conn.send("report")
            self.arrived.update(self.conn.recv())
            if all(i in self.arrived for i in indexes):
                break
            time.sleep(0.05)
        return sum(1 for i in indexes if i in self.arrived)

    def figures(self, indexes: list[int]) -> dict[str, Any]:
        trips = [self.arrived[i] - self.sent[i] for i in indexes if i in self.arrived]
        acks = [self.acked[i] - self.sent[i] for i in indexes if i in self.acked]
        return {
            "messages": len(indexes),
            "received": len(trips),
            "round_trip": loadgen.latency_summary_ms(trips),
            "ack": loadgen.latency_summary_ms(acks),
        }


def round_trip(
    *,
    rates: Sequence[int],
    duration_s: float,
    max_messages: int,
    topic: str,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Round trips at each offered rate for `duration_s`, then `max_messages` back to back."""
    from django.conf import settings

    from apps.charging.producer import RequestProducer

    bootstrap = list(settings.KAFKA_BOOTSTRAP_SERVERS)
    partitions = settings.CHARGE_TOPIC_PARTITIONS
    topic_create(bootstrap=bootstrap, name=topic, partitions=partitions)
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    consumer = spawn.Process(target=_consume, args=(bootstrap, topic, partitions, theirs), daemon=True)
    consumer.start()
    producer = None
    try:
        if not ours.poll(60) or ours.recv() != "ready":
            raise RuntimeError("the floor's Kafka consumer did not start")
        producer = RequestProducer()
        trips = _RoundTrips(producer, topic, ours)
        trips.collect(trips.send(20, rate=None))  # warm-up: connections, metadata, producer id
        at_rates = []
        for rate in rates:
            say(f"floor kafka: {rate}/s for {duration_s:g} s")
            indexes = trips.send(max(1, int(rate * duration_s)), rate=rate)
            trips.collect(indexes)
            figures = {"offered_per_s": rate, **trips.figures(indexes)}
            at_rates.append(figures)
            say(
                f"floor kafka: {rate}/s: round trip p50 {figures['round_trip']['p50_ms']} ms "
                f"p99 {figures['round_trip']['p99_ms']} ms, ack p99 {figures['ack']['p99_ms']} ms"
            )
        started = time.monotonic()
        indexes = trips.send(max_messages, rate=None)
        trips.collect(indexes)
        arrivals = [trips.arrived[i] for i in indexes if i in trips.arrived]
        span = (max(arrivals) - started) if arrivals else 0.0
        flood = {**trips.figures(indexes), "per_s": round(len(arrivals) / span, 1) if span else None}
        say(f"floor kafka: as fast as the producer takes them: {flood['per_s']} messages/s round trip")
    finally:
        if producer is not None:
            producer.close()
        if consumer.is_alive():
            ours.send("stop")
            consumer.join(timeout=10)
        if consumer.is_alive():
            consumer.terminate()
            consumer.join(timeout=5)
    return {
        "what": "produce → consume round trip on the stack's broker: the api's producer "
        "(apps.charging.producer settings), a consumer in its own process with the bridge's fetch "
        "wait and the partitions assigned; round trip = arrival at the consumer - send, ack = the "
        "producer's acknowledgement - send",
        "producer": {
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": settings.CHARGE_PRODUCER_LINGER_MS,
        },
        "consumer_fetch_max_wait_ms": CONSUMER_FETCH_MAX_WAIT_MS,
        "partitions": partitions,
        "message_bytes": len(PAD) + 6,
        "rates": at_rates,
        "max": flood,
    }
