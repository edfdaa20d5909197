"""Hostile input from outside, against the real api server: hypothesis sends bodies, content types and
query strings as a client library can (tests/integration/http/hostile.py) to every route.

Whatever comes in: an answer always arrives (the connection is never dropped without one), never
a 5xx, always JSON; what the asynchronous routes accept is answered well-formed, and each accepted
request is on the topic as a valid v1 message, so nothing hostile got into the pipeline. That every
accepted request is also decided within its deadline needs the bridge and workers running: the
fault tests (tests/integration/faults) hold that invariant.

Bounded: FUZZ_HTTP_EXAMPLES examples per body route (default 150; fewer for query strings, paths
and the Authorization header; each is one request on a fresh connection), about 30 s in all,
derandomized so that a run repeats the previous one (FUZZ_HTTP_RANDOM=1 explores instead).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer

from apps.access.services import acl_insert
from apps.api.legacy import ACCEPTED_MESSAGE
from apps.charging.messages import decode_v1
from tests.integration.http.conftest import ApiServer
from tests.integration.http.hostile import (
    STATION,
    TOKEN,
    Body,
    bodies,
    query_strings,
    quote_text,
    short_hostile_text,
)

EXAMPLES = int(os.environ.get("FUZZ_HTTP_EXAMPLES", "150"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # FUZZ_HTTP_RANDOM=1 explores new examples (a longer run by hand); make test repeats the same.
    derandomize=os.environ.get("FUZZ_HTTP_RANDOM") != "1",
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ACCEPTING_ROUTES = ["/api/v1/charging-requests", "/api/chargingRequestValidator/"]
BODY_ROUTES = [
    ("POST", path)
    for path in [
        *ACCEPTING_ROUTES,
        "/api/checkauthority/",
        "/api/insertACL/",
        "/api/v1/authorize",
        "/api/v1/stations",
        "/api/v1/token-groups",
        "/api/v1/tokens",
        "/api/v1/grants",
    ]
] + [("PATCH", f"/api/v1/stations/{STATION}"), ("PATCH", f"/api/v1/tokens/{TOKEN}")]
QUERY_ROUTES = [
    "/api/v1/charging-requests",
    "/api/v1/stations",
    "/api/v1/tokens",
    "/api/v1/token-groups",
    "/api/v1/grants",
    "/api/getrequestlog/",
]
PATH_ROUTES = [
    "/api/v1/charging-requests/{}",
    "/api/v1/stations/{}",
    "/api/v1/tokens/{}",
    "/api/v1/grants/{}",
]


@pytest.fixture
def http(api_server: ApiServer, api_key: str) -> Iterator[httpx.Client]:
    # A fresh connection for every request: a missing answer is then the server's doing, never a
    # kept-alive connection that timed out between two examples.
    limits = httpx.Limits(max_keepalive_connections=0)
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=api_server.url, headers=headers, limits=limits, timeout=15) as client:
        acl_insert(station_id=STATION, driver_token=TOKEN)  # PATCH routes and grants find these
        yield client


def answered(client: httpx.Client, method: str, url: str | httpx.URL, **request: Any) -> httpx.Response:
    """The answer, checked against what every route promises whatever it was sent."""
    try:
        response = client.request(method, url, **request)
    except httpx.TransportError as exc:
        raise AssertionError(f"no answer to {method} {url}: {exc!r}") from None
    assert response.status_code < 500, f"{response.status_code} from {method} {url}: {response.text[:500]}"
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
    response.json()
    return response


def assert_well_formed_acceptance(path: str, response: httpx.Response) -> str | None:
    """The request_id of an accepted request (its answer checked), None if it was not accepted."""
    body = response.json()
    if path.startswith("/api/v1/"):
        if response.status_code != 202:
            return None
        assert set(body) == {"request_id", "status", "status_url"}, body
        assert body["status"] == "accepted"
        assert body["status_url"].endswith(f"/api/v1/charging-requests/{uuid.UUID(body['request_id'])}")
        return str(body["request_id"])
    if not (isinstance(body, dict) and body.get("status") == "accepted"):
        return None
    assert body == {"status": "accepted", "message": ACCEPTED_MESSAGE, "request_id": body["request_id"]}
    return str(uuid.UUID(body["request_id"]))


def assert_on_the_topic(request_ids: set[str], *, topic: str, timeout_s: float = 30) -> None:
    """Every accepted request is a message the pipeline can decode (decode_v1 raises otherwise)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=django_settings.KAFKA_BOOTSTRAP_SERVERS,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    found: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while request_ids - found and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                found.update(str(decode_v1(record.value).request_id) for record in records)
    finally:
        consumer.close()
    assert request_ids <= found, f"accepted but not on the topic: {sorted(request_ids - found)[:5]}"


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES, ids=[f"{m} {p}" for m, p in BODY_ROUTES])
def test_a_hostile_body_is_answered_never_with_a_5xx(
    http: httpx.Client, server_env: dict[str, str], method: str, path: str
) -> None:
    accepted: set[str] = set()

    @fuzz
    @given(body=bodies, idempotency_key=short_hostile_text)
    def send(body: Body, idempotency_key: str) -> None:
        headers = {"Content-Type": body.content_type} if body.content_type else {}
        if (
            path == "/api/v1/charging-requests"
            and idempotency_key.isascii()
            and idempotency_key.isprintable()
        ):
            headers["Idempotency-Key"] = idempotency_key
        response = answered(http, method, path, content=body.content, headers=headers)
        if path in ACCEPTING_ROUTES and (request_id := assert_well_formed_acceptance(path, response)):
            accepted.add(request_id)

    send()
    if path in ACCEPTING_ROUTES:
        # The strategies must reach the accepting path too, for the checks on it to mean anything.
        assert accepted, f"nothing sent to {path} was accepted"
        assert_on_the_topic(accepted, topic=server_env["CHARGE_TOPIC"])


@pytest.mark.parametrize("path", QUERY_ROUTES)
def test_a_hostile_query_string_is_answered_never_with_a_5xx(http: httpx.Client, path: str) -> None:
    @settings(parent=fuzz, max_examples=max(10, EXAMPLES // 2))
    @given(query=query_strings)
    def send(query: str) -> None:
        answered(http, "GET", httpx.URL(http.base_url.join(path), query=query.encode()))

    send()


# What h11 lets a client put in a header value: visible ASCII, Latin-1, spaces and tabs inside.
header_value = st.lists(st.integers(0x20, 0xFF).filter(lambda byte: byte != 0x7F), max_size=80).map(
    lambda values: bytes(values).strip(b" ")
)


@pytest.mark.parametrize("path", ["/api/v1/charging-requests", "/api/getrequestlog/"])
def test_a_hostile_authorization_header_is_a_401(api_server: ApiServer, path: str) -> None:
    @settings(parent=fuzz, max_examples=max(10, EXAMPLES // 6))
    @given(scheme=st.sampled_from([b"Bearer ", b"bearer ", b"Basic ", b""]), credentials=header_value)
    def send(scheme: bytes, credentials: bytes) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=api_server.url, limits=limits, timeout=15) as client:
            authorization = (scheme + credentials).strip(b" ")
            response = answered(client, "GET", path, headers={"Authorization": authorization})
        assert response.status_code == 401

    send()


@pytest.mark.parametrize("template", PATH_ROUTES)
def test_a_hostile_path_segment_is_answered_never_with_a_5xx(http: httpx.Client, template: str) -> None:
    @settings(parent=fuzz, max_examples=max(10, EXAMPLES // 5))
    @given(segment=short_hostile_text)
    def send(segment: str) -> None:
        answered(http, "GET", template.format(quote_text(segment)))

    send()
