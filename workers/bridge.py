"""The bridge: Kafka `charging_requests` → decided rows of the decision log → callback tasks.

Per polled batch: decode every message; store the valid ones, chunk by chunk of up to
CHARGE_AUTHORIZE_BATCH, with their decisions (CHARGE_BRIDGE_DECIDES, the default: one ACL read,
one INSERT idempotent on request_id, one of the deliveries; on commit the bridge's own threads
make each callback's first attempt, CHARGE_BRIDGE_CALLBACK_THREADS, and retries are tasks), or
as pending rows with one `charging.authorize` task per chunk (the setting off, or a chunk that
could not be decided here); set aside what cannot be stored (a malformed message, or one the
database refuses, found by halving the batch) to the dead-letter topic, logged as `invalid` where
it carries a request_id; only then commit the next offset of every partition in the batch.
A crash anywhere before the commit means the batch is read again, and every step above is safe to
repeat. A batch grows with the load by itself: a quiet poll holds one message, a busy one hundreds.

After Sentry's Arroyo: the signal handler only sets a flag; the loop finishes the batch in hand,
commits, then leaves the group. A failing step pauses the partitions and rewinds to the batch's
first offsets instead of sleeping, so the group keeps its heartbeats and nothing is skipped.

librdkafka (confluent-kafka) consumes: a poll returns what its fetcher has already buffered, and a
commit does not stall the loop (it is sent asynchronously once the batch is safe; a rebalance or a
stop commits synchronously). kafka-python's consumer spent ~7 ms in each poll and ~9 ms in each
commit here, most of a quiet batch's time (README "Benchmarks").
"""

from __future__ import annotations

import logging
import signal
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

import redis
import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections
from redis import RedisError

from apps.callbacks.first_attempts import FirstAttempts
from apps.charging.messages import MalformedMessage, decode_v1, unstorable_message
from apps.charging.producer import WITHDRAWN_KEY
from apps.charging.services import (
    UNSTORABLE_ERRORS,
    Consumed,
    authorize_tasks_send,
    charging_request_store_invalid,
    charging_requests_decide,
    charging_requests_store,
    charging_requests_store_decided,
    chunks_of,
)
from apps.core.kv import redis_client
from apps.core.tasks import queue_lengths
from apps.monitoring.metrics import (
    BRIDGE_BATCH_FAILURES,
    BRIDGE_BATCH_SIZE,
    BRIDGE_MESSAGES,
    DECISION_BATCH_SIZE,
)
from workers.consumer_lag import LAG_INTERVAL_S, ConsumerLag
from workers.dead_letters import DeadLetters

logger = structlog.get_logger(__name__)

RETRY_BACKOFF_S = (0.5, 1, 2, 5)
TOPIC_WAIT_S = 60.0
# Done batches are committed at most this often (and at once on a rebalance or a stop): a commit is
# a write to the broker's offsets log, once per quiet batch it was a good share of the broker's CPU.
# A crash re-reads at most this much more, which every step of a batch makes harmless.
COMMIT_INTERVAL_S = 0.5
# How often the backpressure wait looks at the authorize queue again.
BACKPRESSURE_POLL_S = 0.01
# Queues found empty are taken as empty this long: under a steady load that is most batches, and
# asking Redis after each was a round trip per batch for nothing.
QUEUES_EMPTY_TRUST_S = 0.05
# A database that is away: the batch is read again, never set aside or handed on.
DATABASE_AWAY = (OperationalError, InterfaceError)
# Consumer lag comes with librdkafka's statistics this often.

Batch = dict[int, list[Message]]  # partition → its messages of one poll, in offset order


def error_is_fatal(error: KafkaError) -> bool:
    """Whether the consumer is done for. librdkafka hands a fatal error to poll() as a message whose
    code is _FATAL and whose fatal() is False (seen when a Kafka restart fenced our static member),
    so both are checked: a bridge that only logged it stayed up with no partitions, deciding nothing."""
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


def instance_id() -> str | None:
    """This bridge's static group member id (CHARGE_BRIDGE_INSTANCE_ID), or None for a dynamic member."""
    configured = settings.CHARGE_BRIDGE_INSTANCE_ID.strip()
    return configured.replace("{hostname}", socket.gethostname()) if configured else None


def _partitions_text(partitions: Sequence[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)


@dataclass
class BatchOutcome:
    stored: int = 0
    invalid: int = 0
    dead_lettered: int = 0
    withdrawn: int = 0
    next_offsets: dict[int, int] = field(default_factory=dict)


class Bridge:
    def __init__(self, *, max_records: int | None = None, poll_timeout_s: float = 0.2) -> None:
        self.max_records = max_records or settings.CHARGE_BRIDGE_BATCH
        self.poll_timeout_s = poll_timeout_s
        self.topic = settings.CHARGE_TOPIC
        self.stopping = False
        self.consumer: Consumer | None = None
        self.dead_letters = DeadLetters()
        # Offsets processed but not yet committed (only between processing and commit).
        self._done: dict[int, int] = {}
        self._failures = 0
        self._paused: list[TopicPartition] = []
        self._resume_at: float | None = None
        self._assigned: set[int] = set()
        self._lag = ConsumerLag(self.topic)
        self._commit_due = 0.0
        self._queues_empty_until = 0.0
        # The Celery broker's Redis (its queue lengths), which need not be REDIS_URL's.
        self._broker = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=1)
        # The first attempt of each callback it decided, made beside the loop (none: deliver tasks).
        threads = settings.CHARGE_BRIDGE_CALLBACK_THREADS
        self.first_attempts = FirstAttempts(threads=threads, by="bridge") if threads > 0 else None

    # -- lifecycle -----------------------------------------------------------------------------

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """Signal handler: only set the flag; the loop finishes the batch in hand."""
        self.stopping = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    @property
    def _consumer(self) -> Consumer:
        if self.consumer is None:
            raise RuntimeError("the bridge is not connected")
        return self.consumer

    def connect(self) -> None:
        session_ms = settings.CHARGE_BRIDGE_SESSION_TIMEOUT_MS
        config: dict[str, object] = {
            "bootstrap.servers": ",".join(settings.KAFKA_BOOTSTRAP_SERVERS),
            "group.id": settings.CHARGE_BRIDGE_GROUP,
            "client.id": "charge-bridge",
            # We commit by hand, after the batch's rows and tasks are safe.
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # A new group starts from the oldest message: nothing accepted before the bridge's first
            # start is skipped.
            "auto.offset.reset": "earliest",
            # A bridge that died is noticed within the session and its partitions handed to another;
            # one restarted under the same instance id takes them back at once.
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(session_ms // 3, 500),
            # The broker answers a fetch as soon as it holds a message for us (min 1 byte), else after
            # the wait (100 ms: an idle bridge's fetches are few). Waiting broker-side for more (8 KiB
            # or 10 ms, the earlier default) made every quiet message wait ~5 ms; under load the
            # bridge gathers its batches itself instead (CHARGE_BRIDGE_BUSY_LINGER_MS, in _poll).
            "fetch.min.bytes": settings.CHARGE_BRIDGE_FETCH_MIN_BYTES,
            "fetch.wait.max.ms": settings.CHARGE_BRIDGE_FETCH_WAIT_MS,
            # Notice new partitions (scaling out, a topic created late) within seconds, not 5 minutes.
            "topic.metadata.refresh.interval.ms": 10_000,
            "on_commit": self._on_commit,
            # Consumer lag per partition, for the metrics (served from within poll()).
            "statistics.interval.ms": int(LAG_INTERVAL_S * 1000),
            "stats_cb": lambda stats: self._lag.observe(stats, assigned=self._assigned),
            "logger": logging.getLogger("kafka.librdkafka"),
        }
        if settings.CHARGE_BRIDGE_FETCH_BACKOFF_MS:
            # Each produce of the api is its own request (no linger), and with min 1 byte each woke
            # a fetch of its own: a broker request per message twice over. A fetcher that has handed
            # us messages we have not taken yet waits a moment before fetching again, so a busy
            # bridge's fetch brings what came meanwhile; an idle one (nothing held) fetches at once.
            config["queued.min.messages"] = 1
            config["fetch.queue.backoff.ms"] = settings.CHARGE_BRIDGE_FETCH_BACKOFF_MS
        if instance_id():
            config["group.instance.id"] = instance_id()
        self.consumer = Consumer(config)
        self._topic_wait(timeout_s=TOPIC_WAIT_S)
        self._consumer.subscribe(
            [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self.dead_letters.connect()
        logger.info(
            "bridge_connected",
            topic=self.topic,
            group=settings.CHARGE_BRIDGE_GROUP,
            instance_id=instance_id(),
        )

    def _topic_wait(self, *, timeout_s: float) -> None:
        """Subscribe only once the topic exists with its partitions: a typo fails here, loudly."""
        deadline = time.monotonic() + timeout_s
        while True:
            error: object = None
            try:
                topic = self._consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
            except KafkaException as exc:
                topic, error = None, exc
            else:
                error = topic.error if topic is not None else None
            if topic is not None and error is None and topic.partitions:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {self.topic!r} has no partitions; run `manage.py ensure_topics`")
            logger.info("topic_waiting", topic=self.topic, error=str(error) if error else None)
            time.sleep(0.5)

    def run(self) -> None:
        """Consume until SIGTERM/SIGINT, then commit and leave the group."""
        if self.consumer is None:
            self.connect()
        try:
            while not self.stopping:
                self._resume_if_due()
                batch = self._poll()
                if batch:
                    self._handle_batch(batch)
                elif self._done and time.monotonic() >= self._commit_due:
                    self.commit_done()
        finally:
            self.commit_done(synchronous=True)
            # A dynamic member leaves the group here, so another bridge gets the partitions at once; a
            # static one keeps them for its replacement (or until its session times out).
            self._consumer.close()
            self.dead_letters.close()
            if self.first_attempts is not None:
                self.first_attempts.close()
            logger.info("bridge_stopped")

    def _poll(self) -> Batch:
        """The first message within the poll timeout, then whatever the fetcher holds already."""
        first = self._consumer.poll(self.poll_timeout_s)
        if first is None:
            return {}
        messages = [first]
        if self.max_records > 1:
            messages += self._consumer.consume(num_messages=self.max_records - 1, timeout=0)
        linger_s = settings.CHARGE_BRIDGE_BUSY_LINGER_MS / 1000
        if 1 < len(messages) < self.max_records and linger_s > 0:
            # More were waiting than the one the poll asked for: we are busy, and a batch costs
            # little more whole than one message of it. Gather what comes in the next moments too;
            # a quiet bridge (one message at a time) never waits. At 400/s this took the stack's CPU
            # per decision from ~4.0 to ~3.3 ms at the price of ~3 ms of latency (README).
            if settings.CHARGE_BRIDGE_FETCH_BACKOFF_MS:
                # Asleep, we take nothing, so what the fetcher brings stays held and it backs off:
                # the linger's messages come in a fetch or two instead of one fetch each.
                time.sleep(linger_s)
                messages += self._consumer.consume(num_messages=self.max_records - len(messages), timeout=0)
            else:
                messages += self._consumer.consume(
                    num_messages=self.max_records - len(messages), timeout=linger_s
                )
        batch: Batch = {}
        for message in messages:
            error = message.error()
            if error is None:
                batch.setdefault(message.partition() or 0, []).append(message)
            elif error_is_fatal(error):
                self._fatal(error)
            elif error.code() != KafkaError._PARTITION_EOF:
                logger.warning("consumer_error", error=error.str())
        return batch

    @staticmethod
    def _fatal(error: KafkaError) -> None:
        """A consumer in a fatal state never consumes again: exit, and let the supervisor start a new one."""
        if error.code() == KafkaError._FENCED or "fenced" in error.str().lower():
            logger.error(
                "bridge_fenced",
                instance_id=instance_id(),
                error=error.str(),
                hint="another bridge under this CHARGE_BRIDGE_INSTANCE_ID (each needs its own), or the "
                "group coordinator restarted and the rejoin fenced the old member; a new process rejoins",
            )
        else:
            logger.error("bridge_consumer_fatal", error=error.str())
        raise KafkaException(error)

    # -- rebalances and commits -----------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned = {tp.partition for tp in partitions}
        logger.info("partitions_assigned", partitions=_partitions_text(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # What is done goes to the broker before the partitions go to another bridge.
        self.commit_done(synchronous=True)
        self._assigned -= {tp.partition for tp in partitions}
        logger.info("partitions_revoked", partitions=_partitions_text(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost, not handed over (our session expired): another bridge may own them already, so what
        # this one did is not committed; their messages are read again there (harmless).
        self._done = {p: o for p, o in self._done.items() if p not in {tp.partition for tp in partitions}}
        self._assigned -= {tp.partition for tp in partitions}
        logger.warning("partitions_lost", partitions=_partitions_text(partitions))

    @staticmethod
    def _on_commit(error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if error is not None and error.code() != KafkaError._NO_OFFSET:
            # Not fatal: the batch is read again (by us or by the partitions' new owner) and every
            # step of it is idempotent.
            logger.warning("commit_failed", error=error.str())

    def commit_done(self, *, synchronous: bool = False) -> None:
        """Commit the next offset of every partition whose batches are done (stored and published)."""
        self._commit_due = time.monotonic() + COMMIT_INTERVAL_S
        if not self._done or self.consumer is None:
            return
        offsets = [TopicPartition(self.topic, partition, offset) for partition, offset in self._done.items()]
        self._done.clear()
        try:
            if synchronous:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            logger.warning("commit_failed", error=str(exc))

    # -- one batch ----------------------------------------------------------------------------

    def _handle_batch(self, batch: Batch) -> None:
        started = time.monotonic()
        try:
            outcome = self.process(batch)
        except Exception as exc:  # noqa: BLE001 - any failure: rewind, pause, retry the same batch
            BRIDGE_BATCH_FAILURES.inc()
            self._rewind(batch, exc)
            return
        self._done.update(outcome.next_offsets)
        if time.monotonic() >= self._commit_due:
            self.commit_done()
        self._failures = 0
        if outcome.stored:
            self._workers_wait()
        BRIDGE_BATCH_SIZE.observe(sum(len(messages) for messages in batch.values()))
        BRIDGE_MESSAGES.labels(outcome="stored").inc(outcome.stored)
        BRIDGE_MESSAGES.labels(outcome="dead_lettered").inc(outcome.dead_lettered)
        BRIDGE_MESSAGES.labels(outcome="invalid").inc(outcome.invalid)
        logger.debug(
            "batch_done",
            stored=outcome.stored,
            invalid=outcome.invalid,
            dead_lettered=outcome.dead_lettered,
            ms=round((time.monotonic() - started) * 1000, 1),
        )

    def _workers_wait(self) -> None:
        """Backpressure: while tasks wait in the broker's queues, let Kafka hold the rest.

        Tasks that wait there mean every worker of their queue is busy; messages polled meanwhile
        would only queue behind them in small tasks. Waiting (CHARGE_BRIDGE_BACKPRESSURE_MS at
        most, so a stuck worker never stops the bridge) lets them gather in Kafka, and the next
        poll takes them as one batch of up to CHARGE_BRIDGE_BATCH: batches grow when the load does.
        """
        if time.monotonic() < self._queues_empty_until:
            return
        deadline = time.monotonic() + settings.CHARGE_BRIDGE_BACKPRESSURE_MS / 1000
        while not self.stopping and time.monotonic() < deadline:
            try:
                # Callbacks too: their tasks are cut from the authorize batches, so a callbacks
                # backlog also calls for bigger batches upstream.
                waiting = sum(queue_lengths(self._broker).values())
            except RedisError:
                return  # the publish just worked; a broker hiccup here is no reason to stop
            if waiting == 0:
                self._queues_empty_until = time.monotonic() + QUEUES_EMPTY_TRUST_S
                return
            time.sleep(BACKPRESSURE_POLL_S)

    def process(self, batch: Batch) -> BatchOutcome:
        """Store, dead-letter and publish one batch. Raises if any step failed; commits nothing."""
        close_old_connections()
        outcome = BatchOutcome()
        consumed: list[Consumed] = []
        malformed: list[tuple[Message, MalformedMessage]] = []
        by_place: dict[tuple[int, int], Message] = {}
        for partition, messages in batch.items():
            for message in messages:
                try:
                    decoded = decode_v1(message.value())
                except MalformedMessage as exc:
                    malformed.append((message, exc))
                else:
                    offset = message.offset() or 0
                    consumed.append(Consumed(message=decoded, partition=partition, offset=offset))
                    by_place[(partition, offset)] = message
            outcome.next_offsets[partition] = (messages[-1].offset() or 0) + 1

        consumed = self._without_withdrawn(consumed, outcome)
        undecided: list[uuid.UUID] = []
        if consumed:
            refused, undecided = self._store(consumed)
            for item, error in refused:
                # A message that decodes but cannot be stored (the database refuses one of its
                # values): it must not hold its partition, so it is set aside like a malformed one.
                consumed.remove(item)
                malformed.append(
                    (by_place[(item.partition, item.offset)], unstorable_message(item.message, error))
                )
            outcome.stored = len(consumed)
        self.dead_letters.batch_begin()
        for message, error in malformed:
            self.dead_letters.send(message, error)
            outcome.dead_lettered += 1
            try:
                logged = charging_request_store_invalid(
                    error=error, partition=message.partition() or 0, offset=message.offset() or 0
                )
            except UNSTORABLE_ERRORS as exc:
                # Dead-lettered with its reason already; not even a row of what it carried fits.
                logger.warning("invalid_row_refused", offset=message.offset(), error=repr(exc)[:300])
                logged = False
            outcome.invalid += int(logged)
        if malformed:
            self.dead_letters.flush()
        if consumed:
            self._decide(undecided)
            # One line per batch, with its ids, so a grep for a request_id finds the bridge too;
            # when the bridge decides, its `requests_decided` line is that one (one line per stage).
            log = logger.debug if settings.CHARGE_BRIDGE_DECIDES else logger.info
            log(
                "requests_bridged",
                count=len(consumed),
                request_ids=[str(item.message.request_id) for item in consumed],
            )
        return outcome

    def _store(self, consumed: list[Consumed]) -> tuple[list[tuple[Consumed, Exception]], list[uuid.UUID]]:
        """Store the batch, decided (CHARGE_BRIDGE_DECIDES) or pending; returns the messages the
        database refuses and the ids stored but not decided here.

        Decided: chunks of CHARGE_AUTHORIZE_BATCH go in with their decisions, one transaction each
        (charging_requests_store_decided); only rows that were stored before come back undecided.
        A chunk the database refuses a value of is stored pending instead, where the message it
        refuses is found and set aside (_store_pending), and the rest go to charging.authorize
        tasks. So does the rest of the batch if deciding fails for any reason but a database that
        is away (which is raised, and the batch read again): the partition moves on whatever broke.
        """
        refused: list[tuple[Consumed, Exception]] = []
        undecided: list[uuid.UUID] = []
        if not settings.CHARGE_BRIDGE_DECIDES:
            return self._store_pending(consumed), []
        chunks = chunks_of(consumed, settings.CHARGE_AUTHORIZE_BATCH)
        for done, chunk in enumerate(chunks):
            try:
                undecided += charging_requests_store_decided(
                    consumed=chunk, first_attempts=self.first_attempts
                )
                DECISION_BATCH_SIZE.labels(by="bridge").observe(len(chunk))
            except UNSTORABLE_ERRORS:
                refused += self._store_pending(list(chunk))
            except DATABASE_AWAY:
                raise
            except Exception as exc:  # noqa: BLE001 - whatever broke deciding, the tasks take over
                rest = [item for later in chunks[done:] for item in later]
                logger.warning("bridge_decide_failed", count=len(rest), error=repr(exc)[:300])
                close_old_connections()
                return refused + self._store_pending(rest), undecided
        return refused, undecided

    def _store_pending(self, consumed: list[Consumed]) -> list[tuple[Consumed, Exception]]:
        """Store pending rows and send their authorize tasks; returns the messages the database refuses."""
        refused = self._store_halving(consumed)
        refused_ids = {id(item) for item, _ in refused}
        stored = [item.message.request_id for item in consumed if id(item) not in refused_ids]
        if stored:
            authorize_tasks_send(request_ids=stored)
        return refused

    def _store_halving(self, consumed: list[Consumed]) -> list[tuple[Consumed, Exception]]:
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
            return self._store_halving(consumed[:middle]) + self._store_halving(consumed[middle:])
        return []

    def _decide(self, request_ids: list[uuid.UUID]) -> None:
        """Rows the decided store found stored before (pending, or decided already): decide them here.

        The same set-wise service as the authorize task, so a redelivered batch or a task that also
        holds an id still leaves one decision each. Should that fail, their charging.authorize
        tasks retry on their own schedule; only if that publish fails too is the batch read again.
        """
        for chunk in chunks_of(request_ids, settings.CHARGE_AUTHORIZE_BATCH):
            try:
                charging_requests_decide(request_ids=chunk, first_attempts=self.first_attempts)
            except Exception as exc:  # noqa: BLE001 - whatever failed, the tasks take over
                logger.warning("bridge_decide_failed", count=len(chunk), error=repr(exc)[:300])
                close_old_connections()
                authorize_tasks_send(request_ids=chunk)

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

    def _rewind(self, batch: Batch, exc: Exception) -> None:
        """Seek back to the batch's first offsets and pause until a backoff has passed."""
        partitions = [TopicPartition(self.topic, partition) for partition in batch]
        self._consumer.pause(partitions)
        for partition, messages in batch.items():
            self._consumer.seek(TopicPartition(self.topic, partition, messages[0].offset() or 0))
        backoff = RETRY_BACKOFF_S[min(self._failures, len(RETRY_BACKOFF_S) - 1)]
        self._failures += 1
        self._paused = partitions
        self._resume_at = time.monotonic() + backoff
        logger.error("batch_failed", error=repr(exc), retry_in_s=backoff, failures=self._failures)

    def _resume_if_due(self) -> None:
        if self._resume_at is not None and time.monotonic() >= self._resume_at and self.consumer is not None:
            self._consumer.resume(self._paused)
            self._paused, self._resume_at = [], None
