"""The authorization decision, as a pure function: plain values in, a Decision out.

No ORM and no clock here (the time is an argument), so every rule is a table test in tests/unit.
The order follows OCPP/SteVe: who the token is, then the station, then the grants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    ALLOWED = "allowed"
    NOT_ALLOWED = "not_allowed"
    UNKNOWN = "unknown"
    INVALID = "invalid"


class Reason(StrEnum):
    GRANTED = "granted"
    UNKNOWN_TOKEN = "unknown_token"
    TOKEN_BLOCKED = "token_blocked"
    TOKEN_EXPIRED = "token_expired"
    STATION_DISABLED = "station_disabled"
    NO_GRANT = "no_grant"
    GRANT_NOT_YET_VALID = "grant_not_yet_valid"
    GRANT_EXPIRED = "grant_expired"
    TIMEOUT = "timeout"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    MALFORMED_MESSAGE = "malformed_message"
    INVALID_TOKEN_FORMAT = "invalid_token_format"


@dataclass(frozen=True)
class TokenFacts:
    blocked: bool
    valid_until: datetime | None


@dataclass(frozen=True)
class StationFacts:
    enabled: bool


@dataclass(frozen=True)
class GrantFacts:
    """A live (not revoked) grant of the token or its group; station_id None means every station."""

    station_id: str | None
    valid_from: datetime | None
    valid_until: datetime | None


@dataclass(frozen=True)
class Decision:
    status: Status
    reason: Reason
    # Until when an `allowed` answer holds: the earlier of the token's and the grant's validity.
    expires_at: datetime | None = None


def _earliest(*moments: datetime | None) -> datetime | None:
    known = [moment for moment in moments if moment is not None]
    return min(known) if known else None


def within_window(valid_from: datetime | None, valid_until: datetime | None, at: datetime) -> bool:
    """The one validity rule of tokens and grants: a half-open window, valid from `valid_from`
    (inclusive) until `valid_until` (exclusive); an end left out is open. The ORM's form of the same
    rule is apps.access.selectors.window_q."""
    return (valid_from is None or valid_from <= at) and (valid_until is None or at < valid_until)


def decide(  # noqa: PLR0911 - one return per row of the decision table
    *,
    token: TokenFacts | None,
    grants: Iterable[GrantFacts],
    station_id: str,
    station: StationFacts | None,
    at: datetime,
) -> Decision:
    """May this token charge at this station at `at`?

    Validity windows are half-open: a token or grant is valid from valid_from (inclusive) until
    valid_until (exclusive), so at exactly valid_until it has expired.
    """
    if token is None:
        return Decision(Status.NOT_ALLOWED, Reason.UNKNOWN_TOKEN)
    if token.blocked:
        return Decision(Status.NOT_ALLOWED, Reason.TOKEN_BLOCKED)
    if not within_window(None, token.valid_until, at):
        return Decision(Status.NOT_ALLOWED, Reason.TOKEN_EXPIRED)
    if station is not None and not station.enabled:
        return Decision(Status.NOT_ALLOWED, Reason.STATION_DISABLED)

    covering = [grant for grant in grants if grant.station_id is None or grant.station_id == station_id]
    if not covering:
        return Decision(Status.NOT_ALLOWED, Reason.NO_GRANT)
    current = [grant for grant in covering if within_window(grant.valid_from, grant.valid_until, at)]
    if current:
        # Several grants may cover the request: the answer holds as long as the longest-lived one.
        open_ended = any(grant.valid_until is None for grant in current)
        grant_until = None if open_ended else max(g.valid_until for g in current if g.valid_until is not None)
        return Decision(Status.ALLOWED, Reason.GRANTED, expires_at=_earliest(token.valid_until, grant_until))
    if any(grant.valid_from is not None and at < grant.valid_from for grant in covering):
        return Decision(Status.NOT_ALLOWED, Reason.GRANT_NOT_YET_VALID)
    return Decision(Status.NOT_ALLOWED, Reason.GRANT_EXPIRED)


# The original service's wording, kept in callbacks and the original routes.
MESSAGES = {
    Status.ALLOWED: "Access granted",
    Status.NOT_ALLOWED: "Access denied",
    Status.UNKNOWN: "Request is too old",
    Status.INVALID: "Request is invalid",
    Status.PENDING: "Request is being processed",
}


def decision_message(status: Status, reason: Reason | str) -> str:
    if status == Status.UNKNOWN and reason == Reason.BACKEND_UNAVAILABLE:
        return "Authorization backend unavailable"
    return MESSAGES[status]
