"""The bridge's dead-letter topic: where a message that cannot be stored goes, with why.

A malformed message, or one the database refuses, must not hold its partition: it is produced to
CHARGE_DLQ_TOPIC with its key, value and headers as they came, plus where it came from and why; the
bridge commits past it only once every dead letter of the batch is acknowledged (flush()).
"""

from __future__ import annotations

import logging

import structlog
from confluent_kafka import KafkaError, Message, Producer
from django.conf import settings

from apps.charging.messages import REQUEST_ID_HEADER, MalformedMessage

logger = structlog.get_logger(__name__)

DLQ_ERROR_HEADER = "error"


def _headers(message: Message) -> list[tuple[str, str | bytes | None]]:
    """A consumed message's headers as (name, value) pairs (librdkafka hands back a list of them)."""
    found = message.headers() or []
    pairs = found.items() if isinstance(found, dict) else found
    return [(str(key), value) for key, value in pairs]


def _header_request_id(message: Message) -> str | None:
    """The request_id header the api sets on every message: readable even when the body is not."""
    for key, value in _headers(message):
        if key == REQUEST_ID_HEADER and value:
            raw = value if isinstance(value, bytes) else str(value).encode()
            return raw.decode(errors="replace")[:64]
    return None


class DeadLetters:
    """A producer to the dead-letter topic, and the errors of what it sent since the batch began."""

    def __init__(self) -> None:
        self.producer: Producer | None = None
        self._errors: list[KafkaError] = []

    def connect(self) -> None:
        self.producer = Producer(
            {
                "bootstrap.servers": ",".join(settings.KAFKA_BOOTSTRAP_SERVERS),
                "client.id": "charge-bridge-dlq",
                "acks": "all",
                "enable.idempotence": True,
                "logger": logging.getLogger("kafka.librdkafka"),
            }
        )

    @property
    def _producer(self) -> Producer:
        if self.producer is None:
            raise RuntimeError("the bridge is not connected")
        return self.producer

    def batch_begin(self) -> None:
        self._errors = []

    def send(self, message: Message, error: MalformedMessage) -> None:
        headers = _headers(message)
        headers += [
            (DLQ_ERROR_HEADER, error.error.encode()[:1000]),
            ("reason", error.reason.value.encode()),
            ("source_partition", str(message.partition()).encode()),
            ("source_offset", str(message.offset()).encode()),
        ]
        self._producer.produce(
            settings.CHARGE_DLQ_TOPIC,
            value=message.value(),
            key=message.key(),
            headers=headers,
            on_delivery=self._delivered,
        )
        logger.warning(
            "message_dead_lettered",
            request_id=str(error.salvage.get("request_id", "")) or _header_request_id(message),
            partition=message.partition(),
            offset=message.offset(),
            error=error.error,
        )

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._errors.append(error)

    def flush(self) -> None:
        """Every dead letter of the batch acknowledged before its offsets are committed."""
        remaining = self._producer.flush(10)
        if remaining or self._errors:
            raise RuntimeError(f"dead letters not acknowledged: {remaining} left, errors {self._errors!r}")

    def close(self) -> None:
        if self.producer is not None:
            self.producer.flush(5)
