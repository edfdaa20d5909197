"""The Kafka message v1 (DESIGN "Kafka message"): other producers write to the topic, so decode strictly."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.access.policy import Reason
from apps.charging.messages import ChargeRequestV1, MalformedMessage, decode_v1

REQUEST_ID = uuid.UUID("3b2f7a44-1c9d-4e8a-b6f1-0d2c4e6a8b9c")
STATION_ID = "6f1c2a9e-4b7d-4c1a-9e3f-2d8b5a7c0e14"
LEGACY_STATION_ID = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
DRIVER_TOKEN = "DRIVER-TOKEN.0000001~"
CALLBACK_URL = "https://hooks.example.test/charging?x=1"
RECEIVED_AT = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
DEADLINE = RECEIVED_AT + timedelta(seconds=10)

V1_FIELDS = (
    "v",
    "request_id",
    "client_id",
    "station_id",
    "driver_token",
    "callback_url",
    "received_at",
    "deadline",
)


def v1_body(**changes: Any) -> dict[str, Any]:
    """A valid v1 message body as another producer would write it; `changes` replace or add fields."""
    body: dict[str, Any] = {
        "v": 1,
        "request_id": str(REQUEST_ID),
        "client_id": 7,
        "station_id": STATION_ID,
        "driver_token": DRIVER_TOKEN,
        "callback_url": CALLBACK_URL,
        "received_at": "2025-06-01T12:00:00.123456Z",
        "deadline": "2025-06-01T12:00:10.123456+00:00",
    }
    body.update(changes)
    return body


def without(field: str) -> dict[str, Any]:
    body = v1_body()
    del body[field]
    return body


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def decode_error(value: bytes | None) -> MalformedMessage:
    with pytest.raises(MalformedMessage) as caught:
        decode_v1(value)
    return caught.value


def a_message(**changes: Any) -> ChargeRequestV1:
    fields: dict[str, Any] = {
        "request_id": REQUEST_ID,
        "client_id": 7,
        "station_id": STATION_ID,
        "driver_token": DRIVER_TOKEN,
        "callback_url": CALLBACK_URL,
        "received_at": RECEIVED_AT,
        "deadline": DEADLINE,
    }
    fields.update(changes)
    return ChargeRequestV1(**fields)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(a_message(), id="uuid_station_with_client"),
        pytest.param(a_message(client_id=None), id="no_client"),
        pytest.param(a_message(station_id=LEGACY_STATION_ID), id="legacy_station_id"),
        pytest.param(a_message(source="legacy"), id="legacy_source"),
        pytest.param(
            a_message(
                received_at=datetime(2025, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
                deadline=datetime(2025, 6, 1, 14, 0, 10, tzinfo=timezone(timedelta(hours=2))),
            ),
            id="timestamps_with_non_utc_offset",
        ),
        pytest.param(a_message(driver_token="t" * 80, callback_url="http://10.0.0.5:8080/cb"), id="limits"),
    ],
)
def test_to_json_then_decode_v1_gives_the_same_message(message: ChargeRequestV1) -> None:
    assert decode_v1(message.to_json()) == message


def test_to_json_is_utf8_json_with_the_design_fields() -> None:
    body = json.loads(a_message().to_json().decode("utf-8"))

    assert {key: body[key] for key in V1_FIELDS} == {
        "v": 1,
        "request_id": str(REQUEST_ID),
        "client_id": 7,
        "station_id": STATION_ID,
        "driver_token": DRIVER_TOKEN,
        "callback_url": CALLBACK_URL,
        "received_at": "2025-06-01T12:00:00.123456+00:00",
        "deadline": "2025-06-01T12:00:10.123456+00:00",
    }


def test_headers_name_the_schema() -> None:
    headers = a_message().headers()

    assert ("schema", b"charge.request.v1") in headers
    assert all(isinstance(key, str) and isinstance(value, bytes) for key, value in headers)


def test_decode_v1_reads_another_producers_message() -> None:
    message = decode_v1(encode(v1_body(station_id=STATION_ID.replace("-", "").upper())))

    assert message == ChargeRequestV1(
        request_id=REQUEST_ID,
        client_id=7,
        station_id=STATION_ID,
        driver_token=DRIVER_TOKEN,
        callback_url=CALLBACK_URL,
        received_at=RECEIVED_AT,
        deadline=DEADLINE,
        source="topic",
    )


@pytest.mark.parametrize("driver_token", ["04A2B3C4", "fleet:driver|0001@acme+x", "DE*ACM*C00001*7"])
def test_decode_v1_reads_tokens_as_stations_send_them(driver_token: str) -> None:
    assert decode_v1(encode(v1_body(driver_token=driver_token))).driver_token == driver_token


def test_decode_v1_ignores_unknown_fields() -> None:
    extra = v1_body(extra="x", nested={"v": 2, "request_id": None}, V=2, priority=[1, 2, 3])

    assert decode_v1(encode(extra)) == decode_v1(encode(v1_body()))


@pytest.mark.parametrize(
    ("value", "error_part"),
    [
        pytest.param(None, "empty message", id="no_value"),
        pytest.param(b"", "not UTF-8 JSON", id="empty_bytes"),
        pytest.param(b"station_id=abc", "not UTF-8 JSON", id="not_json"),
        pytest.param(b'{"v":1,', "not UTF-8 JSON", id="truncated_json"),
        pytest.param(b'{"v":1,"station_id":"\xff\xfe"}', "not UTF-8 JSON", id="not_utf8"),
        pytest.param(b'{"v":1,"driver_token":"caf\xe9"}', "not UTF-8 JSON", id="latin1_bytes"),
        pytest.param(encode([v1_body()]), "must be a JSON object", id="json_array"),
        pytest.param(b'"a string"', "must be a JSON object", id="json_string"),
        pytest.param(b"1", "must be a JSON object", id="json_number"),
        pytest.param(b"null", "must be a JSON object", id="json_null"),
    ],
)
def test_decode_v1_rejects_values_that_are_not_a_json_object(value: bytes | None, error_part: str) -> None:
    error = decode_error(value)

    assert error_part in error.error
    assert error.reason == Reason.MALFORMED_MESSAGE
    assert error.salvage == {}


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        pytest.param(without("v"), "v", Reason.MALFORMED_MESSAGE, id="v_missing"),
        pytest.param(v1_body(v=2), "v", Reason.MALFORMED_MESSAGE, id="v_2"),
        pytest.param(v1_body(v="1"), "v", Reason.MALFORMED_MESSAGE, id="v_as_string"),
        pytest.param(v1_body(v=None), "v", Reason.MALFORMED_MESSAGE, id="v_null"),
        pytest.param(without("request_id"), "request_id", Reason.MALFORMED_MESSAGE, id="request_id_missing"),
        pytest.param(
            v1_body(request_id="42"), "request_id", Reason.MALFORMED_MESSAGE, id="request_id_not_uuid"
        ),
        pytest.param(v1_body(request_id=42), "request_id", Reason.MALFORMED_MESSAGE, id="request_id_number"),
        pytest.param(v1_body(client_id=True), "client_id", Reason.MALFORMED_MESSAGE, id="client_id_bool"),
        pytest.param(v1_body(client_id=False), "client_id", Reason.MALFORMED_MESSAGE, id="client_id_false"),
        pytest.param(v1_body(client_id="7"), "client_id", Reason.MALFORMED_MESSAGE, id="client_id_string"),
        pytest.param(v1_body(client_id=7.5), "client_id", Reason.MALFORMED_MESSAGE, id="client_id_float"),
        pytest.param(without("station_id"), "station_id", Reason.MALFORMED_MESSAGE, id="station_id_missing"),
        pytest.param(
            v1_body(station_id="A" * 35), "station_id", Reason.MALFORMED_MESSAGE, id="station_id_35"
        ),
        pytest.param(
            v1_body(station_id=12345), "station_id", Reason.MALFORMED_MESSAGE, id="station_id_number"
        ),
        pytest.param(
            v1_body(driver_token="T" * 81),
            "driver_token",
            Reason.INVALID_TOKEN_FORMAT,
            id="driver_token_too_long",
        ),
        pytest.param(
            v1_body(driver_token="DRIVER TOKEN 0000001"),
            "driver_token",
            Reason.INVALID_TOKEN_FORMAT,
            id="driver_token_with_space",
        ),
        pytest.param(
            v1_body(driver_token=None), "driver_token", Reason.INVALID_TOKEN_FORMAT, id="driver_token_null"
        ),
        pytest.param(
            without("driver_token"), "driver_token", Reason.INVALID_TOKEN_FORMAT, id="driver_token_missing"
        ),
        pytest.param(
            v1_body(callback_url="ftp://hooks.example.test/cb"),
            "callback_url",
            Reason.MALFORMED_MESSAGE,
            id="callback_url_ftp",
        ),
        pytest.param(
            v1_body(callback_url="/charging"),
            "callback_url",
            Reason.MALFORMED_MESSAGE,
            id="callback_url_relative",
        ),
        pytest.param(
            v1_body(callback_url="https://user:pw@hooks.example.test/"),
            "callback_url",
            Reason.MALFORMED_MESSAGE,
            id="callback_url_with_user_info",
        ),
        pytest.param(
            without("callback_url"), "callback_url", Reason.MALFORMED_MESSAGE, id="callback_url_missing"
        ),
        pytest.param(
            v1_body(received_at="2025-06-01T12:00:00"),
            "received_at",
            Reason.MALFORMED_MESSAGE,
            id="received_at_without_offset",
        ),
        pytest.param(
            v1_body(deadline="2025-06-01T12:00:10"),
            "deadline",
            Reason.MALFORMED_MESSAGE,
            id="deadline_without_offset",
        ),
        pytest.param(
            v1_body(received_at="yesterday"),
            "received_at",
            Reason.MALFORMED_MESSAGE,
            id="received_at_not_a_time",
        ),
        pytest.param(
            v1_body(deadline=1748779210), "deadline", Reason.MALFORMED_MESSAGE, id="deadline_as_unix_number"
        ),
        pytest.param(
            without("received_at"), "received_at", Reason.MALFORMED_MESSAGE, id="received_at_missing"
        ),
    ],
)
def test_decode_v1_names_the_broken_field(body: dict[str, Any], field: str, reason: Reason) -> None:
    error = decode_error(encode(body))

    assert error.error.startswith(f"{field}:")
    assert str(error) == error.error
    assert error.reason == reason


def test_decode_v1_salvages_request_id_and_callback_url_of_a_broken_message() -> None:
    error = decode_error(encode(v1_body(driver_token="bad token")))

    assert error.salvage == {
        "request_id": REQUEST_ID,
        "callback_url": CALLBACK_URL,
        "station_id": STATION_ID,
        "driver_token": "bad token",
        "client_id": 7,
    }


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(without("request_id") | {"v": 2}, id="request_id_missing"),
        pytest.param(v1_body(v=2, request_id="not-a-uuid"), id="request_id_not_a_uuid"),
        pytest.param(v1_body(v=2, request_id=None), id="request_id_null"),
    ],
)
def test_decode_v1_salvages_nothing_without_a_request_id(body: dict[str, Any]) -> None:
    assert decode_error(encode(body)).salvage == {}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(without("callback_url"), id="callback_url_missing"),
        pytest.param(v1_body(callback_url="ftp://hooks.example.test/cb"), id="callback_url_ftp"),
        pytest.param(v1_body(callback_url=["https://hooks.example.test/"]), id="callback_url_not_a_string"),
    ],
)
def test_decode_v1_salvages_request_id_without_an_unusable_callback_url(body: dict[str, Any]) -> None:
    salvage = decode_error(encode(body)).salvage

    assert salvage["request_id"] == REQUEST_ID
    assert "callback_url" not in salvage


@pytest.mark.parametrize(
    ("client_id", "salvaged"),
    [
        pytest.param(7, 7, id="integer_kept"),
        pytest.param(True, None, id="bool_dropped"),
        pytest.param("7", None, id="string_dropped"),
    ],
)
def test_decode_v1_salvages_only_an_integer_client_id(client_id: Any, salvaged: int | None) -> None:
    error = decode_error(encode(v1_body(client_id=client_id, v=2)))

    assert error.salvage["client_id"] == salvaged


@pytest.mark.parametrize(
    "callback_url",
    [
        pytest.param("https://user:pw@hooks.example.test/cb", id="user_info"),
        pytest.param("https://hooks.example.test/a b", id="whitespace"),
        pytest.param("https://", id="no_host"),
        pytest.param("https://hooks.example.test/" + "a" * 2048, id="longer_than_2048"),
    ],
)
def test_decode_v1_does_not_salvage_an_invalid_callback_url(callback_url: str) -> None:
    salvage = decode_error(encode(v1_body(callback_url=callback_url))).salvage

    assert salvage["request_id"] == REQUEST_ID
    assert "callback_url" not in salvage


@pytest.mark.parametrize("source", [pytest.param([], id="list"), pytest.param({}, id="object")])
def test_decode_v1_survives_a_source_of_unhashable_type(source: Any) -> None:
    # Not a source it knows: the message is still decided, as one that came from the topic.
    assert decode_v1(encode(v1_body(source=source))).source == "topic"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"[" * 100_000, id="deeply_nested_array"),
        pytest.param(b'{"v":' + b"1" * 5000 + b"}", id="integer_of_5000_digits"),
    ],
)
def test_decode_v1_turns_every_json_failure_into_malformed_message(value: bytes) -> None:
    error = decode_error(value)

    assert error.salvage == {}


def test_decode_v1_rejects_version_true() -> None:
    assert decode_error(encode(v1_body(v=True))).error.startswith("v:")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_decode_v1_rejects_json_that_is_not_utf8(encoding: str) -> None:
    decode_error(json.dumps(v1_body()).encode(encoding))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)


def decodes_or_is_malformed(value: bytes) -> None:
    """The property: a ChargeRequestV1 or a MalformedMessage; any other exception fails the test."""
    outcome: ChargeRequestV1 | str
    try:
        outcome = decode_v1(value)
    except MalformedMessage as error:
        outcome = error.error
    assert isinstance(outcome, ChargeRequestV1) or outcome != ""


@given(st.binary(max_size=512))
def test_decode_v1_on_arbitrary_bytes_raises_only_malformed_message(value: bytes) -> None:
    decodes_or_is_malformed(value)


@given(st.dictionaries(st.text(), json_values, max_size=10))
def test_decode_v1_on_arbitrary_json_objects_raises_only_malformed_message(body: dict[str, Any]) -> None:
    decodes_or_is_malformed(encode(body))


@given(st.dictionaries(st.sampled_from(V1_FIELDS), json_values, min_size=1))
def test_decode_v1_with_v1_fields_replaced_by_any_json_raises_only_malformed_message(
    changes: dict[str, Any],
) -> None:
    decodes_or_is_malformed(encode(v1_body(**changes)))


@given(st.dictionaries(st.text().filter(lambda key: key not in {*V1_FIELDS, "source"}), json_values))
def test_decode_v1_ignores_any_unknown_field(extra: dict[str, Any]) -> None:
    assert decode_v1(encode({**extra, **v1_body()})) == decode_v1(encode(v1_body()))


@pytest.mark.parametrize("field", ["station_id", "driver_token", "callback_url"])
def test_a_lone_surrogate_escaped_in_the_json_is_named_in_its_field(field: str) -> None:
    # pydantic's JSON parser refuses "\ud800" where the standard library reads it: still the field's error.
    error = decode_error(encode(v1_body(**{field: "x\ud800"})))

    assert error.error.startswith(f"{field}:")
    assert error.reason == Reason.MALFORMED_MESSAGE
    assert "request_id" in error.salvage
