"""The bridge: Kafka `charging_requests` → pending decision-log rows → batched Celery tasks.

Per polled batch: decode every message; store the valid ones as pending rows in one INSERT
(idempotent on request_id); set aside what cannot be stored (a malformed message, or one the
database refuses, found by halving the batch) to the dead-letter topic, logged as `invalid` where
it carries a request_id; publish one `charging.authorize` task per chunk of up to
CHARGE_AUTHORIZE_BATCH requests; only then commit the next offset of every partition in the batch.
A crash anywhere before the commit means the batch is read again, and every step above is safe to
repeat. A batch grows with the load by itself: a quiet poll holds one message, a busy one hundreds.

After Sentry's Arroyo: the signal handler only sets a flag; the loop finishes the batch in hand,
commits, then leaves the group. A failing step pauses the partitions and rewinds to the batch's
first offsets instead of sleeping, so the group keeps its heartbeats and nothing is skipped.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import structlog
from django.conf import settings
from django.db import close_old_connections
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import FencedInstanceIdError, KafkaError
from kafka.structs import OffsetAndMetadata

from apps.charging.messages import REQUEST_ID_HEADER, MalformedMessage, decode_v1, unstorable_message
from apps.charging.producer import WITHDRAWN_KEY
from apps.charging.services import (
    UNSTORABLE_ERRORS,
    Consumed,
    authorize_tasks_send,
    charging_request_store_invalid,
    charging_requests_store,
)
from apps.monitoring.exposition import multiprocess_dir
from apps.monitoring.metrics import (
    BRIDGE_BATCH_FAILURES,
    BRIDGE_BATCH_SIZE,
    BRIDGE_CONSUMER_LAG,
    BRIDGE_MESSAGES,
)
from project.kv import redis_client

logger = structlog.get_logger(__name__)

DLQ_ERROR_HEADER = "error"
RETRY_BACKOFF_S = (0.5, 1, 2, 5)
TOPIC_WAIT_S = 60.0
# A rebalance among live bridges takes well under a second; one that started after we owned
# partitions and is still open after this has hung (a fresh consumer waits out dead members itself).
REBALANCE_STALL_S = 3.0
ASSIGNMENT_STALL_S = 25.0  # well above a rejoin that waits out a dead member (a 6 s session)
# Consumer lag is read from the consumer's own fetch state at most this often.
LAG_INTERVAL_S = 1.0


def instance_id() -> str | None:
    """This bridge's static group member id (CHARGE_BRIDGE_INSTANCE_ID), or None for a dynamic member."""
    configured = settings.CHARGE_BRIDGE_INSTANCE_ID.strip()
    return configured.replace("{hostname}", socket.gethostname()) if configured else None


def _header_request_id(record: ConsumerRecord) -> str | None:
    """The request_id header the api sets on every message: readable even when the body is not."""
    for key, value in record.headers or []:
        if key == REQUEST_ID_HEADER and value:
            return bytes(value).decode(errors="replace")[:64]
    return None


@dataclass
class BatchOutcome:
    stored: int = 0
    invalid: int = 0
    dead_lettered: int = 0
    withdrawn: int = 0
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)


class _CommitBeforeRevoke(ConsumerRebalanceListener):
    """A rebalance commits what is done before the partitions go to another bridge."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:  # a rebalance after we owned partitions (a first join revokes nothing)
            self.bridge.rebalance_started = time.monotonic()
        self.bridge.commit_done()
        logger.info("partitions_revoked", partitions=sorted(str(tp) for tp in revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.bridge.rebalance_started = None
        logger.info("partitions_assigned", partitions=sorted(str(tp) for tp in assigned))


class Bridge:
    def __init__(self, *, max_records: int | None = None, poll_timeout_ms: int = 200) -> None:
        self.max_records = max_records or settings.CHARGE_BRIDGE_BATCH
        self.poll_timeout_ms = poll_timeout_ms
        self.stopping = False
        self.consumer: KafkaConsumer | None = None
        self.dlq_producer: KafkaProducer | None = None
        # Offsets processed but not yet committed (only between processing and commit).
        self._done: dict[TopicPartition, int] = {}
        self._failures = 0
        self._resume_at: float | None = None
        self._unassigned_since: float | None = None
        # Set by the rebalance listener between "revoked" and "assigned".
        self.rebalance_started: float | None = None
        self._lag_due = 0.0
        self._lag_partitions: set[str] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """Signal handler: only set the flag; the loop finishes the batch in hand."""
        self.stopping = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    @property
    def _consumer(self) -> KafkaConsumer:
        if self.consumer is None:
            raise RuntimeError("the bridge is not connected")
        return self.consumer

    @property
    def _dlq(self) -> KafkaProducer:
        if self.dlq_producer is None:
            raise RuntimeError("the bridge is not connected")
        return self.dlq_producer

    def connect(self) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            group_id=settings.CHARGE_BRIDGE_GROUP,
            client_id="charge-bridge",
            # We commit by hand, after the batch's rows and tasks are safe.
            enable_auto_commit=False,
            # A new group starts from the oldest message: nothing accepted before the bridge's first
            # start is skipped.
            auto_offset_reset="earliest",
            max_poll_records=self.max_records,
            # Return a fetch as soon as there is data; wait at most this long when there is none.
            fetch_max_wait_ms=100,
            # A bridge that died is noticed within the session and its partitions handed to another;
            # one restarted under the same instance id takes them back at once.
            group_instance_id=instance_id(),
            session_timeout_ms=settings.CHARGE_BRIDGE_SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=max(settings.CHARGE_BRIDGE_SESSION_TIMEOUT_MS // 3, 500),
            # Notice new partitions (scaling out, a topic created late) within seconds, not 5 minutes.
            metadata_max_age_ms=10_000,
        )
        self._topic_wait(settings.CHARGE_TOPIC, timeout_s=TOPIC_WAIT_S)
        self._consumer.subscribe([settings.CHARGE_TOPIC], listener=_CommitBeforeRevoke(self))
        self.dlq_producer = KafkaProducer(
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            client_id="charge-bridge-dlq",
            acks="all",
            enable_idempotence=True,
        )
        logger.info(
            "bridge_connected",
            topic=settings.CHARGE_TOPIC,
            group=settings.CHARGE_BRIDGE_GROUP,
            instance_id=instance_id(),
        )

    def _topic_wait(self, topic: str, *, timeout_s: float) -> None:
        """Subscribe only once the topic's partitions are in our metadata.

        A group joined before then is handed no partitions, and may not ask again for a long time.
        """
        deadline = time.monotonic() + timeout_s
        while not self._consumer.partitions_for_topic(topic):
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {topic!r} has no partitions; run `manage.py ensure_topics`")
            logger.info("topic_waiting", topic=topic)
            time.sleep(0.5)

    def run(self) -> None:
        """Consume until SIGTERM/SIGINT, then commit and leave the group."""
        if self.consumer is None:
            self.connect()
        try:
            while not self.stopping:
                self._resume_if_due()
                batch = self._consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.max_records)
                if batch:
                    self._handle_batch(batch)
                self._lag_observe()
                self._assignment_watch()
        except FencedInstanceIdError:
            logger.error(
                "bridge_fenced",
                instance_id=instance_id(),
                error="another bridge joined under this CHARGE_BRIDGE_INSTANCE_ID; each needs its own",
            )
            raise
        finally:
            self.commit_done()
            # A dynamic member leaves the group here, so another bridge gets the partitions at once; a
            # static one keeps them for its replacement (or until its session times out).
            self._consumer.close()
            if self.dlq_producer is not None:
                self.dlq_producer.close(timeout=5)
            logger.info("bridge_stopped")

    def _assignment_watch(self) -> None:
        """Rejoin with a fresh consumer when a rebalance or an empty assignment lasts ASSIGNMENT_STALL_S.

        kafka-python 3.0 can hang in a rebalance it started itself (seen right after a first
        assignment, and after broker or Redis restarts): partitions are revoked and never assigned
        again, so nothing is consumed. A new consumer joins the group cleanly. Run at most as many
        bridges as partitions, or the idle ones churn here.
        """
        now = time.monotonic()
        if self._consumer.assignment():
            self._unassigned_since = None
        elif self._unassigned_since is None:
            self._unassigned_since = now
        unassigned_s = now - self._unassigned_since if self._unassigned_since is not None else 0.0
        rebalance_s = now - self.rebalance_started if self.rebalance_started is not None else 0.0
        if unassigned_s < ASSIGNMENT_STALL_S and rebalance_s < REBALANCE_STALL_S:
            return
        logger.warning(
            "bridge_rejoining", unassigned_s=round(unassigned_s, 1), rebalance_s=round(rebalance_s, 1)
        )
        self.commit_done()
        # Bounded: a consumer stuck in a rebalance may not manage a clean leave.
        self._consumer.close(autocommit=False, timeout_ms=5_000)
        self.consumer = None
        if self.dlq_producer is not None:
            self.dlq_producer.close(timeout=5)
            self.dlq_producer = None
        self._unassigned_since = None
        self.rebalance_started = None
        self.connect()

    # -- one batch ----------------------------------------------------------------------------

    def _handle_batch(self, batch: Mapping[TopicPartition, Sequence[ConsumerRecord]]) -> None:
        started = time.monotonic()
        try:
            outcome = self.process(batch)
        except Exception as exc:  # noqa: BLE001 - any failure: rewind, pause, retry the same batch
            BRIDGE_BATCH_FAILURES.inc()
            self._rewind(batch, exc)
            return
        self._done.update(outcome.next_offsets)
        self.commit_done()
        self._failures = 0
        BRIDGE_BATCH_SIZE.observe(sum(len(records) for records in batch.values()))
        BRIDGE_MESSAGES.labels(outcome="stored").inc(outcome.stored)
        BRIDGE_MESSAGES.labels(outcome="dead_lettered").inc(outcome.dead_lettered)
        BRIDGE_MESSAGES.labels(outcome="invalid").inc(outcome.invalid)
        logger.info(
            "batch_done",
            stored=outcome.stored,
            invalid=outcome.invalid,
            dead_lettered=outcome.dead_lettered,
            ms=round((time.monotonic() - started) * 1000, 1),
        )

    def process(self, batch: Mapping[TopicPartition, Sequence[ConsumerRecord]]) -> BatchOutcome:
        """Store, dead-letter and publish one batch. Raises if any step failed; commits nothing."""
        close_old_connections()
        outcome = BatchOutcome()
        consumed: list[Consumed] = []
        malformed: list[tuple[ConsumerRecord, MalformedMessage]] = []
        records_by_offset: dict[tuple[int, int], ConsumerRecord] = {}
        for tp, records in batch.items():
            for record in records:
                try:
                    message = decode_v1(record.value)
                except MalformedMessage as exc:
                    malformed.append((record, exc))
                else:
                    consumed.append(
                        Consumed(message=message, partition=record.partition, offset=record.offset)
                    )
                    records_by_offset[(record.partition, record.offset)] = record
            outcome.next_offsets[tp] = records[-1].offset + 1

        consumed = self._without_withdrawn(consumed, outcome)
        if consumed:
            for item, error in self._store(consumed):
                # A message that decodes but cannot be stored (the database refuses one of its
                # values): it must not hold its partition, so it is set aside like a malformed one.
                consumed.remove(item)
                record = records_by_offset[(item.partition, item.offset)]
                malformed.append((record, unstorable_message(item.message, error)))
            outcome.stored = len(consumed)
        for record, error in malformed:
            self._dead_letter(record, error)
            outcome.dead_lettered += 1
            try:
                logged = charging_request_store_invalid(
                    error=error, partition=record.partition, offset=record.offset
                )
            except UNSTORABLE_ERRORS as exc:
                # Dead-lettered with its reason already; not even a row of what it carried fits.
                logger.warning("invalid_row_refused", offset=record.offset, error=repr(exc)[:300])
                logged = False
            outcome.invalid += int(logged)
        if consumed:
            authorize_tasks_send(request_ids=[item.message.request_id for item in consumed])
            # One line per batch, with its ids, so a grep for a request_id finds the bridge too.
            logger.info(
                "requests_bridged",
                count=len(consumed),
                request_ids=[str(item.message.request_id) for item in consumed],
            )
        return outcome

    def _store(self, consumed: list[Consumed]) -> list[tuple[Consumed, Exception]]:
        """Store pending rows; returns the messages the database refuses, each found by halving the batch.

        The whole batch is one INSERT. Should it fail on the data (not on a database that is away,
        which is raised and retried), the batch is split in two and each half tried again, down to
        the single messages that fail on their own: the rest are stored, in about log2(n) tries
        per bad message.
        """
        try:
            charging_requests_store(consumed=consumed)
        except UNSTORABLE_ERRORS as exc:
            if len(consumed) == 1:
                return [(consumed[0], exc)]
            middle = len(consumed) // 2
            return self._store(consumed[:middle]) + self._store(consumed[middle:])
        return []

    @staticmethod
    def _without_withdrawn(consumed: list[Consumed], outcome: BatchOutcome) -> list[Consumed]:
        """Drop requests whose caller was answered `failed`/503 (see producer.request_withdraw)."""
        if not consumed:
            return consumed
        keys = [WITHDRAWN_KEY.format(c.message.request_id) for c in consumed]
        flags = redis_client().mget(keys)
        kept = [c for c, flag in zip(consumed, flags, strict=True) if flag is None]
        outcome.withdrawn = len(consumed) - len(kept)
        if outcome.withdrawn:
            logger.warning("withdrawn_requests_skipped", count=outcome.withdrawn)
        return kept

    def _dead_letter(self, record: ConsumerRecord, error: MalformedMessage) -> None:
        headers = list(record.headers or [])
        headers += [
            (DLQ_ERROR_HEADER, error.error.encode()[:1000]),
            ("reason", error.reason.value.encode()),
            ("source_partition", str(record.partition).encode()),
            ("source_offset", str(record.offset).encode()),
        ]
        future = self._dlq.send(
            settings.CHARGE_DLQ_TOPIC, value=record.value, key=record.key, headers=headers
        )
        future.get(timeout=10)
        logger.warning(
            "message_dead_lettered",
            request_id=str(error.salvage.get("request_id", "")) or _header_request_id(record),
            partition=record.partition,
            offset=record.offset,
            error=error.error,
        )

    # -- offsets -------------------------------------------------------------------------------

    def commit_done(self) -> None:
        if not self._done or self.consumer is None:
            return
        offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in self._done.items()}
        self._done.clear()
        try:
            self._consumer.commit(offsets=offsets)
        except KafkaError as exc:
            # Not fatal: the batch is read again (by us or by the partitions' new owner) and every
            # step of it is idempotent.
            logger.warning("commit_failed", error=repr(exc))

    def _rewind(self, batch: Mapping[TopicPartition, Sequence[ConsumerRecord]], exc: Exception) -> None:
        """Seek back to the batch's first offsets and pause until a backoff has passed."""
        for tp, records in batch.items():
            self._consumer.seek(tp, records[0].offset)
        backoff = RETRY_BACKOFF_S[min(self._failures, len(RETRY_BACKOFF_S) - 1)]
        self._failures += 1
        self._consumer.pause(*batch.keys())
        self._resume_at = time.monotonic() + backoff
        logger.error("batch_failed", error=repr(exc), retry_in_s=backoff, failures=self._failures)

    def _lag_observe(self) -> None:
        """Per assigned partition: high watermark minus position, from the consumer's fetch state."""
        now = time.monotonic()
        if now < self._lag_due or self.consumer is None:
            return
        self._lag_due = now + LAG_INTERVAL_S
        seen: set[str] = set()
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue  # nothing fetched from it yet
            try:
                position = self.consumer.position(tp, timeout_ms=0)
            except KafkaError:
                continue  # revoked in between: its new owner reports it
            if position is not None:
                BRIDGE_CONSUMER_LAG.labels(partition=str(tp.partition)).set(max(highwater - position, 0))
                seen.add(str(tp.partition))
        if not multiprocess_dir():  # (multiprocess mode cannot remove series)
            for partition in self._lag_partitions - seen:
                BRIDGE_CONSUMER_LAG.remove(partition)
        self._lag_partitions = seen

    def _resume_if_due(self) -> None:
        if self._resume_at is not None and time.monotonic() >= self._resume_at and self.consumer is not None:
            self._consumer.resume(*self._consumer.paused())
            self._resume_at = None
