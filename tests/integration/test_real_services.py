"""The services the tests use are the real ones: a broker, a Redis-backed Celery worker, PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from harness.processes import Process
from tests.conftest import Endpoint
from tests.stack import manage_py


def test_a_message_makes_the_round_trip_through_the_fixture_broker(kafka_endpoint: Endpoint) -> None:
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_endpoint.url)
    admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
    admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_endpoint.url, acks="all", enable_idempotence=True)
    sent = {f"message-{n}".encode() for n in range(20)}
    for value in sent:
        producer.send(topic, value=value, key=b"station")
    producer.flush(timeout=10)
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_endpoint.url,
        group_id=f"test-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=15_000,
    )
    received = set()
    for record in consumer:
        received.add(record.value)
        if received == sent:
            break
    consumer.close()

    assert received == sent


def test_ensure_topics_creates_both_topics_once(kafka_endpoint: Endpoint) -> None:
    env = dict(
        os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_endpoint.url, CHARGE_TOPIC=f"cr-{uuid.uuid4().hex[:6]}"
    )

    first = manage_py("ensure_topics", "--wait", "30", env=env)
    second = manage_py("ensure_topics", env=env)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert first.stdout.count("created") == 2
    assert second.stdout.count("exists") == 2
    consumer = KafkaConsumer(bootstrap_servers=kafka_endpoint.url)
    assert len(consumer.partitions_for_topic(env["CHARGE_TOPIC"]) or ()) == 6
    assert len(consumer.partitions_for_topic(env["CHARGE_TOPIC"] + ".dlq") or ()) == 1
    consumer.close()


def test_ensure_topics_says_clearly_when_no_broker_answers() -> None:
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")

    result = manage_py("ensure_topics", env=env)

    assert result.returncode != 0
    assert "Kafka is not reachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_real_celery_worker_runs_a_task_sent_through_the_fixture_redis(
    start_worker: Callable[[], Process],
) -> None:
    # start_worker only returns once the worker has executed an ops.ping task we sent via Redis.
    worker = start_worker()

    assert worker.alive()
