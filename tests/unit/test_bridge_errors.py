"""Which consumer errors end the bridge: real librdkafka error values, no consumer."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from workers.bridge import Bridge, error_is_fatal


def test_a_fatal_error_reported_through_poll_is_fatal() -> None:
    # How librdkafka handed the "Static consumer fenced" of a Kafka restart to poll(): code _FATAL,
    # fatal() False. A bridge that took it for a warning stayed up without partitions.
    reported = KafkaError(KafkaError._FATAL, "Fatal error: Broker: Static consumer fenced")
    assert not reported.fatal()
    assert error_is_fatal(reported)
    assert error_is_fatal(KafkaError(KafkaError._FENCED, "fenced", fatal=True))


@pytest.mark.parametrize(
    "code", [KafkaError._PARTITION_EOF, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN]
)
def test_passing_errors_are_not(code: int) -> None:
    assert not error_is_fatal(KafkaError(code, "passing"))


def test_a_fatal_error_ends_the_loop() -> None:
    with pytest.raises(KafkaException):
        Bridge._fatal(KafkaError(KafkaError._FATAL, "Fatal error: Broker: Static consumer fenced"))
