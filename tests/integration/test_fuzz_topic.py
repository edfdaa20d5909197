"""Hostile messages on the topic, made by hypothesis, against the real bridge: the partition keeps moving.

The topic is a public interface: any producer may write anything to it. Each example is a burst of
generated messages (broken JSON, wrong types, odd text, out-of-range numbers and times, near-valid
v1 bodies) on one key, with valid requests among them. Whatever the hostile ones hold, the valid ones
are decided before their deadline, the bridge stays up, and every hostile one that carries a
request_id ends up logged once, never pending.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaProducer

from apps.access.services import acl_insert
from apps.charging.models import ChargingRequest
from harness.processes import wait_until
from tests.conftest import Endpoint
from tests.integration.conftest import Pipeline

STATION = "bd0c6a0e-4b1e-4d55-9a7e-3c1f2b9d8e71"
TOKEN = "FUZZ-TOPIC-TOKEN-012345"

_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
    st.just("\x00"),
    st.text(min_size=300, max_size=3000),
)
_number = st.one_of(st.integers(), st.integers(min_value=10**30, max_value=10**60), st.floats(allow_nan=True))
_time = st.one_of(
    st.just("0001-01-01T00:00:00+14:00"),
    st.just("9999-12-31T23:59:59-23:59"),
    st.just("not a time"),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
)
_value = st.one_of(_text, _number, st.none(), st.booleans(), st.lists(st.integers(), max_size=3))


def _v1(request_id: str, url: str) -> dict[str, Any]:
    """A valid v1 body for the fuzz station and token, due in 10 s."""
    now = datetime.now().astimezone()
    return {
        "v": 1,
        "request_id": request_id,
        "client_id": None,
        "station_id": STATION,
        "driver_token": TOKEN,
        "callback_url": url,
        "received_at": now.isoformat(),
        "deadline": (now + timedelta(seconds=10)).isoformat(),
    }


def _near_valid(request_id: str, url: str) -> st.SearchStrategy[dict[str, Any]]:
    """A v1 body with one or more fields replaced by something hostile."""
    base = _v1(request_id, url)
    fields = st.sampled_from(sorted(base))
    replacement = st.one_of(_value, _time)
    return st.dictionaries(fields, replacement, min_size=1, max_size=3).map(lambda bad: {**base, **bad})


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)


def _hostile(url: str) -> st.SearchStrategy[bytes]:
    request_ids = st.uuids().map(str)
    deep = st.integers(min_value=1, max_value=20_000).map(lambda depth: "[" * depth + "]" * depth)
    return st.one_of(
        st.binary(max_size=200),
        deep.map(str.encode),
        st.recursive(_value, _nested, max_leaves=8).map(lambda body: json.dumps(body).encode()),
        request_ids.flatmap(lambda rid: _near_valid(rid, url)).map(lambda body: json.dumps(body).encode()),
    )


def _valid(request_id: str, url: str) -> bytes:
    return json.dumps(_v1(request_id, url)).encode()


def test_hostile_messages_never_hold_the_partition(pipeline: Pipeline, kafka_endpoint: Endpoint) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)
    bridge = pipeline.start_bridge()
    pipeline.start_worker()
    url = pipeline.receiver.url()
    producer = KafkaProducer(bootstrap_servers=kafka_endpoint.url, acks="all", linger_ms=20)

    @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.lists(_hostile(url), min_size=20, max_size=50))
    def burst(values: list[bytes]) -> None:
        valid = [str(uuid.uuid4()) for _ in range(3)]
        third = len(values) // 3
        ordered = [
            _valid(valid[0], url),
            *values[:third],
            _valid(valid[1], url),
            *values[third:],
            _valid(valid[2], url),
        ]
        for value in ordered:
            producer.send(pipeline.topic, value=value, key=STATION.encode())
        producer.flush(timeout=10)

        for request_id in valid:
            pipeline.receiver.wait_for(request_id, timeout=30)
        rows = ChargingRequest.objects.filter(request_id__in=valid)
        assert {(row.status, row.reason) for row in rows} == {("allowed", "granted")}
        assert all(row.decided_at is not None and row.decided_at <= row.deadline for row in rows)
        bridge.ensure_running()

    try:
        burst()
    finally:
        producer.close()
    # Nothing a hostile message carried is left pending: decided, invalid, or never stored.
    wait_until(
        lambda: not ChargingRequest.objects.filter(status="pending").exists(),
        timeout=30,
        what="no request left pending",
    )
