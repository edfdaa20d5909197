"""Our decisions in each OCPP version's words: plain values in, the `ocpp` package's datatypes out.

No ORM and no I/O here, so the mapping (README "OCPP") is a table test in tests/unit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ocpp.v16 import datatypes as v16
from ocpp.v16.enums import AuthorizationStatus as Status16
from ocpp.v201 import datatypes as v201
from ocpp.v201.enums import AuthorizationStatusEnumType as Status201
from ocpp.v201.enums import IdTokenEnumType

from apps.access.policy import Decision, Reason

OCPP16 = "ocpp1.6"
OCPP201 = "ocpp2.0.1"
# The server's preference when a station offers both.
SUBPROTOCOLS = (OCPP201, OCPP16)

# Why a token may not charge, as each version can say it. 1.6 has four words, so a token that is
# fine but holds no grant here is "Invalid" (for this station); 2.0.1 can say where and when.
STATUS_16 = {
    Reason.GRANTED: Status16.accepted,
    Reason.UNKNOWN_TOKEN: Status16.invalid,
    Reason.TOKEN_BLOCKED: Status16.blocked,
    Reason.TOKEN_EXPIRED: Status16.expired,
    Reason.STATION_DISABLED: Status16.invalid,
    Reason.NO_GRANT: Status16.invalid,
    Reason.GRANT_NOT_YET_VALID: Status16.invalid,
    Reason.GRANT_EXPIRED: Status16.expired,
    Reason.INVALID_TOKEN_FORMAT: Status16.invalid,
}
STATUS_201 = {
    Reason.GRANTED: Status201.accepted,
    Reason.UNKNOWN_TOKEN: Status201.unknown,
    Reason.TOKEN_BLOCKED: Status201.blocked,
    Reason.TOKEN_EXPIRED: Status201.expired,
    Reason.STATION_DISABLED: Status201.not_at_this_location,
    Reason.NO_GRANT: Status201.not_at_this_location,
    Reason.GRANT_NOT_YET_VALID: Status201.not_at_this_time,
    Reason.GRANT_EXPIRED: Status201.not_at_this_time,
    Reason.INVALID_TOKEN_FORMAT: Status201.invalid,
}
# 1.6 parentIdTag is an IdToken of 20 characters, 2.0.1 groupIdToken's idToken 36: a longer group
# name is left out rather than cut (a cut name would be another group's).
PARENT_ID_TAG_MAX = 20
GROUP_ID_TOKEN_MAX = 36


class NoAnswer(Exception):
    """A decision no OCPP status describes (the backend could not decide): answer with a CALLERROR,
    so the station falls back to its own offline rules."""


def ocpp_time(moment: datetime) -> str:
    """OCPP's dateTime: UTC, ISO 8601 with a Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reason(decision: Decision) -> Reason:
    reason = Reason(decision.reason)
    if reason not in STATUS_16:
        raise NoAnswer(f"no OCPP status for {decision.status}/{reason}")
    return reason


def id_tag_info(decision: Decision, *, group: str | None) -> v16.IdTagInfo:
    """OCPP 1.6 idTagInfo: the status, until when an acceptance holds, and the token's group."""
    reason = _reason(decision)
    accepted = reason == Reason.GRANTED
    return v16.IdTagInfo(
        status=STATUS_16[reason],
        parent_id_tag=group if group and len(group) <= PARENT_ID_TAG_MAX else None,
        expiry_date=ocpp_time(decision.expires_at) if accepted and decision.expires_at else None,
    )


def id_token_info(decision: Decision, *, group: str | None) -> v201.IdTokenInfoType:
    """OCPP 2.0.1 idTokenInfo: the status, how long a station may cache it, and the token's group."""
    reason = _reason(decision)
    accepted = reason == Reason.GRANTED
    return v201.IdTokenInfoType(
        status=STATUS_201[reason],
        cache_expiry_date_time=ocpp_time(decision.expires_at) if accepted and decision.expires_at else None,
        group_id_token=v201.IdTokenType(id_token=group, type=IdTokenEnumType.central)
        if group and len(group) <= GROUP_ID_TOKEN_MAX
        else None,
    )


def status_text(*, connector_id: int | None, status: str, error_code: str | None = None) -> str:
    """A StatusNotification as the admin shows it: "connector 1: Faulted (GroundFailure)"."""
    where = "station" if not connector_id else f"connector {connector_id}"
    detail = f" ({error_code})" if error_code and error_code != "NoError" else ""
    return f"{where}: {status}{detail}"[:200]
