"""Schemas of /api/v1/stations, /tokens, /token-groups and /grants. Validation lives here, on the fields.

In the PATCH bodies a field left out stays as it is. A field that cannot be null there is declared
with `_left_out()`: left out is fine, an explicit null is a 422 like any value of the wrong type.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from ninja import Field, Schema
from pydantic import AfterValidator, AwareDatetime, ValidationInfo, field_validator

from apps.access.credentials import OcppIdentity, OcppPassword
from apps.access.identifiers import (
    DRIVER_TOKEN_RULE,
    DriverTokenValue,
    StationId,
    driver_token_check,
    text_unstorable,
)


def _text_check(value: str) -> str:
    # What PostgreSQL cannot store is bad input, not a database error (bodies are checked by their
    # parser already; this keeps the rule on the type wherever the text comes from).
    reason = text_unstorable(value)
    if reason is not None:
        raise ValueError(reason)
    return value


def _utc(value: datetime) -> datetime:
    # PostgreSQL refuses UTC offsets beyond ±15:59 that ISO 8601 allows; in UTC any moment is fine.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


Text = Annotated[str, AfterValidator(_text_check)]
Moment = Annotated[AwareDatetime, AfterValidator(_utc)]  # with a time zone, stored in UTC
GrantId = Annotated[int, Field(ge=1, le=2**63 - 1)]  # a bigint: larger would fail in the database
TokenType = Literal["rfid", "app", "other"]
TokenStatus = Literal["active", "blocked"]

PAGE_LIMIT_DEFAULT = 100
PAGE_LIMIT_MAX = 1000


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _left_out(**field: Any) -> Any:
    """A PATCH field that may be left out (it then holds None and is not in the fields set) but is
    never null when given. Typed Any so the field keeps its own type."""
    return Field(None, json_schema_extra=_no_default, **field)


class PageQuery(Schema):
    cursor: Text | None = Field(None, description="next_cursor of the previous page; omit for the first")
    limit: int = Field(PAGE_LIMIT_DEFAULT, ge=1, le=PAGE_LIMIT_MAX)


# --- stations -----------------------------------------------------------------------------------


_OCPP_IDENTITY = "what the station connects to the OCPP gateway as (ws://…/ocpp/<identity>)"
_OCPP_PASSWORD = "its OCPP Basic auth password; left out: one is generated and answered once"


class StationIn(Schema):
    station_id: StationId = Field(description="a UUID (any case, hyphens optional) or 36 alphanumerics")
    name: Text = Field("", max_length=200)
    location: Text = Field("", max_length=300)
    enabled: bool = True
    ocpp_identity: OcppIdentity | None = Field(None, description=_OCPP_IDENTITY)
    ocpp_password: OcppPassword | None = Field(None, description=_OCPP_PASSWORD)


class StationPatch(Schema):
    name: Text = _left_out(max_length=200)
    location: Text = _left_out(max_length=300)
    enabled: bool = _left_out(description="false: the station refuses every token")
    # Named so a PATCH that tries them is told where they go, not silently ignored.
    ocpp_identity: Any = Field(None, description="not here: PUT /api/v1/stations/{station_id}/ocpp")
    ocpp_password: Any = Field(None, description="not here: PUT /api/v1/stations/{station_id}/ocpp")

    @field_validator("ocpp_identity", "ocpp_password")
    @classmethod
    def _credentials_elsewhere(cls, value: Any) -> Any:
        raise ValueError("OCPP credentials are set with PUT /api/v1/stations/{station_id}/ocpp")


class StationOut(Schema):
    station_id: str
    name: str
    location: str
    enabled: bool
    ocpp_identity: str | None
    has_ocpp_password: bool = Field(
        description="whether the station has an OCPP password (never shown again)"
    )
    created_at: datetime
    updated_at: datetime


class StationCreatedOut(StationOut):
    ocpp_password: str | None = Field(description="the OCPP password in the clear: this answer only")


class OcppCredentialsIn(Schema):
    ocpp_identity: OcppIdentity | None = Field(description=f"{_OCPP_IDENTITY}; null: off OCPP")
    ocpp_password: OcppPassword | None = Field(None, description=_OCPP_PASSWORD)


class OcppCredentialsOut(Schema):
    ocpp_identity: str | None
    ocpp_password: str | None = Field(description="the OCPP password in the clear: this answer only")


class StationPage(Schema):
    items: list[StationOut]
    next_cursor: str | None


class StationQuery(PageQuery):
    enabled: bool | None = None
    q: Text | None = Field(None, description="part of the station id, name or location, any case")


# --- token groups -------------------------------------------------------------------------------


class TokenGroupIn(Schema):
    name: Text = Field(min_length=1, max_length=100)
    note: Text = ""


class TokenGroupOut(Schema):
    name: str
    note: str
    created_at: datetime


class TokenGroupPage(Schema):
    items: list[TokenGroupOut]
    next_cursor: str | None


class TokenGroupQuery(PageQuery):
    q: Text | None = Field(None, description="part of the name, any case")


# --- driver tokens ------------------------------------------------------------------------------


class TokenIn(Schema):
    value: DriverTokenValue = Field(description=DRIVER_TOKEN_RULE)
    type: TokenType = "rfid"
    valid_until: Moment | None = Field(None, description="refused from this moment on")
    group: Text | None = Field(None, description="name of an existing token group")
    note: Text = ""


class TokenPatch(Schema):
    type: TokenType = _left_out()
    valid_until: Moment | None = Field(None, description="null: valid without end")
    group: Text | None = Field(None, description="name of an existing token group; null: no group")
    note: Text = _left_out()


class TokenOut(Schema):
    value: str
    type: str
    status: TokenStatus
    valid_until: datetime | None
    group: str | None
    note: str
    created_at: datetime
    updated_at: datetime


class TokenPage(Schema):
    items: list[TokenOut]
    next_cursor: str | None


class TokenQuery(PageQuery):
    status: TokenStatus | None = None
    group: Text | None = Field(None, description="group name")
    type: TokenType | None = None
    q: Text | None = Field(None, description="part of the value or note, any case")


# --- grants -------------------------------------------------------------------------------------


def _window_check(valid_until: datetime | None, info: ValidationInfo) -> datetime | None:
    valid_from = info.data.get("valid_from")
    if valid_until is not None and valid_from is not None and valid_until <= valid_from:
        raise ValueError("valid_until must be later than valid_from")
    return valid_until


class GrantIn(Schema):
    """Exactly one holder: `token` or `group`. `station_id` null: every station."""

    # group comes first so that the one-holder rule, checked on token, sees it.
    group: Text | None = Field(None, description="name of an existing token group")
    token: Text | None = Field(None, validate_default=True, description="value of an existing driver token")
    station_id: StationId | None = Field(None, description="null: every station")
    valid_from: Moment | None = Field(None, description="valid from this moment (inclusive)")
    valid_until: Moment | None = Field(None, description="until this moment (exclusive)")
    note: Text = ""

    @field_validator("token")
    @classmethod
    def _one_holder(cls, token: str | None, info: ValidationInfo) -> str | None:
        if token is not None:
            driver_token_check(token)
        if "group" not in info.data:
            return token  # group itself is invalid and reported
        if (token is None) == (info.data["group"] is None):
            raise ValueError("give either token or group (exactly one)")
        return token

    _valid_until = field_validator("valid_until")(_window_check)


class GrantPatch(Schema):
    valid_from: Moment | None = Field(None, description="null: from the beginning")
    valid_until: Moment | None = Field(None, description="null: without end")
    note: Text = _left_out()

    _valid_until = field_validator("valid_until")(_window_check)


class GrantOut(Schema):
    id: int
    token: str | None
    group: str | None
    station_id: str | None = Field(description="null: every station")
    valid_from: datetime | None
    valid_until: datetime | None
    revoked_at: datetime | None
    active: bool = Field(description="counts now: not revoked and inside its validity window")
    note: str
    created_by: str | None
    created_at: datetime


class GrantPage(Schema):
    items: list[GrantOut]
    next_cursor: str | None


class GrantQuery(PageQuery):
    token: Text | None = Field(None, description="driver token value")
    group: Text | None = Field(None, description="group name")
    station_id: StationId | None = Field(None, description="grants at this station (not all-stations ones)")
    all_stations: bool | None = Field(None, description="true: only all-stations grants; false: only others")
    active: bool | None = Field(None, description="true: not revoked and valid now; false: the others")


class GrantExistsOut(Schema):
    """409 of POST /grants: the identical live grant that is already there."""

    detail: str
    grant: GrantOut
