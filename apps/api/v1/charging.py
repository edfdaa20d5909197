"""/api/v1/charging-requests and /api/v1/authorize."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from django.http import HttpRequest
from ninja import Header, Query, Router, Schema
from ninja.errors import HttpError
from pydantic import field_validator
from redis import RedisError

from apps.access.identifiers import station_id_normalize
from apps.access.policy import decision_message
from apps.api.errors import ServiceUnavailable
from apps.api.v1.schemas import (
    COMMON_ERRORS,
    AcceptedOut,
    AuthorizeOut,
    CallbackStateOut,
    ChargingRequestIn,
    ChargingRequestOut,
    ChargingRequestPage,
    ErrorOut,
    RequestStatus,
    StationTokenIn,
    field_error,
)
from apps.charging.idempotency import KEY_MAX
from apps.charging.models import ChargingRequest
from apps.charging.producer import ProduceFailed
from apps.charging.selectors import RequestFilters, charging_request_get, charging_requests_page
from apps.charging.services import (
    IdempotencyConflict,
    IdempotencyInFlight,
    charging_request_accept,
    charging_request_accept_once,
    charging_request_decide_sync,
)
from apps.clients.auth import ApiKeyAuth, request_api_key
from apps.clients.models import Scope

router = Router(tags=["charging requests"])

# "scheme://host" of the status URLs, per (scheme, Host) this process has answered. Django's
# build_absolute_uri checks the host against ALLOWED_HOSTS and quotes the whole URL again at every
# call: a tenth of an accepted request's CPU in the api (benchmarks.hot_paths under py-spy).
# Bounded, since with ALLOWED_HOSTS = ["*"] the caller picks the Host.
_SITES: dict[tuple[str, str, str, str], str] = {}
_SITES_MAX = 64


def _site_of(request: HttpRequest) -> str:
    meta = request.META
    key = (
        str(request.scheme),
        meta.get("HTTP_HOST", ""),
        meta.get("SERVER_NAME", ""),
        str(meta.get("SERVER_PORT", "")),
    )
    site = _SITES.get(key)
    if site is None:
        if len(_SITES) >= _SITES_MAX:
            _SITES.clear()
        site = _SITES[key] = request.build_absolute_uri("/").removesuffix("/")
    return site


def request_out(request: ChargingRequest) -> ChargingRequestOut:
    delivery = getattr(request, "delivery", None)
    return ChargingRequestOut(
        request_id=request.request_id,
        station_id=request.station_id,
        driver_token=request.driver_token,
        status=request.status,  # type: ignore[arg-type]
        reason=request.reason,
        source=request.source,
        requested_at=request.requested_at,
        decided_at=request.decided_at,
        callback=CallbackStateOut(
            status=delivery.status, attempts=delivery.attempts, last_http_status=delivery.last_http_status
        )
        if delivery is not None
        else None,
    )


@router.post(
    "/charging-requests",
    auth=ApiKeyAuth(Scope.CHARGING_WRITE),
    response={202: AcceptedOut, **COMMON_ERRORS},
    summary="Submit a charging request; the decision is POSTed to callback_url",
)
def charging_request_create(
    request: HttpRequest,
    body: ChargingRequestIn,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> tuple[int, dict[str, object]]:
    """202 only once Kafka has acknowledged the request (acks=all); 503 with Retry-After when it did not.

    With an `Idempotency-Key` header (1 to 255 printable ASCII characters), a repeat within 24 h
    returns the first request_id and produces nothing; the same key with another body is a 422.
    """
    client = request_api_key(request).client
    source = ChargingRequest.Source.ASYNC
    try:
        if idempotency_key is None:
            request_id = charging_request_accept(
                client=client,
                station_id=body.station_id,
                driver_token=body.driver_token,
                callback_url=body.callback_url,
                source=source,
            ).request_id
        else:
            if not (
                0 < len(idempotency_key) <= KEY_MAX
                and idempotency_key.isascii()
                and idempotency_key.isprintable()
            ):
                raise field_error("header", "Idempotency-Key", "1 to 255 printable ASCII characters")
            request_id = charging_request_accept_once(
                client=client,
                idempotency_key=idempotency_key,
                station_id=body.station_id,
                driver_token=body.driver_token,
                callback_url=body.callback_url,
                source=source,
            ).request_id
    except ProduceFailed:
        raise ServiceUnavailable(
            "the request queue is unavailable; nothing was accepted, try again"
        ) from None
    except RedisError:
        raise ServiceUnavailable(
            "idempotency keys cannot be checked right now; nothing was accepted"
        ) from None
    except IdempotencyConflict:
        raise field_error("header", "Idempotency-Key", "already used with a different body") from None
    except IdempotencyInFlight:
        raise ServiceUnavailable(
            "a request with this Idempotency-Key is in progress", retry_after_s=1
        ) from None
    status_url = f"{_site_of(request)}/api/v1/charging-requests/{request_id}"
    # A dict, not AcceptedOut(...): ninja validates the answer against the response schema anyway,
    # and building the schema first as well was a sixth of this route's own CPU (hot_paths, py-spy).
    return 202, {"request_id": request_id, "status": "accepted", "status_url": status_url}


@router.get(
    "/charging-requests/{request_id}",
    auth=ApiKeyAuth(Scope.CHARGING_READ),
    response={200: ChargingRequestOut, 404: ErrorOut, **COMMON_ERRORS},
)
def charging_request_detail(request: HttpRequest, request_id: uuid.UUID) -> ChargingRequestOut:
    """A request's state. 404 for an unknown id, and for a few ms after the 202 until the bridge stored it."""
    found = charging_request_get(request_id=request_id, client_id=request_api_key(request).client_id)
    if found is None:
        raise HttpError(404, "no charging request with this id")
    return request_out(found)


class LogFilters(Schema):
    station_id: str | None = None
    driver_token: str | None = None
    status: RequestStatus | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    cursor: str | None = None
    limit: int = 100

    @field_validator("station_id")
    @classmethod
    def _station_id(cls, value: str | None) -> str | None:
        # Match what was stored: any UUID spelling finds the same station.
        return station_id_normalize(value) if value is not None else None

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # In UTC: PostgreSQL refuses offsets beyond ±15:59 that ISO 8601 allows; naive means UTC.
        if value is None:
            return None
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:
            # Year 1 at +01:00 is year 0 in UTC, 9999-12-31 at -01:00 year 10000: neither exists.
            raise ValueError("is out of range in UTC") from None


@router.get(
    "/charging-requests",
    auth=ApiKeyAuth(Scope.CHARGING_READ),
    response={200: ChargingRequestPage, **COMMON_ERRORS},
)
def charging_request_list(request: HttpRequest, filters: Query[LogFilters]) -> ChargingRequestPage:
    """The decision log, newest first; pass next_cursor back as cursor for the next page."""
    if not 1 <= filters.limit <= 1000:
        raise field_error("query", "limit", "must be between 1 and 1000")
    rows, next_cursor = charging_requests_page(
        filters=RequestFilters(
            station_id=filters.station_id,
            driver_token=filters.driver_token,
            status=filters.status,
            reason=filters.reason,
            since=filters.since,
            until=filters.until,
            client_id=request_api_key(request).client_id,
        ),
        limit=filters.limit,
        cursor=filters.cursor,
    )
    return ChargingRequestPage(items=[request_out(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/authorize",
    auth=ApiKeyAuth(Scope.AUTHORIZE),
    response={200: AuthorizeOut, **COMMON_ERRORS},
    tags=["authorize"],
)
def authorize(request: HttpRequest, body: StationTokenIn) -> dict[str, object]:
    """Decide at once (OCPP Authorize style); the decision is logged with source `sync`."""
    logged, decision = charging_request_decide_sync(
        client=request_api_key(request).client,
        station_id=body.station_id,
        driver_token=body.driver_token,
        callback_url="",
        source=ChargingRequest.Source.SYNC,
    )
    # A dict, as charging_request_create answers: the response schema validates it once.
    return {
        "request_id": logged.request_id,
        "status": decision.status,
        "reason": decision.reason.value,
        "message": decision_message(decision.status, decision.reason),
        "expires_at": decision.expires_at,
    }
