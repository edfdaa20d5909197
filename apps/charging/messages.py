"""The Kafka message, version 1: the topic is a public interface, so this module is its contract.

Value: UTF-8 JSON; key: station_id; header `schema: charge.request.v1`.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apps.access.identifiers import driver_token_check, station_id_normalize, text_unstorable
from apps.access.policy import Reason
from apps.callbacks.urlguard import callback_url_check

SCHEMA_HEADER = "schema"
SCHEMA_V1 = "charge.request.v1"
REQUEST_ID_HEADER = "request_id"
# Timestamps outside these years are not a request of ours (and years 1 or 9999 break date
# arithmetic and some databases): the message is malformed.
MESSAGE_TIME_MIN = datetime(2000, 1, 1, tzinfo=UTC)
MESSAGE_TIME_MAX = datetime(2200, 1, 1, tzinfo=UTC)


class MalformedMessage(ValueError):
    """The message breaks the v1 schema. Carries what could still be read, to log an `invalid` row."""

    def __init__(
        self, error: str, *, reason: Reason = Reason.MALFORMED_MESSAGE, salvage: dict[str, Any] | None = None
    ) -> None:
        super().__init__(error)
        self.error = error
        self.reason = reason
        self.salvage = salvage or {}


@dataclass(frozen=True)
class ChargeRequestV1:
    request_id: uuid.UUID
    client_id: int | None
    station_id: str
    driver_token: str
    callback_url: str
    received_at: datetime
    deadline: datetime
    source: str = "async"

    def to_json(self) -> bytes:
        body = {
            "v": 1,
            "request_id": str(self.request_id),
            "client_id": self.client_id,
            "station_id": self.station_id,
            "driver_token": self.driver_token,
            "callback_url": self.callback_url,
            "received_at": self.received_at.isoformat(),
            "deadline": self.deadline.isoformat(),
            "source": self.source,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def headers(self) -> list[tuple[str, bytes]]:
        return [(SCHEMA_HEADER, SCHEMA_V1.encode()), (REQUEST_ID_HEADER, str(self.request_id).encode())]


def _aware_datetime(body: dict[str, Any], field: str) -> datetime:
    value = body.get(field)
    if not isinstance(value, str):
        raise MalformedMessage(f"{field}: an RFC 3339 timestamp is required")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedMessage(f"{field}: not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise MalformedMessage(f"{field}: the timestamp needs a UTC offset")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise MalformedMessage(f"{field}: out of range") from None
    if not MESSAGE_TIME_MIN <= moment < MESSAGE_TIME_MAX:
        raise MalformedMessage(
            f"{field}: out of range (years {MESSAGE_TIME_MIN.year} to {MESSAGE_TIME_MAX.year - 1})"
        )
    return moment


def _storable(value: str) -> str:
    """The text with what the database cannot hold replaced, for a row that logs a bad message."""
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def _salvage(body: dict[str, Any]) -> dict[str, Any]:
    """What an invalid row can still record: an id and a callback URL make it answerable."""
    found: dict[str, Any] = {}
    try:
        found["request_id"] = uuid.UUID(str(body.get("request_id")))
    except ValueError:
        return {}
    # An invalid row without a usable callback URL is logged, not delivered.
    with contextlib.suppress(ValueError):
        found["callback_url"] = callback_url_check(body.get("callback_url"))  # type: ignore[arg-type]
    for field in ("station_id", "driver_token"):
        value = body.get(field)
        found[field] = _storable(value)[:255] if isinstance(value, str) else ""
    if "callback_url" in found and text_unstorable(found["callback_url"]):
        del found["callback_url"]
    client_id = body.get("client_id")
    usable = isinstance(client_id, int) and not isinstance(client_id, bool) and 0 < client_id < 2**63
    found["client_id"] = client_id if usable else None
    return found


def decode_v1(value: bytes | None) -> ChargeRequestV1:
    """Parse and validate one message value; MalformedMessage says what is wrong."""
    if value is None:
        raise MalformedMessage("empty message")
    try:
        # Decode as UTF-8 first: json.loads(bytes) would also accept UTF-16 and UTF-32.
        body = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers too long to parse; RecursionError deep nesting.
        raise MalformedMessage(f"not UTF-8 JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(body, dict):
        raise MalformedMessage("the message must be a JSON object")
    salvage = _salvage(body)
    try:
        return _decode_fields(body)
    except MalformedMessage as exc:
        raise MalformedMessage(exc.error, reason=exc.reason, salvage=salvage) from None


def _decode_fields(body: dict[str, Any]) -> ChargeRequestV1:
    # Text a row cannot hold is malformed here, not a database error later (unknown fields are ignored).
    for field in ("station_id", "driver_token", "callback_url"):
        value = body.get(field)
        if isinstance(value, str) and (why := text_unstorable(value)):
            raise MalformedMessage(f"{field}: {why}")
    if type(body.get("v")) is not int or body.get("v") != 1:  # True == 1 in Python
        raise MalformedMessage(f"v: unsupported message version {body.get('v')!r}")
    try:
        request_id = uuid.UUID(str(body.get("request_id")))
    except ValueError:
        raise MalformedMessage("request_id: not a UUID") from None
    client_id = body.get("client_id")
    if client_id is not None and (
        not isinstance(client_id, int) or isinstance(client_id, bool) or not 0 < client_id < 2**63
    ):
        raise MalformedMessage("client_id: a positive 64-bit integer or null is required")
    try:
        station_id = station_id_normalize(body.get("station_id"))  # type: ignore[arg-type]
    except ValueError as exc:
        raise MalformedMessage(f"station_id: {exc}") from None
    try:
        driver_token = driver_token_check(body.get("driver_token"))  # type: ignore[arg-type]
    except ValueError as exc:
        raise MalformedMessage(f"driver_token: {exc}", reason=Reason.INVALID_TOKEN_FORMAT) from None
    try:
        callback_url = callback_url_check(body.get("callback_url"))  # type: ignore[arg-type]
    except ValueError as exc:
        raise MalformedMessage(f"callback_url: {exc}") from None
    source = body.get("source", "topic")
    if not isinstance(source, str) or source not in {"async", "legacy", "topic"}:
        source = "topic"
    return ChargeRequestV1(
        request_id=request_id,
        client_id=client_id,
        station_id=station_id,
        driver_token=driver_token,
        callback_url=callback_url,
        received_at=_aware_datetime(body, "received_at"),
        deadline=_aware_datetime(body, "deadline"),
        source=source,
    )


def unstorable_message(message: ChargeRequestV1, error: Exception) -> MalformedMessage:
    """A decoded message the database refused to store, as a malformed one (dead letter, `invalid`)."""
    salvage: dict[str, Any] = {
        "request_id": message.request_id,
        "client_id": message.client_id,
        "station_id": _storable(message.station_id)[:255],
        "driver_token": _storable(message.driver_token)[:255],
    }
    if not text_unstorable(message.callback_url):
        salvage["callback_url"] = message.callback_url
    return MalformedMessage(
        f"the database refused the message: {type(error).__name__}: {str(error)[:200]}", salvage=salvage
    )
