"""The original service's four routes: same paths, same request fields, same JSON bodies, HTTP 200.

The original accepted JSON or form bodies (Django REST Framework's parsers), so these do too. Its
answers to bad input were 200s with a `rejected`/`error` body, and its callers depend on that.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from ninja import Router

from apps.access.identifiers import driver_token_legacy_check, station_id_normalize
from apps.access.policy import Status, decision_message
from apps.access.services import acl_insert
from apps.api.body import BodyInvalid, legacy_fields
from apps.callbacks.urlguard import callback_url_check
from apps.charging.models import ChargingRequest
from apps.charging.producer import ProduceFailed
from apps.charging.selectors import charging_requests_slice
from apps.charging.services import charging_request_accept, charging_request_decide_sync
from apps.clients.auth import ApiKeyAuth, request_api_key
from apps.clients.models import Scope

router = Router(tags=["original service"])

ACCEPTED_MESSAGE = (
    "Request is being processed asynchronously. The result will be sent to the provided callback URL."
)
FAILED = {"status": "failed", "message": "failed try again."}
LOG_DEFAULT_LIMIT = 100
LOG_MAX_LIMIT = 1000


class Rejected(Exception):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field

    def body(self) -> dict[str, str]:
        return {"status": "rejected", "message": f"{self.field} is invalid."}


def _fields(request: HttpRequest) -> dict[str, Any]:
    """The request's fields from a JSON or a form body; Rejected naming what the parser refused."""
    try:
        return legacy_fields(request)
    except BodyInvalid as exc:
        raise Rejected(exc.field) from None


def _station_and_token(fields: dict[str, Any]) -> tuple[str, str]:
    try:
        station_id = station_id_normalize(fields.get("station_id"))  # type: ignore[arg-type]
    except ValueError:
        raise Rejected("station_id") from None
    try:
        driver_token = driver_token_legacy_check(fields.get("driver_token"))  # type: ignore[arg-type]
    except ValueError:
        raise Rejected("driver_token") from None
    return station_id, driver_token


def _callback_url(fields: dict[str, Any], *, required: bool) -> str:
    value = fields.get("callback_url")
    if value in (None, "") and not required:
        return ""
    try:
        return callback_url_check(value)  # type: ignore[arg-type]
    except ValueError:
        raise Rejected("callback_url") from None


# request_time is a station's clock, and whatever it says is stored and used in date arithmetic
# (year 1 at +14:00 is 1 BC in UTC, which Python cannot even read back). Before 2000 it is a clock
# that lost its time, not a request this service or the original one ever logged; more than a day
# ahead is beyond drift or a local time sent as UTC (at most 14 h). In between, a late time is
# still answered "too old" as before.
REQUEST_TIME_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
REQUEST_TIME_AHEAD_MAX = timedelta(days=1)


def _moment(value: Any) -> datetime | None:
    """request_time as the original took it: an ISO 8601 timestamp or Unix seconds; None if neither."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, tz=UTC)
        if isinstance(value, str):
            text = value.strip()
            if text.replace(".", "", 1).isdigit():
                return datetime.fromtimestamp(float(text), tz=UTC)
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        pass
    return None


def _request_time(fields: dict[str, Any]) -> datetime | None:
    """The optional request_time, inside the window above; Rejected otherwise."""
    value = fields.get("request_time")
    if value in (None, ""):
        return None
    moment = _moment(value)
    if moment is None or not REQUEST_TIME_EARLIEST <= moment <= timezone.now() + REQUEST_TIME_AHEAD_MAX:
        raise Rejected("request_time")
    return moment


@router.post("/chargingRequestValidator/", auth=ApiKeyAuth(Scope.CHARGING_WRITE), response=dict)
def charging_request_validator(request: HttpRequest) -> dict[str, Any]:
    """Accept a charging request; the decision is POSTed to callback_url."""
    try:
        fields = _fields(request)
        station_id, driver_token = _station_and_token(fields)
        callback_url = _callback_url(fields, required=True)
    except Rejected as exc:
        return exc.body()
    try:
        message = charging_request_accept(
            client=request_api_key(request).client,
            station_id=station_id,
            driver_token=driver_token,
            callback_url=callback_url,
            source=ChargingRequest.Source.LEGACY,
        )
    except ProduceFailed:
        return FAILED
    return {"status": "accepted", "message": ACCEPTED_MESSAGE, "request_id": str(message.request_id)}


@router.post("/checkauthority/", auth=ApiKeyAuth(Scope.AUTHORIZE), response=dict)
def check_authority(request: HttpRequest) -> dict[str, Any]:
    """Decide at once; log it; POST the decision to callback_url too when one is given.

    request_time (optional): an ISO 8601 timestamp or Unix seconds, from 2000-01-01 to a day ahead;
    one older than the decision timeout is answered "Request is too old".
    """
    try:
        fields = _fields(request)
        station_id, driver_token = _station_and_token(fields)
        callback_url = _callback_url(fields, required=False)
        requested_at = _request_time(fields)
    except Rejected as exc:
        return exc.body()
    logged, decision = charging_request_decide_sync(
        client=request_api_key(request).client,
        station_id=station_id,
        driver_token=driver_token,
        callback_url=callback_url,
        source=ChargingRequest.Source.LEGACY_SYNC,
        requested_at=requested_at,
    )
    return {
        "message": decision_message(decision.status, decision.reason),
        "status": decision.status.value,
        "reason": decision.reason.value,
        "request_id": str(logged.request_id),
    }


@router.post("/insertACL/", auth=ApiKeyAuth(Scope.ACL_WRITE), response=dict)
def insert_acl(request: HttpRequest) -> dict[str, str]:
    """Let a token charge at a station: `success`, `exists` (already allowed) or `error` (bad input)."""
    try:
        station_id, driver_token = _station_and_token(_fields(request))
    except Rejected:
        return {"flag": "error"}
    return {"flag": acl_insert(station_id=station_id, driver_token=driver_token).value}


def _bounded(value: str | None, *, default: int, low: int, high: int) -> int:
    try:
        number = int(value) if value not in (None, "") else default  # type: ignore[arg-type]
    except ValueError:
        return default
    return max(low, min(number, high))


@router.get("/getrequestlog/", auth=ApiKeyAuth(Scope.CHARGING_READ), response=list[dict[str, Any]])
def get_request_log(request: HttpRequest) -> list[dict[str, Any]]:
    """The decision log, newest first: ?limit= (default 100, at most 1,000) and ?offset=."""
    limit = _bounded(request.GET.get("limit"), default=LOG_DEFAULT_LIMIT, low=1, high=LOG_MAX_LIMIT)
    offset = _bounded(request.GET.get("offset"), default=0, low=0, high=10**9)
    rows = charging_requests_slice(limit=limit, offset=offset, client_id=request_api_key(request).client_id)
    return [
        {
            "id": str(row.request_id),
            "station_id": row.station_id,
            "driver_token": row.driver_token,
            "callback_url": row.callback_url,
            "request_time": row.requested_at.isoformat(),
            "decision_time": row.decided_at.isoformat() if row.decided_at else None,
            "decision": row.status,
            "reason": row.reason,
            "message": decision_message(Status(row.status), row.reason),
        }
        for row in rows
    ]
