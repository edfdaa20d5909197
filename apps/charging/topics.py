"""The Kafka topics the service owns, created idempotently with kafka-python's admin client."""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from django.conf import settings
from kafka import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int


def topic_specs() -> list[TopicSpec]:
    """charging_requests keyed by station_id over N partitions; its dead-letter topic beside it."""
    return [
        TopicSpec(settings.CHARGE_TOPIC, settings.CHARGE_TOPIC_PARTITIONS),
        TopicSpec(settings.CHARGE_DLQ_TOPIC, 1),
    ]


def admin_client_connect(*, wait_s: float = 0.0) -> KafkaAdminClient:
    """An admin client for the configured brokers, retrying for up to `wait_s` while they start."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return KafkaAdminClient(
                bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
                client_id="charge-admin",
                request_timeout_ms=10_000,
                # Fail fast per attempt; the loop above decides how long to keep trying.
                bootstrap_timeout_ms=3_000,
            )
        except KafkaError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def topics_ensure(*, wait_s: float = 0.0) -> dict[str, str]:
    """Create every missing topic; safe to run twice. Returns {topic: "created" | "exists"}."""
    admin = admin_client_connect(wait_s=wait_s)
    try:
        existing = set(admin.list_topics())
        outcome: dict[str, str] = {}
        for spec in topic_specs():
            if spec.name in existing:
                outcome[spec.name] = "exists"
                continue
            try:
                admin.create_topics(
                    {spec.name: {"num_partitions": spec.partitions, "replication_factor": 1}},
                    wait_for_metadata=True,
                )
                outcome[spec.name] = "created"
            except TopicAlreadyExistsError:
                # Another process created it between our listing and our request.
                outcome[spec.name] = "exists"
            logger.info(
                "topic_ensured", topic=spec.name, partitions=spec.partitions, outcome=outcome[spec.name]
            )
        return outcome
    finally:
        admin.close()


__all__ = ["KafkaError", "TopicSpec", "topic_specs", "topics_ensure"]
