"""Reads of the decision log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet

from apps.charging.models import ChargingRequest
from apps.core.cursors import BadCursor, cursor_decode, cursor_encode


def charging_request_get(*, request_id: uuid.UUID, client_id: int | None = None) -> ChargingRequest | None:
    """One request with its delivery; None if unknown, or another client's when client_id is given."""
    rows = ChargingRequest.objects.select_related("delivery").filter(request_id=request_id)
    if client_id is not None:
        rows = rows.filter(client_id=client_id)
    return rows.first()


@dataclass(frozen=True)
class RequestFilters:
    station_id: str | None = None
    driver_token: str | None = None
    status: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    client_id: int | None = None


def request_cursor_encode(request: ChargingRequest) -> str:
    return cursor_encode(request.requested_at.isoformat(), str(request.request_id))


def request_cursor_decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    text, request_id = cursor_decode(cursor, parts=2)
    try:
        moment = datetime.fromisoformat(text)
        # Ours are in UTC (rows come back in UTC): another offset was made up, and PostgreSQL would
        # refuse one beyond ±15:59.
        if moment.utcoffset() != timedelta(0):
            raise ValueError("not in UTC")
        return moment, uuid.UUID(request_id)
    except ValueError:
        raise BadCursor from None


def _filtered(filters: RequestFilters) -> QuerySet[ChargingRequest]:
    rows = ChargingRequest.objects.select_related("delivery")
    for field in ("station_id", "driver_token", "status", "reason", "client_id"):
        value = getattr(filters, field)
        if value is not None:
            rows = rows.filter(**{field: value})
    if filters.since is not None:
        rows = rows.filter(requested_at__gte=filters.since)
    if filters.until is not None:
        rows = rows.filter(requested_at__lt=filters.until)
    return rows


def charging_requests_page(
    *, filters: RequestFilters, limit: int, cursor: str | None = None
) -> tuple[list[ChargingRequest], str | None]:
    """Newest first, keyset-paginated on (requested_at, request_id): stable while rows are added."""
    rows = _filtered(filters).order_by("-requested_at", "-request_id")
    if cursor:
        moment, request_id = request_cursor_decode(cursor)
        rows = rows.filter(Q(requested_at__lt=moment) | Q(requested_at=moment, request_id__lt=request_id))
    page = list(rows[: limit + 1])
    next_cursor = request_cursor_encode(page[limit - 1]) if len(page) > limit else None
    return page[:limit], next_cursor


def charging_requests_slice(*, limit: int, offset: int, client_id: int | None) -> list[ChargingRequest]:
    """The original getrequestlog's page of one client's requests: newest first, by offset."""
    rows = ChargingRequest.objects.filter(client_id=client_id).order_by("-requested_at", "-request_id")
    return list(rows[offset : offset + limit])


def charging_requests_pending_counts(*, now: datetime) -> tuple[int, int]:
    """(pending, overdue) rows: one aggregate over the partial index of pending rows, cheap on scrape."""
    counts = ChargingRequest.objects.filter(status=ChargingRequest.DecisionStatus.PENDING).aggregate(
        pending=Count("pk"), overdue=Count("pk", filter=Q(deadline__lt=now))
    )
    return int(counts["pending"]), int(counts["overdue"])
