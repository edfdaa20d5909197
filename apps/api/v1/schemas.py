"""Request and response schemas of /api/v1. Validation lives here, on the fields."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from ninja import Schema
from ninja.errors import ValidationError

from apps.access.identifiers import DriverTokenValue, StationId
from apps.access.policy import Status
from apps.callbacks.urlguard import CallbackUrl

# The decision statuses, as the policy defines them (one vocabulary for the log, the API and the tasks).
RequestStatus = Status


class ErrorOut(Schema):
    detail: str


class FieldErrorOut(Schema):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(Schema):
    """422: one entry per bad field; `loc` ends with the field's name."""

    detail: list[FieldErrorOut]


def field_error(location: str, field: str, message: str) -> ValidationError:
    """A 422 in the same shape as the schema validation's, for checks made in the view."""
    return ValidationError([{"loc": [location, field], "msg": message, "type": "value_error"}])


class StationTokenIn(Schema):
    station_id: StationId
    driver_token: DriverTokenValue


class ChargingRequestIn(StationTokenIn):
    callback_url: CallbackUrl


class AcceptedOut(Schema):
    request_id: uuid.UUID
    status: Literal["accepted"]
    status_url: str


class CallbackStateOut(Schema):
    status: str
    attempts: int
    last_http_status: int | None


class ChargingRequestOut(Schema):
    request_id: uuid.UUID
    station_id: str
    driver_token: str
    status: RequestStatus
    reason: str
    source: str
    requested_at: datetime
    decided_at: datetime | None
    callback: CallbackStateOut | None


class ChargingRequestPage(Schema):
    items: list[ChargingRequestOut]
    next_cursor: str | None


class AuthorizeOut(Schema):
    request_id: uuid.UUID
    status: RequestStatus
    reason: str
    message: str
    expires_at: datetime | None


# Answers every authenticated /api/v1 route may give besides its own (the OpenAPI document lists them).
COMMON_ERRORS: dict[int, type[Schema]] = {
    401: ErrorOut,
    403: ErrorOut,
    422: ValidationErrorOut,
    429: ErrorOut,
    503: ErrorOut,
}
